"""From run records to the book's tables and plots: small functions of the DataFrame that `load_records` returns.

Conventions, stated once:
- mIoU is reported in % like the paper; `summarise` takes each run's REPORTED mIoU by default: the epoch its recipe
  selects (`paperkd.records.load_records`): the last epoch under `paper`, the best validation epoch under `authors`,
  as the authors' trainer reports it (picking the best epoch on the set it is scored on flatters; every column
  names its recipe, and `final_miou` is always the last epoch's).
- The spread over seeds is the sample standard deviation (ddof = 1); with a single seed it is NaN (not 0).
- A gap is ours minus the paper's, in percentage points.
- Times are the mean training iteration in ms as the trainer measured it, averaged over seeds.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any, Iterable, Mapping

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import numpy as np
import pandas as pd

from paperkd import separation
from paperkd.checkpoint import CHECKPOINT_NAME  # beside record.json in every run folder
from paperkd.config import PRE_RECIPE_FIELDS
from paperkd.data.standin import standin_info
from paperkd.records import (PRE_RECIPE, RECORD_NAME, RecordError, diverged_runs, load_records, read_record,
                             unreadable_records)
from paperkd.vocabulary import TIMED_PARTS as TIME_PARTS  # the parts of an iteration the trainer times, in order

TIME_PART_LABELS = {"data": "data", "teacher_forward": "teacher forward", "student_forward": "student forward",
                    "losses": "losses", "backward_step": "backward + step"}
NOT_RUN = "not run"
DIVERGED = "diverged"


# -- runs -------------------------------------------------------------------------------------------------------------

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


def provenance_markdown(sources: Mapping[str, tuple], missing: Iterable[str | Path] = ()) -> str:
    """Markdown for a page's "where the numbers come from": `sources_markdown` per column, then each campaign folder
    without records of the page's rows."""
    parts = [sources_markdown(label, runs, folder, failed) for label, (runs, folder, failed) in sources.items()]
    return "\n\n".join(parts + [no_campaign_markdown(folder) for folder in missing])


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
PRE_RECIPE_NOTE = ("**Pre-recipe (mixed readings)**: trained before the recipes existed, with the authors' pixel-wise "
                   "reading and the paper's channel-node pair-wise reading, attention transfer in [37]'s code form at "
                   "lambda = 1 on one tap, the plain CE mean, no warm-up, the ASPP dropout, an eval-mode teacher, the "
                   "paper's transforms and the last epoch: neither recipe (see Paper vs. code).")


# -- tables -----------------------------------------------------------------------------------------------------------

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


def teacher_flag(runs: pd.DataFrame, expected: str | None) -> str:
    """'' when every run that distilled names the same teacher, and it is `expected` (if known); else what differs,
    e.g. 'other teacher (2 of 3 runs)' or '2 teachers'. Runs without a teacher SHA-256 (plain students, old
    records) are not judged."""
    shas = [s for s in runs.get("teacher_sha256", pd.Series(dtype=object)) if isinstance(s, str)]
    if not shas:
        return ""
    if expected is not None:
        other = sum(s != expected for s in shas)
        return f"other teacher ({other} of {len(shas)} runs)" if other else ""
    distinct = len(set(shas))
    return f"{distinct} teachers" if distinct > 1 else ""


