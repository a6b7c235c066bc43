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
# # Earlier campaigns
#
# The campaigns made before the main one, kept here so that their records stay findable; none of them can answer
# whether the method helps. The first CPU campaign (`cpu-240` scale: 240 training images, 8 epochs) gave its teacher
# 24 epochs, too few to pull ahead of the students; the second gave it 48; both ran before the recipes existed
# ("pre-recipe", see Paper vs. code). The GPU campaign is one seed at short side 160 whose teacher did not lead its
# students; the last folder holds the runs of a pixel-wise reading that collapses.

# %% tags=["parameters"]
# The build's parameters (`paperkd book` passes them; this page uses none of them). This page only reads records.
data_root = None
dataset = "standin"
scale = "smoke"
recipe = "authors"
seeds = [0]
epochs = None
device = "cpu"
results = "runs/book"
reuse = True
earlier = ["results/cpu-standin-voclabels-teacher48", "results/cpu-standin-voclabels",
           "results/gpu-standin-voclabels-160", "results/cpu-standin-voclabels-paper-mean"]

# %%
from paperkd.pages import earlier as earlier_page

earlier_page.show_all(earlier)

# %% [markdown]
# ## Where the numbers come from

# %% tags=["hide-output"]
earlier_page.provenance(earlier)
