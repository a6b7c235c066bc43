"""Performance: what distillation costs per training step, from the files `paperkd bench --json` wrote
(results/bench) and the checks beside them (results/bench/checks). Every row of one file was measured side by side in
one process, round robin, so ratios within a file are comparable; absolute times across files or devices are not."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from paperkd.bench_files import format_table, read_bench_file
from paperkd.pages.answer import show
from paperkd.records import RecordError, read_json

REPO = Path(__file__).resolve().parents[2]
CAMPAIGN_FILE = "cpu-65-b8-campaign.json"  # the main campaign's scale: sizes its equal-compute row


@dataclass
class Bench:
    """The benchmark files of a folder: {name: run} (a comparison file gives "<file> / <setting>" names), the
    checks by stem, and {file: message} for the files that could not be read."""

    folder: Path
    runs: dict = field(default_factory=dict)
    checks: dict = field(default_factory=dict)
    unreadable: dict = field(default_factory=dict)

    @property
    def main(self) -> list[str]:
        """The single-run files (not the settings of a comparison file)."""
        return [name for name in self.runs if "/" not in name]


def read_bench(folder: str | Path = "results/bench") -> Bench:
    """Every benchmark and check file of `folder` (relative to the project root unless absolute); unreadable files
    are named in `Bench.unreadable`, the others still read."""
    folder = Path(folder) if Path(folder).is_absolute() else REPO / folder
    bench = Bench(folder)
    for path in sorted(folder.glob("*.json")):
        try:  # a file is one benchmark run or {setting: run} (a comparison of teacher switches)
            bench.runs.update(read_bench_file(path))
        except RecordError as err:
            bench.unreadable[path.name] = str(err)
    for path in sorted((folder / "checks").glob("*.json")):
        try:
            bench.checks[path.stem] = read_json(path, "benchmark check")
        except RecordError as err:
            bench.unreadable[f"checks/{path.name}"] = str(err)
    return bench


def step(bench: Bench, name: str, preset: str) -> dict:
    return next(r for r in bench.runs[name]["rows"] if r["preset"] == preset and r["kind"] != "teacher_forward")


def forward_ms(bench: Bench, name: str) -> float:
    return next(r for r in bench.runs[name]["rows"] if r["kind"] == "teacher_forward")["median_ms"]


def describe(run: dict) -> str:
    """One line: device, versions, commit, input, repeats and the teacher's switches of a benchmark run."""
    s, env = run["settings"], run["environment"]
    return (f"**device** {run['device']} ({env['device']}), torch {run['torch']}, paperkd commit "
            f"`{(env.get('git_commit') or 'unknown')[:12]}`; input {run['size']} x {run['size']}, batch "
            f"{run['batch']}, {run['repeats']} repeats after {s['warmup']} warm-up; teacher {s['teacher_dtype']}, "
            f"channels_last {s['channels_last']}, compiled {s['compile_teacher']}, inference_mode "
            f"{s['inference_mode']}; {s['weights']}; {s['input']}.")


def rows_table(run: dict) -> pd.DataFrame:
    """Per method of a run: median and spread, the parts, the ratio to the plain step and the overhead."""
    return pd.DataFrame([{
        "method": r["method"], "median ms": r["median_ms"], "spread ms": r["spread_ms"],
        **{f"{k} ms": v for k, v in r["parts_ms"].items()},
        "ratio to plain student": r["ratio_to_student"], "overhead": r["overhead"], "paper ratio": r["paper_ratio"],
    } for r in run["rows"]]).set_index("method")


def targets_row(name: str, run: dict) -> dict:
    """One line per benchmark file: the device, the teacher switches, and each target's measured number."""
    distilling = [r for r in run["rows"] if r["kind"] == "distill_step"]
    worst = max(distilling, key=lambda r: r["overhead"], default=None)
    proposed = next((r for r in distilling if r["preset"] == "r18-both"), None)
    agreement = run.get("teacher_agreement") or {}
    return {  # the file name says the device, input and teacher switches; `describe` spells them out
        "file": name.removesuffix(".json"),
        "proposed ratio (paper 2.96)": proposed["ratio_to_student"] if proposed else None,
        "proposed overhead": proposed["overhead"] if proposed else None,
        "largest overhead": f"{100 * worst['overhead']:+.1f} % ({worst['preset']})" if worst else "",
        "under 10 %": f"{sum(r['overhead'] < 0.10 for r in distilling)} of {len(distilling)}",
        "teacher agreement": agreement.get("fraction"),
        "data wait": run.get("data_wait_fraction"),
    }