def summarise(df: pd.DataFrame, presets: Iterable[str], metric: str = "miou",
              diverged: Iterable[str] = (), teacher: str | None = None) -> pd.DataFrame:
    """One row per preset (in the given order), aggregated over its seeds.

    Columns: n (finished runs), diverged (how many of `diverged`, run names "<preset>-s<seed>" as `ensure_rows`
    returns them, are this preset's), seeds, miou_mean and miou_std (of `metric`: "miou" = the reported epoch's, see
    `load_records`; "final_miou" = the last epoch's; or "best_miou";
    in %), params_m (trainable parameters in millions), time_ms (mean training iteration) and one time_<part>_ms per
    timed part present, device (every device the runs used, joined), teacher_flag (`teacher_flag` against `teacher`,
    the SHA-256 the page's teacher has, see `expected_teacher`). A preset without records gets n = 0 and NaNs.
    """
    presets = list(presets)
    parts = _time_columns(df)
    failed = [name.rsplit("-s", 1)[0] for name in diverged]
    rows = []
    for preset in presets:
        runs = df[df["preset"] == preset] if len(df) else df
        values = 100 * runs[metric].astype(float) if len(runs) else pd.Series(dtype=float)
        row: dict[str, Any] = {
            "preset": preset,
            "n": len(runs),
            "diverged": failed.count(preset),
            "seeds": sorted(int(s) for s in runs["seed"]) if len(runs) else [],
            "miou_mean": values.mean() if len(values) else math.nan,
            "miou_std": values.std(ddof=1) if len(values) > 1 else math.nan,
            "params_m": runs["params"].mean() / 1e6 if len(runs) else math.nan,
            "time_ms": runs["time_ms"].mean() if len(runs) else math.nan,
        }
        for column in parts:
            row[column] = runs[column].mean() if len(runs) else math.nan
        row["device"] = "; ".join(sorted(set(runs["device"].astype(str)))) if len(runs) else ""
        row["teacher_flag"] = teacher_flag(runs, teacher) if len(runs) else ""
        rows.append(row)
    return pd.DataFrame(rows).set_index("preset")


def teacher_margin_markdown(label: str, runs: pd.DataFrame, plain: Iterable[str] = ("r18-none", "mnv2-none"),
                            teacher: str = "teacher") -> str:
    """One paragraph for a source's runs: how far the teacher's mean is above (or below) each plain student's and
    whether their seeds lie apart (`paperkd.separation`), so a reader knows whether the column can show a
    distillation gain at all, student by student."""
    scores = separation.seed_scores(runs, teacher)
    if not len(scores):
        return f"**{label}**: no teacher run, so nothing to compare the students with."
    parts, not_better, unjudged = [], [], []
    for preset in plain:
        base = separation.seed_scores(runs, preset)
        if not len(base):
            continue
        gap = round(scores.mean() - base.mean(), 2)
        verdict = separation.separation(scores, base)
        where = (f"{gap:+.2f} points over `{preset}`" if gap > 0 else
                 f"**{-gap:.2f} points below** `{preset}`" if gap < 0 else f"**level with** `{preset}`")
        parts.append(f"{where} ({_verdict_words(verdict, scores, base)})")
        if gap <= 0 or verdict in (separation.LOWER, separation.OVERLAP):
            not_better.append(f"`{preset}`")
        elif not separation.is_evidence(verdict, len(scores), len(base)):
            unjudged.append(f"`{preset}`")
    spread = f" ± {scores.std(ddof=1):.2f}" if len(scores) > 1 else ""
    teacher_text = f"the teacher ({scores.mean():.2f}{spread}, {len(scores)} seed{'s' * (len(scores) > 1)})"
    notes = []
    if not_better:
        them = "them" if len(not_better) > 1 else "it"
        notes.append(f"a teacher that is not better than {' and '.join(not_better)} cannot be expected to improve "
                     f"{them}, so the distilled rows of {'those students' if len(not_better) > 1 else 'that student'} "
                     "say little about the method's gain")
    if unjudged:
        notes.append(f"over {' and '.join(unjudged)} the teacher is ahead, but with too few seeds to call that margin "
                     "larger than the spread")
    return f"**{label}**: {teacher_text} is {', '.join(parts) or 'alone'}" + "".join(f"; {n}" for n in notes) + "."


def _verdict_words(verdict: str, scores: np.ndarray, reference: np.ndarray) -> str:
    if verdict in (separation.HIGHER, separation.LOWER):
        p = separation.separation_p(len(scores), len(reference))
        side = "above" if verdict == separation.HIGHER else "below"
        evidence = separation.is_evidence(verdict, len(scores), len(reference))
        enough = "" if evidence else ", too few seeds to be evidence"
        return f"every seed {side} every seed of it, p = {p:.2g}{enough}"
    if verdict == separation.OVERLAP:
        return "their seeds overlap: not evidence of a difference"
    return "a single seed on one side: no spread to judge by"


def _time_columns(df: pd.DataFrame) -> list[str]:
    """The time_<part>_ms columns of `df`, known parts in iteration order first."""
    known = [f"time_{p}_ms" for p in TIME_PARTS if f"time_{p}_ms" in df.columns]
    extra = sorted(c for c in df.columns if c.startswith("time_") and c.endswith("_ms") and c != "time_ms"
                   and c not in known)
    return known + extra


