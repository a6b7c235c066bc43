"""The step-time and inference benchmark: the time column of Tables 2 and 3, measured side by side in one process.

    result = run_benchmark(size=513, batch=6, device="cuda", json_path="bench.json")
    print(format_table(result))

What is timed, each by one small function, all on the same synthetic batch:

- the teacher's own training step (ResNet-101, cross-entropy only);
- a student step without distillation (the "plain" step every ratio is taken against);
- the teacher forward alone, without autograd (the other half of the floor of any feature distillation);
- a student step for every distillation method asked for (GAT, Heo, pixel, pair, pixel+pair, MIDDLE/END positions).

A training step is train.py's step, call for call (`paperkd.step.build_step` and `optimisation_step` under the
chosen recipe, amp off, `StepTimer`'s CUDA-synchronised parts), so its parts are the parts
a training record reports: data, teacher_forward, student_forward, losses, backward_step. The rows are run round
robin (one step of each row per round; `warmup` rounds left out) so that a change of machine load hits every row
alike; each row reports the median and the min-max spread of its step totals, and the median of each part.

Two numbers per distillation method: `ratio_to_student` = step / plain student step (the paper's Proposed: 740 / 250
= 2.96), and `overhead` = step / (plain student step + teacher forward) - 1: what the distillation costs beyond its
floor (one student forward+backward and one teacher forward without autograd); the losses should make it small.

The teacher forward can be made cheaper without changing the method, each a switch: `inference_mode` (instead of
train.py's `no_grad`), `teacher_dtype` (bf16/fp16 autocast for the teacher only; the student stays float32, the
losses compute in float32), `channels_last` (teacher, students and inputs, like train.py's switch), and
`compile_teacher` (torch.compile). A reduced-precision teacher is never silent: its argmax agreement with the float32
teacher is measured and reported (`teacher_agreement`).

Models are randomly initialised (step time does not depend on the weights) and inputs are random tensors already in
memory: the `data` part is only the host-to-device copy. Data loading is measured on its own by
`data_wait_fraction`, with real DataLoader workers feeding a consumer that takes as long as the measured plain step.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from paperkd.atomic import atomic_open
from paperkd.config import DEFAULT_RECIPE, PRESETS, Config, resolve
from paperkd.errors import ConfigError
from paperkd.models import deeplabv3plus, model_summary, tap, without_aspp_dropout
from paperkd.bench_files import format_table, read_bench_file  # noqa: F401  (re-exported)
from paperkd.records import run_environment
from paperkd.step import TIMED_PARTS, StepTimer, build_step, load_teacher, optimisation_step
from paperkd.train import build_datasets, loader_workers, training_loader

DEFAULT_METHODS = ("r18-gat", "r18-heo", "r18-pixel", "r18-pair", "r18-both", "r18-pixel-middle", "r18-pair-end")
INFERENCE_BACKBONES = ("resnet101", "resnet18", "mobilenet_v2")
TEACHER_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
AGREEMENT_TARGET = 0.995  # a reduced-precision teacher must agree with the fp32 one on at least this pixel fraction
BENCH_TEACHER = "random-init teacher (benchmark)"  # fills Config.teacher: distilling presets need one

# Paper, Tables 2 and 3: training time per iteration (ms), ResNet-18 student, batch 6, crop 513, one GPU.
PAPER_MS = {"teacher": 760, "r18-none": 250, "r18-gat": 450, "r18-heo": 560, "r18-both": 740,
            "r18-pixel-middle": 700, "r18-pixel": 720, "r18-pair": 680, "r18-pair-end": 760}
LABELS = {"teacher": "Teacher training step", "teacher-forward": "Teacher forward (no autograd)",
          "none": "No distillation", "gat": "GAT [37]", "heo": "Method of [34] (Heo)", "pixel": "Pixel-wise (END)",
          "pair": "Pair-wise (MIDDLE)", "both": "Proposed (pixel + pair)", "pixel-middle": "Pixel-wise (MIDDLE)",
          "pair-end": "Pair-wise (END)"}


@dataclass(frozen=True)
class TeacherSettings:
    """How the frozen teacher's forward runs; none of these changes what is distilled (precision is checked)."""

    dtype: torch.dtype | None = None  # autocast dtype of the teacher forward; None = float32
    channels_last: bool = False
    compile: bool = False
    inference_mode: bool = True  # False = torch.no_grad(), as train.py


