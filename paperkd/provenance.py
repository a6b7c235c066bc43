"""Which teacher a number came from: a checkpoint's fingerprint and identity, and the check that `--teacher` is one.

    identity = teacher_identity("runs/teacher-s0/best.pt")   # sha256, backbone, preset, recipe, seed, epochs, mIoU...
    check_teacher(identity, allow_any=False)                 # refuses a student's or an unfinished run's checkpoint
    check_one_teacher(results, run_name, identity)           # refuses a second teacher in one results folder

A student's record keeps the identity of the teacher it distilled from (`record["teacher"]`), and every run's record
the SHA-256 of its own selected checkpoint (`record["selected"]["sha256"]`), so a table can tell, long after the
checkpoints moved, whether all of a cell's runs distilled from the teacher the page names.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from paperkd.checkpoint import load_checkpoint
from paperkd.errors import PaperkdError
from paperkd.records import RECORD_NAME, RecordError, read_record, reported_metrics

TEACHER_PRESET, TEACHER_BACKBONE = "teacher", "resnet101"


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """The SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def teacher_identity(checkpoint: str | os.PathLike, state: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a (teacher) checkpoint is: path, sha256, backbone, preset, recipe, seed, epochs, the epoch its weights
    are from, and, from the record beside it when there is one, whether the run finished, its commit and reported
    mIoU. A missing or unreadable checkpoint raises `PaperkdError` naming it. `state`: the checkpoint already
    loaded, if the caller has it."""
    path = Path(checkpoint)
    state = load_checkpoint(path) if state is None else state
    cfg = state["config"]
    identity: dict[str, Any] = {
        "checkpoint": str(path), "sha256": sha256_of(path), "backbone": cfg.get("backbone"),
        "preset": cfg.get("preset"), "recipe": cfg.get("recipe", "pre-recipe"), "seed": cfg.get("seed"),
        "epochs": cfg.get("epochs"), "epoch": state.get("epoch"), "finished": state.get("epoch") == cfg.get("epochs"),
        "git_commit": None, "miou": state.get("miou"), "final_miou": None,
    }
    record_path = path.parent / RECORD_NAME
    if record_path.is_file():
        try:
            record = read_record(record_path)
        except RecordError:
            return identity  # the checkpoint still says what it is; the page names the unreadable record
        identity.update(finished=True, git_commit=record["environment"].get("git_commit"),
                        final_miou=(record["final"] or {}).get("miou"),
                        miou=reported_metrics(record).get("miou"))
    return identity


def check_teacher(identity: dict[str, Any], allow_any: bool = False) -> None:
    """Refuse a checkpoint that is not a finished run of the teacher preset (ResNet-101), naming what it is instead;
    `allow_any=True` (`--allow-any-teacher`) says that distilling from it is intended."""
    if allow_any:
        return
    what = f"preset {identity['preset']!r}, backbone {identity['backbone']}"
    if identity["preset"] != TEACHER_PRESET or identity["backbone"] != TEACHER_BACKBONE:
        raise PaperkdError(f"{identity['checkpoint']} is not a trained teacher: it is a checkpoint of {what} (a "
                           f"teacher is preset 'teacher', backbone {TEACHER_BACKBONE}); pass --allow-any-teacher if "
                           "distilling from it is intended")
    if not identity["finished"]:
        raise PaperkdError(f"{identity['checkpoint']} is the checkpoint of an unfinished teacher run (epoch "
                           f"{identity['epoch']} of {identity['epochs']}, no record.json beside it); finish it "
                           "(paperkd train ... --resume) or pass --allow-any-teacher")


def check_one_teacher(results: str | os.PathLike, run_name: str, identity: dict[str, Any]) -> None:
    """Refuse to distil `run_name` from the teacher `identity` describes when finished students in the run folders of
    `results` (`<results>/<run>/record.json`) distilled from another one: a campaign's same-seed pairs compare
    students of one teacher, and a teacher retrained after its checkpoint was lost (another machine) is seldom the
    same bytes. The run itself is left out (training it again replaces its record); the error names the folders."""
    others = {}
    for path in sorted(Path(results).glob(f"*/{RECORD_NAME}")):
        if path.parent.name == run_name:
            continue
        try:
            sha = (read_record(path).get("teacher") or {}).get("sha256")
        except RecordError:
            continue  # an unreadable record is named by whoever reads the folder's results
        if sha is not None and sha != identity["sha256"]:
            others[str(path.parent)] = sha
    if others:
        old = ", ".join(sorted({f"{s[:12]}…" for s in others.values()}))
        raise PaperkdError(f"{run_name} would distil from {identity['checkpoint']} (SHA-256 "
                           f"{identity['sha256'][:12]}…), but {len(others)} finished student(s) in {results} "
                           f"distilled from another teacher ({old}): {', '.join(others)}. One folder, one teacher: "
                           "delete those folders (a campaign then retrains them against this teacher), or give this "
                           "run another results folder (--out, --results)")


__all__ = ["check_one_teacher", "check_teacher", "sha256_of", "teacher_identity"]