def mean_std_text(mean: float, std: float, n: int, digits: int = 2, diverged: int = 0) -> str:
    """'66.59 ± 0.29 (n=3)'; one run has no spread: '66.59 (n=1)'; no run: 'not run'; runs that diverged are
    counted: '66.59 (n=1, 2 diverged)', or 'diverged (n=2)' when none finished."""
    if n == 0 or mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return f"{DIVERGED} (n={diverged})" if diverged else NOT_RUN
    spread = "" if n < 2 or std is None or math.isnan(std) else f" ± {std:.{digits}f}"
    return f"{mean:.{digits}f}{spread} (n={n}{f', {diverged} diverged' if diverged else ''})"


def compare_with_paper(summary: pd.DataFrame, paper: pd.DataFrame, label: str = "ours",
                       column: str = "miou") -> pd.DataFrame:
    """The paper's `column` next to ours, one row per row of `paper` (indexed by preset, e.g. `paper_table(...)`).

    Columns: "paper" (the printed value), f"{label} (mean ± std)" (text, see `mean_std_text`, with '⚠ other
    teacher ...' where the summary flags the cell's teacher) and "gap" (our mean minus the paper's, in percentage
    points; NaN where we have no run).
    """
    ours = summary.reindex(paper.index)
    n = ours["n"].fillna(0).astype(int)
    diverged = ours["diverged"].fillna(0).astype(int) if "diverged" in ours else [0] * len(ours)
    texts = [mean_std_text(m, s, k, diverged=d) for m, s, k, d in zip(ours["miou_mean"], ours["miou_std"], n, diverged)]
    flags = ours["teacher_flag"].fillna("") if "teacher_flag" in ours else [""] * len(ours)
    texts = [f"{t} ⚠ {f}" if f else t for t, f in zip(texts, flags)]  # a cell that distilled from another teacher
    return pd.DataFrame({
        "paper": paper[column].astype(float),
        f"{label} (mean ± std)": texts,
        "gap": ours["miou_mean"] - paper[column].astype(float),
    }, index=paper.index)


def time_breakdown(summary: pd.DataFrame) -> pd.DataFrame:
    """The timed parts of an iteration (ms) of a `summarise` table, named for readers, and their total (time_ms)."""
    parts = _time_columns(summary)
    breakdown = summary[parts].rename(columns=lambda c: TIME_PART_LABELS.get(c[len("time_"):-len("_ms")], c))
    breakdown["total"] = summary["time_ms"]
    return breakdown


def time_ratio(times: pd.Series, reference: str = "r18-none") -> pd.Series:
    """Each time divided by the time of `reference` (the student without distillation); NaN without a reference."""
    base = times.get(reference, math.nan)
    return times / base if base and not math.isnan(base) else times * math.nan


# -- where the numbers come from --------------------------------------------------------------------------------------

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


