"""Run records: one JSON file per finished run, the only source of numbers for the notebooks.

A record holds the full resolved config, the seed, the git commit, package versions, the device, per-epoch loss terms
and mIoU, final and best mIoU, per-class IoU and the per-iteration timing breakdown. It is written atomically and only
when the run has finished, so a record on disk always describes a complete run.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from paperkd.atomic import atomic_open
from paperkd.config import scale_name
from paperkd.errors import PaperkdError

SCHEMA = 1
RECORD_NAME = "record.json"
LOST_NAME = "lost_runs.json"  # a campaign folder's ledger of compute spent on runs that never finished
DIVERGED_NAME = "diverged.json"  # left by a run whose loss became NaN or infinite (instead of a record)
PRE_RECIPE = "pre-recipe"  # the recipe name of a record written before `Config.recipe` existed
REQUIRED_KEYS = ("schema", "run_name", "preset", "seed", "config", "environment", "epochs", "final", "best_miou",
                 "timing_ms", "params", "wall_s")


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    """The commit of the paperkd checkout (with "-dirty" if it has uncommitted changes), or None outside git.

    The environment variable PAPERKD_GIT_COMMIT, when set, wins: a copy of the working tree sent to a remote GPU
    machine may carry a stale .git (seen: the remote copy reported the session's first commit, not the one sent)."""
    fallback = os.environ.get("PAPERKD_GIT_COMMIT") or None
    if fallback:
        return fallback
    cwd = cwd or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def device_name(device: Any) -> str:
    """A human-readable name of the device a run used, e.g. 'cuda: NVIDIA H100 80GB HBM3' or
    'cpu: AMD EPYC (x86_64, AVX2 kernels), 2 threads' (the processor's model name when the system tells it, and
    the instruction set torch's CPU kernels use: two machines of one model name may differ in it, and then in speed
    and in the bits of every result)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    model, kernels = cpu_model(), cpu_kernels()
    details = ", ".join([platform.machine()] + ([f"{kernels} kernels"] if kernels else []))
    machine = f"{model} ({details})" if model else details
    return f"cpu: {machine}, {torch.get_num_threads()} threads"


def cpu_kernels() -> str | None:
    """The instruction set torch dispatches its CPU kernels to ('AVX2', 'AVX512', 'DEFAULT'...), None when this
    torch cannot tell."""
    import torch

    try:
        return torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        return None


def cpu_model(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str | None:
    """The processor's model name from Linux's `cpuinfo`, None where there is none (another system, or no such
    line). Recorded because runs on two machines of one architecture may still differ in speed and kernels."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return None


def run_environment(device: Any = "cpu") -> dict[str, Any]:
    """Where and with what a run ran: git commit, package versions, device, host."""
    import torch
    import torchvision

    import paperkd

    return {
        "git_commit": git_commit(),
        "paperkd": paperkd.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "device": device_name(device),
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
    }


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_record(path: str | os.PathLike, record: dict[str, Any]) -> Path:
    """Write `record` as JSON atomically (never half-written). Refuses a record that lacks a required key."""
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise ValueError(f"run record for {path} lacks {', '.join(missing)}")
    with atomic_open(path, "w") as f:
        json.dump(record, f, indent=1, allow_nan=True)
        f.write("\n")
    return Path(path)


class RecordError(PaperkdError):
    """A file that should be a run record is missing, empty, truncated, not JSON, of another schema or not a record."""


def read_json(path: str | os.PathLike, what: str) -> Any:
    """The JSON content of `path`; `RecordError` naming the file and what is wrong when it is missing, empty or not
    JSON (a truncated file is not JSON). `what` names the kind of file in the message ("run record", ...)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RecordError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise RecordError(f"{path}: cannot read this {what} ({type(err).__name__}: {err})") from None
    if not text.strip():
        raise RecordError(f"{path} is empty, not a {what} (a run or a copy interrupted before it was written?)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise RecordError(f"{path} is not a {what}: not valid JSON at line {err.lineno}, column {err.colno} "
                          f"({err.msg}; truncated or overwritten?)") from None


def read_record(path: str | os.PathLike) -> dict[str, Any]:
    """A run record, checked: `RecordError` naming the file when it is missing, empty, not JSON, of another schema
    version, or JSON that is not a run record (lacks the required keys)."""
    record = read_json(path, "run record")
    if not isinstance(record, dict):
        raise RecordError(f"{path} is not a run record: it holds a JSON {type(record).__name__}, not an object")
    if record.get("schema") != SCHEMA and "schema" in record:
        raise RecordError(f"{path} is a run record of schema {record['schema']!r}; this paperkd reads schema "
                          f"{SCHEMA}")
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise RecordError(f"{path} is not a paperkd run record: it lacks {', '.join(missing)}")
    if not isinstance(record["config"], dict) or not isinstance(record["final"], (dict, type(None))):
        raise RecordError(f"{path} is not a paperkd run record: its config or final entry is not an object")
    return record


def reported_metrics(record: dict[str, Any]) -> dict[str, Any]:
    """The metrics a record reports: its selected epoch's, else (records from before the selection) the last's."""
    return record.get("selected") or record.get("final") or {}


def unreadable_records(folder: str | os.PathLike) -> dict[str, str]:
    """{path: what is wrong} of every record.json under `folder` that `read_record` refuses."""
    bad = {}
    for path in sorted(Path(folder).rglob(RECORD_NAME)):
        try:
            read_record(path)
        except RecordError as err:
            bad[str(path)] = str(err)
    return bad


def find_record(folder: str | os.PathLike, run_name: str) -> Path | None:
    """The record of `run_name` under `folder`, if that run has finished."""
    path = Path(folder) / run_name / RECORD_NAME
    return path if path.is_file() else None


def load_records(folder: str | os.PathLike) -> pd.DataFrame:
    """All run records under `folder` as a DataFrame, one row per run.

    Columns: run_name, preset, backbone, seed, scale, dataset, recipe, miou (of the epoch the run's config selects
    to report: the last, or the best validation epoch; `final_miou` is always the last), best_miou, params, time_ms
    (mean training iteration), the timing parts as time_<part>_ms, device, git_commit, path, and `record` (the whole
    record dict). A record written before the recipes existed has recipe "pre-recipe".

    A record that cannot be read (`read_record`'s errors) is skipped with a warning naming it, and listed in
    `df.attrs["skipped"]` ({path: what is wrong}); `unreadable_records(folder)` gives the same list on its own.
    """
    rows, skipped = [], {}
    for path in sorted(Path(folder).rglob(RECORD_NAME)):
        try:
            rec = read_record(path)
            if rec["final"] is None:
                raise RecordError(f"{path} has no final metrics (a run that never evaluated)")
        except RecordError as err:  # one bad file does not hide the others: named, skipped, kept in attrs
            skipped[str(path)] = str(err)
            warnings.warn(f"skipped {err}", stacklevel=2)
            continue
        cfg = rec["config"]
        row = {
            "run_name": rec["run_name"], "preset": rec["preset"], "backbone": cfg["backbone"], "seed": rec["seed"],
            "scale": scale_name(cfg), "dataset": cfg["dataset"], "recipe": cfg.get("recipe", PRE_RECIPE),
            "miou": reported_metrics(rec)["miou"], "final_miou": rec["final"]["miou"],
            "best_miou": rec["best_miou"], "params": rec["params"]["total"], "time_ms": rec["timing_ms"].get("total"),
            "device": rec["environment"]["device"], "git_commit": rec["environment"]["git_commit"],
            "wall_s": rec["wall_s"], "teacher_sha256": (rec.get("teacher") or {}).get("sha256"),
            "path": str(path), "record": rec,
        }
        row.update({f"time_{k}_ms": v for k, v in rec["timing_ms"].items() if k != "total"})
        rows.append(row)
    columns = ["run_name", "preset", "backbone", "seed", "scale", "dataset", "recipe", "miou", "final_miou",
               "best_miou", "params", "time_ms",
               "device", "git_commit", "wall_s", "teacher_sha256", "path", "record"]
    df = pd.DataFrame(rows, columns=None if rows else columns)
    df.attrs["skipped"] = skipped
    return df


def diverged_runs(results: str | Path) -> dict[str, str]:
    """{run name: the trainer's message} of the runs under `results` that stopped on a NaN or infinite loss. An
    unreadable marker is named in a warning and ignored (its run counts as not tried)."""
    found = {}
    for path in sorted(Path(results).glob(f"*/{DIVERGED_NAME}")):
        try:
            marker = read_json(path, "divergence marker")
            found[path.parent.name] = marker["message"]
        except (RecordError, KeyError, TypeError):
            warnings.warn(f"skipped {path}: not a readable divergence marker", stacklevel=2)
    return found


def lost_runs(results: str | Path) -> list[dict[str, Any]]:
    """The entries of `results/lost_runs.json`, the ledger of wall-clock time spent on runs that never finished
    (a run whose checkpoint went with its machine leaves no record, but its hours were spent): a JSON list of
    {"run", "hours", "epochs", "why"}, written by hand when it happens (by `paperkd campaign`, through
    `book_lost_run`, when it trains a teacher again over its record); [] without the file. `RecordError` naming
    the file and the entry when an entry lacks one of those keys or its hours are not a number >= 0."""
    path = Path(results) / LOST_NAME
    if not path.is_file():
        return []
    entries = read_json(path, "ledger of lost runs")
    if not isinstance(entries, list):
        raise RecordError(f"{path} is not a ledger of lost runs: it holds a JSON {type(entries).__name__}, not a list")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise RecordError(f"{path}, entry {i}: holds a JSON {type(entry).__name__}, not an object")
        missing = [k for k in ("run", "hours", "epochs", "why") if k not in entry]
        if missing:
            raise RecordError(f"{path}, entry {i}: lacks {', '.join(missing)}")
        hours = entry["hours"]
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 <= hours < math.inf:
            raise RecordError(f"{path}, entry {i} ({entry['run']}): hours must be a number >= 0, not {hours!r}")
    return entries


def book_lost_run(results: str | Path, run: str, hours: float, epochs: int, why: str) -> Path:
    """Append one entry to `results/lost_runs.json` (see `lost_runs`, which refuses a broken ledger first), written
    whole or not at all; returns the ledger's path."""
    ledger = Path(results) / LOST_NAME
    entries = lost_runs(results) + [{"run": run, "hours": round(hours, 2), "epochs": epochs, "why": why}]
    with atomic_open(ledger, "w") as f:
        json.dump(entries, f, indent=2, ensure_ascii=False)
        f.write("\n")
    return ledger
