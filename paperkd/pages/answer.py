"""What a results page opens with: one sentence and one table that answer its question for a source of runs.

Stand-in numbers are never compared with the paper's VOC numbers directly. What can be compared is each row's
difference from the plain student of its backbone (the paper's and ours side by side) and the ORDER of the rows:
`comparison_table` shows both, `answer_markdown` says in one sentence how many distilled rows lie above their plain
student on every seed, and how many pairs of rows are ordered as in the paper.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping

import pandas as pd

from paperkd import separation
from paperkd.pages.campaigns import Source
from paperkd.report.origin import sources_markdown
from paperkd.report.summary import mean_std_text

VERDICT_WORDS = {separation.HIGHER: "above on every seed", separation.LOWER: "below on every seed",
                 separation.OVERLAP: "seeds overlap", separation.TOO_FEW: "with a single seed on a side", separation.DIVERGED: "diverged"}


def paper_vs(paper: pd.DataFrame, references: Mapping[str, str] | None = None) -> pd.Series:
    """The paper's mIoU of each row minus its reference's (default: the plain student of its backbone; the teacher:
    the plain ResNet-18), in points; NaN for rows without a reference in the table."""
    references = separation.plain_references(paper.index) if references is None else references
    return pd.Series({p: paper.loc[p, "miou"] - paper.loc[r, "miou"] if r in paper.index else math.nan
                      for p, r in references.items()}, dtype=float).reindex(paper.index)


def ranks(values: pd.Series) -> pd.Series:
    """1 = highest; NaN stays unranked."""
    return values.rank(ascending=False, method="min")


def backbone(preset: str) -> str:
    return preset.split("-")[0]


def pairs_in_paper_order(ours: pd.Series, paper: pd.Series) -> tuple[int, int]:
    """(how many pairs of student rows of one backbone we order as the paper does, how many such pairs both have a
    number for). The teacher and pairs across backbones are left out: they agree almost by construction. Ties on
    either side do not count as agreeing."""
    both = [p for p in paper.index if p != "teacher" and not math.isnan(ours.get(p, math.nan))
            and not math.isnan(paper[p])]
    pairs = [(a, b) for a, b in itertools.combinations(both, 2) if backbone(a) == backbone(b)]
    agree = sum((ours[a] - ours[b]) * (paper[a] - paper[b]) > 0 for a, b in pairs)
    return int(agree), len(pairs)


def versus_cell(row: Mapping) -> str:
    """'+1.20, above on every seed (p = 0.1)', '-0.30, seeds overlap', '' without runs on both sides."""
    if row["verdict"] == separation.NO_RUNS:
        return ""
    if row["verdict"] == separation.DIVERGED:
        return separation.DIVERGED
    p = f" (p = {row['p']:.2g})" if not math.isnan(row["p"]) else ""
    return f"{row['delta']:+.2f}, {VERDICT_WORDS.get(row['verdict'], row['verdict'])}{p}"


def comparison_table(source: Source, paper: pd.DataFrame, labels: Mapping[str, str],
                     references: Mapping[str, str] | None = None, versus_name: str = "vs plain") -> pd.DataFrame:
    """One row per row of `paper` (indexed by preset): the paper's mIoU and its difference from the row's reference
    (default: the plain student), ours (mean ± std over seeds, n) and our difference with its verdict
    (`paperkd.separation`), and the rank of the row in the paper and in ours. mIoU in %; differences in points."""
    rows = list(paper.index)
    summary, versus = source.summary(rows), source.versus(rows, references)
    flags = summary["teacher_flag"].fillna("")
    ours_text = [mean_std_text(r["miou_mean"], r["miou_std"], int(r["n"]), diverged=int(r["diverged"]))
                 + (f" ⚠ {flags[p]}" if flags[p] else "") for p, r in summary.iterrows()]
    ran = summary["miou_mean"].notna()  # both sides ranked among the rows we have runs of
    paper_rank, our_rank = ranks(paper["miou"].astype(float).where(ran)), ranks(summary["miou_mean"])
    return pd.DataFrame({
        "row": [labels.get(p, p) for p in rows],
        "paper mIoU (VOC)": paper["miou"].map("{:.2f}".format),
        f"paper {versus_name}": paper_vs(paper, references).map(lambda v: "" if math.isnan(v) else f"{v:+.2f}"),
        "ours mIoU": ours_text,
        f"ours {versus_name}": [versus_cell(versus.loc[p]) if p in versus.index else "" for p in rows],
        "rank (paper / ours)": ["" if math.isnan(b) else f"{int(a)} / {int(b)}" for a, b in
                                zip(paper_rank, our_rank)],
    }, index=rows)


def answer_markdown(source: Source, paper: pd.DataFrame, references: Mapping[str, str] | None = None,
                    compared: str = "distilled rows against their plain student") -> str:
    """One sentence: how many rows of `paper` lie above / below their reference (default: the distilled rows against
    their plain student) on every seed in `source`, how many the paper has above (and by how much), and how many
    pairs of rows are in the paper's order."""
    rows = list(paper.index)
    if not len(source.runs):
        if source.diverged:
            return (f"**{source.label}**: every run of these rows in `{source.folder}` diverged: "
                    + ", ".join(f"`{name}`" for name in source.diverged) + ".")
        return (f"**{source.label}**: no records of these rows in `{source.folder}` yet, so no answer from it. "
                "The main campaign's are committed as its runs finish (`tools/campaign_cpu.sh`); the earlier "
                "campaigns are on their own page.")
    versus = source.versus(rows, references).drop(index="teacher", errors="ignore")
    have = versus[versus["verdict"] != separation.NO_RUNS]
    paper_delta = paper_vs(paper, references).drop(index="teacher", errors="ignore").dropna()
    order = [separation.HIGHER, separation.LOWER, separation.OVERLAP, separation.TOO_FEW, separation.DIVERGED]
    counts = have["verdict"].value_counts()
    counted = ", ".join(f"{counts[v]} {VERDICT_WORDS[v]}" for v in order if v in counts) or "none has runs yet"
    apart = have[have["verdict"].isin((separation.HIGHER, separation.LOWER))]
    weak = len(apart) - int(apart["evidence"].sum())
    if weak:
        counted += f" ({weak} of the separations with too few seeds to count as evidence)"
    missing = len(paper_delta) - len(have)
    up = int((paper_delta > 0).sum())
    summary = source.summary(rows)
    agree, pairs = pairs_in_paper_order(summary["miou_mean"], paper["miou"].astype(float))
    text = (f"**{source.label}**, seeds {', '.join(map(str, source.seeds))}. Of the {len(paper_delta)} "
            f"{compared}: {counted}{f'; {missing} not run' if missing else ''}. The paper (VOC) has "
            f"{f'all {up}' if up == len(paper_delta) else f'{up} of {len(paper_delta)}'} above, its differences "
            f"ranging from {paper_delta.min():+.2f} to {paper_delta.max():+.2f} points.")
    if pairs:
        text += f" {agree} of the {pairs} pairs of students of one backbone with runs are in the paper's order."
    return text + separation.chance_sentence(have)


def provenance_markdown(sources: Iterable[Source]) -> str:
    """Where the numbers come from, per source: data, scale, schedule, device, commits, and every run that diverged,
    distilled from another teacher or could not be read."""
    return "\n\n".join(sources_markdown(s.label, s.runs, s.folder, s.diverged) for s in sources)


def show(*items: object) -> None:
    """Display markdown strings as Markdown and anything else as it is (tables, figures), in order."""
    from IPython.display import Markdown, display

    for item in items:
        display(Markdown(item) if isinstance(item, str) else item)


__all__ = ["VERDICT_WORDS", "answer_markdown", "comparison_table", "pairs_in_paper_order", "paper_vs",
           "provenance_markdown", "ranks", "show", "versus_cell"]
