"""Verdicts on the paper's claims from paired (same-seed) differences, on hand-made run tables."""

import math
from fractions import Fraction
from itertools import product

import numpy as np
import pandas as pd
import pytest

from paperkd import claims as cl
from paperkd.paper_results import TABLE1, TABLE3


def runs_of(scores: dict[str, dict[int, float]]) -> pd.DataFrame:
    """A runs table shaped as `load_records` gives it (mIoU as a fraction), from {preset: {seed: mIoU in %}}."""
    rows = [{"run_name": f"{preset}-s{seed}", "preset": preset, "seed": seed, "miou": value / 100}
            for preset, values in scores.items() for seed, value in values.items()]
    return pd.DataFrame(rows, columns=["run_name", "preset", "seed", "miou"])


def brute_force_p(differences: list[float]) -> float:
    """The two-sided sign-flip p by listing every sign assignment with itertools (independent of the module's bits)."""
    observed = abs(sum(differences)) / len(differences)
    hits = [abs(sum(s * d for s, d in zip(signs, differences))) / len(differences) >= observed - 1e-12
            for signs in product((1, -1), repeat=len(differences))]
    return sum(hits) / len(hits)


@pytest.mark.parametrize("n, p", [(1, 1.0), (3, 0.25), (4, 0.125), (5, 0.0625)])
def test_sign_flip_p_of_differences_all_of_one_sign_is_two_to_the_one_minus_n(n, p):
    assert cl.sign_flip_p([0.5 + k for k in range(n)]) == p
    assert cl.sign_flip_p([-0.5 - k for k in range(n)]) == p  # two-sided: the same p the other way


def test_sign_flip_p_of_a_mixed_case_matches_brute_force():
    differences = [2.0, 1.5, -0.5, 3.0, 1.0, -0.25]
    # observed sum 6.75; of the 64 sign assignments, the ones whose |sum| >= 6.75: flipping only -0.5, only -0.25,
    # both, or neither (+ their mirror images): 8 of 64
    assert cl.sign_flip_p(differences) == pytest.approx(8 / 64)
    assert cl.sign_flip_p(differences) == pytest.approx(brute_force_p(differences))
    rng = np.random.default_rng(0)
    for _ in range(5):
        values = list(rng.normal(0.3, 1.0, size=7))
        assert cl.sign_flip_p(values) == pytest.approx(brute_force_p(values))


def test_sign_flip_p_beyond_enumeration_is_a_reproducible_estimate_of_the_same_fraction():
    rng = np.random.default_rng(3)
    mixed = rng.normal(0.3, 1.0, size=cl.MAX_PAIRS)
    exact = cl.sign_flip_p(mixed)
    cl_max, cl.MAX_PAIRS = cl.MAX_PAIRS, cl.MAX_PAIRS - 1  # the same differences, now sampled
    try:
        sampled = cl.sign_flip_p(mixed)
    finally:
        cl.MAX_PAIRS = cl_max
    assert sampled == pytest.approx(exact, abs=0.01) and sampled != exact
    many = np.full(25, 0.5)
    assert cl.sign_flip_p(many) == cl.sign_flip_p(many) < 0.001  # all of one sign: 2^-24, estimated as about 0


def test_sign_flip_p_refuses_what_has_no_sign():
    for bad in ([], [1.0, math.nan], [math.inf, 1.0]):
        with pytest.raises(ValueError):
            cl.sign_flip_p(bad)


def test_sign_flip_p_counts_ties_that_rounding_would_break():
    # [1, 1, 2]: only the observed signs and their mirror reach |sum| 4
    assert cl.sign_flip_p([1.0, 1.0, 2.0]) == pytest.approx(2 / 8)
    assert cl.sign_flip_p([1.0, 1.0, -2.0]) == 1.0  # observed mean 0: every assignment ties or beats it
    assert cl.sign_flip_p([0.0, 0.0, 0.0]) == 1.0
    # In exact arithmetic 1.1 + 2.2 - 3.3 = 0, so flipping those three ties with the observed |sum| 0.4; in floats
    # a plain >= misses such ties (it gives 0.75 and 0.5 here). The exact answers, from fractions:
    for decimals in (["1.1", "2.2", "-3.3", "0.4"], ["0.41", "0.33", "-0.74", "0.05", "0.6"]):
        exact = [Fraction(d) for d in decimals]
        observed = abs(sum(exact))
        hits = [abs(sum(s * d for s, d in zip(signs, exact))) >= observed
                for signs in product((1, -1), repeat=len(exact))]
        assert cl.sign_flip_p([float(d) for d in decimals]) == sum(hits) / len(hits)
    assert cl.sign_flip_p([1.1, 2.2, -3.3, 0.4]) == 1.0
    with pytest.raises(ValueError):
        cl.sign_flip_p([])