@dataclass
class Row:
    """One measured thing: a step function taking a StepTimer, and the part times (s) of each timed repeat."""

    method: str
    preset: str
    kind: str  # "train_step" (teacher), "student_step" (plain), "teacher_forward", "distill_step"
    backbone: str
    step: Callable[[StepTimer], Any]
    times: list[dict[str, float]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------------------
# Small pieces
# ---------------------------------------------------------------------------------------------------------------------

def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """"fp32"/None -> None (no autocast), "bf16" -> torch.bfloat16, "fp16" -> torch.float16; dtypes pass through."""
    if dtype is None or dtype == torch.float32:
        return None
    if isinstance(dtype, torch.dtype):
        if dtype not in TEACHER_DTYPES.values():
            raise ConfigError(f"teacher_dtype {dtype} is not allowed; choose one of: {', '.join(TEACHER_DTYPES)}")
        return dtype
    if dtype not in TEACHER_DTYPES:
        raise ConfigError(f"teacher_dtype={dtype!r} is not allowed; choose one of: {', '.join(TEACHER_DTYPES)}")
    return TEACHER_DTYPES[dtype]


def dtype_name(dtype: torch.dtype | None) -> str:
    return next(name for name, d in TEACHER_DTYPES.items() if d == dtype)


def memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def shared_copy(model: nn.Module) -> nn.Module:
    """A copy of `model`'s module tree that shares its parameters and buffers: its own hooks, no extra weights.

    Every method taps the teacher at different places; a copy per method keeps one method's hooks (Heo's stage taps
    clone large tensors) out of another method's teacher forward.
    """
    memo = {id(t): t for t in (*model.parameters(), *model.buffers())}
    return copy.deepcopy(model, memo)


def synthetic_batch(size: int, batch: int, num_classes: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images and labels on the host (pinned for CUDA, as the DataLoader's pin_memory would give them)."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, size, size, generator=generator)
    target = torch.randint(0, num_classes, (batch, size, size), generator=generator)
    if device.type == "cuda":
        images, target = images.pin_memory(), target.pin_memory()
    return images, target


def teacher_forward_context(device: torch.device, settings: TeacherSettings) -> contextlib.ExitStack:
    """No autograd (inference_mode or no_grad) and, when asked, autocast to the teacher's reduced precision."""
    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode() if settings.inference_mode else torch.no_grad())
    if settings.dtype is not None:
        stack.enter_context(torch.autocast(device.type, dtype=settings.dtype))
    return stack


def bench_config(preset: str, size: int, batch: int, recipe: str | None = None) -> Config:
    """The preset's config under `recipe` at the benchmark's crop and batch."""
    teacher = BENCH_TEACHER if PRESETS[preset].keys() & {"pixel", "pair", "gat", "heo"} else None
    return resolve(preset, recipe=recipe, dataset="standin", crop=size, val_size=size, batch_size=batch,
                   teacher=teacher)


def frozen_teacher_net(teacher: nn.Module, taps: Sequence[str], settings: TeacherSettings) -> nn.Module:
    """The teacher as a method's step calls it: its own copy with the method's taps, maybe compiled."""
    net = tap(shared_copy(teacher).to(memory_format=memory_format(settings.channels_last)), taps)
    if settings.compile:
        # Hooks differ per copy; without hook guards a compiled graph could be reused with another copy's hooks.
        torch._dynamo.config.skip_nnmodule_hook_guards = False
        # One compiled copy per method shares Tapped.forward's code: allow more than the default 8 cache entries.
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 32)
        net = torch.compile(net)
    return net


# ---------------------------------------------------------------------------------------------------------------------
# The measured steps
# ---------------------------------------------------------------------------------------------------------------------

def training_step(cfg: Config, model: nn.Module, teacher: nn.Module | None, batch: tuple[torch.Tensor, torch.Tensor],
                  device: torch.device, settings: TeacherSettings) -> Callable[[StepTimer], torch.Tensor]:
    """One iteration of train.py's loop for `model` (teacher or student), distilling from `teacher` if given.

    The trainer's own parts (`paperkd.step.build_step`: objective, optimizer, schedule, scaler, the recipe's ASPP
    dropout), float32 student, amp off, past any connector warm-up; only the teacher forward's copy and context
    follow `settings`. Returns a function that runs one step, timing its parts on the timer it is given.
    """
    cfg = dataclasses.replace(cfg, channels_last=settings.channels_last, amp=False)
    step = build_step(cfg, model, teacher, device, max_iter=10**6, tap_teacher=False)
    if teacher is not None:
        step.teacher_net = frozen_teacher_net(teacher, step.taps, settings).train(cfg.teacher_train_mode)
    host_images, host_target = batch
    iteration = 0

    def run(timer: StepTimer) -> torch.Tensor:
        nonlocal iteration
        with timer.part("data"):
            images = host_images.to(device, non_blocking=True, memory_format=step.memory_format)
            target = host_target.to(device, non_blocking=True)
        loss, _, _ = optimisation_step(step, images, target, iteration, timer,
                                       teacher_context=lambda: teacher_forward_context(device, settings))
        iteration += 1
        return loss

    step.student_net.train()
    return run


def teacher_forward(teacher: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], device: torch.device,
                    settings: TeacherSettings, train_mode: bool = False) -> Callable[[StepTimer], torch.Tensor]:
    """The frozen teacher's forward alone, without taps and without autograd (the input already on the device), in
    the mode the recipe runs it in (`train_mode`: batch statistics, as the distillation rows' teacher)."""
    net = frozen_teacher_net(teacher, [], settings).train(train_mode)
    images = batch[0].to(device, memory_format=memory_format(settings.channels_last))

    def step(timer: StepTimer) -> torch.Tensor:
        with timer.part("teacher_forward"), teacher_forward_context(device, settings):
            logits, _ = net(images)
        return logits

    return step


