"""The earlier campaigns, out of the main tables but findable: each one's rows of Tables 1-3 against their plain
student, the claims as they come out of it, and where its numbers come from. Their regimes were too small to answer
the book's question (their own pages said why); the main campaign replaced them."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from paperkd import claims
from paperkd.config import TABLE_ROWS
from paperkd.pages.answer import provenance_markdown, show, versus_cell
from paperkd.pages.campaigns import EARLIER, Source, campaign
from paperkd.pages.table_page import student_labels
from paperkd.report.summary import mean_std_text

ROWS = list(dict.fromkeys(p for rows in TABLE_ROWS.values() for p in rows))
LABELS = {**student_labels("table2"), **student_labels("table3"), **student_labels("table1")}


def rows_table(source: Source) -> pd.DataFrame:
    """Every row: mIoU mean ± std (n) and the difference from its plain student with its verdict."""
    summary, versus = source.summary(ROWS), source.versus(ROWS)
    return pd.DataFrame({
        "row": [LABELS.get(p, p) for p in ROWS],
        "mIoU": [mean_std_text(r["miou_mean"], r["miou_std"], int(r["n"]), diverged=int(r["diverged"]))
                 for _, r in summary.iterrows()],
        "vs plain": [versus_cell(versus.loc[p]) if p in versus.index else "" for p in ROWS],
    }, index=ROWS)


def show_all(folders: Iterable[str] = EARLIER) -> None:
    """Per earlier campaign: its label, the claims' summary, and the table of its rows (provenance folded apart)."""
    for folder in folders:
        source = campaign(folder, ROWS, name="earlier campaign")
        if not len(source.runs):
            show(f"**{folder}**: no records.")
            continue
        table = claims.claim_table(source.runs, diverged=list(source.diverged))
        show(f"**`{folder}`**", claims.claims_markdown(source.label, table),
             rows_table(source).style.hide(axis="index").set_caption(source.label))


def provenance(folders: Iterable[str] = EARLIER) -> None:
    show(provenance_markdown([campaign(folder, ROWS, name="earlier campaign") for folder in folders]))


__all__ = ["ROWS", "provenance", "rows_table", "show_all"]