def describe_data(df: pd.DataFrame) -> str:
    """Markdown: which data, scale, schedule, device and code produced these records (every value from the records)."""
    if not len(df):
        return "No run records."
    records = list(df["record"])
    lines = []
    for (dataset, root), group in _group(records, lambda r: (r["config"]["dataset"],
                                                           r.get("data", {}).get("root") or r["config"]["data_root"])):
        kind = "Pascal VOC 2012" if dataset == "voc" else "synthetic stand-in (NOT Pascal VOC)"
        meta = _standin_meta(group[0]) if dataset != "voc" else None
        if meta is not None:
            source = (f"images rendered from the real VOC 2012 label maps in `{meta['labels_from']}`"
                      if meta.get("labels_from") else "images rendered from procedurally drawn label maps")
            kind += f", {source}, short side {meta.get('size') or 'as VOC'}"
        counts = sorted({(r.get("data", {}).get("train_images"), r.get("data", {}).get("val_images")) for r in group})
        counts_text = ", ".join(f"{t} train / {v} val images" for t, v in counts)
        runs = f"{len(group)} run{'s' if len(group) > 1 else ''}"
        lines.append(f"- data: {kind}; root `{root}`; {counts_text} ({runs})")
    for key, name in (("scale", "scale"), ("epochs", "epochs"), ("crop", "train crop"), ("val_size", "val size"),
                      ("batch_size", "batch size")):
        values = sorted({str(r["config"][key]) for r in records})
        lines.append(f"- {name}: {', '.join(values)}")
    lines.append(f"- seeds: {', '.join(str(s) for s in sorted({int(r['seed']) for r in records}))}")
    lines.append(f"- device: {'; '.join(sorted({str(r['environment']['device']) for r in records}))}")
    walls = [float(r["wall_s"]) for r in records if r.get("wall_s") is not None]
    if walls:
        lines.append(f"- time: {sum(walls) / 3600:.2f} h of training in all, {min(walls) / 60:.1f} to "
                     f"{max(walls) / 60:.1f} min per run (wall clock, validation included)")
    commits = sorted({str(r["environment"].get("git_commit")) for r in records})
    lines.append(f"- paperkd git commit: {', '.join(f'`{c}`' for c in commits)}")
    notes = dict.fromkeys(v for r in records for k, v in r["environment"].items() if k.endswith("_note"))
    lines += [f"- note: {n}" for n in notes]  # added to records after the run, e.g. a corrected commit
    return "\n".join(lines)


def sources_markdown(label: str, runs: pd.DataFrame, folder: str | Path,
                     diverged: Mapping[str, str] | None = None) -> str:
    """Markdown for a page: the column label, the records folder, `describe_data`, every run that diverged, every run
    that distilled from another teacher than the folder's (`expected_teacher`), and every record file of the folder
    that could not be read (skipped, named with what is wrong)."""
    text = f"**{label}**, run records in `{folder}`:\n\n{describe_data(runs)}"
    if len(runs) and "recipe" in runs and (runs["recipe"] == PRE_RECIPE).any():
        text += "\n\n" + PRE_RECIPE_NOTE
    if diverged:
        text += "\n\nRuns that **diverged** (no record; shown as 'diverged' in the tables):\n\n" + "\n".join(
            f"- `{name}`: {message.removeprefix(f'{name}: ')}" for name, message in diverged.items())
    expected = expected_teacher(folder, runs) if Path(folder).is_dir() else None
    students = runs[runs["teacher_sha256"].notna()] if "teacher_sha256" in runs and len(runs) else runs.iloc[:0]
    if expected:  # the same judgement as `teacher_flag`, run by run
        shown = students[students["teacher_sha256"] != expected]
    else:
        shown = students if students["teacher_sha256"].nunique() > 1 else students.iloc[:0]
    if len(shown):
        text += ("\n\nRuns that distilled from **another teacher** than this folder's students are meant to (their "
                 "cells are marked ⚠ in the tables):\n\n" + "\n".join(
                     f"- `{r.run_name}`: teacher `{r.record['teacher']['checkpoint']}`, sha256 "
                     f"{r.teacher_sha256[:12]}" + (f" (expected {expected[:12]})" if expected else "")
                     for r in shown.itertuples()))
    unreadable = unreadable_records(folder) if Path(folder).is_dir() else {}
    if unreadable:
        text += "\n\nRecord files that **could not be read** (skipped; the tables do not count them):\n\n" + "\n".join(
            f"- {message}" for message in unreadable.values())
    return text


def _group(records: list[dict], key) -> list[tuple[Any, list[dict]]]:
    groups: dict[Any, list[dict]] = {}
    for record in records:
        groups.setdefault(key(record), []).append(record)
    return list(groups.items())


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


def epoch_history(df: pd.DataFrame) -> pd.DataFrame:
    """Long table of the per-epoch log of every run: preset, seed, epoch, loss (total), each loss term, miou (%)."""
    rows = []
    for preset, seed, record in zip(df["preset"], df["seed"], df["record"]):
        for entry in record["epochs"]:
            row = {"preset": preset, "seed": int(seed), "epoch": entry["epoch"], **entry["loss"]}
            row["miou"] = 100 * entry["miou"] if entry.get("miou") is not None else math.nan
            rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["preset", "seed", "epoch", "loss", "miou"])


# -- plots ------------------------------------------------------------------------------------------------------------

