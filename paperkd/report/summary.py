"""From run records to numbers per row: mean and spread over seeds, the teacher's margin, times per iteration.

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
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from paperkd import separation
from paperkd.vocabulary import (
    TIMED_PARTS as TIME_PARTS,  # the parts of an iteration the trainer times, in order
)

TIME_PART_LABELS = {"data": "data", "teacher_forward": "teacher forward", "student_forward": "student forward",
                    "losses": "losses", "backward_step": "backward + step"}
NOT_RUN = "not run"
DIVERGED = "diverged"


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

    Columns: n (finished runs), diverged (how many of `diverged`, run names "<preset>-s<seed>" as `diverged_runs`
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
                            teacher: str = "teacher", teacher_runs: pd.DataFrame | None = None,
                            teacher_from: str = "") -> str:
    """One paragraph for a source's runs: how far the teacher's mean is above (or below) each plain student's and
    whether their seeds lie apart (`paperkd.separation`), so a reader knows whether the column can show a
    distillation gain at all, student by student. `teacher_runs`: where the teacher's records are, when its
    students distil from another folder's teacher (default: `runs`); `teacher_from` then names that folder."""
    scores = separation.seed_scores(runs if teacher_runs is None else teacher_runs, teacher)
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
    teacher_text = (f"the teacher{f' of {teacher_from}' if teacher_from else ''} ({scores.mean():.2f}{spread}, "
                    f"{len(scores)} seed{'s' * (len(scores) > 1)})")
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


def epoch_history(df: pd.DataFrame) -> pd.DataFrame:
    """Long table of the per-epoch log of every run: preset, seed, epoch, loss (total), each loss term, miou (%)."""
    rows = []
    for preset, seed, record in zip(df["preset"], df["seed"], df["record"]):
        for entry in record["epochs"]:
            row = {"preset": preset, "seed": int(seed), "epoch": entry["epoch"], **entry["loss"]}
            row["miou"] = 100 * entry["miou"] if entry.get("miou") is not None else math.nan
            rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["preset", "seed", "epoch", "loss", "miou"])
