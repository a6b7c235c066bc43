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
# The paper's Table 3 moves each of its two losses between two positions of the ResNet-18 student: MIDDLE, the
# encoder output (ASPP projection, pre-ReLU, stride 16, the `encoder` tap) and END, the last convolution before the
# class scores (decoder, pre-ReLU, stride 4, the `decoder` tap). The paper finds pixel-wise distillation best at END
# and pair-wise at MIDDLE, and MIDDLE cheaper to train. Here the same four rows trained by `paperkd`: mIoU and
# training time per iteration, read from the run records.
#
# Times: the paper's are ms per iteration on its GPU; ours are measured on the device named below at the scale of
# the runs and are not comparable in absolute terms; compare the rows of one column (and the ratio columns).

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
from paperkd.config import PRESETS, TABLE_ROWS, Config
from paperkd.paper_results import paper_table

ROWS = TABLE_ROWS["table3"]
paper = paper_table("table3")
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
# ## The table
#
# mIoU in % (the epoch each run's recipe reports, named in the column: the best validation epoch under `authors`, as
# the authors' trainer reports it, the last under `paper` and in the pre-recipe campaigns; mean ± sample std over the
# seeds, n = number of seeds; ⚠ marks a cell whose runs distilled from another teacher than the column's);
# gap = ours minus the paper's, in percentage points. Time: mean training iteration in ms. Ratio: the row's time
# over the time of the same loss at
# the other position (MIDDLE over END for each loss), from the same source. Vs other position: the row's mean minus
# that of the same loss at the other position, and whether their seeds lie apart (every seed of one above every seed
# of the other; with 3 seeds each and no real difference that happens by chance with p = 0.1, an exact permutation
# test, `paperkd.separation`; "seeds overlap" is no evidence of a difference). The tap each row distils is read from
# the preset.

# %%
POSITION = {"encoder": "MIDDLE", "decoder": "END"}
configs = {p: Config(**PRESETS[p]) for p in ROWS}  # the preset alone: which loss, at which tap
taps = {p: POSITION[c.pixel_tap if c.pixel > 0 else c.pair_tap] for p, c in configs.items()}
assert [taps[p] for p in ROWS] == ["MIDDLE", "END", "MIDDLE", "END"], taps  # the paper's row order
PAIRS = {"r18-pixel-middle": "r18-pixel", "r18-pixel": "r18-pixel-middle", "r18-pair": "r18-pair-end",
         "r18-pair-end": "r18-pair"}  # each row and the same loss at the other position


def ratio_to_other_position(times: pd.Series) -> pd.Series:
    return pd.Series({p: times[p] / times[PAIRS[p]] for p in times.index}, dtype=float)


# Each loss at one position against the same loss at the other (seeds apart or not: `paperkd.separation`)
versus = {label: separation.versus(runs, PAIRS, diverged=failed) for label, (runs, _, failed) in sources.items()}

columns = {
    ("paper (VOC 2012 val, GPU)", "method"): paper["label"],
    ("paper (VOC 2012 val, GPU)", "tap"): pd.Series(taps).map({"MIDDLE": "encoder", "END": "decoder"}),
    ("paper (VOC 2012 val, GPU)", "mIoU"): paper["miou"].map("{:.2f}".format),
    ("paper (VOC 2012 val, GPU)", "time (ms)"): paper["time_ms"].map("{:.0f}".format),
    ("paper (VOC 2012 val, GPU)", "time / other position"): ratio_to_other_position(paper["time_ms"]).map(
        "{:.2f}".format),
}
for label, summary in summaries.items():
    summary = summary.reindex(paper.index)
    compared = report.compare_with_paper(summary, paper, label=label)
    columns[(label, "mIoU mean ± std (n)")] = compared[f"{label} (mean ± std)"]
    columns[(label, "gap")] = compared["gap"].map(lambda v: "" if pd.isna(v) else f"{v:+.2f}")
    columns[(label, "vs other position")] = separation.versus_column(versus[label], paper.index)
    columns[(label, "time (ms)")] = summary["time_ms"].map(lambda v: "" if pd.isna(v) else f"{v:.0f}")
    columns[(label, "time / other position")] = ratio_to_other_position(summary["time_ms"]).map(
        lambda v: "" if pd.isna(v) else f"{v:.2f}")
    columns[(label, "time measured on")] = summary["device"]
table = pd.DataFrame(columns, index=paper.index)
caption = ("Table 3. ResNet-18 student, position of the distilled feature: mIoU (%) and training time per "
           "iteration (ours on the device named in the table, at the scale of the runs). ")
caption += "; ".join(f"{label}: {summary['n'].sum()} runs, seeds "
                     f"{sorted({s for ss in summary['seeds'] for s in ss})}" for label, summary in summaries.items())
display(table.style.set_caption(caption))
# Each loss at the position the paper found worse, against the same loss at its better one (END for the pixel-wise
# loss, MIDDLE for the pair-wise loss)
display(Markdown("\n\n".join(separation.separation_markdown(label, rows.loc[["r18-pixel-middle", "r18-pair-end"]])
                               for label, rows in versus.items())))

# %% [markdown]
# ## mIoU and time per position

# %%
labels = paper["label"].to_dict()
report.plot_miou_bars(summaries, ROWS, labels=labels, paper=paper["miou"], title="Table 3: mIoU (%)")
plt.show()
for label, summary in summaries.items():
    devices = "; ".join(sorted(set(d for d in summary["device"] if d)))
    report.plot_time_breakdown(summary, ROWS, labels=labels, title=f"{label}, measured on {devices}")
    plt.show()

# %% [markdown]
# ## Training curves

# %%
for label, (runs, _, _) in sources.items():
    report.plot_training_curves(runs, ROWS, labels=labels, title=label)
    plt.show()
