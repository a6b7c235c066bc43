"""Reading `paperkd bench --json` files: checked loading and the plain-text table. No torch, no trainer: the
performance page imports this, never the benchmark that writes the files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from paperkd.records import RecordError, read_json


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def read_bench_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """The benchmark runs in a `--json` file: {name: run}, one entry for a single run, one per setting for a file of
    {setting: run}. `RecordError` names the file when it is missing, empty, not JSON or not a benchmark."""
    data = read_json(path, "benchmark file")
    runs = {Path(path).name: data} if isinstance(data, dict) and "rows" in data else data
    if not isinstance(runs, dict) or not runs or not all(isinstance(r, dict) and isinstance(r.get("rows"), list)
                                                         for r in runs.values()):
        raise RecordError(f"{path} is not a `paperkd bench --json` file (no 'rows' list)")
    if len(runs) > 1 or next(iter(runs)) != Path(path).name:
        runs = {f"{Path(path).name} / {name}": run for name, run in runs.items()}
    return runs


def format_table(result: dict[str, Any]) -> str:
    """The benchmark as plain-text tables: step times with parts, ratios and the paper's; inference; precision; data."""
    s = result["settings"]
    lines = [f"paperkd bench: {result['device']}, torch {result['torch']}, input {result['size']} x {result['size']}, "
             f"batch {result['batch']}, {result['repeats']} timed repeats after {s['warmup']} warm-up rounds "
             f"({s['order']}), {s['threads']} threads, recipe {result.get('recipe', 'pre-recipe')}",
             f"teacher forward: {s['teacher_dtype']}, {'inference_mode' if s['inference_mode'] else 'no_grad'}"
             f"{', channels_last' if s['channels_last'] else ''}{', compiled' if s['compile_teacher'] else ''}; "
             f"students {s['student_precision']}; {s['weights']}", f"input: {s['input']}", ""]
    parts = ("data", "teacher_forward", "student_forward", "losses", "backward_step")
    short = ("data", "t-fwd", "s-fwd", "losses", "bwd+step")
    header = (f"{'method':<30}{'preset':<17}{'median':>9}{'spread':>8}" + "".join(f"{p:>9}" for p in short) +
              f"{'ratio':>7}{'overhead':>9}{'paper':>7}{'p.ratio':>8}")
    lines += [header, "-" * len(header)]
    for r in result["rows"]:
        lines.append(f"{r['method']:<30}{r['preset']:<17}{r['median_ms']:>9.1f}{r['spread_ms']:>8.1f}" +
                     "".join(f"{_num(r['parts_ms'].get(p), '.1f'):>9}" for p in parts) +
                     f"{_num(r['ratio_to_student'], '.2f'):>7}{_num(r['overhead'], '+.1%'):>9}"
                     f"{_num(r['paper_ms'], '.0f'):>7}{_num(r['paper_ratio'], '.2f'):>8}")
    lines += ["times in ms (median of the step totals; spread = max - min; parts: medians); ratio = step / plain "
              "student step; overhead = step / (plain student step + teacher forward) - 1;",
              "paper: Tables 2-3 (ms per iteration, one GPU, batch 6, crop 513); p.ratio: the paper's ratio"]
    if result.get("inference"):
        inf = result["inference"]
        lines += ["", f"inference at {inf[0]['size']} x {inf[0]['size']} (eval, inference_mode, float32): latency at "
                      f"batch 1, images/s at batch {inf[0]['batch']}",
                  f"{'backbone':<14}{'latency ms':>11}{'images/s':>10}{'params':>13}{'GFLOPs':>8}"]
        lines += [f"{r['backbone']:<14}{r['latency_ms']:>11.1f}{r['images_per_s']:>10.2f}{r['params']:>13,}"
                  f"{r['gflops']:>8.1f}" for r in inf]
    if result.get("teacher_agreement"):
        a = result["teacher_agreement"]
        verdict = "met" if a["meets_target"] else "NOT met"
        lines += ["", f"{a['dtype']} teacher agrees with the fp32 teacher on {a['fraction']:.4%} of pixels "
                      f"({a['images']} images; target >= {a['target']:.1%}: {verdict}; {a['teacher']})"]
    if result.get("data_wait_fraction") is not None:
        d = result["data_wait"]
        lines += ["", f"data: the step waits on the loader {result['data_wait_fraction']:.1%} of the time "
                      f"({d['workers']} workers, {d['steps']} steps of {d['step_ms']:.0f} ms simulated, "
                      f"{d['data_root']})"]
    return "\n".join(lines)


__all__ = ["format_table", "read_bench_file"]
