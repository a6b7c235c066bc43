# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Figure 2: predictions side by side
#
# The paper's Figure 2 shows, for a few validation images, the image, the ground truth, and the predictions of the
# teacher, of the ResNet-18 student trained without distillation and of the same student trained with pixel-wise and
# pair-wise distillation. Here the same five columns from the checkpoints of the `paperkd` runs (`teacher`,
# `r18-none`, `r18-both`, first seed), on the validation images of the data those runs were trained on, coloured
# with the VOC palette (white-ish cream: the ignored 255 border of the ground truth).

# %% tags=["parameters"]
data_root = None  # None: the embedded default stand-in
dataset = "standin"  # "standin" or "voc"
scale = "smoke"  # smoke | cpu | gpu | paper
recipe = "authors"  # authors | paper: the training recipe of the runs this page trains
seeds = [0]
epochs = None  # None: the scale's
device = "cpu"
results = "runs/book"  # the run records this page reads (`paperkd book` or `paperkd campaign` trains them)
reuse = True
campaign = "results/cpu-standin-voclabels-teacher48"  # the CPU campaign's records (a figure if it has checkpoints)

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from paperkd import report
from paperkd.data import IMAGENET_MEAN, IMAGENET_STD, VOCSegmentation, default_standin, val_transforms
from paperkd.data.palette import colorize
from paperkd.inference import load_model
from paperkd.records import load_records

N_IMAGES = 4
COLUMNS = {"teacher": "teacher (ResNet-101)", "r18-none": "student (ResNet-18)",
           "r18-both": "student + pixel + pair"}
seed = seeds[0]
ours, diverged = report.read_rows(list(COLUMNS), [seed], results)  # records only; `paperkd book` trained them
campaign_runs = load_records(campaign) if Path(campaign).is_dir() else pd.DataFrame()
print(f"{len(ours)} runs from {results}; {len(campaign_runs)} campaign runs from {campaign}")


# %%
def denormalise(image: torch.Tensor) -> np.ndarray:
    """A normalised (3, H, W) tensor back to a displayable (H, W, 3) uint8 image."""
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (image * std + mean).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()


def prediction_rows(runs: pd.DataFrame, seed: int, diverged: dict) -> tuple[list[dict], list[str]]:
    """The grid's rows from the checkpoints of `seed`'s runs, and notes on every column left out (a run that diverged,
    a record or checkpoint that is missing); no rows if the teacher's record or the data is missing."""
    notes, checkpoints = [], {}
    for preset in COLUMNS:
        name = f"{preset}-s{seed}"
        rows = runs[(runs["preset"] == preset) & (runs["seed"] == seed)] if len(runs) else runs
        if name in diverged:
            notes.append(f"`{name}` diverged, so its column is left out: {diverged[name].removeprefix(name + ': ')}")
        elif rows.empty:
            notes.append(f"no record of `{name}`, so its column is left out")
        elif report.checkpoint_path(rows.iloc[0]) is None:
            notes.append(f"`{name}` has a record but no checkpoint (records are kept without checkpoints), so its "
                         "column is left out")
        else:
            checkpoints[preset] = (report.checkpoint_path(rows.iloc[0]), rows.iloc[0]["record"]["config"])
    if not checkpoints:
        return [], notes
    config = next(iter(checkpoints.values()))[1]  # every run of one folder saw the same data
    root = config["data_root"] or (default_standin() if config["dataset"] == "standin" else None)
    if root is None or not Path(root).is_dir():
        return [], notes + [f"the data these runs were trained on, `{root}`, is not on this machine"]
    val = VOCSegmentation(root, "val", transforms=val_transforms(config["val_size"], config["val_mode"]))
    models = {preset: load_model(path, device)[0] for preset, (path, _) in checkpoints.items()}
    grid = []
    with torch.inference_mode():
        for index in range(min(N_IMAGES, len(val))):
            image, target = val[index]
            row = {"image": denormalise(image), "ground truth": colorize(target.numpy())}
            for preset, model in models.items():
                prediction = model(image[None].to(device)).argmax(1)[0].cpu().numpy()
                row[COLUMNS[preset]] = colorize(prediction)
            grid.append(row)
    notes.insert(0, f"the first {len(grid)} validation images of `{root}` at {config['val_size']} x "
                    f"{config['val_size']} ({config['val_mode']}), checkpoints of seed {seed}; stand-in images are "
                    "synthetic, not VOC photographs")
    return grid, notes


def show_figure(label: str, grid: list[dict], notes: list[str]) -> None:
    display(Markdown(f"**Figure 2, {label}:**\n" + "".join(f"\n- {note}" for note in notes)))
    if grid:
        report.plot_prediction_grid(grid, title=f"Figure 2: {label}")
        plt.show()
    else:
        display(Markdown(f"**No figure for {label}.**"))


# %% [markdown]
# ## The runs of this book

# %%
asked_for = f"{'VOC' if dataset == 'voc' else 'stand-in'}, {scale}"  # names the runs if none finished
label = f"ours ({report.data_label(ours, default=asked_for)}, {report.recipe_label(ours) or f'recipe {recipe}'})"
display(Markdown(report.sources_markdown(label, ours, results, diverged)))
show_figure(label, *prediction_rows(ours, seed, diverged))

# %% [markdown]
# ## The campaign

# %%
if len(campaign_runs):
    label = f"campaign ({report.data_label(campaign_runs)}, {report.recipe_label(campaign_runs)})"
    display(Markdown(report.sources_markdown(label, campaign_runs, campaign)))
    campaign_seed = int(campaign_runs["seed"].min())
    show_figure(label, *prediction_rows(campaign_runs, campaign_seed, {}))
else:
    display(Markdown(f"**No campaign records** in `{campaign}`: the folder is missing or holds no records."))
