import os

import pytest
import torch

from paperkd.atomic import atomic_write
from paperkd.checkpoint import load_checkpoint, save_checkpoint
from paperkd.errors import PaperkdError


def test_roundtrip_with_weights_only(tmp_path):
    state = {"epoch": 3, "model": {"w": torch.arange(4.0)}, "history": [{"miou": 0.5}], "config": {"lr": 0.1}}
    save_checkpoint(tmp_path / "c.pt", state)
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded["epoch"] == 3 and torch.equal(loaded["model"]["w"], torch.arange(4.0))


def test_interrupted_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"epoch": 1})

    def crash(src, dst):  # the process dies between the temporary file and the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"epoch": 2})
    monkeypatch.undo()
    assert load_checkpoint(path, needs=())["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind


def test_error_inside_the_writer_leaves_the_old_file(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("old")

    def half_then_fail(f):
        f.write("new but incompl")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, half_then_fail, mode="w")
    assert path.read_text() == "old"


class NotWeights:
    pass


@pytest.mark.parametrize("content, message", [
    (lambda p: torch.save({"model": {}}, p), "not a paperkd checkpoint"),
    (lambda p: p.write_bytes(b"garbage, not a zip"), "not a readable paperkd checkpoint"),
    (lambda p: torch.save({"format": "paperkd-checkpoint", "x": NotWeights()}, p), "not a readable"),
])
def test_foreign_files_are_refused_by_name(tmp_path, content, message):
    path = tmp_path / "foreign.pt"
    content(path)
    with pytest.raises(PaperkdError, match=message) as err:
        load_checkpoint(path)
    assert "foreign.pt" in str(err.value)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(PaperkdError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
