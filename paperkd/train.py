"""The training loop, for the teacher and for every student, readable top to bottom.

    train(cfg)  ->  run folder <out>/<run name>/ with checkpoint.pt (every epoch, atomic) and record.json (at the end)

One iteration: fetch a batch; teacher forward without autograd (students only); student forward with the taps the
losses need; the losses; backward and SGD step; poly learning rate. Wall time of each part is measured (CUDA is
synchronised between parts so the split is honest) and recorded: it is the time column of Tables 2 and 3.

Multi-GPU: launch under `torchrun`; the process group comes from its environment variables (NCCL on GPUs, gloo on CPU).
Resume: `train(cfg, resume=True)` continues from the last complete epoch with optimizer, scheduler, scaler and RNG
states restored, so a resumed run ends with the same weights as an uninterrupted one (on CPU, bit for bit).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from paperkd.checkpoint import CHECKPOINT_NAME, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from paperkd.config import Config, from_dict, validate
from paperkd.data import VOCSegmentation, default_standin, train_transforms, val_transforms
from paperkd.data.seeded import EpochBatches, SeededDataset
from paperkd.data.standin import standin_info
from paperkd.distill import Distillation, segmentation_loss
from paperkd.errors import ConfigError, PaperkdError
from paperkd.inference import evaluate
from paperkd.models import deeplabv3plus, parameter_counts, tap
from paperkd.records import RECORD_NAME, now, run_environment, write_record

TIMED_PARTS = ("data", "teacher_forward", "student_forward", "losses", "backward_step")
WARMUP_ITERATIONS = 3  # left out of the timing means: first iterations pay for allocation and lazy initialisation
# Config fields that may change when a run is resumed (they do not change what is computed).
RESUMABLE_CHANGES = {"device", "workers", "out", "eval_every"}


class TrainingDiverged(PaperkdError):
    """A loss became NaN or infinite; the last complete checkpoint is kept."""


# ---------------------------------------------------------------------------------------------------------------------
# Set-up helpers
# ---------------------------------------------------------------------------------------------------------------------

@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> Distributed:
    """Join the process group `torchrun` set up (RANK / WORLD_SIZE / LOCAL_RANK); a plain `python` run is rank 0 of 1."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def pick_device(name: str, ddp: Distributed) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device='cuda' was asked for but no CUDA GPU is visible; use --device cpu")
        device = torch.device("cuda", ddp.local_rank if device.index is None else device.index)
        torch.cuda.set_device(device)
    return device


def memory_format_of(cfg: Config) -> torch.memory_format:
    """channels_last when the config asks for it (models, connectors and inputs alike), else contiguous."""
    return torch.channels_last if cfg.channels_last else torch.contiguous_format


def loader_workers(requested: int) -> int:
    """The DataLoader worker count for `Config.workers`: as asked, but never more than the CPUs this process may use
    (the default 8 is sized for a GPU box; on a 2-core machine 8 workers only contend with the training)."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(requested, available)


def build_datasets(cfg: Config) -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset]:
    """Train and val sets with the paper's transforms, cut to the scale's image counts (the first N of each split)."""
    root = cfg.data_root
    if root is None:
        if cfg.dataset != "standin":
            raise ConfigError("dataset='voc' needs data_root (the folder holding VOCdevkit/VOC2012)")
        root = default_standin()
    train_set = VOCSegmentation(root, "train", sbd=cfg.sbd, transforms=train_transforms(
        crop=cfg.crop, scale=(cfg.scale_min, cfg.scale_max), label_pad=cfg.label_pad, blur=cfg.blur))
    val_set = VOCSegmentation(root, "val", transforms=val_transforms(size=cfg.val_size, mode=cfg.val_mode))
    if cfg.max_train_images is not None:
        train_set = Subset(train_set, range(min(cfg.max_train_images, len(train_set))))
    if cfg.max_val_images is not None:
        val_set = Subset(val_set, range(min(cfg.max_val_images, len(val_set))))
    return train_set, val_set


def training_loader(cfg: Config, train_set: Dataset, device: torch.device, rank: int = 0,
                    world_size: int = 1) -> DataLoader:
    """ONE DataLoader for all the epochs of a run (`paperkd.data.seeded.EpochBatches`): iterate it once, taking
    `loader.batch_sampler.batches_per_epoch` batches per epoch (set `loader.batch_sampler.start_epoch` first to
    resume). Order and augmentation are seeded per epoch and image, so the run does not depend on the worker count,
    and the workers prepare the next epoch's first batches while an epoch ends (no wait at the boundary)."""
    batches = EpochBatches(len(train_set), cfg.batch_size, cfg.seed, cfg.epochs, rank=rank, world_size=world_size)
    return DataLoader(SeededDataset(train_set), batch_sampler=batches, num_workers=loader_workers(cfg.workers),
                      pin_memory=device.type == "cuda",
                      # its own generator for the workers' base seeds (unused: SeededDataset reseeds per image)
                      generator=torch.Generator().manual_seed(cfg.seed))


