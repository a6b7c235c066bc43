"""Each claim of the paper as data, and a verdict on it from paired (same-seed) differences.

In a campaign the students of one seed share their initial weights (per backbone) and their data order, so the two
rows of a claim are compared seed by seed: d_s = score(row claimed better, seed s) - score(row claimed worse, seed s),
over the seeds both rows finished (a seed only one row has is dropped and counted; diverged runs have no score and are
listed). `paperkd.separation` compares rows without that pairing; this module uses it.

The test is the exact two-sided sign-flip (paired permutation) test on the mean difference (`sign_flip_p`). It needs
no assumption on the shape of the differences' distribution, only that, when the two rows do not really differ, each
pair's difference is as likely to be d as -d. Its smallest attainable p with n pairs is 2^(1 - n): 0.25 for 3 pairs,
so it cannot reach `separation.EVIDENCE_P` with fewer than 5 (`MIN_PAIRS`).

    claim_table(runs, diverged=failed)  -> one row per claim: paper's difference, ours, p, verdict, seeds needed
    claims_markdown("cpu", table)       -> a paragraph: how many reproduced, contradicted, undecided, and chance's share
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from paperkd.paper_results import TABLES
from paperkd.separation import EVIDENCE_P

REPRODUCED, CONTRADICTED, UNDECIDED = "reproduced", "contradicted", "not decided"
NOT_RUN = "not run"  # a row of the claim has no finished run and no diverged one
DIVERGED = "diverged"  # a row of the claim has no finished run, but diverged ones
MAX_PAIRS = 20  # up to 2^20 sign assignments are enumerated (exact p); above, SAMPLED_ASSIGNMENTS are drawn
SAMPLED_ASSIGNMENTS = 2 ** 16  # a Monte-Carlo p with a standard error below 0.002, drawn with a fixed seed
TOLERANCE = 1e-9  # relative: a sign assignment whose |mean| equals the observed one up to rounding is a tie

# The smallest n with 2^(1 - n) <= EVIDENCE_P: below it no outcome of the sign-flip test is evidence.
MIN_PAIRS = next(n for n in range(1, MAX_PAIRS + 1) if 2.0 ** (1 - n) <= EVIDENCE_P * (1 + TOLERANCE))
# Normal quantiles for the sample-size estimate: z_0.95 (two-sided test at EVIDENCE_P = 0.1) and z_0.80 (80 % power);
# the standard library's NormalDist gives them, scipy is not a dependency.
Z_TEST = NormalDist().inv_cdf(1 - EVIDENCE_P / 2)
Z_POWER = NormalDist().inv_cdf(0.80)


@dataclass(frozen=True)
class Claim:
    """One claim: `better` (a preset) scores above `worse` in `table` of the paper. `paper_difference` is the paper's
    own better-minus-worse mIoU in points, from `paperkd.paper_results`; `note` says when that difference does not
    order the two rows the way the text claims (the claim is kept as the text states it)."""

    id: str
    sentence: str
    better: str
    worse: str
    table: str
    paper_difference: float
    note: str = ""

    @property
    def paper_agrees(self) -> bool:
        """The paper's own numbers put `better` above `worse`."""
        return self.paper_difference > 0


def make_claim(id: str, sentence: str, better: str, worse: str, table: str) -> Claim:
    """A `Claim` with the paper's difference read from `table` of `paperkd.paper_results`, and a note when the
    paper's numbers order the rows against the claim."""
    rows = TABLES[table]
    difference = round(rows[better]["miou"] - rows[worse]["miou"], 2)  # both printed with 2 decimals
    note = "" if difference > 0 else (
        f"the paper's own {table.replace('table', 'Table ')} has `{better}` at {rows[better]['miou']:.2f} and "
        f"`{worse}` at {rows[worse]['miou']:.2f}: its numbers do not order this pair the way its text claims")
    return Claim(id, sentence, better, worse, table, difference, note)


def _table1_claims(short: str, name: str) -> list[Claim]:
    """The five orderings of Table 1 for one student backbone: the proposed method over none, each term over none,
    the two together over each alone."""
    return [
        make_claim(f"{short}-both-over-none", f"The proposed method (pixel-wise + pair-wise) improves the {name} "
                   "student over no distillation.", f"{short}-both", f"{short}-none", "table1"),
        make_claim(f"{short}-pixel-over-none", f"Pixel-wise distillation improves the {name} student over no "
                   "distillation.", f"{short}-pixel", f"{short}-none", "table1"),
        make_claim(f"{short}-pair-over-none", f"Pair-wise distillation improves the {name} student over no "
                   "distillation.", f"{short}-pair", f"{short}-none", "table1"),
        make_claim(f"{short}-both-over-pixel", f"Pixel-wise and pair-wise together beat pixel-wise alone for the "
                   f"{name} student.", f"{short}-both", f"{short}-pixel", "table1"),
        make_claim(f"{short}-both-over-pair", f"Pixel-wise and pair-wise together beat pair-wise alone for the "
                   f"{name} student.", f"{short}-both", f"{short}-pair", "table1"),
    ]


