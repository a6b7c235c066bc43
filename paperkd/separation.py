"""Does a row differ from another by more than the spread over seeds? The rule the book's tables use, stated once.

Two rows count as apart only when their seeds do not overlap: every seed of one row scored above every seed of the
other. If the two rows do not really differ and their n + m scores are exchangeable, every ordering of them is equally
likely, and a complete separation in one direction or the other happens by chance with probability
2 / C(n + m, n) (an exact two-sided permutation test that assumes nothing about how the scores are distributed):
1 in 10 for 3 seeds against 3, 1 in 3 for 2 against 2, and never less than 1/2 with a single seed, so only
3 seeds or more on both sides make a separation worth reporting (`EVIDENCE_P`).

The runs of one seed share their initial weights (per backbone) and their data order, so two rows' scores of the
same seed may be correlated. The test does not use that pairing; a positive correlation, the likely kind, only
makes a chance separation rarer (the shared seed effect has to be overcome too).

    versus(runs, {"r18-pixel": "r18-none"})  -> delta (points), verdict ("higher"/"lower"/"seeds overlap"/...), p
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

HIGHER, LOWER, OVERLAP = "higher", "lower", "seeds overlap"
TOO_FEW = "too few seeds"  # either row has a single seed: nothing to judge a difference by
DIVERGED = "diverged"  # either row has no finished run but diverged ones
NO_RUNS = "no runs"
EVIDENCE_P = 0.1  # 3 seeds against 3; 2 against 3 gives 0.2, 2 against 2 gives 0.33


def seed_scores(runs: pd.DataFrame, preset: str, metric: str = "miou") -> np.ndarray:
    """The finished runs' `metric` of one row, in % (one value per seed; a missing or non-finite value is left out,
    as `paperkd.report.summarise` leaves it out of the mean)."""
    if not len(runs) or metric not in runs:
        return np.array([])
    values = 100 * runs.loc[runs["preset"] == preset, metric].astype(float).to_numpy()
    return values[np.isfinite(values)]


def separation_p(n: int, m: int) -> float:
    """Chance that n scores and m others come out completely separated, in either direction, when all n + m are
    exchangeable (no real difference): 2 / C(n + m, n), at most 1. The p of an exact two-sided permutation test whose
    statistic is "no overlap"."""
    return min(1.0, 2.0 / math.comb(n + m, n))


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


def enough_seeds(n: int, m: int) -> bool:
    """Enough seeds on both sides that a separation by chance alone has p <= `EVIDENCE_P`."""
    return n > 0 and m > 0 and separation_p(n, m) <= EVIDENCE_P * (1 + 1e-9)  # 2/20 is not exactly 0.1 in floats


def is_evidence(verdict: str, n: int, m: int) -> bool:
    """Seeds apart (`HIGHER` or `LOWER`) and `enough_seeds`."""
    return verdict in (HIGHER, LOWER) and enough_seeds(n, m)


def versus(runs: pd.DataFrame, references: Mapping[str, str], metric: str = "miou",
           diverged: Iterable[str] = ()) -> pd.DataFrame:
    """One row per key of `references` ({row: the row it is compared with}): reference, n and m (their finished
    seeds), delta (mean minus the reference's mean, points), verdict (`separation`, or `DIVERGED` when one side has
    only diverged runs; `diverged` holds run names "<preset>-s<seed>"), p (`separation_p` where the seeds are apart,
    else NaN) and evidence (`is_evidence`)."""
    failed = {name.rsplit("-s", 1)[0] for name in diverged}
    rows = []
    for preset, reference in references.items():
        scores, base = seed_scores(runs, preset, metric), seed_scores(runs, reference, metric)
        verdict = separation(scores, base)
        if verdict == NO_RUNS and ((not len(scores) and preset in failed) or (not len(base) and reference in failed)):
            verdict = DIVERGED
        p = separation_p(len(scores), len(base)) if verdict in (HIGHER, LOWER) else math.nan
        rows.append({"preset": preset, "reference": reference, "n": len(scores), "m": len(base),
                     "delta": scores.mean() - base.mean() if len(scores) and len(base) else math.nan,
                     "verdict": verdict, "p": p, "evidence": is_evidence(verdict, len(scores), len(base))})
    columns = ["reference", "n", "m", "delta", "verdict", "p", "evidence"]
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


def chance_sentence(table: pd.DataFrame) -> str:
    """' Of the N comparisons with enough seeds, K are apart; if no row really differed from its reference, about E
    would be apart by chance ...', computed from a `versus` table ('' when no comparison has enough seeds)."""
    enough = table[[enough_seeds(int(n), int(m)) for n, m in zip(table["n"], table["m"])]]
    if enough.empty:
        return ""
    expected = sum(separation_p(int(n), int(m)) for n, m in zip(enough["n"], enough["m"]))
    found = int(enough["evidence"].sum())
    if len(enough) == 1:
        counted = f" The one comparison with enough seeds is {'apart' if found else 'not apart'}; if"
    else:
        counted = (f" Of the {len(enough)} comparisons with enough seeds, {found} {'is' if found == 1 else 'are'} "
                   "apart; if")
    return (f"{counted} no row really differed from its reference, about {expected:.1f} would be apart by chance "
            "(comparisons that share a reference are not independent: one unusually high or low reference seed "
            "separates several rows at once).")


__all__ = ["HIGHER", "LOWER", "OVERLAP", "TOO_FEW", "DIVERGED", "NO_RUNS", "EVIDENCE_P", "seed_scores",
           "separation_p", "separation", "enough_seeds", "is_evidence", "versus", "plain_references",
           "chance_sentence"]