def load_teacher(cfg: Config, device: torch.device) -> nn.Module:
    """The trained teacher from its checkpoint, frozen; eval mode unless the authors' train-mode quirk is asked for."""
    state = load_checkpoint(cfg.teacher)
    tcfg = from_dict(state["config"])
    if tcfg.num_classes != cfg.num_classes:
        raise ConfigError(f"teacher {cfg.teacher} predicts {tcfg.num_classes} classes, the student "
                          f"{cfg.num_classes}: they must agree")
    teacher = deeplabv3plus(tcfg.backbone, num_classes=tcfg.num_classes, output_stride=tcfg.output_stride)
    try:
        teacher.load_state_dict(state["model"])
    except RuntimeError as err:
        raise PaperkdError(f"{cfg.teacher} does not fit a DeepLabV3+ {tcfg.backbone}: "
                           f"{str(err).splitlines()[0]}") from None
    teacher.requires_grad_(False)
    return teacher.to(device).train(cfg.teacher_train_mode)


def param_groups(student: nn.Module, extra: nn.Module | None, cfg: Config) -> list[dict[str, Any]]:
    """Backbone at lr, ASPP + decoder (+ distillation connectors) at head_lr_mult x lr, as the reference code base."""
    head = [*student.aspp.parameters(), *student.decoder.parameters()]
    if extra is not None:
        head += list(extra.parameters())
    return [{"params": list(student.backbone.parameters()), "lr": cfg.lr},
            {"params": head, "lr": cfg.lr * cfg.head_lr_mult}]


def poly_schedule(optimizer: torch.optim.Optimizer, max_iter: int, power: float) -> torch.optim.lr_scheduler.LambdaLR:
    """lr = base_lr * (1 - iter / max_iter) ** power, stepped every iteration."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: max(0.0, 1 - it / max_iter) ** power)


class StepTimer:
    """Wall time per part of an iteration, synchronising CUDA at each boundary so that parts do not blur."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.sums: dict[str, float] = defaultdict(float)
        self.count = 0
        self.current: dict[str, float] = {}

    @contextlib.contextmanager
    def part(self, name: str):
        if self.cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        yield
        if self.cuda:
            torch.cuda.synchronize()
        self.current[name] = time.perf_counter() - start

    def end_iteration(self, iteration: int) -> None:
        if iteration >= WARMUP_ITERATIONS:
            for k, v in self.current.items():
                self.sums[k] += v
            self.count += 1
        self.current = {}

    def means_ms(self) -> dict[str, float]:
        means = {k: 1000 * self.sums[k] / self.count for k in TIMED_PARTS if k in self.sums} if self.count else {}
        means["total"] = sum(means.values())
        return means

    def state(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "count": self.count}

    def load(self, state: dict[str, Any]) -> None:
        self.sums.update(state["sums"])
        self.count = state["count"]


