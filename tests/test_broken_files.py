"""Every file paperkd reads may be broken: each command answers with one line naming the file (exit 2, no traceback,
nothing half-written); where one bad file among many need not stop the work, it is named and skipped.

The tests break real files themselves: a real checkpoint truncated, a real record emptied, garbage bytes, JSON where
a checkpoint belongs, a torchvision state dict, another format version, a student's checkpoint as the teacher.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from conftest import SMOKE, interrupted_in_epoch_2
from paperkd.checkpoint import load_checkpoint, save_checkpoint
from paperkd.cli import main
from paperkd.config import resolve
from paperkd.records import RECORD_NAME, load_records, write_record
from paperkd.train import train

REPO = Path(__file__).resolve().parents[1]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def broken_checkpoints(good: Path, folder: Path) -> dict[str, Path]:
    """One file per kind of broken checkpoint, made from the real checkpoint `good`."""
    folder.mkdir(parents=True, exist_ok=True)
    data = good.read_bytes()
    made = {
        "missing": folder / "missing.pt",
        "empty": folder / "empty.pt",
        "truncated": folder / "truncated.pt",
        "garbage": folder / "garbage.pt",
        "json": folder / "record-as-checkpoint.pt",
        "state dict": folder / "torchvision.pt",
        "other version": folder / "version9.pt",
        "no weights": folder / "no-model.pt",
    }
    made["empty"].write_bytes(b"")
    made["truncated"].write_bytes(data[: len(data) // 2])
    made["garbage"].write_bytes(b"\x89 not a checkpoint \x00" * 200)  # fixed bytes: never by chance JSON-like
    made["json"].write_text(json.dumps({"schema": 1, "run_name": "x"}))
    torch.save({"conv1.weight": torch.zeros(1)}, made["state dict"])
    state = load_checkpoint(good)
    torch.save({**state, "version": 9}, made["other version"])
    save_checkpoint(made["no weights"], {"config": state["config"]})
    return made


EXPECTED = {"missing": "not found", "empty": "is empty", "truncated": "truncated", "garbage": "not a readable",
            "json": "is a JSON file", "state dict": "not a paperkd checkpoint", "other version": "version 9",
            "no weights": "without model"}


@pytest.fixture(scope="module")
def student_run(tmp_path_factory, tiny_standin):
    from paperkd.train import train

    out = tmp_path_factory.mktemp("student")
    record = train(resolve("r18-none", "smoke", recipe="paper", data_root=str(tiny_standin), out=str(out), epochs=1,
                           max_train_images=4, **SMOKE), progress=False)
    return Path(record["checkpoint"])


def test_every_command_names_a_broken_checkpoint_in_one_line(capsys, tmp_path, tiny_standin, student_run):
    image = tmp_path / "image.png"
    from PIL import Image

    Image.new("RGB", (40, 30), (10, 20, 30)).save(image)
    for kind, path in broken_checkpoints(student_run, tmp_path / "broken").items():
        commands = {
            "eval": ["eval", path, "--data-root", tiny_standin, "--max-images", 2, "--quiet"],
            "predict": ["predict", path, image, "--out", tmp_path / "masks"],
            "train --teacher": ["train", "--preset", "r18-pixel", "--scale", "smoke", "--dataset", "standin",
                                "--data-root", tiny_standin, "--out", tmp_path / "runs", "--teacher", path,
                                "--quiet"],
            "calibrate": ["calibrate", "r18-pixel", "--teacher", path, "--scale", "smoke", "--data-root",
                          tiny_standin, "--quiet"],
        }
        for name, argv in commands.items():
            code, _, err = run(capsys, *argv)
            assert code == 2, (kind, name)
            assert str(path) in err and EXPECTED[kind] in err, (kind, name, err)
            assert len(err.strip().splitlines()) == 1, (kind, name, err)
    assert not (tmp_path / "masks").exists() or not any((tmp_path / "masks").iterdir())  # nothing half-written


def test_resume_over_a_truncated_checkpoint_is_one_line(capsys, tmp_path, tiny_standin, student_run):
    run_dir = tmp_path / "runs" / "r18-none-s0"
    run_dir.mkdir(parents=True)
    data = student_run.read_bytes()
    (run_dir / "checkpoint.pt").write_bytes(data[: len(data) // 3])
    code, _, err = run(capsys, "train", "--preset", "r18-none", "--scale", "smoke", "--dataset", "standin",
                       "--data-root", tiny_standin, "--out", tmp_path / "runs", "--resume", "--quiet")
    assert code == 2 and "checkpoint.pt" in err and "truncated" in err


def test_a_students_checkpoint_is_refused_as_teacher_unless_intended(capsys, tmp_path, tiny_standin, student_run):
    argv = ["train", "--preset", "r18-pixel", "--scale", "smoke", "--dataset", "standin", "--data-root",
            tiny_standin, "--out", tmp_path / "runs", "--teacher", student_run, "--epochs", "1",
            "--connector-warmup-epochs", "0", "--max-train-images", "4", "--workers", "0", "--quiet"]
    code, _, err = run(capsys, *argv)
    assert code == 2 and "is not a trained teacher" in err and "preset 'r18-none', backbone resnet18" in err
    assert "--allow-any-teacher" in err
    code, _, _ = run(capsys, *argv, "--allow-any-teacher")
    assert code == 0
    record = json.loads((tmp_path / "runs" / "r18-pixel-s0" / RECORD_NAME).read_text())
    assert record["teacher"]["backbone"] == "resnet18" and record["teacher"]["preset"] == "r18-none"


def test_an_unfinished_teacher_is_refused(capsys, tmp_path, tiny_standin, smoke_teacher):
    state = load_checkpoint(smoke_teacher)
    half = tmp_path / "teacher-s0" / "checkpoint.pt"
    save_checkpoint(half, {**state, "epoch": 1})  # no record beside it, 1 of 2 epochs
    code, _, err = run(capsys, "train", "--preset", "r18-pixel", "--scale", "smoke", "--dataset", "standin",
                       "--data-root", tiny_standin, "--out", tmp_path / "runs", "--teacher", half, "--quiet")
    assert code == 2 and "unfinished teacher run (epoch 1 of 2" in err


def test_a_folder_whose_students_distilled_from_another_teacher_is_refused(capsys, tmp_path, tiny_standin,
                                                                           smoke_teacher):
    from paperkd.provenance import sha256_of
    from test_report import make_record

    out = tmp_path / "runs"

    def name_teacher(run_dir: Path, sha: str) -> None:  # as if the run had distilled from that teacher
        path = run_dir / RECORD_NAME
        path.write_text(json.dumps({**json.loads(path.read_text()), "teacher": {"sha256": sha}}))

    def student_of(sha: str) -> None:
        make_record(out, "r18-both", 1, 0.5)
        name_teacher(out / "r18-both-s1", sha)

    make_record(out, "r18-none", 0, 0.4)  # a plain student names no teacher: never in the way
    student_of("f" * 64)  # distilled from a teacher retrained since (other bytes)
    argv = ["train", "--preset", "r18-pixel", "--scale", "smoke", "--dataset", "standin", "--data-root",
            tiny_standin, "--out", out, "--teacher", smoke_teacher, "--epochs", "1", "--connector-warmup-epochs", "0",
            "--max-train-images", "4", "--workers", "0", "--quiet"]
    code, _, err = run(capsys, *argv)
    assert code == 2 and f"1 finished student(s) in {out} distilled from another teacher (ffffffffffff…)" in err
    assert f"{out / 'r18-both-s1'}. One folder, one teacher" in err
    assert not (out / "r18-pixel-s0").exists()  # refused before anything was written
    student_of(sha256_of(smoke_teacher))  # one teacher in the folder
    make_record(out / "elsewhere", "r18-both", 2, 0.5)  # another experiment below it: not this folder's run
    name_teacher(out / "elsewhere" / "r18-both-s2", "e" * 64)
    code, _, _ = run(capsys, *argv)
    assert code == 0 and (out / "r18-pixel-s0" / RECORD_NAME).is_file()
    name_teacher(out / "r18-pixel-s0", "f" * 64)
    code, _, _ = run(capsys, *argv)  # the stale run itself, trained again as the error asks: not in its own way
    assert code == 0 and load_records(out / "r18-pixel-s0")["teacher_sha256"].item() == sha256_of(smoke_teacher)


def test_a_run_resumed_against_a_retrained_teacher_is_refused(tmp_path, tiny_standin, smoke_teacher):
    from paperkd.errors import ConfigError

    teacher = tmp_path / "teacher-s0" / smoke_teacher.name
    shutil.copytree(smoke_teacher.parent, teacher.parent)
    cfg = resolve("r18-pixel", "smoke", teacher=str(teacher), data_root=str(tiny_standin), out=str(tmp_path / "runs"),
                  epochs=2, max_train_images=4, **SMOKE)
    with interrupted_in_epoch_2():
        train(cfg, progress=False)
    epoch_1 = load_checkpoint(tmp_path / "runs" / "r18-pixel-s0" / "checkpoint.pt")["history"][0]
    first_build = teacher.read_bytes()
    save_checkpoint(teacher, {**load_checkpoint(teacher), "note": "retrained"})  # same path, other bytes
    with pytest.raises(ConfigError, match=r"cannot resume .*checkpoint.pt: its 1 epoch\(s\) distilled from a teacher "
                                          r"with SHA-256 .*teacher-s0/best.pt is now .*; delete .*r18-pixel-s0 to"):
        train(cfg, resume=True, progress=False)
    teacher.write_bytes(first_build)
    resumed = train(cfg, resume=True, progress=False)  # its own teacher back: it resumes, epoch 1 not run again
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2] and resumed["epochs"][0]["time_s"] == epoch_1["time_s"]


def test_a_student_record_names_its_teacher_and_every_record_its_own_checkpoint(tmp_path, tiny_standin,
                                                                                smoke_teacher):
    from paperkd.provenance import sha256_of
    from paperkd.train import train

    teacher_record = json.loads((smoke_teacher.parent / RECORD_NAME).read_text())
    record = train(resolve("r18-pixel", "smoke", teacher=str(smoke_teacher), data_root=str(tiny_standin),
                           out=str(tmp_path), epochs=2, max_train_images=4, **SMOKE), progress=False)
    teacher = record["teacher"]
    assert teacher["sha256"] == sha256_of(smoke_teacher)
    assert (teacher["backbone"], teacher["preset"], teacher["recipe"], teacher["seed"]) == (
        "resnet101", "teacher", "authors", 0)
    assert teacher["git_commit"] == teacher_record["environment"]["git_commit"]
    assert teacher["final_miou"] == teacher_record["final"]["miou"]
    assert record["selected"]["sha256"] == sha256_of(tmp_path / "r18-pixel-s0" / "best.pt")
    assert teacher["sha256"] == teacher_record["selected"]["sha256"]  # the teacher's own record names the same file


def test_tables_flag_cells_that_distilled_from_another_teacher(tmp_path):
    from paperkd import report
    from paperkd.pages.answer import comparison_table
    from paperkd.pages.campaigns import campaign
    from paperkd.paper_results import paper_table
    from test_report import make_record

    folder = tmp_path / "campaign"
    teacher = make_record(folder, "teacher", 0, 0.5, config={"backbone": "resnet101"})
    teacher["selected"] = {"miou": 0.5, "sha256": "a" * 64}
    write_record(folder / "teacher-s0" / RECORD_NAME, teacher)
    for seed, sha in ((0, "a" * 64), (1, "b" * 64)):
        rec = make_record(folder, "r18-pixel", seed, 0.3, config={"pixel": 100.0})
        rec["teacher"] = {"sha256": sha, "checkpoint": f"/somewhere/{sha[:4]}.pt"}
        write_record(folder / f"r18-pixel-s{seed}" / RECORD_NAME, rec)
    rec = make_record(folder, "r18-pair", 0, 0.3, config={"pair": 1.0})
    rec["teacher"] = {"sha256": "a" * 64, "checkpoint": "/somewhere/aaaa.pt"}
    write_record(folder / "r18-pair-s0" / RECORD_NAME, rec)
    runs = load_records(folder)
    summary = report.summarise(runs, ["teacher", "r18-pixel", "r18-pair"], teacher=report.expected_teacher(folder))
    assert summary.loc["r18-pixel", "teacher_flag"] == "other teacher (1 of 2 runs)"
    assert summary.loc["r18-pair", "teacher_flag"] == "" and summary.loc["teacher", "teacher_flag"] == ""
    cells = comparison_table(campaign(folder, ["teacher", "r18-pixel", "r18-pair"]), paper_table("table1"),
                             {})["ours mIoU"]
    assert cells["r18-pixel"].endswith("⚠ other teacher (1 of 2 runs)") and "⚠" not in cells["r18-pair"]
    text = report.sources_markdown("c", runs, folder)
    assert "another teacher" in text and "`r18-pixel-s1`" in text and "`r18-pixel-s0`" not in text


def test_one_unreadable_record_is_named_and_the_others_still_count(tmp_path, capsys):
    from paperkd import report
    from test_report import make_record

    for seed in range(3):
        make_record(tmp_path, "r18-none", seed, 0.4 + seed / 100)
    (tmp_path / "r18-none-s1" / RECORD_NAME).write_text('{"schema": 1, "run_na')  # truncated
    (tmp_path / "r18-none-s2" / RECORD_NAME).write_text("")  # empty
    make_record(tmp_path, "r18-pair", 0, 0.3)
    record = json.loads((tmp_path / "r18-pair-s0" / RECORD_NAME).read_text())
    (tmp_path / "r18-pair-s0" / RECORD_NAME).write_text(json.dumps({**record, "schema": 7}))
    with pytest.warns(UserWarning, match="r18-none-s1"):
        runs = load_records(tmp_path)
    assert list(runs["run_name"]) == ["r18-none-s0"]
    skipped = runs.attrs["skipped"]
    assert "not valid JSON" in skipped[str(tmp_path / "r18-none-s1" / RECORD_NAME)]
    assert "is empty" in skipped[str(tmp_path / "r18-none-s2" / RECORD_NAME)]
    assert "schema 7" in skipped[str(tmp_path / "r18-pair-s0" / RECORD_NAME)]
    text = report.sources_markdown("x", runs, tmp_path)
    assert "could not be read" in text and "r18-none-s1" in text and "schema 7" in text


def test_a_campaign_retrains_a_run_whose_record_is_unreadable(tmp_path, monkeypatch):
    import paperkd.train
    from paperkd.campaign import ensure_runs
    from test_report import make_record

    make_record(tmp_path, "r18-none", 0, 0.4)
    make_record(tmp_path, "r18-none", 1, 0.4)
    (tmp_path / "r18-none-s1" / RECORD_NAME).write_bytes(b"\x00\x01garbage")
    calls = []
    monkeypatch.setattr(paperkd.train, "train", lambda cfg, **kw: calls.append(cfg.name))
    with pytest.warns(UserWarning, match="r18-none-s1.*trained again"):
        ensure_runs(["r18-none"], [0, 1], scale="smoke", results=str(tmp_path), progress=False)
    assert calls == ["r18-none-s1"]


def test_broken_benchmark_files_and_standin_metadata_are_named(tmp_path, capsys, tiny_standin):
    from paperkd.bench import read_bench_file
    from paperkd.errors import PaperkdError
    from paperkd.records import RecordError

    good = sorted((REPO / "results" / "bench").glob("*.json"))[0]
    assert read_bench_file(good)
    for name, content in (("empty.json", ""), ("cut.json", good.read_text()[:100]), ("other.json", '{"a": 1}')):
        (tmp_path / name).write_text(content)
        with pytest.raises(RecordError, match=name):
            read_bench_file(tmp_path / name)

    data = tmp_path / "standin"
    shutil.copytree(tiny_standin, data)
    (data / "STANDIN.json").write_text("{not json")
    code, _, err = run(capsys, "train", "--preset", "r18-none", "--scale", "smoke", "--dataset", "standin",
                       "--data-root", data, "--out", tmp_path / "runs", "--quiet")
    assert code == 2 and "STANDIN.json is not readable stand-in metadata" in err
    assert not (tmp_path / "runs" / "r18-none-s0" / "checkpoint.pt").exists()  # it failed before training
    assert issubclass(RecordError, PaperkdError)


def test_predict_names_every_unreadable_image_and_writes_nothing(capsys, tmp_path, student_run):
    from PIL import Image

    good = tmp_path / "good.png"
    Image.new("RGB", (40, 30)).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:40])
    code, _, err = run(capsys, "predict", student_run, good, bad, cut, "--out", tmp_path / "masks", "--size", 65)
    assert code == 2 and "bad.jpg" in err and "cut.png" in err and "nothing written" in err
    assert not (tmp_path / "masks").exists()


def test_two_campaign_processes_never_train_the_same_run_twice(tmp_path, monkeypatch):
    """Two campaigns on one folder at once (threads stand for processes: an flock is per open file, so two threads
    exclude each other as two processes do): every run is trained exactly once."""
    import paperkd.train
    from paperkd.campaign import ensure_runs
    from test_report import make_record

    calls, lock = [], threading.Lock()

    def slow_train(cfg, **kwargs):
        with lock:
            calls.append(cfg.name)
        time.sleep(0.2)
        make_record(tmp_path, cfg.preset, cfg.seed, 0.4)

    monkeypatch.setattr(paperkd.train, "train", slow_train)
    threads = [threading.Thread(target=ensure_runs, args=(["r18-none", "mnv2-none"], [0, 1, 2]),
                                kwargs=dict(scale="smoke", results=str(tmp_path), progress=False)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(calls) == sorted(f"{p}-s{s}" for p in ("r18-none", "mnv2-none") for s in range(3))


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    from paperkd.campaign import run_lock

    code = ("import sys, time; sys.path.insert(0, %r); from paperkd.campaign import run_lock\n"
            "with run_lock(%r, 'r18-none-s0', wait=False) as mine:\n    print(mine, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code % (str(REPO), str(tmp_path))], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "True"
    with run_lock(tmp_path, "r18-none-s0", wait=False) as mine:
        assert not mine  # held by the other process
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with run_lock(tmp_path, "r18-none-s0", wait=False) as mine:
        assert mine  # the kernel released it with the process


def _campaign_cmd(results, data):
    return [sys.executable, "-m", "paperkd", "campaign", "--rows", "teacher", "r18-pixel", "--seeds", "0",
            "--scale", "smoke", "--data-root", str(data), "--results", str(results), "--workers", "0", "--quiet"]


def _comparable(record):
    # timings, paths, and the file hashes (a checkpoint holds its config, whose `out` folder differs here)
    drop = {"started", "finished", "wall_s", "timing_ms", "environment", "checkpoint"}
    out = {k: v for k, v in record.items() if k not in drop}
    out["epochs"] = [{k: v for k, v in e.items() if k != "time_s"} for e in record["epochs"]]
    out["config"] = {k: v for k, v in record["config"].items() if k not in ("out", "teacher")}
    if out.get("selected"):
        out["selected"] = {k: v for k, v in out["selected"].items() if k not in ("checkpoint", "sha256")}
    if out.get("teacher"):
        out["teacher"] = {k: v for k, v in out["teacher"].items() if k not in ("checkpoint", "sha256", "git_commit")}
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kill_when", ["teacher checkpoint", "teacher record"])
def test_a_killed_campaign_restarted_ends_with_the_records_of_an_uninterrupted_one(tmp_path, tiny_standin,
                                                                                   kill_when):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_campaign_cmd(tmp_path / "straight", tiny_standin), check=True, env=env, timeout=600, cwd=REPO)
    results = tmp_path / "killed"
    proc = subprocess.Popen(_campaign_cmd(results, tiny_standin), env=env, cwd=REPO)
    watched = results / "teacher-s0" / ("checkpoint.pt" if kill_when == "teacher checkpoint" else RECORD_NAME)
    deadline = time.time() + 300
    while not watched.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL and watched.exists(), "the campaign finished or never got there"
    assert not (results / "r18-pixel-s0" / RECORD_NAME).exists()
    subprocess.run(_campaign_cmd(results, tiny_standin), check=True, env=env, timeout=600, cwd=REPO)
    for run in ("teacher-s0", "r18-pixel-s0"):
        a = json.loads((tmp_path / "straight" / run / RECORD_NAME).read_text())
        b = json.loads((results / run / RECORD_NAME).read_text())
        assert _comparable(a) == _comparable(b), run


def test_a_run_that_diverged_in_another_process_is_not_tried_again(tmp_path, monkeypatch):
    import paperkd.train
    from paperkd.campaign import DIVERGED_NAME, ensure_runs, run_lock

    calls = []
    monkeypatch.setattr(paperkd.train, "train", lambda cfg, **kw: calls.append(cfg.name))
    hold, release = threading.Event(), threading.Event()

    def other_process():  # holds r18-none-s0, then leaves a divergence marker, as a campaign would
        with run_lock(tmp_path, "r18-none-s0", wait=True):
            hold.set()
            release.wait(10)
            (tmp_path / "r18-none-s0" / DIVERGED_NAME).write_text(json.dumps({"message": "r18-none-s0: nan"}))

    t = threading.Thread(target=other_process)
    t.start()
    hold.wait(10)
    threading.Timer(0.5, release.set).start()
    ensure_runs(["r18-none"], [0, 1], scale="smoke", results=str(tmp_path), progress=False)
    t.join()
    assert calls == ["r18-none-s1"]  # s0 was busy, then diverged elsewhere: deferred and not retried


def test_a_run_killed_between_its_checkpoint_and_best_pt_resumes_with_a_consistent_best(tmp_path, tiny_standin,
                                                                                         monkeypatch):
    import paperkd.run_state as run_state
    import paperkd.train as trainer
    from paperkd.checkpoint import BEST_NAME

    cfg = resolve("r18-none", "smoke", data_root=str(tiny_standin), out=str(tmp_path), epochs=2, max_train_images=4,
                  **SMOKE)
    real_save_best, calls = run_state.save_best, {"n": 0}

    def die_before_second_best(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # checkpoint.pt of epoch 2 is on disk, best.pt still of epoch 1
        return real_save_best(*args, **kwargs)

    monkeypatch.setattr(trainer, "save_best", die_before_second_best)
    monkeypatch.setattr(trainer, "evaluate", lambda *a, **k: {"miou": 0.1 * (1 + calls["n"]), "pixel_acc": 0.5,
                                                              "per_class_iou": [], "present": []})
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False)
    assert load_checkpoint(tmp_path / "r18-none-s0" / BEST_NAME)["epoch"] == 1
    monkeypatch.setattr(trainer, "save_best", real_save_best)
    record = train(cfg, resume=True, progress=False)
    assert record["selected"]["epoch"] == 2 == load_checkpoint(tmp_path / "r18-none-s0" / BEST_NAME)["epoch"]
    assert record["selected"]["miou"] == record["best_miou"]
