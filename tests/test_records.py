import json
from pathlib import Path

import pytest

from paperkd.records import RecordError, cpu_model, device_name, git_commit, lost_runs, run_environment


def test_git_commit_names_this_checkout(monkeypatch):
    monkeypatch.delenv("PAPERKD_GIT_COMMIT", raising=False)
    commit = git_commit()
    if (Path(__file__).resolve().parents[1] / ".git").exists():  # a clone: the commit must be found
        assert commit is not None and len(commit.removesuffix("-dirty")) == 40
        assert all(c in "0123456789abcdef" for c in commit.removesuffix("-dirty"))
    else:
        assert commit is None


def test_git_commit_from_the_environment_wins(monkeypatch):
    # a copy of the tree on a remote GPU machine may carry a stale .git: the caller names the commit it sent
    monkeypatch.setenv("PAPERKD_GIT_COMMIT", "d039a169121ad0b6c30611f3594dd6c588185129")
    assert git_commit() == "d039a169121ad0b6c30611f3594dd6c588185129"
    assert run_environment("cpu")["git_commit"] == "d039a169121ad0b6c30611f3594dd6c588185129"


def test_the_cpu_device_names_the_processor_model(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654 96-Core Processor\n")
    assert cpu_model(info) == "AMD EPYC 9654 96-Core Processor"
    info.write_text("processor\t: 0\nmodel name\t:\n")
    assert cpu_model(info) is None
    assert cpu_model(tmp_path / "absent") is None
    monkeypatch.setattr("paperkd.records.cpu_model", lambda: "Some CPU")
    monkeypatch.setattr("paperkd.records.cpu_kernels", lambda: "AVX512")
    assert device_name("cpu").startswith("cpu: Some CPU (") and device_name("cpu").endswith(" threads")
    assert ", AVX512 kernels), " in device_name("cpu")  # machines of one model name may differ in their kernels
    monkeypatch.setattr("paperkd.records.cpu_kernels", lambda: None)
    assert device_name("cpu").startswith("cpu: Some CPU (") and "kernels" not in device_name("cpu")
    monkeypatch.setattr("paperkd.records.cpu_model", lambda: None)
    assert "(" not in device_name("cpu")


def test_the_ledger_of_lost_runs_is_read_and_checked(tmp_path):
    assert lost_runs(tmp_path) == []
    ledger = tmp_path / "lost_runs.json"
    entry = {"run": "teacher-s0", "hours": 2.8, "epochs": 41, "why": "its machine went, and its checkpoint with it"}
    ledger.write_text(json.dumps([entry]))
    assert lost_runs(tmp_path) == [entry]
    for bad, message in (({"teacher-s0": 2.8}, "not a list"),
                         ([{"run": "teacher-s0", "hours": 2.8}], "entry 0: lacks epochs, why"),
                         ([entry, {**entry, "hours": -1}], "entry 1 (teacher-s0): hours must be a number >= 0"),
                         ([{**entry, "hours": "3 h"}], "hours must be a number"),
                         ([{**entry, "hours": float("inf")}], "hours must be a number"),
                         (["teacher-s0"], "entry 0: holds a JSON str, not an object")):
        ledger.write_text(json.dumps(bad))
        with pytest.raises(RecordError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
            lost_runs(tmp_path)
        assert "lost_runs.json" in str(err.value)
    ledger.write_text("")
    with pytest.raises(RecordError, match="empty"):
        lost_runs(tmp_path)
