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
# The paper's Table 2 times a training iteration of the ResNet-18 student: 250 ms without distillation, 740 ms with
# the proposed losses (2.96x). The floor for any feature distillation is one student step plus one teacher forward
# without autograd; the losses themselves should be nearly free. This page reads the JSON files that
# `paperkd bench --json ...` wrote (under `bench`, committed with the project) and shows, for each benchmark run, the
# device it ran on, the median step time per method split into parts, the ratio to the plain student step and the
# overhead = step / (plain student step + teacher forward) - 1. All rows of one file were measured side by side in
# one process, round robin, so their ratios are comparable; absolute times from different files or devices are not.
#
# Reproduce: `paperkd bench --size 257 --batch 2 --repeats 4 --warmup 1 --threads 1 --json results/bench/x.json`
# (add `--teacher-dtype bf16 --channels-last` for the cheaper teacher); on a GPU box, the paper's setting is
# `paperkd bench --device cuda --json ...` (crop 513, batch 6).

# %% tags=["parameters"]
data_root = None  # unused: the benchmark files hold everything this page shows
dataset = "standin"
scale = "smoke"
seeds = [0]
epochs = None
device = "cpu"
results = "runs/book"
reuse = True
bench = "results/bench"  # folder of `paperkd bench --json` files

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from paperkd.bench import format_table

import paperkd

folder = Path(bench)
if not folder.is_absolute():  # relative to the project root, wherever the kernel runs
    folder = Path(paperkd.__file__).resolve().parents[1] / bench
files = sorted(folder.glob("*.json"))
runs = {}
for path in files:
    data = json.loads(path.read_text())
    # A file is either one benchmark run or {setting name: run} (a comparison of teacher switches).
    runs[path.name] = data if "rows" in data else None
    if runs[path.name] is None:
        runs.update({f"{path.name} / {name}": run for name, run in data.items()})
        del runs[path.name]
display(Markdown(f"{len(files)} benchmark file(s) in `{bench}`: " + ", ".join(f"`{p.name}`" for p in files)
                 if files else f"No benchmark files in `{bench}` yet: run `paperkd bench --json {bench}/NAME.json`."))


# %%
def describe(run: dict) -> str:
    s, env = run["settings"], run["environment"]
    return (f"**device** {run['device']} ({env['device']}), torch {run['torch']}, paperkd commit "
            f"`{(env.get('git_commit') or 'unknown')[:12]}`; input {run['size']} x {run['size']}, batch "
            f"{run['batch']}, {run['repeats']} repeats after {s['warmup']} warm-up; teacher {s['teacher_dtype']}, "
            f"channels_last {s['channels_last']}, compiled {s['compile_teacher']}, inference_mode "
            f"{s['inference_mode']}; {s['weights']}; {s['input']}.")


def rows_table(run: dict) -> pd.DataFrame:
    table = pd.DataFrame([{
        "method": r["method"], "median ms": r["median_ms"], "spread ms": r["spread_ms"],
        **{f"{k} ms": v for k, v in r["parts_ms"].items()},
        "ratio to plain student": r["ratio_to_student"], "overhead": r["overhead"], "paper ratio": r["paper_ratio"],
    } for r in run["rows"]]).set_index("method")
    return table


main = [name for name, run in runs.items() if "/" not in name]
for name in main:
    run = runs[name]
    display(Markdown(f"## `{name}`\n\n{describe(run)}"))
    display(rows_table(run).style.format(precision=2, na_rep="").format(
        {"overhead": lambda v: "" if pd.isna(v) else f"{100 * v:+.1f} %"}))
    if run.get("inference"):
        display(Markdown("Inference (eval mode, no autograd), the paper's motivation, which it never reports:"))
        display(pd.DataFrame(run["inference"]).set_index("backbone").style.format(precision=2))
    agreement = run.get("teacher_agreement")
    if agreement:
        display(Markdown(f"Reduced-precision teacher ({agreement['dtype']}): its predictions agree with the fp32 "
                         f"teacher on **{100 * agreement['fraction']:.3f} %** of pixels (target >= "
                         f"{100 * agreement['target']:.1f} %) over {agreement['images']} stand-in image(s)."))
    if run.get("data_wait_fraction") is not None:
        wait = run.get("data_wait") or {}
        display(Markdown(f"Data loading: the step waited on data **{100 * run['data_wait_fraction']:.1f} %** of the "
                         f"time ({wait.get('workers', '?')} workers, {wait.get('how', '')})."))

# %% [markdown]
# ## Where the time of a step goes
# Stacked parts of the median step per method, for each benchmark file (same device and settings within a panel).

# %%
if main:
    fig, axes = plt.subplots(1, len(main), figsize=(6 * len(main), 4), squeeze=False)
    for ax, name in zip(axes[0], main):
        table = rows_table(runs[name])
        parts = [c for c in table.columns if c.endswith(" ms") and c not in ("median ms", "spread ms")]
        table[parts].fillna(0).plot.barh(stacked=True, ax=ax, legend=ax is axes[0][0])
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("ms per step (median parts)")
        ax.invert_yaxis()
    fig.tight_layout()
    plt.show()

# %% [markdown]
# ## What each teacher-side switch bought
# The proposed method (pixel + pair) under each switch, side by side from one comparison file when there is one:
# the teacher forward gets cheaper, the method does not change (the student stays fp32; the reduced-precision
# teacher's agreement is measured above).

# %%
switches = {name.split(" / ", 1)[1]: run for name, run in runs.items() if " / " in name}
if switches:
    rows = []
    for setting, run in switches.items():
        proposed = next(r for r in run["rows"] if r["preset"] == "r18-both")
        teacher = next(r for r in run["rows"] if r["kind"] == "teacher_forward")
        rows.append({"setting": setting, "teacher forward ms": teacher["median_ms"],
                     "proposed step ms": proposed["median_ms"], "ratio to plain student":
                     proposed["ratio_to_student"], "overhead": proposed["overhead"], "device": run["device"]})
    display(pd.DataFrame(rows).set_index("setting").style.format(precision=2).format(
        {"overhead": lambda v: f"{100 * v:+.1f} %"}))
else:
    display(Markdown("No comparison file of teacher switches yet."))

# %% [markdown]
# The same numbers as `paperkd bench` prints them, for the first file:

# %%
if main:
    print(format_table(runs[main[0]]))
