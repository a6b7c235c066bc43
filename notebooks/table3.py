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
# # Table 3: where to distil, MIDDLE or END
#
# Does each loss work better at one position of the network? The paper's text: pixel-wise at END (the last
# convolution before the classifier), pair-wise at MIDDLE (the encoder output). Its own Table 3 puts pixel-wise END
# 0.58 above MIDDLE, but pair-wise END 0.07 above MIDDLE too. Below, each loss at the position the text prefers
# against the same loss at the other position, beside the paper's difference.
#
# How to read a verdict: two rows are *apart* only when every seed of one lies above every seed of the other; with
# 3 seeds against 3 that happens by chance with p = 0.1 (`paperkd.separation`). Fewer seeds never count as evidence.

# %% tags=["parameters"]
# The build's parameters (`paperkd book` passes them; papermill -p overrides any). This page only reads records.
data_root = None  # the data of the build's own runs (None: the embedded stand-in)
dataset = "standin"  # "standin" or "voc"
scale = "smoke"  # the scale of the build's own runs (the smoke check at the end)
recipe = "authors"  # the recipe of the build's own runs
seeds = [0]  # the build's own seeds
epochs = None
device = "cpu"
results = "runs/book"  # the build's own run records
reuse = True
# the main committed campaign, per recipe (point these at your own `paperkd campaign --results` folders)
campaign = "results/cpu-standin-voclabels-80"
campaign_paper = "results/cpu-standin-voclabels-80-paper"

# %%
from paperkd.pages import table3

folders = {"authors": campaign, "paper": campaign_paper}
table3.answer(folders)

# %% [markdown]
# ## The rows in detail
#
# Every seed of every row as a dot, against the range of the seeds of the row it is compared with (grey band);
# green: every seed above it, red: every seed below, blue: overlapping or too few seeds. Then the training loss
# and the validation mIoU per epoch (mean over seeds; the band spans the seeds).

# %%
table3.details(folders)

# %% [markdown]
# ## Smoke check
#
# The runs this build of the book trained itself, at its own scale (2 epochs on 16 images by default).

# %%
table3.smoke_check(results, seeds)

# %% [markdown]
# ## Where the numbers come from
#
# Data, scale, schedule, device, commit and time of every source, and any run that diverged, distilled from another
# teacher or could not be read (open the cell below).

# %% tags=["hide-output"]
table3.provenance(results, seeds, folders)