CLAIMS: list[Claim] = [
    *_table1_claims("r18", "ResNet-18"),
    *_table1_claims("mnv2", "MobileNet-V2"),
    make_claim("r18-both-over-heo", "The proposed method (pixel-wise + pair-wise) beats the method of [34] on the "
               "ResNet-18 student.", "r18-both", "r18-heo", "table2"),
    make_claim("r18-heo-over-gat", "The method of [34] beats attention transfer (GAT) on the ResNet-18 student.",
               "r18-heo", "r18-gat", "table2"),
    make_claim("r18-gat-over-none", "Attention transfer (GAT) improves the ResNet-18 student over no distillation.",
               "r18-gat", "r18-none", "table2"),
    make_claim("r18-pixel-end-over-middle", "Pixel-wise distillation works better at END than at MIDDLE.",
               "r18-pixel", "r18-pixel-middle", "table3"),
    make_claim("r18-pair-middle-over-end", "Pair-wise distillation works better at MIDDLE than at END.",
               "r18-pair", "r18-pair-end", "table3"),
]


def _scores_by_seed(runs: pd.DataFrame, preset: str, metric: str) -> pd.Series:
    """{seed: `metric` in %} of one row's finished runs (non-finite values left out, as `separation.seed_scores`
    leaves them out). Two runs of one row with the same seed make the pairing ambiguous: ValueError."""
    if not len(runs) or not {"preset", "seed", metric} <= set(runs.columns):
        return pd.Series(dtype=float)
    rows = runs.loc[runs["preset"] == preset, ["seed", metric]]
    values = pd.Series(100 * rows[metric].astype(float).to_numpy(), index=rows["seed"].to_numpy())
    values = values[np.isfinite(values.to_numpy())]
    if values.index.has_duplicates:
        seeds = sorted(set(values.index[values.index.duplicated()]))
        raise ValueError(f"row {preset!r} has more than one finished run of seed(s) {seeds}: which one to pair is "
                         "ambiguous (runs of several campaigns or recipes mixed in one table?)")
    return values


def paired_differences(runs: pd.DataFrame, better: str, worse: str, metric: str = "miou") -> pd.Series:
    """score(`better`, s) - score(`worse`, s) in points, indexed by the seeds s both rows finished (sorted). The seeds
    only one of the two rows has are dropped and listed in `.attrs["unpaired"]` ({preset: [seeds]})."""
    high, low = _scores_by_seed(runs, better, metric), _scores_by_seed(runs, worse, metric)
    common = sorted(set(high.index) & set(low.index))
    differences = (high.loc[common] - low.loc[common]).astype(float)
    differences.index.name = "seed"
    differences.attrs["unpaired"] = {preset: sorted(set(scores.index) - set(common))
                                     for preset, scores in ((better, high), (worse, low))}
    return differences


def sign_flip_p(differences: Iterable[float]) -> float:
    """Exact two-sided sign-flip test on the mean of paired differences: the fraction of the 2^n assignments of signs
    to the n differences whose |mean| is at least the observed |mean| (ties, up to a relative `TOLERANCE`, count).

    Assumption: if the two rows do not really differ, each pair's difference is symmetric about 0, so its sign is
    as likely + as - and the signs are exchangeable, whatever the spread. The pairs are the campaign's: the two runs
    of one seed share initial weights and data order, and flipping a sign swaps the two runs of that seed. With all n
    differences of one sign (and none zero) p = 2^(1 - n); all differences zero give p = 1. Above `MAX_PAIRS`
    pairs the fraction is estimated from `SAMPLED_ASSIGNMENTS` random assignments (a fixed seed: the same p every
    time), so that a campaign given the seeds `seeds_needed` asks for still gets its verdict."""
    values = np.asarray(list(differences), dtype=float)
    n = len(values)
    if n == 0:
        raise ValueError("sign_flip_p needs at least one paired difference")
    if not np.isfinite(values).all():
        raise ValueError(f"sign_flip_p needs finite differences, got {values.tolist()}")
    if n > MAX_PAIRS:  # too many to enumerate: a fixed random sample of the assignments estimates the same fraction
        signs = np.random.default_rng(0).choice(np.array([-1, 1]), size=(SAMPLED_ASSIGNMENTS, n))
    else:  # every assignment of signs at once: row k holds the signs of the bits of k
        signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)
    sums = np.abs(signs @ values)  # |sum| orders the assignments as |mean| does: n is the same for all
    observed = abs(values.sum())
    return float(np.mean(sums >= observed - TOLERANCE * np.abs(values).sum()))


