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
# `paperkd bench --device cuda --repeats 20 --warmup 3 --json ...` (crop 513, batch 6), with
# `--teacher-dtype bf16 --channels-last [--compile-teacher]` for the cheaper teacher. The GPU files here were measured
# on a lent NVIDIA H100 80GB HBM3 (torch 2.11.0+cu130, 16 CPU cores); the CPU files on this project's 2-core machine.
#
# The targets, checked per file in the first table: every method's overhead below 10 %; the proposed step
# below the paper's 2.96x the plain student step at crop 513, batch 6; a reduced-precision teacher agreeing with the
# float32 one on at least 99.5 % of pixels; the step waiting on data less than 5 % of the time with the default
# number of loader workers.

# %% tags=["parameters"]
data_root = None  # unused: the benchmark files hold everything this page shows
dataset = "standin"
scale = "smoke"
recipe = "authors"  # unused here: this page trains nothing
seeds = [0]
epochs = None
device = "cpu"
results = "runs/book"
reuse = True
bench = "results/bench"  # folder of `paperkd bench --json` files

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from paperkd.bench_files import format_table, read_bench_file
from paperkd.records import RecordError, read_json

import paperkd

folder = Path(bench)
if not folder.is_absolute():  # relative to the project root, wherever the kernel runs
    folder = Path(paperkd.__file__).resolve().parents[1] / bench
files = sorted(folder.glob("*.json"))
runs, unreadable = {}, {}
for path in files:
    # A file is either one benchmark run or {setting name: run} (a comparison of teacher switches).
    try:
        runs.update(read_bench_file(path))
    except RecordError as err:  # named below, the other files still shown
        unreadable[path.name] = str(err)
files = [p for p in files if p.name not in unreadable]
# Checks beside the benchmark (a trained teacher's precision, loader workers): their own format, in checks/.
checks = {}
for path in sorted((folder / "checks").glob("*.json")):
    try:
        checks[path.stem] = read_json(path, "benchmark check")
    except RecordError as err:
        unreadable[f"checks/{path.name}"] = str(err)
display(Markdown(f"{len(files)} benchmark file(s) in `{bench}`: " + ", ".join(f"`{p.name}`" for p in files)
                 if files else f"No benchmark files in `{bench}` yet: run `paperkd bench --json {bench}/NAME.json`."))
if unreadable:
    display(Markdown("Benchmark files that **could not be read** (skipped):\n\n" +
                     "\n".join(f"- {message}" for message in unreadable.values())))


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


def targets_row(name: str, run: dict) -> dict:
    """One line per benchmark file: the device, the teacher switches, and each target's measured number."""
    s = run["settings"]
    distilling = [r for r in run["rows"] if r["kind"] == "distill_step"]
    worst = max(distilling, key=lambda r: r["overhead"], default=None)
    proposed = next((r for r in distilling if r["preset"] == "r18-both"), None)
    agreement = run.get("teacher_agreement") or {}
    return {
        "file": name, "device": run["device"], "input": f"{run['size']} / b{run['batch']}",
        "teacher": ", ".join(x for x in (s["teacher_dtype"], "channels_last" * bool(s["channels_last"]),
                                         "compiled" * bool(s["compile_teacher"])) if x),
        "proposed ratio (paper 2.96)": proposed["ratio_to_student"] if proposed else None,
        "proposed overhead": proposed["overhead"] if proposed else None,
        "largest overhead": f"{100 * worst['overhead']:+.1f} % ({worst['method']})" if worst else "",
        "methods under 10 %": f"{sum(r['overhead'] < 0.10 for r in distilling)} of {len(distilling)}",
        "agreement": agreement.get("fraction"),
        "agreement teacher": "trained" if agreement and "random" not in agreement.get("teacher", "") else
                             ("random init" if agreement else ""),
        "data wait": run.get("data_wait_fraction"),
    }


