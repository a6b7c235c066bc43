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
# # Table 2: the proposed method against other distillation methods, accuracy and training time
#
# The paper's Table 2 compares, on the ResNet-18 student, no distillation, attention transfer ("GAT", eq. 2-3,
# $\lambda = 1$), the feature distillation of Heo et al. ("Method of [34]", as the authors coded it) and the proposed
# pixel-wise + pair-wise distillation (eq. 9), with the teacher for reference: mIoU mean and std over 3 seeds and the
# training time of one iteration. Here the same rows trained by `paperkd`, read from their run records.
#
# **About the times.** The paper's times are milliseconds per iteration on the authors' GPU at batch 6 and crop 513.
# Ours are measured by the trainer on the device named below, at the scale of the runs (on a CPU and at a small crop
# they are not comparable in absolute terms with the paper's). What can be compared is each method's time relative to
# the student without distillation, given for both in the "ratio to no distillation" columns.

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
from paperkd.paper_results import REFERENCE_PRESET, paper_table

ROWS = TABLE_ROWS["table2"]
paper = paper_table("table2")
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
# seeds, n = number of seeds; ⚠ marks a cell whose runs distilled from another teacher than the column's);
# gap = ours minus the paper's, in percentage points. Time: mean training iteration in ms (the trainer leaves out
# the first iterations of a run);
# ratio: the row's time over the time of the student without distillation, from the same source. Vs plain student:
# the row's mean minus that of the ResNet-18 without distillation, and whether their seeds lie apart (p as above).

# %%
FORMAT_MS = "{:.0f}".format
columns = {
    ("paper (VOC 2012 val, GPU)", "method"): paper["label"],
    ("paper (VOC 2012 val, GPU)", "mIoU"): paper["miou"].map("{:.2f}".format),
    ("paper (VOC 2012 val, GPU)", "std"): paper["std"].map("{:.2f}".format),
    ("paper (VOC 2012 val, GPU)", "time (ms)"): paper["time_ms"].map(FORMAT_MS),
    ("paper (VOC 2012 val, GPU)", "ratio to no distillation"): report.time_ratio(paper["time_ms"],
                                                                                 REFERENCE_PRESET).map("{:.2f}".format),
}
for label, summary in summaries.items():
    summary = summary.reindex(paper.index)
    compared = report.compare_with_paper(summary, paper, label=label)
    columns[(label, "mIoU mean ± std (n)")] = compared[f"{label} (mean ± std)"]
    columns[(label, "gap")] = compared["gap"].map(lambda v: "" if pd.isna(v) else f"{v:+.2f}")
    columns[(label, "vs plain student")] = separation.versus_column(versus[label], paper.index)
    columns[(label, "time (ms)")] = summary["time_ms"].map(lambda v: "" if pd.isna(v) else FORMAT_MS(v))
    columns[(label, "ratio to no distillation")] = report.time_ratio(summary["time_ms"], REFERENCE_PRESET).map(
        lambda v: "" if pd.isna(v) else f"{v:.2f}")
    columns[(label, "time measured on")] = summary["device"]
table = pd.DataFrame(columns, index=paper.index)
caption = ("Table 2. ResNet-18 student: mIoU (%) and training time per iteration. Our times come from the device "
           "in the 'time measured on' column at the scale of the runs, not the paper's GPU: compare ratios. ")
caption += "; ".join(f"{label}: {summary['n'].sum()} runs, seeds "
                     f"{sorted({s for ss in summary['seeds'] for s in ss})}" for label, summary in summaries.items())
display(table.style.set_caption(caption))
for label, (runs, _, _) in sources.items():
    if not len(runs):
        continue
    configs = [r["config"] for r in runs["record"]]
    setting = (f"batch {', '.join(sorted({str(c['batch_size']) for c in configs}))}, crop "
               f"{', '.join(sorted({str(c['crop']) for c in configs}))}")
    devices = "; ".join(sorted(set(runs["device"])))
    same_as_paper = all(c["crop"] == 513 and c["batch_size"] == 6 for c in configs) and "cuda" in devices
    display(Markdown(
        f"**{label}**: times measured on {devices} at {setting} (the paper: its GPU at batch 6, crop 513). "
        + ("Same recipe as the paper; the absolute times still depend on the GPU." if same_as_paper else
           "Not comparable in absolute terms with the paper's milliseconds: compare the ratios to no distillation. "
           "A CPU shared with other work also makes single runs noisy.")))

# %% [markdown]
# ## mIoU per method
#
# One panel per source, each on its own axis. Error bars: sample std over seeds (none with a single seed); the
# paper's panel shows its means only.

# %%
labels = paper["label"].to_dict()
report.plot_miou_bars(summaries, ROWS, labels=labels, paper=paper["miou"], title="Table 2: mIoU (%)")
plt.show()

# %% [markdown]
# ## Where the training time goes
#
# The trainer times each part of an iteration: loading the batch (data), the frozen teacher's forward pass (teacher
# forward, absent without distillation), the student's forward pass (student forward), the segmentation and
# distillation losses (losses) and the backward pass with the optimiser step (backward + step). Mean over the
# timed iterations and over seeds.

# %%
for label, summary in summaries.items():
    devices = "; ".join(sorted(set(d for d in summary["device"] if d)))
    report.plot_time_breakdown(summary, ROWS, labels=labels, title=f"{label}, measured on {devices}")
    plt.show()

# %% [markdown]
# The same numbers, in ms:

# %%
for label, summary in summaries.items():
    breakdown = report.time_breakdown(summary).rename(index=labels)
    display(breakdown.style.format("{:.1f}", na_rep="—").set_caption(
        f"{label}: training time per iteration by part (ms), measured on {'; '.join(sorted(set(summary['device'])))}"))

# %% [markdown]
# ## Training curves

# %%
for label, (runs, _, _) in sources.items():
    report.plot_training_curves(runs, ROWS, labels=labels, title=label)
    plt.show()
