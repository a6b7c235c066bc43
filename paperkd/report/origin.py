"""Where the numbers come from: the markdown a page shows about the records behind a column (data, scale, schedule,
device, commit; runs that diverged, distilled from another teacher, or could not be read)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from paperkd.records import PRE_RECIPE, unreadable_records
from paperkd.report.sources import _standin_meta, expected_teacher

PRE_RECIPE_NOTE = ("**Pre-recipe (mixed readings)**: trained before the recipes existed, with the authors' pixel-wise "
                   "reading and the paper's channel-node pair-wise reading, attention transfer in [37]'s code form at "
                   "lambda = 1 on one tap, the plain CE mean, no warm-up, the ASPP dropout, an eval-mode teacher, the "
                   "paper's transforms and the last epoch: neither recipe (see Paper vs. code).")


def describe_data(df: pd.DataFrame) -> str:
    """Markdown: which data, scale, schedule, device and code produced these records (every value from the records)."""
    if not len(df):
        return "No run records."
    records = list(df["record"])
    lines = []
    for (dataset, root), group in _group(records, lambda r: (r["config"]["dataset"],
                                                           r.get("data", {}).get("root") or r["config"]["data_root"])):
        kind = "Pascal VOC 2012" if dataset == "voc" else "synthetic stand-in (NOT Pascal VOC)"
        meta = _standin_meta(group[0]) if dataset != "voc" else None
        if meta is not None:
            source = (f"images rendered from the real VOC 2012 label maps in `{meta['labels_from']}`"
                      if meta.get("labels_from") else "images rendered from procedurally drawn label maps")
            kind += f", {source}, short side {meta.get('size') or 'as VOC'}"
        counts = sorted({(r.get("data", {}).get("train_images"), r.get("data", {}).get("val_images")) for r in group})
        counts_text = ", ".join(f"{t} train / {v} val images" for t, v in counts)
        runs = f"{len(group)} run{'s' if len(group) > 1 else ''}"
        lines.append(f"- data: {kind}; root `{root}`; {counts_text} ({runs})")
    for key, name in (("scale", "scale"), ("epochs", "epochs"), ("crop", "train crop"), ("val_size", "val size"),
                      ("batch_size", "batch size")):
        values = sorted({str(r["config"][key]) for r in records})
        lines.append(f"- {name}: {', '.join(values)}")
    lines.append(f"- seeds: {', '.join(str(s) for s in sorted({int(r['seed']) for r in records}))}")
    lines.append(f"- device: {'; '.join(sorted({str(r['environment']['device']) for r in records}))}")
    walls = [float(r["wall_s"]) for r in records if r.get("wall_s") is not None]
    if walls:
        lines.append(f"- time: {sum(walls) / 3600:.2f} h of training in all, {min(walls) / 60:.1f} to "
                     f"{max(walls) / 60:.1f} min per run (wall clock, validation included)")
    commits = sorted({str(r["environment"].get("git_commit")) for r in records})
    lines.append(f"- paperkd git commit: {', '.join(f'`{c}`' for c in commits)}")
    notes = dict.fromkeys(v for r in records for k, v in r["environment"].items() if k.endswith("_note"))
    lines += [f"- note: {n}" for n in notes]  # added to records after the run, e.g. a corrected commit
    return "\n".join(lines)


def sources_markdown(label: str, runs: pd.DataFrame, folder: str | Path,
                     diverged: Mapping[str, str] | None = None) -> str:
    """Markdown for a page: the column label, the records folder, `describe_data`, every run that diverged, every run
    that distilled from another teacher than the folder's (`expected_teacher`), and every record file of the folder
    that could not be read (skipped, named with what is wrong)."""
    text = f"**{label}**, run records in `{folder}`:\n\n{describe_data(runs)}"
    if len(runs) and "recipe" in runs and (runs["recipe"] == PRE_RECIPE).any():
        text += "\n\n" + PRE_RECIPE_NOTE
    if diverged:
        text += "\n\nRuns that **diverged** (no record; shown as 'diverged' in the tables):\n\n" + "\n".join(
            f"- `{name}`: {message.removeprefix(f'{name}: ')}" for name, message in diverged.items())
    expected = expected_teacher(folder, runs) if Path(folder).is_dir() else None
    students = runs[runs["teacher_sha256"].notna()] if "teacher_sha256" in runs and len(runs) else runs.iloc[:0]
    if expected:  # the same judgement as `teacher_flag`, run by run
        shown = students[students["teacher_sha256"] != expected]
    else:
        shown = students if len(students) and students["teacher_sha256"].nunique() > 1 else students.iloc[:0]
    if len(shown):
        text += ("\n\nRuns that distilled from **another teacher** than this folder's students are meant to (their "
                 "cells are marked ⚠ in the tables):\n\n" + "\n".join(
                     f"- `{r.run_name}`: teacher `{r.record['teacher']['checkpoint']}`, sha256 "
                     f"{r.teacher_sha256[:12]}" + (f" (expected {expected[:12]})" if expected else "")
                     for r in shown.itertuples()))
    unreadable = unreadable_records(folder) if Path(folder).is_dir() else {}
    if unreadable:
        text += "\n\nRecord files that **could not be read** (skipped; the tables do not count them):\n\n" + "\n".join(
            f"- {message}" for message in unreadable.values())
    return text


def _group(records: list[dict], key) -> list[tuple[Any, list[dict]]]:
    groups: dict[Any, list[dict]] = {}
    for record in records:
        groups.setdefault(key(record), []).append(record)
    return list(groups.items())