def plot_training_curves(df: pd.DataFrame, presets: Iterable[str], labels: Mapping[str, str] | None = None,
                         title: str = "") -> plt.Figure:
    """Training loss and validation mIoU per epoch, one line per preset (mean over seeds; shaded: min to max)."""
    history = epoch_history(df)
    labels = labels or {}
    fig, (ax_loss, ax_miou) = plt.subplots(1, 2, figsize=(11, 4))
    for preset in presets:
        runs = history[history["preset"] == preset]
        if not len(runs):
            continue
        for ax, column in ((ax_loss, "loss"), (ax_miou, "miou")):
            stats = runs.groupby("epoch")[column].agg(["mean", "min", "max"]).dropna()
            if not len(stats):
                continue
            (line,) = ax.plot(stats.index, stats["mean"], marker="o", label=labels.get(preset, preset))
            ax.fill_between(stats.index, stats["min"], stats["max"], color=line.get_color(), alpha=0.15)
    ax_loss.set(xlabel="epoch", ylabel="training loss (total, per iteration)", yscale="log")
    for ax in (ax_loss, ax_miou):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_miou.set(xlabel="epoch", ylabel="validation mIoU (%)")
    ax_miou.legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _row_panels(count: int, presets: list[str], width: float) -> tuple[plt.Figure, np.ndarray, np.ndarray]:
    """`count` side-by-side panels sharing one y axis of `presets` (one row each): figure, axes, row positions."""
    fig, axes = plt.subplots(1, count, figsize=(width * count, 0.38 * len(presets) + 1.8), sharey=True,
                             squeeze=False)
    return fig, axes, np.arange(len(presets))


def _panel_title(ax: plt.Axes, name: str) -> None:
    ax.set_title(textwrap.fill(name, 38), fontsize=10)  # source labels are long; unwrapped they run into each other


def _finish_row_panels(fig: plt.Figure, axes: np.ndarray, presets: list[str], labels: Mapping[str, str],
                       title: str) -> plt.Figure:
    axes[0, 0].set_yticks(np.arange(len(presets)), [labels.get(p, p) for p in presets])
    axes[0, 0].invert_yaxis()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_miou_bars(summaries: Mapping[str, pd.DataFrame], presets: Iterable[str],
                   labels: Mapping[str, str] | None = None, paper: pd.Series | None = None,
                   title: str = "") -> plt.Figure:
    """mIoU (%) per preset with the std over seeds as error bars, one panel per source (the paper, our runs, ...).

    Each source gets its own panel and y axis: a small-scale stand-in and the paper's VOC numbers are not on one
    scale and must not be read as one.
    """
    presets = list(presets)
    labels = labels or {}
    panels = ([("paper (VOC 2012)", paper.reindex(presets).astype(float), None, None)] if paper is not None else [])
    for name, summary in summaries.items():
        summary = summary.reindex(presets)
        failed = summary["diverged"].fillna(0) if "diverged" in summary else pd.Series(0, index=summary.index)
        panels.append((name, summary["miou_mean"], summary["miou_std"], failed))
    fig, axes, positions = _row_panels(len(panels), presets, width=4.2)
    for ax, (name, means, stds, failed) in zip(axes[0], panels):
        errors = None if stds is None else stds.to_numpy(dtype=float)  # NaN (a single seed): no error bar
        ax.barh(positions, means.fillna(0).to_numpy(), xerr=errors, capsize=3,
                color="tab:gray" if stds is None else "tab:blue")
        for y, value, lost in zip(positions, means, failed if failed is not None else [0] * len(presets)):
            text = (DIVERGED if lost else NOT_RUN) if math.isnan(value) else f"{value:.1f}"
            ax.annotate(text, (0 if math.isnan(value) else value, y), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=8)
        _panel_title(ax, name)
        ax.set_xlabel("mIoU (%)")
        ax.margins(x=0.25)
    return _finish_row_panels(fig, axes, presets, labels, title)