pct = lambda v: "" if v is None or pd.isna(v) else f"{100 * v:+.1f} %"  # noqa: E731
display(pd.DataFrame([targets_row(n, runs[n]) for n in main]).set_index("file").style
        .format(precision=2, na_rep="")
        .format(pct, subset=["proposed overhead"])
        .format(lambda v: "" if pd.isna(v) else f"{100 * v:.2f} %", subset=["agreement"])
        .format(lambda v: "" if pd.isna(v) else f"{100 * v:.1f} %", subset=["data wait"]))

# %% [markdown]
# ## What the measurements say
#
# Composed from the files above (each number is read from them):

# %%
def step(name: str, preset: str) -> dict:
    return next(r for r in runs[name]["rows"] if r["preset"] == preset and r["kind"] != "teacher_forward")


def forward_ms(name: str) -> float:
    return next(r for r in runs[name]["rows"] if r["kind"] == "teacher_forward")["median_ms"]


lines = []
gpu = {"fp32": "gpu-513-b6-fp32.json", "bf16": "gpu-513-b6-bf16-channels-last.json",
       "compiled": "gpu-513-b6-bf16-channels-last-compiled.json"}
if all(f in runs for f in gpu.values()):
    plain, proposed, heo = (step(gpu["fp32"], p) for p in ("r18-none", "r18-both", "r18-heo"))
    lines += [
        f"- **GPU, the paper's setting** ({runs[gpu['fp32']]['device']}, crop 513, batch 6, fp32 student): the plain "
        f"ResNet-18 step takes {plain['median_ms']:.1f} ms (the paper: 250 ms on its GPU), the proposed step "
        f"{proposed['median_ms']:.1f} ms, a ratio of **{proposed['ratio_to_student']:.2f}** against the paper's "
        f"2.96, and {100 * proposed['overhead']:+.1f} % over its floor (plain step + teacher forward).",
        f"- **The teacher forward** is {forward_ms(gpu['fp32']):.1f} ms in fp32, "
        f"{forward_ms(gpu['bf16']):.1f} ms with bf16 autocast and channels_last (no gain: cuDNN "
        f"already runs fp32 convolutions in TF32 on the tensor cores, and the profile below shows the GPU busy "
        f"through nearly the whole forward), and "
        f"**{forward_ms(gpu['compiled']):.1f} ms compiled** (`--compile-teacher`, bf16, channels_last: "
        f"compiling fuses BatchNorm, ReLU and layout changes into fewer passes over memory), which brings "
        f"the proposed ratio to **{step(gpu['compiled'], 'r18-both')['ratio_to_student']:.2f}**.",
        f"- **Heo et al.'s method** is the one method over the 10 % target on the GPU: "
        f"{100 * heo['overhead']:+.1f} % in fp32. Its losses part is {heo['parts_ms']['losses']:.1f} ms against "
        f"{proposed['parts_ms']['losses']:.1f} ms for the proposed losses, and its backward "
        f"{heo['parts_ms']['backward_step']:.1f} ms against {plain['parts_ms']['backward_step']:.1f} ms.",
    ]
profile_check = checks.get("profile-heo-gpu", {}).get("results", {})
if {"r18-none/student_step", "teacher/teacher_forward", "r18-heo/distill_step"} <= profile_check.keys():
    busy = {k: v["gpu_busy_ms_per_step"] for k, v in profile_check.items()}
    extra = busy["r18-heo/distill_step"] - busy["r18-none/student_step"] - busy["teacher/teacher_forward"]
    heo_profile = profile_check["r18-heo/distill_step"]
    lines.append(
        f"- **Why Heo costs more** (profile, `checks/profile-heo-gpu.json`): the GPU is busy "
        f"{heo_profile['gpu_busy_ms_per_step']:.1f} ms of its {heo_profile['wall_ms_median']:.1f} ms step, so the "
        f"cost is GPU work, not kernel launches: {extra:.1f} ms more than the plain step and the teacher forward "
        f"together. The six connectors add 1x1 convolutions and BatchNorm, forward and backward, on feature maps "
        f"up to 129 x 129 x 256 and 33 x 33 x 2048; the largest GPU times of the Heo step are convolutions, "
        f"BatchNorm and cuDNN's NCHW/NHWC layout conversions (`heo_top_gpu_time_ms_per_step` in the file). "
        "That is the method's own arithmetic. Giving the connectors the students' channels_last layout did not "
        "change it measurably (next bullet); a reduced-precision student side (the trainer's `--amp`) was not "
        "benchmarked.")
