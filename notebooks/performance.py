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
# # Performance: what distillation costs per training step
#
# How much slower is a distilled training step than a plain one? The paper's Table 2 times a training iteration of
# the ResNet-18 student: 250 ms without distillation, 740 ms with the proposed losses (2.96x). The floor for any
# feature distillation is one student step plus one teacher forward without autograd; the losses themselves should
# be nearly free. This page reads the files `paperkd bench --json` wrote (`results/bench`): per file, every method's
# median step split into parts, its ratio to the plain student step, and its overhead: the step over the sum of the
# plain student step and the teacher forward, minus 1. Rows of one file were measured side by side, round robin, so
# their ratios compare;
# absolute times from different files or devices do not. The targets: every method's overhead below 10 %; the
# proposed step below the paper's 2.96x at crop 513, batch 6; a reduced-precision teacher agreeing with the fp32
# one on at least 99.5 % of pixels; the step waiting on data less than 5 % of the time.
#
# Reproduce: `paperkd bench --size 257 --batch 2 --repeats 4 --warmup 1 --threads 1 --json results/bench/x.json`
# (add `--teacher-dtype bf16 --channels-last` for the cheaper teacher); on a GPU, the paper's setting is
# `paperkd bench --device cuda --repeats 20 --warmup 3 --json ...` (crop 513, batch 6).

# %% tags=["parameters"]
# The build's parameters (`paperkd book` passes them; this page uses none of them). This page only reads files.
data_root = None
dataset = "standin"
scale = "smoke"
recipe = "authors"
seeds = [0]
epochs = None
device = "cpu"
results = "runs/book"
reuse = True
bench = "results/bench"  # folder of `paperkd bench --json` files

# %%
from paperkd.pages import performance

files = performance.read_bench(bench)
performance.answer(files)

# %% [markdown]
# ## Where the time of a step goes
#
# Stacked parts of the median step per method, for each benchmark file (same device and settings within a panel).

# %%
performance.parts_figure(files)

# %% [markdown]
# ## What each teacher-side switch bought
#
# The proposed method under each switch, side by side from one comparison file: the teacher forward gets cheaper,
# the method does not change (the student stays fp32).

# %%
performance.switches_table(files)

# %% [markdown]
# ## Checks beside the benchmark
#
# Files in `results/bench/checks`, each saying what it measured, how, on which device and commit: a trained
# teacher's agreement under reduced precision, a profile of Heo's step, and the loader's wait per worker count.

# %%
performance.check_tables(files)

# %% [markdown]
# ## Each benchmark file

# %%
performance.file_tables(files)

# %% [markdown]
# ## Where the numbers come from

# %% tags=["hide-output"]
performance.provenance(files)
