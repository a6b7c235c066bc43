"""Figure 2: image, ground truth, and the predictions of the teacher, the plain ResNet-18 and the ResNet-18 distilled
with both losses, for the first validation images, drawn from the predictions each run saved beside its record
(`paperkd.saved_predictions`): no checkpoint and no data set are needed to draw it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from paperkd.data.palette import colorize
from paperkd.pages.answer import provenance_markdown, show
from paperkd.pages.campaigns import MAIN, campaign
from paperkd.records import RecordError, read_record
from paperkd.report.plots import plot_prediction_grid
from paperkd.saved_predictions import has_predictions, read_manifest, read_predictions

COLUMNS = {"teacher": "teacher (ResNet-101)", "r18-none": "student (ResNet-18)",
           "r18-both": "student + pixel + pair"}


def grid(folder: str | Path, seed: int = 0, columns: Mapping[str, str] = COLUMNS) -> tuple[list[dict], list[str]]:
    """The figure's rows (one per saved validation image: image, ground truth, one prediction per column) from the
    runs `<preset>-s<seed>` of `folder`, and a note for every column left out (no run, no saved predictions, files
    that cannot be read, or images that differ from the first column's)."""
    notes, saved = [], {}
    for preset, title in columns.items():
        run_dir = Path(folder) / f"{preset}-s{seed}"
        if not (run_dir / "record.json").is_file():
            notes.append(f"no finished run `{run_dir.name}` in `{folder}`: its column is left out")
        elif not has_predictions(run_dir):
            notes.append(f"`{run_dir.name}` saved no predictions (a run from before they were saved; "
                         f"`paperkd save-predictions {run_dir}` writes them while its checkpoint is there)")
        else:
            try:
                manifest, selected = read_manifest(run_dir), read_record(run_dir / "record.json").get("selected")
                weights = (manifest.get("checkpoint") or {}).get("sha256")
                if selected and not selected.get("sha256"):
                    notes.append(f"`{run_dir.name}`: its record names no checkpoint SHA-256 (a record from before "
                                 "they were kept), so its predictions cannot be tied to its weights; its column is "
                                 "left out (train it again to draw it)")
                    continue
                if selected and weights != selected["sha256"]:
                    notes.append(f"`{run_dir.name}`: its predictions come from other weights than the ones its "
                                 "record reports (checkpoint SHA-256 differs), so its column is left out")
                    continue
                saved[title] = (read_predictions(run_dir), manifest)
            except RecordError as error:
                notes.append(f"`{run_dir.name}`: {error}")
    if not saved:
        return [], notes
    first_title, (first, manifest) = next(iter(saved.items()))
    stems = [p["stem"] for p in first]
    rows = [{"image": p["image"], "ground truth": colorize(p["truth"])} for p in first]
    for title, (predictions, _) in saved.items():
        if [p["stem"] for p in predictions] != stems or any(
                not np.array_equal(p["truth"], q["truth"]) for p, q in zip(predictions, first)):
            notes.append(f"{title}: saved on other validation images than {first_title}, left out")
            continue
        for row, p in zip(rows, predictions):
            row[title] = colorize(p["prediction"])
    notes.insert(0, f"validation images {', '.join(stems)} at {manifest.get('val_size')} "
                    f"({manifest.get('val_mode')}) of `{manifest.get('data_root')}`, seed {seed}, the weights each "
                    "run's record reports")
    return rows, notes


def figure(folder: str | Path, label: str, seed: int = 0) -> None:
    """Show Figure 2 for one results folder, with its notes (what is left out and why)."""
    rows, notes = grid(folder, seed)
    show(f"**Figure 2, {label}** (`{folder}`):" + "".join(f"\n- {note}" for note in notes))
    if rows:
        plot_prediction_grid(rows, title=f"Figure 2: {label}")
        plt.show()


def answer(folder: str | Path = MAIN["authors"]) -> None:
    """Figure 2 of the main campaign (its `authors` folder, where the teacher is)."""
    figure(folder, campaign(folder, COLUMNS, name="main campaign, authors recipe").label)


def smoke_check(results: str | Path, seeds: Iterable[int]) -> None:
    """Figure 2 from this build's own runs (a check that predictions are saved and drawn, not a result)."""
    figure(results, "smoke check (this build's own runs)", seed=next(iter(seeds)))


def provenance(results: str | Path, folder: str | Path = MAIN["authors"]) -> None:
    """Where the runs of both figures come from."""
    show(provenance_markdown([campaign(folder, COLUMNS, name="main campaign, authors recipe"),
                              campaign(results, COLUMNS, name="smoke check")]))


__all__ = ["COLUMNS", "answer", "figure", "grid", "provenance", "smoke_check"]