def build_rows(methods: Sequence[str], size: int, batch: int, device: torch.device, settings: TeacherSettings,
               teacher_step: bool = True, recipe: str | None = None) -> list[Row]:
    """Teacher training step (if asked), plain student step(s), teacher forward, one row per distillation method."""
    teacher_cfg = bench_config("teacher", size, batch, recipe)
    images_and_target = synthetic_batch(size, batch, teacher_cfg.num_classes, device)
    torch.manual_seed(0)
    rows = []
    if teacher_step:
        trained_teacher = deeplabv3plus("resnet101", teacher_cfg.num_classes, teacher_cfg.output_stride)
        rows.append(Row(LABELS["teacher"], "teacher", "train_step", "resnet101",
                        training_step(teacher_cfg, trained_teacher, None, images_and_target, device, settings)))

    frozen = deeplabv3plus("resnet101", teacher_cfg.num_classes, teacher_cfg.output_stride)
    frozen = frozen.requires_grad_(False).to(device).eval()
    distilling = bench_config("r18-pixel", size, batch, recipe)  # the recipe's frozen teacher, for every row alike
    if distilling.distill_without_aspp_dropout:
        without_aspp_dropout(frozen)
    plain = list(dict.fromkeys(f"{m.split('-')[0]}-none" for m in methods))  # one plain step per student backbone
    for preset in plain:
        cfg = bench_config(preset, size, batch, recipe)
        rows.append(Row(LABELS["none"], preset, "student_step", cfg.backbone, training_step(
            cfg, deeplabv3plus(cfg.backbone, cfg.num_classes, cfg.output_stride), None, images_and_target, device,
            settings)))
    rows.append(Row(LABELS["teacher-forward"], "teacher", "teacher_forward", "resnet101",
                    teacher_forward(frozen, images_and_target, device, settings, distilling.teacher_train_mode)))
    for preset in methods:
        if preset in plain:
            continue
        cfg = bench_config(preset, size, batch, recipe)
        student = deeplabv3plus(cfg.backbone, cfg.num_classes, cfg.output_stride)
        rows.append(Row(LABELS[preset.split("-", 1)[1]], preset, "distill_step", cfg.backbone,
                        training_step(cfg, student, frozen, images_and_target, device, settings)))
    return rows


