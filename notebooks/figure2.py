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
# What does distillation change in the student's masks? The paper's Figure 2 shows, for a few validation images, the
# image, the ground truth, and the predictions of the teacher, of the ResNet-18 student trained without distillation
# and of the same student trained with pixel-wise and pair-wise distillation. Here the same five columns for the
# main committed campaign, drawn from the predictions each run saved beside its record (the first validation images
# of its data, with the weights the run reports), coloured with the VOC palette (cream: the ignored border of the
# ground truth). The campaign's images are a stand-in rendered from the real VOC label maps, not VOC photographs.

# %% tags=["parameters"]
# The build's parameters (`paperkd book` passes them; papermill -p overrides any). This page only reads files.
data_root = None
dataset = "standin"
scale = "smoke"
recipe = "authors"
seeds = [0]  # the build's own seeds (the smoke check uses the first)
epochs = None
device = "cpu"
results = "runs/book"  # the build's own run records
reuse = True
campaign = "results/cpu-standin-voclabels-80"  # the main committed campaign (authors recipe: the teacher is there)

# %%
from paperkd.pages import figure2

figure2.answer(campaign)

# %% [markdown]
# ## Smoke check
#
# The same figure from the runs this build trained itself (2 epochs on 16 images by default): it checks that
# predictions are saved and drawn, and shows nothing about the method.

# %%
figure2.smoke_check(results, seeds)

# %% [markdown]
# ## Where the numbers come from

# %% tags=["hide-output"]
figure2.provenance(results, campaign)