def plot_seed_scores(sources: Mapping[str, pd.DataFrame], references: Mapping[str, str], presets: Iterable[str],
                     labels: Mapping[str, str] | None = None, title: str = "",
                     diverged: Mapping[str, Iterable[str]] | None = None) -> plt.Figure:
    """Every seed's mIoU (%) as a dot per row, one panel per source, with the range of the row's reference (its plain
    student, `paperkd.separation.plain_references`) shaded behind it: a row whose dots all lie outside the shaded band
    is apart from its reference (`paperkd.separation.separation`); dots inside it are within the seed spread.
    `diverged`: {source: run names that diverged}; a row with no finished run but diverged ones says so."""
    presets = list(presets)
    labels = labels or {}
    fig, axes, positions = _row_panels(len(sources), presets, width=4.6)
    for ax, (name, runs) in zip(axes[0], sources.items()):
        for y, preset in zip(positions, presets):
            scores = separation.seed_scores(runs, preset)
            base = separation.seed_scores(runs, references.get(preset, ""))
            if len(base) > 1:
                ax.fill_betweenx([y - 0.4, y + 0.4], base.min(), base.max(), color="tab:gray", alpha=0.25, lw=0)
            elif len(base):  # a single reference seed: a line, not an invisible zero-width band
                ax.plot([base[0], base[0]], [y - 0.4, y + 0.4], color="tab:gray", alpha=0.6, lw=2)
            verdict = separation.separation(scores, base)
            color = {separation.HIGHER: "tab:green", separation.LOWER: "tab:red"}.get(verdict, "tab:blue")
            ax.plot(scores, np.full(len(scores), y), "o", color=color, ms=5, alpha=0.85)
            if not len(scores):
                failed = {n.rsplit("-s", 1)[0] for n in (diverged or {}).get(name, ())}
                ax.annotate(DIVERGED if preset in failed else NOT_RUN, (0, y), xytext=(4, 0),
                            textcoords="offset points", va="center", fontsize=8, xycoords=("axes fraction", "data"))
        _panel_title(ax, name)
        ax.set_xlabel("mIoU (%), one dot per seed")
        ax.grid(axis="x", alpha=0.3)
    return _finish_row_panels(fig, axes, presets, labels, title)


def plot_time_breakdown(summary: pd.DataFrame, presets: Iterable[str], labels: Mapping[str, str] | None = None,
                        title: str = "") -> plt.Figure:
    """Stacked bars of the mean training iteration (ms) split into its timed parts, one bar per preset."""
    presets = [p for p in presets if p in summary.index and summary.loc[p, "n"] > 0]
    labels = labels or {}
    columns = [c for c in _time_columns(summary) if summary.loc[presets, c].notna().any()] if presets else []
    fig, ax = plt.subplots(figsize=(8, 0.45 * max(len(presets), 1) + 1.6))
    left = np.zeros(len(presets))
    for column in columns:
        values = summary.loc[presets, column].fillna(0).to_numpy(dtype=float)
        part = column[len("time_"):-len("_ms")]
        ax.barh(np.arange(len(presets)), values, left=left, label=TIME_PART_LABELS.get(part, part))
        left += values
    ax.set_yticks(np.arange(len(presets)), [labels.get(p, p) for p in presets])
    ax.invert_yaxis()
    ax.set(xlabel="training time per iteration (ms)", title=title)
    if columns:
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_prediction_grid(rows: list[Mapping[str, np.ndarray]], title: str = "") -> plt.Figure:
    """A grid of images: one row per example, one column per key of the rows' dicts (e.g. image, ground truth, ...).

    Values are (H, W, 3) uint8 images (label maps already coloured, e.g. with `paperkd.data.palette.colorize`).
    """
    columns = list(rows[0])
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(2.2 * len(columns), 2.2 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        for c, name in enumerate(columns):
            ax = axes[r, c]
            ax.imshow(row[name], interpolation="nearest")  # label maps: no blending of colours
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


__all__ = ["DIVERGED", "NOT_RUN", "TIME_PARTS", "TIME_PART_LABELS", "checkpoint_path", "compare_with_paper",
           "data_label", "describe_data", "device_label", "epoch_history", "read_rows", "label_sources",
           "mean_std_text", "no_campaign_markdown", "plot_miou_bars", "plot_prediction_grid", "plot_seed_scores",
           "plot_time_breakdown", "plot_training_curves", "provenance_markdown", "recipe_label", "sources_markdown",
           "summarise", "table_runs", "table_sources", "teacher_margin_markdown", "time_breakdown", "time_ratio"]