def optimisation_step(images: torch.Tensor, target: torch.Tensor, student_net: nn.Module, teacher_net: nn.Module | None,
                      objective: nn.Module | None, optimizer: torch.optim.Optimizer, scheduler: Any,
                      scaler: torch.amp.GradScaler, timer: StepTimer, amp_dtype: torch.dtype | None = None,
                      teacher_context: Any = torch.no_grad) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """One iteration once the batch is on the device: teacher forward without autograd, student forward with the
    taps, the losses (eq. 3 / 9), backward and SGD step, poly lr. Each part is timed on `timer`. The benchmark runs
    this same function. Returns (total loss, L_seg, unweighted distillation terms)."""
    with torch.autocast(images.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        t_feats = {}
        if teacher_net is not None:
            with timer.part("teacher_forward"), teacher_context():
                _, t_feats = teacher_net(images)
        with timer.part("student_forward"):
            logits, s_feats = student_net(images)
        with timer.part("losses"):
            seg = segmentation_loss(logits, target)
            terms = objective(t_feats, s_feats, target) if objective is not None else {}
            loss = getattr(objective, "module", objective).total(seg, terms) if objective is not None else seg
    with timer.part("backward_step"):
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
    return loss, seg, terms


def check_writable(folder: Path) -> None:
    """Fail before training if the results folder cannot be written or the disk is nearly full."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise PaperkdError(f"cannot write to the results folder {folder}: {err.strerror or err}") from None
    free_mib = shutil.disk_usage(folder).free / 2**20
    if free_mib < 512:
        raise PaperkdError(f"only {free_mib:.0f} MiB free on the disk of {folder}; a checkpoint needs up to ~700 MiB")


# ---------------------------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------------------------

def train(cfg: Config, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train one run described by `cfg`; return its record (also written to <out>/<run name>/record.json)."""
    cfg = validate(cfg)
    ddp = init_distributed("cuda" if cfg.device.startswith("cuda") or
                           (cfg.device == "auto" and torch.cuda.is_available()) else "cpu")
    device = pick_device(cfg.device, ddp)
    run_dir = Path(cfg.out) / cfg.name
    ckpt_path = run_dir / CHECKPOINT_NAME
    if ddp.main:
        check_writable(run_dir)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    environment = run_environment(device) | {"world_size": ddp.world_size}  # the code as it was when the run began
    torch.manual_seed(cfg.seed)  # same initial weights on every rank; DDP also broadcasts rank 0's
    progress = progress and ddp.main

    # -- data ---------------------------------------------------------------------------------------------------------
    train_set, val_set = build_datasets(cfg)
    train_loader = training_loader(cfg, train_set, device, ddp.rank, ddp.world_size)
    steps_per_epoch = train_loader.batch_sampler.batches_per_epoch
    val_loader = DataLoader(val_set, batch_size=cfg.batch_size if cfg.val_mode == "square" else 1,
                            num_workers=loader_workers(cfg.workers))
    if steps_per_epoch == 0:
        raise ConfigError(f"batch_size={cfg.batch_size} x {ddp.world_size} process(es) is larger than the "
                          f"{len(train_set)} training images")

    # -- models and objective -----------------------------------------------------------------------------------------
    student = deeplabv3plus(cfg.backbone, cfg.num_classes, cfg.output_stride, cfg.backbone_weights).to(device)
    teacher = load_teacher(cfg, device) if cfg.distills else None
    # The objective holds Heo's connectors (1x1 conv + BN): they take the students' memory format too, so that they
    # see the layout of the features they map (on the H100 this changed Heo's step by less than the spread).
    objective = (Distillation(cfg, teacher, student).to(device, memory_format=memory_format_of(cfg))
                 if teacher is not None else None)
    taps = objective.taps if objective is not None else []
    memory_format = memory_format_of(cfg)
    student.to(memory_format=memory_format)
    student_net: nn.Module = tap(student, taps)
    teacher_net = tap(teacher.to(memory_format=memory_format), taps) if teacher is not None else None
    has_connectors = objective is not None and any(p.requires_grad for p in objective.parameters())
    if ddp.world_size > 1:
        student_net = DistributedDataParallel(student_net, device_ids=[device.index] if device.type == "cuda" else None)
        if has_connectors:
            objective = DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None)
    distill = objective.module if isinstance(objective, DistributedDataParallel) else objective

    optimizer = torch.optim.SGD(param_groups(student, distill if has_connectors else None, cfg), lr=cfg.lr,
                                momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    max_iter = cfg.epochs * steps_per_epoch
    scheduler = poly_schedule(optimizer, max_iter, cfg.poly_power)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[cfg.amp_dtype] if cfg.amp else None
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    timer = StepTimer(device)

    # -- resume -------------------------------------------------------------------------------------------------------
    start_epoch, history, best_miou, started, wall_before = 0, [], -1.0, now(), 0.0
    if resume and ckpt_path.is_file():
        state = load_checkpoint(ckpt_path, map_location=device)
        changed = {k for k, v in state["config"].items() if cfg.to_dict().get(k) != v} - RESUMABLE_CHANGES
        if changed:
            raise ConfigError(f"cannot resume {ckpt_path} with a different config: {', '.join(sorted(changed))} "
                              "changed; resume with the same options or start a new run (--run-name)")
        student.load_state_dict(state["model"])
        if has_connectors:
            distill.load_state_dict(state["distill"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        timer.load(state["timer"])
        set_rng_state(state["rng"])
        start_epoch, history, best_miou = state["epoch"], state["history"], state["best_miou"]
        started, wall_before = state["started"], state["wall_s"]
    elif resume and progress:
        tqdm.write(f"no checkpoint at {ckpt_path}: starting from scratch")
    t_start = time.perf_counter()

    # -- epochs -------------------------------------------------------------------------------------------------------
    iteration = start_epoch * steps_per_epoch
    train_loader.batch_sampler.start_epoch = start_epoch
    batches = iter(train_loader)  # one iterator for every remaining epoch (see training_loader)
    for epoch in range(start_epoch, cfg.epochs):
        student_net.train()
        sums: dict[str, float] = defaultdict(float)
        bar = tqdm(total=steps_per_epoch, desc=f"{cfg.name} epoch {epoch + 1}/{cfg.epochs}", disable=not progress,
                   leave=False)
        epoch_start = time.perf_counter()
        for _ in range(steps_per_epoch):
            with timer.part("data"):
                images, target = next(batches)
                images = images.to(device, non_blocking=True, memory_format=memory_format)
                target = target.to(device, non_blocking=True)
            loss, seg, terms = optimisation_step(images, target, student_net, teacher_net, objective, optimizer,
                                                 scheduler, scaler, timer, amp_dtype)
            timer.end_iteration(iteration)
            iteration += 1

            values = {"loss": loss.item(), "seg": seg.item(), **{k: v.item() for k, v in terms.items()}}
            bad = [k for k, v in values.items() if not math.isfinite(v)]
            if bad:
                raise TrainingDiverged(
                    f"{cfg.name}: loss term {bad[-1] if len(bad) > 1 else bad[0]} became {values[bad[-1]]} at "
                    f"iteration {iteration} (epoch {epoch + 1}); the last complete checkpoint {ckpt_path} is kept. "
                    "Lower the learning rate or the distillation weights.")
            for k, v in values.items():
                sums[k] += v
            bar.update()
            bar.set_postfix({k: f"{v:.3g}" for k, v in values.items()} |
                            {"img/s": f"{bar.n * cfg.batch_size * ddp.world_size / (time.perf_counter() - epoch_start):.1f}"})
        bar.close()

        entry = {"epoch": epoch + 1, "iterations": steps_per_epoch, "lr": scheduler.get_last_lr()[0],
                 "loss": {k: v / steps_per_epoch for k, v in sums.items()}, "time_s": time.perf_counter() - epoch_start}
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            if ddp.main:
                metrics = evaluate(student, val_loader, device, cfg.num_classes, amp_dtype, progress)
                entry.update(miou=metrics["miou"], pixel_acc=metrics["pixel_acc"])
                entry["metrics"] = metrics
                best_miou = max(best_miou, metrics["miou"])
            if ddp.world_size > 1:
                dist.barrier()
        history.append(entry)
        if progress:
            miou = f", mIoU {entry['miou']:.4f}" if "miou" in entry else ""
            tqdm.write(f"{cfg.name} epoch {epoch + 1}/{cfg.epochs}: loss {entry['loss']['loss']:.4f}{miou}")
        if ddp.main:
            save_checkpoint(ckpt_path, {
                "config": cfg.to_dict(), "epoch": epoch + 1, "history": history, "best_miou": best_miou,
                "model": student.state_dict(), "distill": distill.state_dict() if has_connectors else {},
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "rng": rng_state(), "timer": timer.state(), "started": started,
                "wall_s": wall_before + time.perf_counter() - t_start,
            })

    # -- record -------------------------------------------------------------------------------------------------------
    final = history[-1].pop("metrics") if history and "metrics" in history[-1] else None
    for entry in history:
        entry.pop("metrics", None)
    record = {
        "schema": 1, "run_name": cfg.name, "preset": cfg.preset, "seed": cfg.seed, "config": cfg.to_dict(),
        "environment": environment,
        "data": {"root": str(cfg.data_root) if cfg.data_root else "embedded procedural stand-in",
                 "train_images": len(train_set), "val_images": len(val_set), "workers": loader_workers(cfg.workers),
                 "standin": cfg.dataset == "standin",
                 # how the stand-in was made (its STANDIN.json), so the record names its data without the folder
                 "standin_info": standin_info(cfg.data_root) if cfg.dataset == "standin" and cfg.data_root else None},
        "epochs": history, "final": final, "best_miou": best_miou, "timing_ms": timer.means_ms(),
        "params": parameter_counts(student), "started": started, "finished": now(),
        "wall_s": wall_before + time.perf_counter() - t_start, "checkpoint": str(ckpt_path),
    }
    if ddp.main:
        write_record(run_dir / RECORD_NAME, record)
    return record
