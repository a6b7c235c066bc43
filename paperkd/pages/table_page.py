"""What the three table pages share: the answer for the main campaign per recipe, the rows in detail, the smoke
check and the provenance, for one of the paper's tables (`TablePage`; each table's module makes one)."""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Iterable, Mapping

import matplotlib.pyplot as plt
import pandas as pd

from paperkd.config import TABLE_ROWS
from paperkd.pages.answer import answer_markdown, comparison_table, provenance_markdown, show
from paperkd.pages.campaigns import MAIN, Source, book_runs, campaign
from paperkd.paper_results import paper_table
from paperkd.report.plots import plot_seed_scores, plot_training_curves
from paperkd.separation import plain_references


@dataclass(frozen=True)
class TablePage:
    """One of the paper's tables as a page. `references`: what each row is compared with (None: the plain student
    of its backbone); `compared` says it in words; `labels`: the row names readers see."""

    table: str
    title: str
    labels: Mapping[str, str]
    references: Mapping[str, str] | None = None
    compared: str = "distilled rows against their plain student"
    versus_name: str = "vs plain"

    @property
    def rows(self) -> list[str]:
        return TABLE_ROWS[self.table]

    @property
    def paper(self) -> pd.DataFrame:
        """The paper's numbers of this table (VOC 2012 val, mean of 3 runs), indexed by preset."""
        return paper_table(self.table)

    def sources(self, folders: Mapping[str, str] | None = None) -> list[Source]:
        """The main campaign's folder per recipe (`campaigns.MAIN` unless given), as sources of this table's rows."""
        folders = MAIN if folders is None else folders
        return [campaign(folder, self.rows, name=f"main campaign, {recipe} recipe")
                for recipe, folder in folders.items()]

    def table_of(self, source: Source) -> pd.io.formats.style.Styler:
        """`comparison_table` of a source, captioned with its label."""
        table = comparison_table(source, self.paper, self.labels, self.references, self.versus_name)
        return table.style.hide(axis="index").set_caption(f"{self.title}: {source.label}")

    def answer(self, folders: Mapping[str, str] | None = None) -> None:
        """The page's answer: per recipe of the main campaign, one sentence and one table (a recipe's folder without
        records of these rows says so in one line)."""
        for source in self.sources(folders):
            sentence = answer_markdown(source, self.paper, self.references, self.compared)
            show(sentence, *([] if source.empty else [self.table_of(source)]))

    def details(self, folders: Mapping[str, str] | None = None) -> None:
        """Every seed of every row against its reference's range, and the training curves, per source with runs."""
        for source in self.sources(folders):
            if not len(source.runs):
                continue
            references = plain_references(self.rows) if self.references is None else self.references
            plot_seed_scores({source.label: source.runs}, references, self.rows, labels=self.labels,
                             title="mIoU of every seed (grey: the range of the row's reference)",
                             diverged={source.label: list(source.diverged)})
            plt.show()
            plot_training_curves(source.runs, self.rows, labels=self.labels, title=source.label)
            plt.show()

    def smoke_check(self, results: str, seeds: Iterable[int]) -> None:
        """This build's own runs (smoke scale unless the build asked for more): a check that every row runs."""
        source = book_runs(results, self.rows, seeds)
        show(f"The runs `paperkd book` trained for this build, in `{results}`: they check that every row runs "
             "end to end and say nothing about the method.", self.table_of(source))

    def provenance(self, results: str, seeds: Iterable[int], folders: Mapping[str, str] | None = None) -> None:
        show(provenance_markdown([*self.sources(folders), book_runs(results, self.rows, seeds)]))


def student_labels(table: str) -> dict[str, str]:
    """Row names from the paper's own labels: Table 1's model with its losses ('ResNet-18 + pixel + pair'), the
    method names of Tables 2 and 3 ('GAT [37]', 'Pixel-wise (END)')."""
    paper = paper_table(table)
    if "pixel" not in paper:
        return dict(paper["label"])
    return {p: r["label"].replace("Student ", "").replace("Teacher DeepLabV3+ ", "teacher ")
            + " + pixel" * bool(r["pixel"]) + " + pair" * bool(r["pair"]) for p, r in paper.iterrows()}


__all__ = ["TablePage", "student_labels"]
