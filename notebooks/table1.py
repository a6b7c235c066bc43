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
# # Table 1: pixel-wise and pair-wise distillation, ResNet-18 and MobileNet-V2 students
#
# The paper's Table 1: mIoU on Pascal VOC 2012 val (mean of 3 runs) of the DeepLabV3+ ResNet-101 teacher and of the
# ResNet-18 and MobileNet-V2 students trained without distillation, with the pixel-wise loss (eq. 5, $\alpha = 100$),
# the pair-wise loss (eq. 8, $\beta = 1$) or both (eq. 9), next to the same rows trained by `paperkd`.
#
# Every number in the "ours" columns is read from the run records on disk (trained beforehand by `paperkd book`'s
# first step, or by `paperkd campaign`; executing this page trains nothing). The data and scale of each column are
# named in its header and described in full above the table:
# numbers from a stand-in data set are **not** VOC numbers, and at small scale the gap to the paper says nothing
# about the method, only the comparison between rows of one column does (and only as far as the spread over seeds
# allows).

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
# committed campaign records, each folder its own column: the CPU campaign (teacher 48 epochs, the `cpu` scale's),
# the first CPU campaign (teacher 24 epochs, too few to pull ahead of the students), the GPU (H100) campaign, and the
# CPU runs of the pixel-wise reading "paper-mean" that collapse (see the paper-vs-code page)
campaigns = ["results/cpu-standin-voclabels-teacher48", "results/cpu-standin-voclabels",
             "results/gpu-standin-voclabels-160", "results/cpu-standin-voclabels-paper-mean"]

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from paperkd import report, separation
from paperkd.config import TABLE_ROWS
from paperkd.paper_results import paper_table

ROWS = TABLE_ROWS["table1"]
paper = paper_table("table1")
sources, missing = report.table_sources(ROWS, seeds, campaigns=campaigns, results=results, dataset=dataset,
                                       scale=scale, recipe=recipe)  # reads records only; `paperkd book` trained ours
summaries = {label: report.summarise(runs, ROWS, diverged=failed, teacher=report.expected_teacher(folder, runs))
             for label, (runs, folder, failed) in sources.items()}
print("; ".join(f"{label}: {len(runs)} runs" for label, (runs, _, _) in sources.items()))

# %% [markdown]
# ## Where the numbers come from

# %%
display(Markdown(report.provenance_markdown(sources, missing)))

# %% [markdown]
# ## Which differences are larger than the spread over seeds?
#
# Two rows count as apart only when their seeds do not overlap: every seed of one row above every seed of the other.
# With 3 seeds each and no real difference, a separation in one direction or the other happens by chance with
# p = 2/20 = 0.1 (an exact permutation test; `paperkd.separation` states its assumptions); with fewer seeds it is
# never counted as evidence. Distillation can only help when the teacher is clearly better than the plain student,
# so first the teacher against the plain students, then every distilled row against the plain student of its
# backbone, per source:

# %%
versus = {label: separation.versus(runs, separation.plain_references(ROWS), diverged=failed)
          for label, (runs, _, failed) in sources.items()}
display(Markdown("\n\n".join(report.teacher_margin_markdown(label, runs) for label, (runs, _, _) in sources.items())))
display(Markdown("\n\n".join(separation.separation_markdown(label, rows.drop(index="teacher", errors="ignore"))
                               for label, rows in versus.items())))  # the teacher: in the paragraph above

# %% [markdown]
# ## The table
#
# mIoU in % (the epoch each run's recipe reports, named in the column: the best validation epoch under `authors`, as
# the authors' trainer reports it, the last under `paper` and in the pre-recipe campaigns; mean ± sample std over the
# seeds, n = number of seeds; ⚠ marks a cell whose runs distilled from another teacher than the column's).
# Gap = ours minus the paper's, in percentage points. Vs plain student: the row's mean minus that of the student of
# its backbone without distillation
# (the teacher: minus the plain ResNet-18), and whether their seeds lie apart (p as above). The parameter counts of
# every trained model, read from the records, are checked against the paper's below the table.

# %%
CHECK = {True: "yes", False: ""}
columns = {
    ("paper (VOC 2012 val)", "model"): paper["label"],
    ("paper (VOC 2012 val)", "pixel-wise"): paper["pixel"].map(CHECK),
    ("paper (VOC 2012 val)", "pair-wise"): paper["pair"].map(CHECK),
    ("paper (VOC 2012 val)", "mIoU"): paper["miou"].map("{:.2f}".format),
    ("paper (VOC 2012 val)", "params (M)"): paper["params"].map("{:.1f}".format),
}
for label, summary in summaries.items():
    compared = report.compare_with_paper(summary, paper, label=label)
    columns[(label, "mIoU mean ± std (n)")] = compared[f"{label} (mean ± std)"]
    columns[(label, "gap")] = compared["gap"].map(lambda v: "" if pd.isna(v) else f"{v:+.2f}")
    columns[(label, "vs plain student")] = separation.versus_column(versus[label], paper.index)
table = pd.DataFrame(columns, index=paper.index)
caption = "Table 1. mIoU (%) and parameters. " + "; ".join(
    f"{label}: {summary['n'].sum()} runs, seeds {sorted({s for ss in summary['seeds'] for s in ss})}"
    for label, summary in summaries.items())
display(table.style.set_caption(caption))

# %% [markdown]
# The parameter counts of our models match the paper's to the printed precision (checked here, on every run):

# %%
for label, summary in summaries.items():
    trained = summary[summary["n"] > 0]
    mismatch = trained[trained["params_m"].round(1) != paper.loc[trained.index, "params"]]
    assert mismatch.empty, f"{label}: parameter counts differ from the paper's: {mismatch['params_m'].to_dict()}"
    print(f"{label}: {len(trained)} rows, params (M) {sorted(set(trained['params_m'].round(1)))}: as in the paper")

# %% [markdown]
# ## mIoU per row
#
# One panel per source, each on its own axis (the paper's VOC numbers and a small stand-in run are not on one
# scale). Error bars: sample std over seeds (none with a single seed).

# %%
labels = {p: f"{paper.loc[p, 'label'].replace('Student ', '').replace('Teacher DeepLabV3+ ', 'teacher ')}"
             f"{' +pixel' if paper.loc[p, 'pixel'] else ''}{' +pair' if paper.loc[p, 'pair'] else ''}" for p in ROWS}
report.plot_miou_bars(summaries, ROWS, labels=labels, paper=paper["miou"], title="Table 1: mIoU (%)")
plt.show()

# %% [markdown]
# ## Training curves
#
# Training loss (cross-entropy plus the weighted distillation terms, mean per iteration of each epoch) and validation
# mIoU after each epoch, mean over seeds (the band spans the seeds).

# %%
for label, (runs, _, _) in sources.items():
    report.plot_training_curves(runs, ROWS, labels=labels, title=label)
    plt.show()
