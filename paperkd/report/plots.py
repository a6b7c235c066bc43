"""The results pages' figures, each a function of the DataFrame `load_records` returns (or of a summary of it)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from paperkd import separation
from paperkd.report.summary import (
    DIVERGED,
    NOT_RUN,
    epoch_history,
)


def plot_training_curves(df: pd.DataFrame, presets: Iterable[str], labels: Mapping[str, str] | None = None,
                         title: str = "") -> plt.Figure:
    """Training loss and validation mIoU per epoch, one line per preset (mean over seeds; shaded: min to max)."""
    history = epoch_history(df)
    labels = labels or {}
    fig, (ax_loss, ax_miou) = plt.subplots(1, 2, figsize=(11, 4))
    for preset in presets:
        runs = history[history["preset"] == preset]
        if not len(runs):
            continue
        for ax, column in ((ax_loss, "loss"), (ax_miou, "miou")):
            stats = runs.groupby("epoch")[column].agg(["mean", "min", "max"]).dropna()
            if not len(stats):
                continue
            (line,) = ax.plot(stats.index, stats["mean"], marker="o", label=labels.get(preset, preset))
            ax.fill_between(stats.index, stats["min"], stats["max"], color=line.get_color(), alpha=0.15)
    ax_loss.set(xlabel="epoch", ylabel="training loss (total, per iteration)", yscale="log")
    for ax in (ax_loss, ax_miou):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_miou.set(xlabel="epoch", ylabel="validation mIoU (%)")
    ax_miou.legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _row_panels(count: int, presets: list[str], width: float) -> tuple[plt.Figure, np.ndarray, np.ndarray]:
    """`count` side-by-side panels sharing one y axis of `presets` (one row each): figure, axes, row positions."""
    fig, axes = plt.subplots(1, count, figsize=(width * count, 0.38 * len(presets) + 1.8), sharey=True,
                             squeeze=False)
    return fig, axes, np.arange(len(presets))


def _panel_title(ax: plt.Axes, name: str) -> None:
    ax.set_title(textwrap.fill(name, 38), fontsize=10)  # source labels are long; unwrapped they run into each other


def _finish_row_panels(fig: plt.Figure, axes: np.ndarray, presets: list[str], labels: Mapping[str, str],
                       title: str) -> plt.Figure:
    axes[0, 0].set_yticks(np.arange(len(presets)), [labels.get(p, p) for p in presets])
    axes[0, 0].invert_yaxis()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_seed_scores(sources: Mapping[str, pd.DataFrame], references: Mapping[str, str], presets: Iterable[str],
                     labels: Mapping[str, str] | None = None, title: str = "",
                     diverged: Mapping[str, Iterable[str]] | None = None) -> plt.Figure:
    """Every seed's mIoU (%) as a dot per row, one panel per source, with the range of the row's reference (its plain
    student, `paperkd.separation.plain_references`) shaded behind it: a row whose dots all lie outside the shaded band
    is apart from its reference (`paperkd.separation.separation`); dots inside it are within the seed spread.
    `diverged`: {source: run names that diverged}; a row with no finished run but diverged ones says so."""
    presets = list(presets)
    labels = labels or {}
    fig, axes, positions = _row_panels(len(sources), presets, width=4.6)
    for ax, (name, runs) in zip(axes[0], sources.items()):
        for y, preset in zip(positions, presets):
            scores = separation.seed_scores(runs, preset)
            base = separation.seed_scores(runs, references.get(preset, ""))
            if len(base) > 1:
                ax.fill_betweenx([y - 0.4, y + 0.4], base.min(), base.max(), color="tab:gray", alpha=0.25, lw=0)
            elif len(base):  # a single reference seed: a line, not an invisible zero-width band
                ax.plot([base[0], base[0]], [y - 0.4, y + 0.4], color="tab:gray", alpha=0.6, lw=2)
            verdict = separation.separation(scores, base)
            color = {separation.HIGHER: "tab:green", separation.LOWER: "tab:red"}.get(verdict, "tab:blue")
            ax.plot(scores, np.full(len(scores), y), "o", color=color, ms=5, alpha=0.85)
            if not len(scores):
                failed = {n.rsplit("-s", 1)[0] for n in (diverged or {}).get(name, ())}
                ax.annotate(DIVERGED if preset in failed else NOT_RUN, (0, y), xytext=(4, 0),
                            textcoords="offset points", va="center", fontsize=8, xycoords=("axes fraction", "data"))
        _panel_title(ax, name)
        ax.set_xlabel("mIoU (%), one dot per seed")
        ax.grid(axis="x", alpha=0.3)
    return _finish_row_panels(fig, axes, presets, labels, title)


def plot_prediction_grid(rows: list[Mapping[str, np.ndarray]], title: str = "") -> plt.Figure:
    """A grid of images: one row per example, one column per key of the rows' dicts (e.g. image, ground truth, ...).

    Values are (H, W, 3) uint8 images (label maps already coloured, e.g. with `paperkd.data.palette.colorize`).
    """
    columns = list(rows[0])
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(2.2 * len(columns), 2.2 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        for c, name in enumerate(columns):
            ax = axes[r, c]
            ax.imshow(row[name], interpolation="nearest")  # label maps: no blending of colours
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