def percent(v: float | None, signed: bool = True, digits: int = 1) -> str:
    return "" if v is None or pd.isna(v) else f"{100 * v:{'+' if signed else ''}.{digits}f} %"


def targets_table(bench: Bench) -> pd.io.formats.style.Styler:
    """The targets per file: proposed ratio and overhead, the largest overhead, methods under 10 %, agreement of a
    reduced-precision teacher, data wait."""
    table = pd.DataFrame([targets_row(n, bench.runs[n]) for n in bench.main]).set_index("file")
    return (table.style.format(precision=2, na_rep="").format(percent, subset=["proposed overhead"])
            .format(lambda v: percent(v, False, 2), subset=["teacher agreement"])
            .format(lambda v: percent(v, False), subset=["data wait"]))


def findings(bench: Bench) -> list[str]:
    """The measurements in sentences, each number read from the files (a bullet per file set that is present)."""
    lines = []
    runs, checks = bench.runs, bench.checks
    if CAMPAIGN_FILE in runs:
        plain, proposed = step(bench, CAMPAIGN_FILE, "r18-none"), step(bench, CAMPAIGN_FILE, "r18-both")
        lines.append(
            f"- **The main campaign's scale** ({runs[CAMPAIGN_FILE]['device']}, crop {runs[CAMPAIGN_FILE]['size']}, "
            f"batch {runs[CAMPAIGN_FILE]['batch']}): the proposed ResNet-18 step costs "
            f"**{proposed['ratio_to_student']:.2f}x** the plain one ({proposed['median_ms']:.0f} against "
            f"{plain['median_ms']:.0f} ms), so the equal-compute row trains the plain student "
            f"{proposed['ratio_to_student']:.2f} times as many epochs (rounded).")
    gpu = {"fp32": "gpu-513-b6-fp32.json", "bf16": "gpu-513-b6-bf16-channels-last.json",
           "compiled": "gpu-513-b6-bf16-channels-last-compiled.json"}
    if all(f in runs for f in gpu.values()):
        plain, proposed, heo = (step(bench, gpu["fp32"], p) for p in ("r18-none", "r18-both", "r18-heo"))
        lines += [
            f"- **GPU, the paper's setting** ({runs[gpu['fp32']]['device']}, crop 513, batch 6, fp32 student): the "
            f"plain ResNet-18 step takes {plain['median_ms']:.1f} ms (the paper: 250 ms on its GPU), the proposed "
            f"step {proposed['median_ms']:.1f} ms, a ratio of **{proposed['ratio_to_student']:.2f}** against the "
            f"paper's 2.96, and {100 * proposed['overhead']:+.1f} % over its floor (plain step + teacher forward).",
            f"- **The teacher forward** is {forward_ms(bench, gpu['fp32']):.1f} ms in fp32, "
            f"{forward_ms(bench, gpu['bf16']):.1f} ms with bf16 autocast and channels_last (cuDNN already runs fp32 "
            f"convolutions in TF32 on the tensor cores), and **{forward_ms(bench, gpu['compiled']):.1f} ms "
            f"compiled** (`--compile-teacher`: BatchNorm, ReLU and layout changes fused into fewer passes over "
            f"memory), which brings the proposed ratio to "
            f"**{step(bench, gpu['compiled'], 'r18-both')['ratio_to_student']:.2f}**.",
            "- **Over the 10 % target on the GPU in fp32**: "
            + (", ".join(f"{r['method']} ({100 * r['overhead']:+.1f} %)" for r in over_target(bench, gpu["fp32"]))
               or "no method") + f". Heo et al.'s overhead is {100 * heo['overhead']:+.1f} %; its losses part is "
            f"{heo['parts_ms']['losses']:.1f} ms against "
            f"{proposed['parts_ms']['losses']:.1f} ms for the proposed losses, and its backward "
            f"{heo['parts_ms']['backward_step']:.1f} ms against {plain['parts_ms']['backward_step']:.1f} ms.",
        ]
    profile = checks.get("profile-heo-gpu", {}).get("results", {})
    if {"r18-none/student_step", "teacher/teacher_forward", "r18-heo/distill_step"} <= profile.keys():
        busy = {k: v["gpu_busy_ms_per_step"] for k, v in profile.items()}
        extra = busy["r18-heo/distill_step"] - busy["r18-none/student_step"] - busy["teacher/teacher_forward"]
        heo_profile = profile["r18-heo/distill_step"]
        lines.append(
            f"- **Why Heo costs more** (profile, `checks/profile-heo-gpu.json`): the GPU is busy "
            f"{heo_profile['gpu_busy_ms_per_step']:.1f} ms of its {heo_profile['wall_ms_median']:.1f} ms step: "
            f"{extra:.1f} ms of GPU time more than the plain step and the teacher forward together, spent in the "
            "six connectors' 1x1 convolutions and BatchNorm, forward and backward, and cuDNN's layout conversions "
            "(`heo_top_gpu_time_ms_per_step` in the file).")
    cl = {"fp32": "gpu-513-b6-fp32-channels-last-heo.json", "bf16": "gpu-513-b6-bf16-channels-last-heo.json"}
    if all(f in runs for f in cl.values()):
        cl_plain, cl_heo, cl_both = (step(bench, cl["fp32"], p) for p in ("r18-none", "r18-heo", "r18-both"))
        bf_heo, bf_both = (step(bench, cl["bf16"], p) for p in ("r18-heo", "r18-both"))
        lines.append(
            f"- **channels_last students** (and connectors): the plain step drops to {cl_plain['median_ms']:.1f} ms, "
            f"so the same absolute distillation work is a larger share: Heo {100 * cl_heo['overhead']:+.1f} % and "
            f"the proposed step **{100 * cl_both['overhead']:+.1f} %** with an fp32 teacher, "
            f"{100 * bf_heo['overhead']:+.1f} % and {100 * bf_both['overhead']:+.1f} % with a bf16 one. The spreads "
            f"(max - min) reach {max(r['spread_ms'] for r in (cl_heo, cl_both, bf_heo, bf_both)):.0f} ms, so "
            "differences of a few percent between them are noise.")
    cpu = {"fp32": "cpu-513-b6-proposed-fp32.json", "bf16": "cpu-513-b6-proposed-bf16-channels-last.json"}
    if all(f in runs for f in cpu.values()):
        lines.append(
            f"- **CPU, the paper's setting** (1 thread): the proposed ratio is "
            f"{step(bench, cpu['fp32'], 'r18-both')['ratio_to_student']:.2f} with an fp32 teacher and "
            f"**{step(bench, cpu['bf16'], 'r18-both')['ratio_to_student']:.2f}** with a bf16 channels_last one, "
            f"whose forward drops from {forward_ms(bench, cpu['fp32']) / 1000:.1f} s to "
            f"{forward_ms(bench, cpu['bf16']) / 1000:.1f} s.")
    small = {"fp32": "cpu-257-b2-fp32.json", "bf16": "cpu-257-b2-bf16-channels-last.json"}
    if all(f in runs for f in small.values()):
        def others(name: str) -> float:
            return max(r["overhead"] for r in runs[name]["rows"]
                       if r["kind"] == "distill_step" and r["preset"] != "r18-heo")
        lines.append(
            f"- **CPU, every method** (crop 257, batch 2, 1 thread): every method but Heo's costs at most "
            f"{100 * max(others(small['fp32']), others(small['bf16'])):+.1f} % over its floor; Heo "
            f"{100 * step(bench, small['fp32'], 'r18-heo')['overhead']:+.1f} % with an fp32 teacher and "
            f"{100 * step(bench, small['bf16'], 'r18-heo')['overhead']:+.1f} % with a bf16 channels_last one.")
    agreement = checks.get("agreement-gpu-teacher", {}).get("results", {})
    if agreement:
        worst_bf16 = min(v["fraction"] for v in agreement.values() if v["dtype"] == "bf16")
        lines.append(f"- **Precision**: the trained GPU-scale teacher under bf16 agrees with its fp32 self on at "
                     f"least **{100 * worst_bf16:.2f} %** of pixels at every size checked (target 99.5 %).")
    waits = checks.get("data-wait-gpu-one-epoch", {}).get("results", {})
    if {"w2-27ms", "w8-27ms"} <= waits.keys():
        lines.append(f"- **Data**: within an epoch, at a simulated 27 ms step, 2 loader workers leave "
                     f"the step waiting {100 * waits['w2-27ms']:.0f} % of the time and 8 workers "
                     f"{100 * waits['w8-27ms']:.1f} %; the default is 8 (`Config.workers`, capped at the usable "
                     "CPUs).")
    return lines