def measure(rows: Sequence[Row], device: torch.device, warmup: int, repeats: int, progress: bool) -> None:
    """Run the rows round robin, `warmup` + `repeats` rounds; keep the part times of the last `repeats`."""
    timer = StepTimer(device)
    with tqdm(total=(warmup + repeats) * len(rows), desc="bench steps", disable=not progress) as bar:
        for round_ in range(warmup + repeats):
            for row in rows:
                bar.set_postfix_str(f"{row.preset} ({row.kind})")
                row.step(timer)
                if round_ >= warmup:
                    row.times.append(dict(timer.current))
                timer.current = {}
                bar.update()


def summarize(row: Row) -> dict[str, Any]:
    """Median, spread (max - min) and raw totals of a row's steps in ms, and the median of each part."""
    totals = [1000 * sum(t.values()) for t in row.times]
    parts = {k: statistics.median(1000 * t[k] for t in row.times) for k in TIMED_PARTS if k in row.times[0]}
    return {"method": row.method, "preset": row.preset, "kind": row.kind, "backbone": row.backbone,
            "median_ms": statistics.median(totals), "spread_ms": max(totals) - min(totals),
            "min_ms": min(totals), "max_ms": max(totals), "times_ms": totals, "parts_ms": parts,
            "paper_ms": PAPER_MS.get(row.preset) if row.kind != "teacher_forward" else None}


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """ratio_to_student = median / plain student median (same backbone; teacher rows: the first student's);
    overhead = median / (plain student median + teacher forward median) - 1, for distillation steps only."""
    plain = {r["backbone"]: r["median_ms"] for r in rows if r["kind"] == "student_step"}
    reference = next(iter(plain.values()))
    teacher_fwd = next(r["median_ms"] for r in rows if r["kind"] == "teacher_forward")
    for r in rows:
        base = plain.get(r["backbone"], reference)
        r["floor_ms"] = base + teacher_fwd if r["kind"] == "distill_step" else None
        r["ratio_to_student"] = r["median_ms"] / base
        r["overhead"] = r["median_ms"] / r["floor_ms"] - 1 if r["floor_ms"] else None
        paper_base = PAPER_MS.get(f"{r['preset'].split('-')[0]}-none", PAPER_MS["r18-none"])
        r["paper_ratio"] = r["paper_ms"] / paper_base if r["paper_ms"] else None


# ---------------------------------------------------------------------------------------------------------------------
# Inference, precision, data
# ---------------------------------------------------------------------------------------------------------------------

def images_per_second(backbone: str, size: int, batch: int, device: torch.device, repeats: int) -> float:
    """Throughput of an eval-mode forward at `batch` images (inference_mode, float32), median of `repeats`."""
    model = deeplabv3plus(backbone).to(device).eval()
    images = torch.randn(batch, 3, size, size, device=device)
    timer, times = StepTimer(device), []
    with torch.inference_mode():
        model(images)  # warm-up
        for _ in range(repeats):
            with timer.part("forward"):
                model(images)
            times.append(timer.current.pop("forward"))
    return batch / statistics.median(times)


def inference_rows(size: int, batch: int, device: torch.device, repeats: int, progress: bool) -> list[dict[str, Any]]:
    """Teacher and both students at `size` x `size`: batch-1 latency, images/s at `batch`, params and GFLOPs."""
    rows = []
    for backbone in tqdm(INFERENCE_BACKBONES, desc="bench inference", disable=not progress):
        summary = model_summary(backbone, input_size=size, device=device, repeats=repeats)
        rows.append({"backbone": backbone, "size": size, "latency_ms": summary["latency_ms"],
                     "images_per_s": images_per_second(backbone, size, batch, device, repeats), "batch": batch,
                     "params": summary["params_total"], "gflops": summary["gflops"]})
    return rows