def test_min_pairs_is_where_the_test_can_first_reach_the_evidence_threshold():
    assert cl.MIN_PAIRS == 5
    assert cl.sign_flip_p([1.0] * 4) > cl.EVIDENCE_P >= cl.sign_flip_p([1.0] * 5)


def test_verdict_reproduced_contradicted_and_not_decided():
    up = cl.verdict(pd.Series([1.0, 2.0, 0.5, 1.5, 1.0]))
    assert up["verdict"] == cl.REPRODUCED and up["p"] == pytest.approx(0.0625) and up["n"] == 5
    assert up["mean"] == pytest.approx(1.2) and up["std"] == pytest.approx(np.std([1, 2, 0.5, 1.5, 1], ddof=1))
    assert up["seeds_needed"] is None
    down = cl.verdict(pd.Series([-1.0, -2.0, -0.5, -1.5, -1.0]))
    assert down["verdict"] == cl.CONTRADICTED and down["p"] == pytest.approx(0.0625)
    mixed = cl.verdict(pd.Series([1.0, 2.0, -0.5, 1.5, 1.0]))  # one seed the other way: p = 4/32 > 0.1
    assert mixed["verdict"] == cl.UNDECIDED and mixed["p"] == pytest.approx(4 / 32)
    few = cl.verdict(pd.Series([3.0, 4.0, 5.0]))  # as apart as can be, but 3 pairs cannot go below 0.25
    assert few["verdict"] == cl.UNDECIDED and few["p"] == pytest.approx(0.25)


def test_seeds_needed():
    # mean 1, sd 2: ((1.6449 + 0.8416) * 2 / 1)^2 = 24.73 -> 25
    values = [1.0, 3.0, -1.0]
    assert np.mean(values) == 1.0 and np.std(values, ddof=1) == 2.0
    needed, reason = cl.seeds_needed(values)
    assert needed == 25 and "80 % power" in reason
    assert cl.verdict(values)["seeds_needed"] == 25
    # a small spread asks for fewer than the test's minimum: raised to 5
    assert cl.seeds_needed([3.0, 4.0, 5.0])[0] == 5
    assert cl.seeds_needed([2.0, 2.0])[0] == 5  # no spread at all: the minimum
    # undecided with the minimum already at hand (p = 4/32), though the spread alone would ask for 3: one more pair
    assert cl.verdict([3.0, 3.0, 3.0, 3.0, -0.1])["p"] == pytest.approx(4 / 32)
    assert cl.seeds_needed([3.0, 3.0, 3.0, 3.0, -0.1])[0] == 6
    assert cl.seeds_needed([1.0]) == (None, cl.seeds_needed([1.0])[1]) and "no spread" in cl.seeds_needed([1.0])[1]
    assert cl.seeds_needed([1.0, -1.0])[0] is None  # mean 0: nothing to expect


def test_paired_differences_pair_by_seed_and_drop_unpaired_seeds():
    runs = runs_of({"r18-pixel": {0: 70.0, 1: 71.0, 2: 69.0, 7: 80.0}, "r18-none": {2: 68.5, 0: 66.0, 1: 70.0, 3: 50.0}})
    differences = cl.paired_differences(runs, "r18-pixel", "r18-none")
    assert list(differences.index) == [0, 1, 2]
    assert list(differences) == pytest.approx([4.0, 1.0, 0.5])  # points, seed against seed, not mean against mean
    assert differences.attrs["unpaired"] == {"r18-pixel": [7], "r18-none": [3]}
    # a non-finite score is not a score: its seed becomes unpaired
    runs.loc[(runs["preset"] == "r18-none") & (runs["seed"] == 1), "miou"] = math.nan
    assert list(cl.paired_differences(runs, "r18-pixel", "r18-none").index) == [0, 2]


def test_paired_differences_refuse_two_runs_of_one_seed():
    runs = pd.concat([runs_of({"r18-pixel": {0: 70.0}}), runs_of({"r18-pixel": {0: 71.0}, "r18-none": {0: 60.0}})])
    with pytest.raises(ValueError, match="seed"):
        cl.paired_differences(runs, "r18-pixel", "r18-none")