def over_target(bench: Bench, name: str, target: float = 0.10) -> list[dict]:
    """The distillation rows of a file whose overhead reaches `target`."""
    return [r for r in bench.runs[name]["rows"] if r["kind"] == "distill_step" and r["overhead"] >= target]


def answer(bench: Bench) -> None:
    """The page's answer: the measurements in sentences, then the targets per file."""
    lines = findings(bench)
    show("\n".join(lines) if lines else f"No benchmark files in `{bench.folder}` yet: run "
         f"`paperkd bench --json {bench.folder}/NAME.json`.", targets_table(bench) if bench.main else "")


def check_tables(bench: Bench) -> None:
    """Each check file beside the benchmark: what it measured, and its results as a table."""
    for stem, check in bench.checks.items():
        show(f"**`{stem}`**: {check['what']}. Device: {check['device']}; commit `{check['git_commit'][:12]}`; "
             f"how: `{check['how']}`.")
        results = check["results"]
        if not isinstance(results, dict) or not results:
            continue
        if stem.startswith("agreement"):
            table = pd.DataFrame([{"size": int(k.split("-")[0]), "dtype": v["dtype"], "agreement": v["fraction"]}
                                  for k, v in results.items()])
            show(table.pivot(index="size", columns="dtype", values="agreement").style.format("{:.3%}"))
        elif stem.startswith("profile"):
            show(pd.DataFrame(results).T.style.format(precision=1))
        elif stem.startswith("data-wait"):  # keys "w<workers>-<step>ms"
            table = pd.DataFrame([{"workers": int(k[1:].split("-")[0]), "step ms": int(k.split("-")[1][:-2]),
                                   "wait": v} for k, v in results.items()])
            show(table.pivot(index="workers", columns="step ms", values="wait").style.format("{:.1%}"))


