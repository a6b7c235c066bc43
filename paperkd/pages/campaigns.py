"""Which committed results folders the pages answer from, and one folder as a page reads it (`Source`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable, Mapping

import pandas as pd

from paperkd import separation
from paperkd.records import diverged_runs, load_records
from paperkd.report.sources import (data_label, device_label, expected_teacher, read_rows, recipe_label,
                                    teacher_label)
from paperkd.report.summary import summarise

# The main campaign, per recipe: the `cpu` scale (issue: a campaign whose comparisons mean something). Every student
# distils from the one teacher of the `authors` folder, the `paper` folder's too.
MAIN = {"authors": "results/cpu-standin-voclabels-80", "paper": "results/cpu-standin-voclabels-80-paper"}
TEACHER_RECIPE = "authors"  # the MAIN folder whose teacher every MAIN student distils from
# What the main campaign runs (tools/campaign_cpu.sh, which a test keeps equal to this): {recipe: {row: seeds}}, the
# teacher's one seed under `authors` (the `paper` folder distils from it), every student row's three seeds, five for
# the headline pair (the paired test decides nothing with fewer), and the key rows under `paper`.
PLAN = {"authors": {"teacher": (0,), "r18-none": (0, 1, 2, 3, 4), "r18-both": (0, 1, 2, 3, 4),
                    **{row: (0, 1, 2) for row in ("r18-pixel", "r18-pair", "r18-gat", "r18-heo", "r18-pixel-middle",
                                                  "r18-pair-end", "r18-kd", "mnv2-none", "mnv2-both", "mnv2-pixel",
                                                  "mnv2-pair", "r18-none-compute")}},
        "paper": {row: (0, 1, 2) for row in ("r18-none", "r18-both", "r18-gat", "r18-heo")}}
# Earlier campaigns, kept findable on their own page: the `cpu-240` scale with a 48-epoch teacher, the same with a
# 24-epoch teacher, one GPU seed at short side 160, and the collapsing "paper-mean" pixel-wise reading.
EARLIER = ("results/cpu-standin-voclabels-teacher48", "results/cpu-standin-voclabels",
           "results/gpu-standin-voclabels-160", "results/cpu-standin-voclabels-paper-mean")


@dataclass(frozen=True)
class Source:
    """The runs of a page's rows in one results folder: `runs` (`load_records` rows), `diverged` ({run name:
    message}), and `label`, which names the data, scale, teacher, device and recipe (never a stand-in as VOC)."""

    name: str
    folder: str
    runs: pd.DataFrame
    diverged: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if not len(self.runs):
            return f"{self.name} (no records yet)"
        parts = [data_label(self.runs), teacher_label(self.folder, self.runs), device_label(self.runs),
                 recipe_label(self.runs)]
        return f"{self.name} ({', '.join(p for p in parts if p)})"

    @property
    def empty(self) -> bool:
        """Nothing to show: no finished run and no diverged one."""
        return not len(self.runs) and not self.diverged

    @property
    def seeds(self) -> list[int]:
        return sorted({int(s) for s in self.runs["seed"]}) if len(self.runs) else []

    def summary(self, rows: Iterable[str]) -> pd.DataFrame:
        """`summarise` of the rows, cells flagged where a run distilled from another teacher than the folder's."""
        teacher = expected_teacher(self.folder, self.runs) if Path(self.folder).is_dir() else None
        return summarise(self.runs, list(rows), diverged=self.diverged, teacher=teacher)

    def versus(self, rows: Iterable[str], references: Mapping[str, str] | None = None) -> pd.DataFrame:
        """Every row against its reference: by default the plain student of its backbone (the teacher: the plain
        ResNet-18)."""
        references = separation.plain_references(list(rows)) if references is None else references
        return separation.versus(self.runs, references, diverged=self.diverged)


def campaign(folder: str | Path, rows: Iterable[str], name: str = "main campaign") -> Source:
    """The records of `rows` in a campaign folder, every seed (a missing folder gives a source without runs)."""
    rows = set(rows)
    folder = str(folder)
    runs = load_records(folder) if Path(folder).is_dir() else pd.DataFrame()
    if len(runs):
        runs = runs[runs["preset"].isin(rows)].reset_index(drop=True)
    failed = {n: m for n, m in (diverged_runs(folder) if Path(folder).is_dir() else {}).items()
              if n.rsplit("-s", 1)[0] in rows and not (len(runs) and n in set(runs["run_name"]))}
    return Source(name, folder, runs, failed)


def book_runs(results: str | Path, rows: Iterable[str], seeds: Iterable[int]) -> Source:
    """This build's own runs (`paperkd book` trained them at its scale, smoke by default): a check that everything
    runs, not a result."""
    runs, diverged = read_rows(rows, seeds, results)
    return Source("smoke check", str(results), runs, diverged)


__all__ = ["EARLIER", "MAIN", "PLAN", "Source", "book_runs", "campaign"]