def teacher_agreement(teacher: nn.Module, images: torch.Tensor, dtype: str | torch.dtype | None) -> float:
    """Fraction of pixels whose argmax class under `dtype` autocast equals the float32 teacher's (eval mode).

    `dtype`: "bf16", "fp16", a torch dtype, or "fp32"/None (then 1.0 by construction). The teacher is run in eval
    mode under inference_mode and put back in the mode it came in.
    """
    dtype = parse_dtype(dtype)
    was_training = teacher.training
    teacher.eval()
    try:
        with torch.inference_mode():
            reference = teacher(images)
            with torch.autocast(images.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                reduced = teacher(images)
    finally:
        teacher.train(was_training)
    reference, reduced = (out[0] if isinstance(out, tuple) else out for out in (reference, reduced))
    return (reference.argmax(1) == reduced.argmax(1)).float().mean().item()


def data_wait_fraction(step_ms: float, steps: int = 20, warmup: int = 1, **cfg_overrides: Any) -> float:
    """Fraction of wall time a training loop waits on `next(batches)` when each step takes `step_ms`.

    Real DataLoader iterations as train.py builds them (its `build_datasets`, the config's default `workers`, batch,
    crop, shuffle, drop_last, pin_memory on CUDA) over the stand-in (or `data_root=...`); the step is simulated by
    sleeping `step_ms`, so the workers get the CPU a GPU step would leave them. The first `warmup` batches (worker
    start-up) are left out. `cfg_overrides` go to `resolve("r18-none", dataset="standin", ...)`.
    """
    if steps < 1 or warmup < 0:
        raise ConfigError(f"data_wait_fraction needs steps >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}")
    cfg = resolve("r18-none", **{"dataset": "standin", **cfg_overrides})
    train_set, _ = build_datasets(cfg)
    device = torch.device("cuda" if torch.cuda.is_available() and cfg.device != "cpu" else "cpu")
    loader = training_loader(cfg, train_set, device)  # train.py's loader: one iterator over every epoch
    if loader.batch_sampler.batches_per_epoch == 0:
        raise ConfigError(f"batch_size={cfg.batch_size} is larger than the {len(train_set)} training images")
    batches, waited, start = iter(loader), 0.0, None
    for i in range(warmup + steps):
        if i == warmup:
            waited, start = 0.0, time.perf_counter()
        before = time.perf_counter()
        try:
            next(batches)
        except StopIteration:  # every epoch of the config was consumed: start again
            batches = iter(loader)
            next(batches)
        waited += time.perf_counter() - before
        time.sleep(step_ms / 1000)
    return waited / (time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------------------------------

def check_methods(methods: Sequence[str] | None) -> list[str]:
    """The distillation presets to time (default: every Table 2-3 row); unknown or non-student presets raise."""
    methods = list(DEFAULT_METHODS if methods is None else methods)
    allowed = [p for p in PRESETS if p != "teacher"]
    bad = [m for m in methods if m not in allowed]
    if bad or not methods:
        raise ConfigError(f"unknown benchmark method(s) {', '.join(bad) or '(none given)'}; "
                          f"choose from: {', '.join(allowed)}")
    return list(dict.fromkeys(methods))


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Use `threads` intra-op threads inside the block (None: leave torch's setting alone)."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run_benchmark(size: int = 513, batch: int = 6, device: str = "cpu", repeats: int = 5, warmup: int = 2,
                  methods: Sequence[str] | None = None, teacher_dtype: str | torch.dtype | None = None,
                  channels_last: bool = False, compile_teacher: bool = False, inference_mode: bool = True,
                  json_path: str | None = None, progress: bool = True, inference_size: int | None = 513,
                  data_steps: int = 20, data_root: str | None = None, teacher_step: bool = True,
                  threads: int | None = None, teacher_checkpoint: str | None = None,
                  recipe: str | None = None) -> dict[str, Any]:
    """Time every step side by side (module docstring), then inference, teacher precision and data loading.

    `inference_size=None` skips the inference table; `data_steps=0` skips the data-wait measurement (`data_root`:
    a VOC-layout folder, default the embedded stand-in); `teacher_step=False` skips the (slowest) teacher training
    row; `threads` sets torch's intra-op threads for the run (1 is steadier on a CPU shared with other work);
    `teacher_checkpoint`: a trained teacher for the precision check (timing always uses random weights).
    `recipe`: the training recipe of every step (`paperkd.config.RECIPES`; default the config's default).
    `device`: "cpu", "cuda", "cuda:N" or "auto" (CUDA when visible). Returns the result dict, also written to
    `json_path`.
    """
    if repeats < 1 or warmup < 0 or size < 33 or batch < 1 or (threads is not None and threads < 1):
        raise ConfigError(f"need repeats >= 1, warmup >= 0, size >= 33, batch >= 1, threads >= 1; got "
                          f"repeats={repeats}, warmup={warmup}, size={size}, batch={batch}, threads={threads}")
    methods = check_methods(methods)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       "cpu" if device == "auto" else device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} was asked for but no CUDA GPU is visible; use device='cpu'")
    settings = TeacherSettings(parse_dtype(teacher_dtype), channels_last, compile_teacher, inference_mode)

    with torch_threads(threads):
        rows = build_rows(methods, size, batch, dev, settings, teacher_step, recipe)
        measure(rows, dev, warmup, repeats, progress)
        summaries = [summarize(row) for row in rows]
        add_ratios(summaries)
        result: dict[str, Any] = {
            "device": run_environment(dev)["device"], "torch": torch.__version__, "size": size, "batch": batch,
            "recipe": recipe or DEFAULT_RECIPE,
            "repeats": repeats,
            "settings": {"warmup": warmup, "teacher_dtype": dtype_name(settings.dtype), "channels_last": channels_last,
                         "compile_teacher": compile_teacher, "inference_mode": inference_mode,
                         "threads": torch.get_num_threads(), "order": "round robin, one step of each row per round",
                         "student_precision": "float32 (train.py with amp off)",
                         "weights": "random init (step time does not depend on the weights)",
                         "input": "synthetic random tensors in memory; the data part is the host-to-device copy "
                                  "only, data loading is measured separately (data_wait_fraction)"},
            "environment": run_environment(dev), "rows": summaries, "inference": None, "teacher_agreement": None,
            "data_wait_fraction": None,
        }
        del rows  # free the models before the inference models are built
        if inference_size:
            result["inference"] = inference_rows(inference_size, batch, dev, repeats, progress)
        data_cfg = {"crop": size, "val_size": size, "batch_size": batch, "data_root": data_root}
        if settings.dtype is not None:
            result["teacher_agreement"] = agreement_on_data(settings.dtype, dev, data_cfg, batch, teacher_checkpoint)
    if data_steps:
        plain_ms = next(r["median_ms"] for r in summaries if r["kind"] == "student_step")
        result["data_wait_fraction"] = data_wait_fraction(plain_ms, steps=data_steps, **data_cfg)
        result["data_wait"] = {"step_ms": plain_ms, "steps": data_steps,
                               "workers": loader_workers(resolve("r18-none", dataset="standin", **data_cfg).workers),
                               "data_root": data_root or "embedded stand-in",
                               "how": "real DataLoader, consumer sleeps the plain student step's median"}
    if json_path:
        with atomic_open(json_path, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
    return result


def agreement_on_data(dtype: torch.dtype, device: torch.device, data_cfg: dict[str, Any], n: int,
                      checkpoint: str | None = None) -> dict[str, Any]:
    """`teacher_agreement` on the first `n` validation images, of the teacher in `checkpoint` (else random init)."""
    # square validation images stack into one batch whatever the recipe's validation resize
    _, val_set = build_datasets(resolve("r18-none", dataset="standin", val_mode="square", **data_cfg))
    images = torch.stack([val_set[i][0] for i in range(min(n, len(val_set)))]).to(device)
    torch.manual_seed(0)
    if checkpoint:
        teacher = load_teacher(resolve("r18-pixel", dataset="standin", teacher=str(checkpoint)), device).eval()
    else:
        teacher = deeplabv3plus("resnet101").to(device)
    fraction = teacher_agreement(teacher, images, dtype)
    return {"dtype": dtype_name(dtype), "fraction": fraction, "target": AGREEMENT_TARGET,
            "meets_target": fraction >= AGREEMENT_TARGET, "images": len(images),
            "teacher": str(checkpoint) if checkpoint else "random init: a trained teacher's agreement may differ"}


# ---------------------------------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------------------------------

__all__ = ["DEFAULT_METHODS", "TeacherSettings", "data_wait_fraction", "format_table", "read_bench_file",
           "run_benchmark",
           "teacher_agreement", "torch_threads"]
