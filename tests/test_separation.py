"""The rule that says whether two rows differ by more than the spread over seeds, on hand-made run tables."""

import math

import numpy as np
import pandas as pd
import pytest

from paperkd import separation as sep
from paperkd.pages.answer import versus_cell


def runs_of(scores: dict[str, list[float]]) -> pd.DataFrame:
    """A runs table as `load_records` gives it (mIoU as a fraction), one row per seed."""
    rows = [{"preset": preset, "seed": seed, "miou": value / 100}
            for preset, values in scores.items() for seed, value in enumerate(values)]
    return pd.DataFrame(rows)


def test_separation_p_counts_both_directions_of_a_complete_separation():
    assert sep.separation_p(3, 3) == pytest.approx(2 / 20)
    assert sep.separation_p(2, 2) == pytest.approx(2 / 6)
    assert sep.separation_p(2, 3) == pytest.approx(2 / 10)
    assert sep.separation_p(1, 1) == 1.0  # 2 / C(2, 1) = 1: capped, not above 1
    # Brute force for 3 vs 3: of all 6! orderings of six distinct scores, the share in which the three of one row
    # are the top three or the bottom three.
    from itertools import permutations
    apart = sum(set(order[:3]) in ({0, 1, 2}, {3, 4, 5}) for order in permutations(range(6)))
    assert apart / math.factorial(6) == pytest.approx(sep.separation_p(3, 3))


@pytest.mark.parametrize("scores, reference, verdict", [
    ([22.0, 23.0, 24.0], [20.0, 21.0, 21.5], sep.HIGHER),
    ([10.0, 11.0, 12.0], [20.0, 21.0, 21.5], sep.LOWER),
    ([20.5, 23.0, 24.0], [20.0, 21.0, 21.5], sep.OVERLAP),  # interleaved
    ([21.5, 23.0, 24.0], [20.0, 21.0, 21.5], sep.OVERLAP),  # touching: a tie is not apart
    ([30.0], [20.0, 21.0, 21.5], sep.TOO_FEW),
    ([], [20.0], sep.NO_RUNS),
])
def test_separation_verdicts(scores, reference, verdict):
    assert sep.separation(np.array(scores), np.array(reference)) == verdict


def test_versus_gives_delta_verdict_p_and_evidence():
    runs = runs_of({"r18-none": [21.0, 22.0, 23.0], "r18-pixel": [12.0, 17.0, 19.0], "r18-pair": [20.0, 21.0, 22.0],
                    "r18-both": [24.0, 25.0], "r18-gat": [30.0]})
    table = sep.versus(runs, sep.plain_references(["r18-none", "r18-pixel", "r18-pair", "r18-both", "r18-gat",
                                                   "r18-heo"]))
    assert list(table.index) == ["r18-pixel", "r18-pair", "r18-both", "r18-gat", "r18-heo"]
    pixel = table.loc["r18-pixel"]
    assert pixel["reference"] == "r18-none" and pixel["delta"] == pytest.approx(16.0 - 22.0)
    assert pixel["verdict"] == sep.LOWER and pixel["p"] == pytest.approx(0.1) and pixel["evidence"]
    assert (pixel["n"], pixel["m"]) == (3, 3)
    assert table.loc["r18-pair", "verdict"] == sep.OVERLAP and math.isnan(table.loc["r18-pair", "p"])
    both = table.loc["r18-both"]  # apart, but 2 seeds against 3 give p = 0.2: not evidence
    assert both["verdict"] == sep.HIGHER and both["p"] == pytest.approx(0.2) and not both["evidence"]
    assert table.loc["r18-gat", "verdict"] == sep.TOO_FEW and not table.loc["r18-gat", "evidence"]
    assert table.loc["r18-heo", "verdict"] == sep.NO_RUNS and math.isnan(table.loc["r18-heo", "delta"])
    assert versus_cell(pixel) == "-6.00, below on every seed (p = 0.1)"
    assert versus_cell(table.loc["r18-pair"]) == "-1.00, seeds overlap"
    assert versus_cell(table.loc["r18-heo"]) == ""
    # two comparisons have 3 seeds on both sides (pixel, pair), one of them apart; chance alone: 2 x 0.1
    text = sep.chance_sentence(table)
    assert "Of the 2 comparisons with enough seeds, 1 is apart" in text and "about 0.2 would be apart" in text


def test_plain_references_map_students_to_their_backbone_and_the_teacher_to_r18():
    refs = sep.plain_references(["teacher", "r18-none", "r18-pixel", "mnv2-none", "mnv2-both"])
    assert refs == {"teacher": "r18-none", "r18-pixel": "r18-none", "mnv2-both": "mnv2-none"}


def test_diverged_rows_and_missing_values_are_named_not_dropped():
    runs = runs_of({"r18-none": [21.0, 22.0, float("nan")], "r18-pair": [20.0, 20.5, 21.5]})
    assert list(sep.seed_scores(runs, "r18-none")) == [21.0, 22.0]  # a NaN mIoU is not a score
    table = sep.versus(runs, {"r18-pixel": "r18-none", "r18-pair": "r18-none", "mnv2-pixel": "mnv2-none"},
                       diverged=["r18-pixel-s0", "r18-pixel-s1", "mnv2-none-s0"])
    assert table.loc["r18-pixel", "verdict"] == sep.DIVERGED and versus_cell(table.loc["r18-pixel"]) == "diverged"
    assert table.loc["mnv2-pixel", "verdict"] == sep.DIVERGED  # its reference diverged
    assert table.loc["r18-pair", "verdict"] == sep.OVERLAP and table.loc["r18-pair", "m"] == 2
    assert sep.chance_sentence(table) == ""  # 3 against 2 seeds: never enough
    single = runs_of({"r18-none": [21.0, 22.0, 23.0], "r18-both": [18.0, 19.0, 20.0]})
    one = sep.chance_sentence(sep.versus(single, {"r18-both": "r18-none"}))
    assert "The one comparison with enough seeds is apart; if no row" in one and "about 0.1 would be" in one


