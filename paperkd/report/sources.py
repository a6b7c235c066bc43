"""Which runs a results page shows, and what its columns are called: records read from results folders, labelled by
their data, scale, teacher, device and recipe (never calling a stand-in VOC). Reads only; `paperkd campaign` trains."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from paperkd.config import PRE_RECIPE_FIELDS
from paperkd.data.standin import standin_info
from paperkd.records import (
    PRE_RECIPE,
    RECORD_NAME,
    RecordError,
    diverged_runs,
    load_records,
    read_record,
)


def read_rows(presets: Iterable[str], seeds: Iterable[int], results: str | Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """The finished runs of `presets` x `seeds` recorded under `results`, and {run name: message} of those that
    diverged, so that a page shows a diverged row as such. Reads only: the runs are trained beforehand by
    `paperkd campaign` (which `paperkd book` calls first)."""
    presets, seeds = list(presets), list(seeds)
    runs = load_records(results) if Path(results).is_dir() else pd.DataFrame()
    wanted = {f"{p}-s{seed}" for p in presets for seed in seeds}
    diverged = {name: msg for name, msg in diverged_runs(results).items() if name in wanted} \
        if Path(results).is_dir() else {}
    if len(runs):
        runs = runs[runs["preset"].isin(presets) & runs["seed"].isin(seeds)].reset_index(drop=True)
    return runs, diverged


def teacher_label(folder: str | Path, runs: pd.DataFrame) -> str:
    """'teacher 48 epochs': the schedule of the teacher a campaign's students distil from, or of its own teacher runs,
    so that two campaigns differing only in their teacher get telling labels; '' when no teacher record is found.

    Read from the teacher records in `folder`, else from those beside the checkpoints the runs name in their config
    (a page without the teacher row still names it); a mix of schedules is joined by '/'."""
    beside = {Path(r["config"]["teacher"]).parent / RECORD_NAME for r in runs["record"] if r["config"].get("teacher")}
    records = list(Path(folder).glob(f"teacher-s*/{RECORD_NAME}")) or [path for path in beside if path.is_file()]
    epochs = sorted({rec["config"]["epochs"] for rec in _readable(records)})
    return f"teacher {'/'.join(map(str, epochs))} epochs" if epochs else ""


def _readable(paths: Iterable[Path]) -> list[dict]:
    """The records among `paths` that can be read (the others are named by `sources_markdown`)."""
    out = []
    for path in paths:
        try:
            out.append(read_record(path))
        except RecordError:
            pass
    return out


def device_label(df: pd.DataFrame) -> str:
    """The devices of the runs, short: 'CPU', 'NVIDIA H100 80GB HBM3', or both joined by ' + '."""
    names = [str(d).removeprefix("cuda: ") if str(d).startswith("cuda") else "CPU" for d in df["device"]]
    return " + ".join(dict.fromkeys(names))


def recipe_label(df: pd.DataFrame) -> str:
    """The recipe of the runs, e.g. 'recipe authors', with what was overridden on purpose ('recipe paper, pixel-wise
    reading paper-mean'); records from before the recipes are named for what they ran, never relabelled as either
    recipe ('pre-recipe (mixed readings)', explained by `sources_markdown`). Several recipes are joined by ' + '."""
    parts = []
    for recipe, runs in df.groupby(df.get("recipe", pd.Series([PRE_RECIPE] * len(df), index=df.index)), sort=False):
        name = PRE_RECIPE_TEXT if recipe == PRE_RECIPE else f"recipe {recipe}"
        deviations = {}
        for r in runs["record"]:
            deviations.update(r.get("recipe_deviations") or {})
            if recipe == PRE_RECIPE and r["config"].get("pixel", 0) > 0:  # the only reading those runs could vary
                variant = r["config"].get("pixel_variant", "unrecorded")
                if variant != PRE_RECIPE_FIELDS["pixel_variant"]:
                    deviations["pixel_variant"] = variant
        words = [f"pixel-wise reading {v}" if k == "pixel_variant" else f"{k}={v}" for k, v in deviations.items()]
        parts.append(", ".join([name, *words]))
    return " + ".join(parts)


PRE_RECIPE_TEXT = "pre-recipe (mixed readings)"


def data_label(df: pd.DataFrame, default: str = "no runs") -> str:
    """A short name of the data and scale of the runs, for column headers: 'stand-in, smoke', 'VOC, paper', ...

    A stand-in is never called VOC; one rendered from the real VOC label maps says so ('stand-in from VOC labels').
    `default` names a set without records.
    """
    if not len(df):
        return default
    kinds = []
    for record in df["record"]:
        kind = "VOC" if record["config"]["dataset"] == "voc" else "stand-in"
        if kind == "stand-in" and (_standin_meta(record) or {}).get("labels_from"):
            kind = "stand-in from VOC labels"
        kinds.append(kind)
    scales = df["scale"].astype(str)
    return f"{' + '.join(dict.fromkeys(kinds))}, {' + '.join(dict.fromkeys(scales))}"


def _standin_meta(record: Mapping[str, Any]) -> dict | None:
    """How a stand-in was made: from the record if it says, else from STANDIN.json at its data root (if present)."""
    data = record.get("data", {})
    if isinstance(data.get("standin_info"), dict):
        return data["standin_info"]
    root = record["config"].get("data_root")
    if root and Path(root).is_dir():
        return standin_info(root)
    return None


def expected_teacher(folder: str | Path, runs: pd.DataFrame | None = None) -> str | None:
    """The SHA-256 of the teacher a campaign folder's students are meant to distil from: the selected checkpoint's
    SHA-256 kept by the record of that teacher run in `folder` (the run the students' configs name, else
    `teacher-s0`), or beside the checkpoint they name when it lies in another folder (`paperkd campaign --teacher`);
    None where that record is missing, unreadable or predates the field."""
    records = runs["record"] if runs is not None and len(runs) else []
    named = [Path(r["config"]["teacher"]) for r in records if r["config"].get("teacher")]
    teacher = max(set(named), key=named.count) if named else Path("teacher-s0") / "best.pt"
    candidates = [Path(folder) / teacher.parent.name / RECORD_NAME, teacher.parent / RECORD_NAME]
    path = next((p for p in candidates if p.is_file()), None)
    readable = _readable([path]) if path else []
    return (readable[0].get("selected") or {}).get("sha256") if readable else None