cl = {"fp32": "gpu-513-b6-fp32-channels-last-heo.json", "bf16": "gpu-513-b6-bf16-channels-last-heo.json"}
if all(f in runs for f in cl.values()):
    cl_plain, cl_heo, cl_both = (step(cl["fp32"], p) for p in ("r18-none", "r18-heo", "r18-both"))
    bf_heo, bf_both = (step(cl["bf16"], p) for p in ("r18-heo", "r18-both"))
    lines.append(
        f"- **channels_last students** (and connectors): the plain step drops to {cl_plain['median_ms']:.1f} ms, so "
        f"the same absolute distillation work is a larger share: Heo {100 * cl_heo['overhead']:+.1f} % and the "
        f"proposed step **{100 * cl_both['overhead']:+.1f} %** with an fp32 teacher, {100 * bf_heo['overhead']:+.1f} "
        f"% and {100 * bf_both['overhead']:+.1f} % with a bf16 one. The steps' spreads (max - min) in these files "
        f"reach {max(r['spread_ms'] for r in (cl_heo, cl_both, bf_heo, bf_both)):.0f} ms, so differences of a few "
        "percent between them are noise.")
cpu = {"fp32": "cpu-513-b6-proposed-fp32.json", "bf16": "cpu-513-b6-proposed-bf16-channels-last.json"}
if all(f in runs for f in cpu.values()):
    lines.append(
        f"- **CPU, the paper's setting** (1 thread): the proposed ratio is "
        f"{step(cpu['fp32'], 'r18-both')['ratio_to_student']:.2f} with an fp32 teacher and "
        f"**{step(cpu['bf16'], 'r18-both')['ratio_to_student']:.2f}** with a bf16 channels_last one, whose forward "
        f"drops from {forward_ms(cpu['fp32']) / 1000:.1f} s to {forward_ms(cpu['bf16']) / 1000:.1f} s: on this CPU, "
        "unlike the H100, reduced precision pays.")
small = {"fp32": "cpu-257-b2-fp32.json", "bf16": "cpu-257-b2-bf16-channels-last.json"}
if all(f in runs for f in small.values()):
    def others(name: str) -> float:
        return max(r["overhead"] for r in runs[name]["rows"]
                   if r["kind"] == "distill_step" and r["preset"] != "r18-heo")
    lines.append(
        f"- **CPU, every method** (crop 257, batch 2, 1 thread): every method but Heo's costs at most "
        f"{100 * max(others(small['fp32']), others(small['bf16'])):+.1f} % over its floor; Heo "
        f"{100 * step(small['fp32'], 'r18-heo')['overhead']:+.1f} % with an fp32 teacher and "
        f"{100 * step(small['bf16'], 'r18-heo')['overhead']:+.1f} % with a bf16 channels_last one (its six "
        "connectors weigh more against the cheaper floor).")
agreement = checks.get("agreement-gpu-teacher", {}).get("results", {})
if agreement:
    worst_bf16 = min(v["fraction"] for v in agreement.values() if v["dtype"] == "bf16")
    lines.append(f"- **Precision**: the trained GPU-scale teacher under bf16 agrees with its fp32 self on at least "
                 f"**{100 * worst_bf16:.2f} %** of pixels at every size checked (target 99.5 %); the random-init "
                 "teachers of the benchmark files agree less because their logits nearly tie.")
waits = checks.get("data-wait-gpu-one-epoch", {}).get("results", {})
across = checks.get("data-wait-gpu", {}).get("results", {})
if {"w2-27ms", "w8-27ms"} <= waits.keys():
    lines.append(f"- **Data**: within an epoch, at the H100's 27 ms plain step, 2 loader workers leave the step "
                 f"waiting {100 * waits['w2-27ms']:.0f} % of the time and 8 workers {100 * waits['w8-27ms']:.1f} %; "
                 "the default is now 8 (`Config.workers`, capped at the usable CPUs; the `cpu` and `smoke` scales "
                 "set their own). The benchmark file measured with 2 workers predates that change.")
