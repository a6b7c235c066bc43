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
# # What the runs show
#
# Does the paper's method make the students better here? Each claim the paper makes (pixel-wise > none, pair-wise >
# none, both > each alone, proposed > Heo > GAT > none, pixel-wise at END, pair-wise at MIDDLE, for each backbone)
# gets a verdict from the main committed campaign: **reproduced**, **contradicted** or **not decided**. The rows of a
# claim are compared seed by seed (students of one seed share their initial weights and data order), with the exact
# sign-flip test on the paired differences (`paperkd.claims`): it assumes only that, without a real difference, each
# pair's difference is as likely to be d as -d. A verdict needs p ≤ 0.1, and with n pairs p can be no smaller than
# 2^(1-n), so no claim can be decided with fewer than 5 seeds (the campaign gives 5 to its headline pair, the plain
# and the proposed ResNet-18, and 3 to every other row); "seeds needed" estimates how many would decide a claim.
# Beside it, the unpaired rule of the table pages: every seed of one row above every seed of the other, which 3 seeds
# against 3 pass by chance with p = 0.1. The two are different tests of the same question; the verdict is the
# paired one, chosen before the runs because the campaign pairs its seeds.

# %% tags=["parameters"]
# The build's parameters (`paperkd book` passes them; papermill -p overrides any). This page only reads records.
data_root = None
dataset = "standin"
scale = "smoke"
recipe = "authors"
seeds = [0]  # the build's own seeds
epochs = None
device = "cpu"
results = "runs/book"  # the build's own run records
reuse = True
# the main committed campaign, per recipe, and the pilot that chose its regime
campaign = "results/cpu-standin-voclabels-80"
campaign_paper = "results/cpu-standin-voclabels-80-paper"
pilot = "results/pilot-cpu/a"

# %%
from paperkd.pages import findings

folders = {"authors": campaign, "paper": campaign_paper}
findings.answer(folders)

# %% [markdown]
# ## Could distillation help here at all?
#
# A student can only gain from a teacher that is clearly better than it. The teacher's lead over each plain
# student, then two controls: Hinton's logit distillation (the authors' own KD baseline settings), which shows
# whether this regime can pass anything from this teacher to a student; and the plain ResNet-18 trained for the
# compute of the proposed student (epochs scaled by the measured cost of a step), which shows whether a gain is more
# than the extra compute.

# %%
findings.could_it_help(folders)

# %% [markdown]
# ## Is the regime fit for the question?
#
# The regime (the `cpu` scale) was chosen by a pilot to meet four targets: the teacher at least 5 points above each
# plain student, the plain students near convergence, their seeds within 1 point of each other, the campaign within
# about 16 hours on a 2-core machine. Each target, measured on the records:

# %%
findings.regime(folders, pilot)

# %% [markdown]
# ## Every seed of every row

# %%
findings.every_seed(folders)

# %% [markdown]
# ## Smoke check

# %%
findings.smoke_check(results, seeds)

# %% [markdown]
# ## Where the numbers come from

# %% tags=["hide-output"]
findings.provenance(results, seeds, folders)
