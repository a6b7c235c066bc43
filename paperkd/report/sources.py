"""Which runs a results page shows, and what its columns are called: records read from results folders, labelled by
their data, scale, teacher, device and recipe (never calling a stand-in VOC). Reads only; `paperkd campaign` trains."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from paperkd.checkpoint import CHECKPOINT_NAME  # beside record.json in every run folder
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


def table_runs(presets: Iterable[str], seeds: Iterable[int], *, campaigns: Iterable[str | Path] = (),
               results: str | Path) -> tuple[pd.DataFrame, dict[str, str], dict[str, pd.DataFrame]]:
    """What a table page shows: its own runs (`read_rows`), their divergences, and for each committed campaign
    folder its records of the same rows ({folder: runs}; a missing folder gives no runs)."""
    presets = list(presets)
    ours, diverged = read_rows(presets, seeds, results)
    found = {}
    for folder in campaigns:
        runs = load_records(folder) if Path(folder).is_dir() else pd.DataFrame()
        found[str(folder)] = runs[runs["preset"].isin(presets)].reset_index(drop=True) if len(runs) else runs
    return ours, diverged, found


def table_sources(presets: Iterable[str], seeds: Iterable[int], *, campaigns: Iterable[str | Path], results: str,
                  dataset: str, scale: str, recipe: str | None = None) -> tuple[dict[str, tuple], list[str]]:
    """A table page's columns: `table_runs` labelled by `label_sources`, and the campaign folders that hold no record
    of the page's rows (for `provenance_markdown`). `dataset`, `scale` and `recipe` name our column when it has no
    run yet."""
    presets = list(presets)
    ours, diverged, found = table_runs(presets, seeds, campaigns=campaigns, results=results)
    sources = label_sources(ours, results, diverged, found, asked_for=(dataset, scale), presets=presets,
                            recipe=recipe)
    return sources, [folder for folder, runs in found.items() if not len(runs)]


def label_sources(ours: pd.DataFrame, results: str | Path, diverged: Mapping[str, str],
                  campaigns: Mapping[str, pd.DataFrame], asked_for: tuple[str, str],
                  presets: Iterable[str] | None = None, recipe: str | None = None) -> dict[str, tuple]:
    """{column label: (runs, folder, diverged)}: our runs, then each campaign folder that holds records of the rows.

    Labels name the data and scale (`data_label`, never calling a stand-in VOC) and the recipe (`recipe_label`); a
    campaign's also names its teacher's schedule (`teacher_label`) and its device (`device_label`); two folders that
    would still share a label get their folder name added, so a column never hides another. `asked_for` =
    (dataset, scale) names our column when no run finished. `presets`: the page's rows; a campaign's diverged runs
    of other rows are left out (all are kept when None)."""
    dataset, scale = asked_for
    rows = None if presets is None else set(presets)
    default = f"{'VOC' if dataset == 'voc' else 'stand-in'}, {scale}"
    ours_parts = [data_label(ours, default=default),
                  recipe_label(ours) if len(ours) else (f"recipe {recipe}" if recipe else "")]
    sources = {f"ours ({', '.join(p for p in ours_parts if p)})": (ours, results, dict(diverged))}
    for folder, runs in campaigns.items():
        if len(runs):
            failed = {name: message for name, message in diverged_runs(folder).items()
                      if name not in set(runs["run_name"])  # a rerun that finished replaces its divergence
                      and (rows is None or name.rsplit("-s", 1)[0] in rows)}
            parts = [data_label(runs), teacher_label(folder, runs), device_label(runs), recipe_label(runs)]
            label = f"campaign ({', '.join(p for p in parts if p)})"
            if label in sources:
                label = f"campaign ({', '.join(p for p in parts if p)}; {Path(folder).name})"
            sources[label] = (runs, folder, failed)
    return sources


def no_campaign_markdown(folder: str | Path) -> str:
    """What a page says for a campaign folder without records of its rows."""
    return (f"**No campaign records** in `{folder}` (the folder is missing or holds no records of these rows), so "
            f"the table has no column for it. `paperkd campaign --results {folder} ...` writes them.")


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
    `teacher-s0`); None where that record is missing, unreadable or predates the field."""
    records = runs["record"] if runs is not None and len(runs) else []
    names = [Path(r["config"]["teacher"]).parent.name for r in records if r["config"].get("teacher")]
    name = max(set(names), key=names.count) if names else "teacher-s0"
    path = Path(folder) / name / RECORD_NAME
    readable = _readable([path]) if path.is_file() else []
    return (readable[0].get("selected") or {}).get("sha256") if readable else None


def checkpoint_path(row: Mapping[str, Any]) -> Path | None:
    """The checkpoint whose weights a record row reports (its selected one, `record["selected"]["checkpoint"]`, or
    the last epoch's for records without one), beside its record.json, else where the record says; None if missing."""
    selected = (row["record"].get("selected") or {}).get("checkpoint")
    name = Path(selected).name if selected else CHECKPOINT_NAME
    beside = Path(row["path"]).parent / name
    if beside.is_file():
        return beside
    recorded = selected or row["record"].get("checkpoint")
    return Path(recorded) if recorded and Path(recorded).is_file() else None