persistent = checks.get("data-wait-gpu-persistent", {}).get("results", {})
one = checks.get("data-wait-gpu-one-iterator", {}).get("results", {})
if "w8-27ms" in across and "w8-27ms" in persistent and "w8-27ms" in one:
    lines.append(
        f"- **Across epochs** (25-batch epochs, so a boundary every 25 steps), 8 workers waited "
        f"{100 * across['w8-27ms']:.0f} % of a 27 ms step when they restarted each epoch, "
        f"{100 * persistent['w8-27ms']:.0f} % when they persisted but each epoch had its own iterator (so no worker "
        f"prepared an epoch's first batches before it began), and **{100 * one['w8-27ms']:.1f} %** with the loader "
        f"paperkd now uses: one iterator over every epoch (`paperkd.data.seeded.EpochBatches`), whose workers prepare "
        f"the next epoch while the current one ends ({100 * one['w8-21ms']:.1f} % at a 21 ms step, "
        f"{100 * one['w8-45ms']:.1f} % at 45 ms). Files `checks/data-wait-gpu*.json`.")
display(Markdown("\n".join(lines) if lines else "No GPU and CPU benchmark files at the paper's setting yet."))

# %% [markdown]
# ## Checks beside the benchmark: a trained teacher's precision, and loader workers
#
# Files in `bench/checks` (each says what it measured, how, on which device and commit). The agreement of the
# benchmark files above uses a randomly initialised teacher, whose logits nearly tie, so it understates a trained
# teacher's; here the GPU-scale campaign's trained teacher is checked at several input sizes. The data-wait check
# times the real DataLoader per worker count against a simulated step as long as the measured ones; the default
# worker count (`Config.workers`) was set from it.

# %%
for stem, check in checks.items():
    display(Markdown(f"**`{stem}`**: {check['what']}. Device: {check['device']}; commit "
                     f"`{check['git_commit'][:12]}`; how: `{check['how']}`."))
    results_ = check["results"]
    if not isinstance(results_, dict) or not results_:
        continue
    if stem.startswith("agreement"):
        table = pd.DataFrame([{"size": int(k.split("-")[0]), "dtype": v["dtype"], "agreement": v["fraction"],
                               "images": v["images"], "meets 99.5 %": v["meets_target"]} for k, v in results_.items()])
        display(table.pivot(index="size", columns="dtype", values="agreement").style.format("{:.3%}"))
    elif stem.startswith("profile"):  # {row: {kernels_per_step, gpu_busy_ms_per_step, wall_ms_median}}
        display(pd.DataFrame(results_).T.style.format(precision=1))
    elif stem.startswith("data-wait"):  # keys "w<workers>-<step>ms"
        table = pd.DataFrame([{"workers": int(k[1:].split("-")[0]), "step ms": int(k.split("-")[1][:-2]),
                               "wait": v} for k, v in results_.items()])
        display(table.pivot(index="workers", columns="step ms", values="wait").style.format("{:.1%}"))
if not checks:
    display(Markdown("No check files yet."))

# %% [markdown]
# ## Each benchmark file

# %%
for name in main:
    run = runs[name]
    display(Markdown(f"## `{name}`\n\n{describe(run)}"))
    display(rows_table(run).style.format(precision=2, na_rep="").format(pct, subset=["overhead"]))
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
    ncols = min(2, len(main))
    nrows = -(-len(main) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(7 * ncols, 3.6 * nrows), squeeze=False)
    for ax in axes.flat[len(main):]:
        ax.axis("off")
    for ax, name in zip(axes.flat, main):
        table = rows_table(runs[name])
        parts = [c for c in table.columns if c.endswith(" ms") and c not in ("median ms", "spread ms")]
        table[parts].fillna(0).plot.barh(stacked=True, ax=ax, legend=ax is axes.flat[0])
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