def is_evidence(p: float) -> bool:
    """p at most `EVIDENCE_P` (with room for rounding, as `separation.enough_seeds` allows)."""
    return p <= EVIDENCE_P * (1 + TOLERANCE)


def seeds_needed(differences: pd.Series | np.ndarray) -> tuple[int | None, str]:
    """(pairs, reason) for a claim the test has not decided: at least `MIN_PAIRS` (below it the test cannot reach
    `EVIDENCE_P`), raised to the normal-approximation estimate n = ceil(((z_0.95 + z_0.80) * sd / |mean|)^2) of the
    pairs a paired test at two-sided `EVIDENCE_P` needs for 80 % power, if the true difference were the observed
    mean and sd (deciding it either way: a mean against the claim estimates the seeds to contradict it), and to one
    more than the pairs at hand (they did not decide it). None when the differences give nothing to estimate from:
    fewer than 2 pairs, or a mean of 0."""
    values = np.asarray(differences, dtype=float)
    if len(values) < 2:
        return None, f"no spread to estimate from (fewer than 2 pairs); the test needs at least {MIN_PAIRS} pairs"
    mean, sd = values.mean(), values.std(ddof=1)
    if mean == 0:
        return None, "mean difference 0: no number of seeds is expected to decide it"
    floor = max(MIN_PAIRS, len(values) + 1)
    if sd == 0:  # every pair differs by the same amount: only the test's minimum limits it
        return floor, f"no spread to estimate from; the least number of pairs that can reach p <= {EVIDENCE_P:g}"
    # the z (not t) quantiles make this an underestimate for small n: a floor on what is needed, not a promise
    estimate = math.ceil(((Z_TEST + Z_POWER) * sd / abs(mean)) ** 2)
    if estimate <= floor:
        return floor, f"the least number of pairs that can reach p <= {EVIDENCE_P:g} (the spread asks for no more)"
    return estimate, "for 80 % power at the observed mean and spread (normal approximation)"


def verdict(differences: pd.Series | np.ndarray) -> dict:
    """The verdict on a claim from its paired differences (claimed better minus claimed worse): `REPRODUCED` when the
    mean is positive and `sign_flip_p` <= `EVIDENCE_P`, `CONTRADICTED` when it is negative with such a p, else
    `UNDECIDED`. Also n, mean, std (sample) of the differences, p (NaN without pairs), seeds_needed (None once
    decided, else `seeds_needed`) and the reason for it."""
    values = np.asarray(differences, dtype=float)
    n = len(values)
    mean = float(values.mean()) if n else math.nan
    std = float(values.std(ddof=1)) if n > 1 else math.nan
    p = sign_flip_p(values) if n else math.nan
    result = UNDECIDED
    if n and is_evidence(p) and mean != 0:
        result = REPRODUCED if mean > 0 else CONTRADICTED
    needed, reason = (None, "") if result != UNDECIDED else seeds_needed(values)
    if not n:
        reason = f"no seed finished by both rows; the test needs at least {MIN_PAIRS} pairs"
    return {"verdict": result, "n": n, "mean": mean, "std": std, "p": p, "seeds_needed": needed,
            "seeds_needed_reason": reason}


def ours_text(mean: float, std: float, n: int) -> str:
    """'+1.23 ± 0.45 (n=3)', '+1.23 (n=1)' (no spread), '' without pairs."""
    if not n:
        return ""
    spread = f" ± {std:.2f}" if n > 1 else ""
    return f"{mean:+.2f}{spread} (n={n})"