def test_claims_follow_the_paper_and_flag_the_pair_it_orders_against_its_text():
    ids = [claim.id for claim in cl.CLAIMS]
    assert len(ids) == len(set(ids)) == 15
    assert {"r18-both-over-none", "mnv2-both-over-none"} <= set(ids)  # the headline of Table 1
    by_id = {claim.id: claim for claim in cl.CLAIMS}
    assert by_id["r18-pixel-over-none"].paper_difference == pytest.approx(TABLE1["r18-pixel"]["miou"]
                                                                          - TABLE1["r18-none"]["miou"])
    pair = by_id["r18-pair-middle-over-end"]
    assert (pair.better, pair.worse) == ("r18-pair", "r18-pair-end")
    assert pair.paper_difference == pytest.approx(TABLE3["r18-pair"]["miou"] - TABLE3["r18-pair-end"]["miou"])
    assert not pair.paper_agrees and "do not order" in pair.note
    assert [claim.id for claim in cl.CLAIMS if not claim.paper_agrees] == ["r18-pair-middle-over-end"]
    assert all(claim.note == "" for claim in cl.CLAIMS if claim.paper_agrees)


def test_claim_table_gives_verdicts_and_not_run():
    seeds = range(5)
    none = {s: 60.0 + s for s in seeds}
    runs = runs_of({
        "r18-none": none,
        "r18-pixel": {s: v + 1.0 + 0.1 * s for s, v in none.items()},  # above on every seed: reproduced
        "r18-pair": {s: v - 0.5 - 0.1 * s for s, v in none.items()},  # below on every seed: contradicted
        "r18-both": {0: 70.0, 1: 60.0, 2: 66.0},  # 3 seeds only, mixed against r18-pixel
    })
    table = cl.claim_table(runs, diverged=["r18-gat-s0", "r18-gat-s1", "r18-both-s3"])
    assert len(table) == len(cl.CLAIMS)
    pixel = table.loc["r18-pixel-over-none"]
    assert pixel["verdict"] == cl.REPRODUCED and pixel["n"] == 5 and pixel["p"] == pytest.approx(0.0625)
    assert pixel["mean"] == pytest.approx(1.2) and pixel["seeds_needed"] is None
    assert pixel["ours"] == f"+1.20 ± {np.std([1.0, 1.1, 1.2, 1.3, 1.4], ddof=1):.2f} (n=5)"
    assert pixel["paper"] == pytest.approx(2.45)
    pair = table.loc["r18-pair-over-none"]
    assert pair["verdict"] == cl.CONTRADICTED and pair["mean"] == pytest.approx(-0.7)
    both = table.loc["r18-both-over-pixel"]  # seeds 0-2 paired with r18-pixel's; seeds 3, 4 of r18-pixel unpaired
    assert both["n"] == 3 and both["unpaired"] == 2 and both["verdict"] == cl.UNDECIDED
    assert both["mean"] == pytest.approx(np.mean([70.0 - 61.0, 60.0 - 62.1, 66.0 - 63.2]))
    assert both["seeds_needed"] >= cl.MIN_PAIRS and both["diverged"] == ["r18-both-s3"]
    assert table.loc["mnv2-pixel-over-none", "verdict"] == cl.NOT_RUN
    assert table.loc["mnv2-pixel-over-none", "ours"] == cl.NOT_RUN
    assert math.isnan(table.loc["mnv2-pixel-over-none", "p"])
    assert table.loc["r18-heo-over-gat", "verdict"] == cl.DIVERGED  # gat only diverged, heo not run
    assert table.loc["r18-gat-over-none", "verdict"] == cl.DIVERGED
    assert table.loc["r18-gat-over-none", "diverged"] == ["r18-gat-s0", "r18-gat-s1"]
    assert table.loc["r18-both-over-heo", "verdict"] == cl.NOT_RUN

    text = cl.claims_markdown("cpu", table)
    assert "of the 5 claims with runs of both rows, 1 reproduced, 1 contradicted, 3 not decided" in text
    assert "(10 more not run or diverged)" in text
    assert "Reproduced: `r18-pixel-over-none`." in text and "Contradicted: `r18-pair-over-none`." in text
    assert "2 claims have the 5 or more paired seeds" in text and "about 0.2 false verdicts" in text


def test_claim_table_without_any_runs_never_crashes():
    for runs in (pd.DataFrame(), runs_of({})):
        table = cl.claim_table(runs)
        assert (table["verdict"] == cl.NOT_RUN).all() and len(table) == len(cl.CLAIMS)
        assert cl.claims_markdown("gpu", table) == "**gpu**: no claim has finished runs of both its rows."


def test_claims_markdown_when_no_claim_has_enough_seeds():
    runs = runs_of({"r18-none": {0: 60.0, 1: 61.0, 2: 62.0}, "r18-pixel": {0: 63.0, 1: 64.0, 2: 65.0}})
    pixel = [claim for claim in cl.CLAIMS if claim.id == "r18-pixel-over-none"]
    text = cl.claims_markdown("cpu", cl.claim_table(runs, claims=pixel))
    assert "0 reproduced, 0 contradicted, 1 not decided" in text and "no verdict was possible" in text
