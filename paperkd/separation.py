"""Does a row differ from another by more than the spread over seeds? The rule the book's tables use, stated once.

Two rows count as different only when their seeds do not overlap: every seed of one row scored above every seed of
the other. With n and m seeds and no real difference, all orderings of the n + m scores are equally likely, so such
a complete separation in one given direction happens by chance with probability 1 / C(n + m, n): 1 in 20 for 3 seeds
against 3 (an exact one-sided permutation test that assumes nothing about the distribution of the scores). Fewer
seeds cannot reach it (1 in 4 for 2 against 2, no spread at all with one seed), so those comparisons are never
called evidence.

    versus(runs, {"r18-pixel": "r18-none"})  -> delta (points), verdict ("higher"/"lower"/"overlap"/...), p
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

HIGHER, LOWER, OVERLAP = "higher", "lower", "within spread"
TOO_FEW = "too few seeds"  # either row has a single seed: nothing to judge a difference by
NO_RUNS = "no runs"
EVIDENCE_P = 0.05  # the p of 3 seeds against 3; fewer seeds never reach it


def seed_scores(runs: pd.DataFrame, preset: str, metric: str = "miou") -> np.ndarray:
    """The finished runs' `metric` of one row, in % (one value per seed)."""
    if not len(runs):
        return np.array([])
    return 100 * runs.loc[runs["preset"] == preset, metric].astype(float).to_numpy()


def separation_p(n: int, m: int) -> float:
    """Chance that n scores all lie above m others (one given direction) when all n + m come from one distribution:
    1 / C(n + m, n), the smallest p an exact permutation test of two groups of n and m can give."""
    return 1.0 / math.comb(n + m, n)


def separation(scores: np.ndarray, reference: np.ndarray) -> str:
    """`HIGHER` when every score is above every reference score, `LOWER` when every one is below, `OVERLAP` when the
    two sets interleave or touch, `TOO_FEW` when either has a single seed, `NO_RUNS` when either has none."""
    if len(scores) == 0 or len(reference) == 0:
        return NO_RUNS
    if len(scores) < 2 or len(reference) < 2:
        return TOO_FEW
    if scores.min() > reference.max():
        return HIGHER
    if scores.max() < reference.min():
        return LOWER
    return OVERLAP


def is_evidence(verdict: str, n: int, m: int) -> bool:
    """Seeds apart (`HIGHER` or `LOWER`) and enough of them that chance alone gives p <= `EVIDENCE_P`."""
    return verdict in (HIGHER, LOWER) and separation_p(n, m) <= EVIDENCE_P * (1 + 1e-9)


def versus(runs: pd.DataFrame, references: Mapping[str, str], metric: str = "miou") -> pd.DataFrame:
    """One row per key of `references` ({row: the row it is compared with}): reference, delta (mean minus the
    reference's mean, points), verdict (`separation`), p (`separation_p` where the seeds are apart, else NaN) and
    evidence (apart with p <= `EVIDENCE_P`)."""
    rows = []
    for preset, reference in references.items():
        scores, base = seed_scores(runs, preset, metric), seed_scores(runs, reference, metric)
        verdict = separation(scores, base)
        p = separation_p(len(scores), len(base)) if verdict in (HIGHER, LOWER) else math.nan
        rows.append({"preset": preset, "reference": reference,
                     "delta": scores.mean() - base.mean() if len(scores) and len(base) else math.nan,
                     "verdict": verdict, "p": p, "evidence": is_evidence(verdict, len(scores), len(base))})
    columns = ["reference", "delta", "verdict", "p", "evidence"]
    return pd.DataFrame(rows, columns=["preset", *columns]).set_index("preset")


def plain_references(presets: Iterable[str], teacher_reference: str = "r18-none") -> dict[str, str]:
    """{row: reference} for the tables of methods: each student against the student of its backbone without
    distillation ("r18-pixel" -> "r18-none"), the teacher against `teacher_reference`; the plain rows have none."""
    references = {}
    for preset in presets:
        if preset == "teacher":
            references[preset] = teacher_reference
        elif not preset.endswith("-none"):
            references[preset] = f"{preset.split('-')[0]}-none"
    return references


def versus_text(row: Mapping) -> str:
    """A table cell: '-5.91, lower (p = 0.05)', '+0.30, within spread', '+1.20, too few seeds', or '' without runs."""
    if row["verdict"] == NO_RUNS:
        return ""
    p = f" (p = {row['p']:.2g})" if not math.isnan(row["p"]) else ""
    return f"{row['delta']:+.2f}, {row['verdict']}{p}"


def separation_markdown(label: str, table: pd.DataFrame) -> str:
    """One paragraph per source: which rows lie apart from their reference over all seeds, and which do not."""
    judged = table[table["verdict"] != NO_RUNS]
    if judged.empty:
        return f"**{label}**: no row has runs on both sides of a comparison."
    groups = {
        "apart from their reference (every seed above or below every seed of it)": judged[judged["evidence"]],
        "apart, but with too few seeds to be evidence": judged[judged["verdict"].isin((HIGHER, LOWER))
                                                              & ~judged["evidence"]],
        "within the spread over seeds (not evidence of a difference)": judged[judged["verdict"] == OVERLAP],
        "with a single seed on one side (no spread to judge by)": judged[judged["verdict"] == TOO_FEW],
    }
    parts = [f"{what}: " + ", ".join(f"`{p}` {r['delta']:+.2f} vs `{r['reference']}`" for p, r in rows.iterrows())
             for what, rows in groups.items() if len(rows)]
    return f"**{label}**: " + "; ".join(parts) + "."


__all__ = ["HIGHER", "LOWER", "OVERLAP", "TOO_FEW", "NO_RUNS", "EVIDENCE_P", "seed_scores", "separation_p",
           "separation", "is_evidence", "versus", "plain_references", "versus_text", "separation_markdown"]