def file_tables(bench: Bench) -> None:
    """Every benchmark file: its settings line, the table of its methods, inference and agreement if measured."""
    for name in bench.main:
        run = bench.runs[name]
        show(f"**`{name}`**: {describe(run)}",
             rows_table(run).style.format(precision=2, na_rep="").format(percent, subset=["overhead"]))
        if run.get("inference"):
            show("Inference (eval mode, no autograd):",
                 pd.DataFrame(run["inference"]).set_index("backbone").style.format(precision=2))


def parts_figure(bench: Bench) -> None:
    """Stacked parts of the median step per method, one panel per file."""
    if not bench.main:
        return
    ncols = min(2, len(bench.main))
    nrows = -(-len(bench.main) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(7 * ncols, 3.6 * nrows), squeeze=False)
    for ax in axes.flat[len(bench.main):]:
        ax.axis("off")
    for ax, name in zip(axes.flat, bench.main):
        table = rows_table(bench.runs[name])
        parts = [c for c in table.columns if c.endswith(" ms") and c not in ("median ms", "spread ms")]
        table[parts].fillna(0).plot.barh(stacked=True, ax=ax, legend=ax is axes.flat[0])
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("ms per step (median parts)")
        ax.invert_yaxis()
    fig.tight_layout()
    plt.show()


def switches_table(bench: Bench) -> None:
    """The proposed step under each teacher-side switch, from a comparison file."""
    switches = {name.split(" / ", 1)[1]: run for name, run in bench.runs.items() if " / " in name}
    if not switches:
        show("No comparison file of teacher switches yet.")
        return
    rows = []
    for setting, run in switches.items():
        proposed = next(r for r in run["rows"] if r["preset"] == "r18-both")
        teacher = next(r for r in run["rows"] if r["kind"] == "teacher_forward")
        rows.append({"setting": setting, "teacher forward ms": teacher["median_ms"],
                     "proposed step ms": proposed["median_ms"],
                     "ratio to plain student": proposed["ratio_to_student"], "overhead": proposed["overhead"],
                     "device": run["device"]})
    show(pd.DataFrame(rows).set_index("setting").style.format(precision=2).format({"overhead": percent}))


def provenance(bench: Bench) -> None:
    """The files read, those that could not be, and the first file as `paperkd bench` prints it."""
    names = [p.name for p in sorted(bench.folder.glob("*.json")) if p.name not in bench.unreadable]
    text = f"{len(names)} benchmark file(s) in `{bench.folder.name}`: " + ", ".join(f"`{n}`" for n in names)
    if bench.unreadable:
        text += "\n\nFiles that **could not be read** (skipped):\n\n" + "\n".join(
            f"- {m}" for m in bench.unreadable.values())
    show(text)
    if bench.main:
        print(format_table(bench.runs[bench.main[0]]))


__all__ = ["Bench", "answer", "check_tables", "file_tables", "findings", "parts_figure", "provenance", "read_bench",
           "switches_table", "targets_table"]
