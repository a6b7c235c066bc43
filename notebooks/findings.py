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
# Every row of Tables 1-3 on one page, per source of runs (this build's own runs, then each committed campaign):
# the mIoU of every seed, each distilled student against the student of its backbone trained without distillation,
# and the teacher against the plain students. It answers the two questions a reader of the tables has: *could
# distillation help at all here* (is the teacher clearly better than the students?) and *did it* (which rows differ
# from the plain student by more than the spread over seeds?).
#
# **The rule.** Two rows count as apart only when their seeds do not overlap: every seed of one row above every seed
# of the other. If the two rows do not really differ, all 20 ways of splitting six scores into a top three and a
# bottom three are equally likely, and 2 of them separate the rows, so with 3 seeds each a separation happens by
# chance with p = 2/20 = 0.1 (an exact permutation test that assumes nothing about how the scores are distributed;
# `paperkd.separation` says what it does assume). Fewer seeds are never counted as evidence: 2 against 2 separate by
# chance with p = 1/3, and a single seed has no spread at all. Each paragraph below says how many separations chance
# alone would give among its comparisons.
#
# Every number is read from the run records on disk; the data, scale, machine and training time of each source are
# listed below. Numbers from a stand-in data set are **not** VOC numbers: they compare methods on that stand-in only.

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

ROWS = list(dict.fromkeys(p for table in ("table1", "table2", "table3") for p in TABLE_ROWS[table]))
REFERENCES = separation.plain_references(ROWS)
sources, missing = report.table_sources(ROWS, seeds, campaigns=campaigns, results=results, dataset=dataset,
                                       scale=scale, recipe=recipe)  # reads records only; `paperkd book` trained ours
summaries = {label: report.summarise(runs, ROWS, diverged=failed, teacher=report.expected_teacher(folder, runs))
             for label, (runs, folder, failed) in sources.items()}
versus = {label: separation.versus(runs, REFERENCES, diverged=failed) for label, (runs, _, failed) in sources.items()}
print("; ".join(f"{label}: {len(runs)} runs" for label, (runs, _, _) in sources.items()))

# %% [markdown]
# ## Where the numbers come from
#
# Data, scale (epochs, crop, images), machine and training time of each source, read from its records:

# %%
display(Markdown(report.provenance_markdown(sources, missing)))

# %% [markdown]
# ## Could distillation help? The teacher against the plain students
#
# The paper's teacher starts from ImageNet weights and is well above both plain students (Table 1). Here every
# network starts from random weights, as no ImageNet weights can be had where these runs were made, and a
# ResNet-101 trained from scratch on a few hundred small images learns slower than a ResNet-18: the small-scale
# campaigns give their teacher more epochs than the students for that reason. The CPU campaign was run twice: first
# with a teacher of 24 epochs, which did not pull ahead of the plain ResNet-18, then with 48 (now the `cpu` scale's
# schedule; the students unchanged). Where the teacher below is not clearly ahead of a student, that student's
# distilled rows cannot show the method's gain, whatever they show.

# %%
display(Markdown("\n\n".join(report.teacher_margin_markdown(label, runs) for label, (runs, _, _) in sources.items())))

# %% [markdown]
# ## Did it? Every row against its plain student
#
# mIoU in % (the epoch each run's recipe reports, named in the column: the best validation epoch under `authors`, as
# the authors' trainer reports it, the last under `paper` and in the pre-recipe campaigns; mean ± sample std over the
# seeds, n = number of seeds; ⚠ marks a cell whose runs distilled from another teacher than the column's).
# Vs plain student: the row's mean minus that of the student of its backbone without distillation (the teacher:
# minus the plain ResNet-18), then the
# verdict of the rule above, with p where the seeds lie apart.

# %%
# Row names: Table 1's model with its losses, then the methods of Tables 2 and 3 for the rows Table 1 lacks
table1 = paper_table("table1")
titles = {p: r["label"].replace("Student ", "") + " + pixel-wise" * bool(r["pixel"]) + " + pair-wise" * bool(r["pair"])
          for p, r in table1.iterrows()}
titles.update({p: f"ResNet-18, {label}" for t in ("table2", "table3")
               for p, label in paper_table(t)["label"].items() if p not in titles})
labels = {p: f"{p}: {titles.get(p, p)}" for p in ROWS}
columns = {("", "row"): pd.Series(labels)}
for label, summary in summaries.items():
    columns[(label, "mIoU mean ± std (n)")] = pd.Series(
        {p: report.mean_std_text(r["miou_mean"], r["miou_std"], int(r["n"]), diverged=int(r["diverged"]))
         for p, r in summary.iterrows()})
    columns[(label, "vs plain student")] = separation.versus_column(versus[label], ROWS)
table = pd.DataFrame(columns, index=ROWS)
display(table.style.hide(axis="index").set_caption("Every row of Tables 1-3, per source of runs (mIoU, %)"))
display(Markdown("\n\n".join(separation.separation_markdown(label, rows.drop(index="teacher", errors="ignore"))
                               for label, rows in versus.items())))

# %% [markdown]
# ## Every seed
#
# One dot per seed; the grey band spans the seeds of the row's plain student (the teacher's: the plain ResNet-18).
# Green: every seed above the band; red: every seed below it; blue: seeds overlapping the band, or too few seeds
# to judge.

# %%
report.plot_seed_scores({label: runs for label, (runs, _, _) in sources.items()}, REFERENCES, ROWS,
                        title="mIoU of every seed, against the plain student's range",
                        diverged={label: failed for label, (_, _, failed) in sources.items()})
plt.show()