def claim_table(runs: pd.DataFrame, claims: Iterable[Claim] = CLAIMS, diverged: Iterable[str] = (),
                metric: str = "miou") -> pd.DataFrame:
    """One row per claim, indexed by its id: claim (the sentence), better, worse, paper (the paper's difference,
    points), note, n, mean, std (of our paired differences, points), ours (`ours_text`), p, verdict, seeds_needed,
    seeds_needed_reason, unpaired (seeds one row has and the other lacks, dropped), diverged (the claim's rows' runs
    in `diverged`, run names "<preset>-s<seed>" as `records.diverged_runs` gives them; they have no score).
    A claim whose row has no finished run says `NOT_RUN` (or `DIVERGED` when that row's runs all diverged)."""
    failed = list(diverged)
    rows = []
    for claim in claims:
        differences = paired_differences(runs, claim.better, claim.worse, metric)
        unpaired = differences.attrs["unpaired"]
        row = {"id": claim.id, "claim": claim.sentence, "better": claim.better, "worse": claim.worse,
               "paper": claim.paper_difference, "note": claim.note,
               "unpaired": sum(len(seeds) for seeds in unpaired.values()),
               "diverged": [name for name in failed if name.rsplit("-s", 1)[0] in (claim.better, claim.worse)]}
        # a row without any finished run: nothing to pair, whatever the other row has
        empty = [p for p in (claim.better, claim.worse) if not len(differences) and not unpaired[p]]
        if empty:
            row.update(n=0, mean=math.nan, std=math.nan, p=math.nan, seeds_needed=None, seeds_needed_reason="",
                       verdict=DIVERGED if any(name.rsplit("-s", 1)[0] in empty for name in failed) else NOT_RUN)
        else:
            row.update(verdict(differences))
        row["ours"] = ours_text(row["mean"], row["std"], row["n"]) or row["verdict"]
        rows.append(row)
    columns = ["claim", "better", "worse", "paper", "note", "n", "mean", "std", "ours", "p", "verdict",
               "seeds_needed", "seeds_needed_reason", "unpaired", "diverged"]
    table = pd.DataFrame(rows, columns=["id", *columns]).set_index("id")
    # pandas would turn a column of ints and Nones into floats and NaN: keep "None" (decided, or nothing to estimate)
    table["seeds_needed"] = pd.Series([row["seeds_needed"] for row in rows], index=table.index, dtype=object)
    return table


def claims_markdown(label: str, table: pd.DataFrame) -> str:
    """A paragraph for a page from a `claim_table`: how many claims were reproduced, contradicted, not decided or
    not run, and how many verdicts chance alone would give among the claims with enough pairs to be decided."""
    judged = table[~table["verdict"].isin((NOT_RUN, DIVERGED))]
    if judged.empty:
        return f"**{label}**: no claim has finished runs of both its rows."
    counts = judged["verdict"].value_counts()
    reproduced, contradicted = int(counts.get(REPRODUCED, 0)), int(counts.get(CONTRADICTED, 0))
    parts = [f"{reproduced} reproduced", f"{contradicted} contradicted",
             f"{int(counts.get(UNDECIDED, 0))} not decided"]
    missing = len(table) - len(judged)
    text = (f"**{label}**: of the {len(judged)} claims with runs of both rows, " + ", ".join(parts)
            + (f" ({missing} more not run or diverged)" if missing else "") + ".")
    for what, id_list in ((REPRODUCED, judged.index[judged["verdict"] == REPRODUCED]),
                          (CONTRADICTED, judged.index[judged["verdict"] == CONTRADICTED])):
        if len(id_list):
            text += f" {what.capitalize()}: " + ", ".join(f"`{i}`" for i in id_list) + "."
    capable = int((judged["n"] >= MIN_PAIRS).sum())
    if not capable:
        return text + (f" No claim has the {MIN_PAIRS} paired seeds the test needs to reach p <= {EVIDENCE_P:g} at "
                       "all, so no verdict was possible: 'not decided' here says nothing about the claims.")
    return text + (f" {capable} {'claim has' if capable == 1 else 'claims have'} the {MIN_PAIRS} or more paired seeds "
                   f"that can give a verdict; if no row really differed from another, each of them would still come "
                   f"out reproduced or contradicted with chance at most {EVIDENCE_P:g}, so about "
                   f"{EVIDENCE_P * capable:.1f} false verdicts are expected from chance alone (claims that share a "
                   "row are not independent).")


__all__ = ["CLAIMS", "CONTRADICTED", "DIVERGED", "MAX_PAIRS", "MIN_PAIRS", "NOT_RUN", "REPRODUCED", "UNDECIDED",
           "Claim", "claim_table", "claims_markdown", "is_evidence", "make_claim", "ours_text", "paired_differences",
           "seeds_needed", "sign_flip_p", "verdict"]
