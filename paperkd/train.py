"""The training loop, for the teacher and for every student, readable top to bottom.

    train(cfg)  ->  run folder <out>/<run name>/ with checkpoint.pt (every epoch, atomic), best.pt (the best
                    validation epoch's weights, when the config selects it), predictions/ (the reported weights'
                    masks of the first validation images, `paperkd.saved_predictions`) and record.json (at the end)

One iteration is `paperkd.step.optimisation_step`: teacher forward without autograd (students only), student forward
with the taps the losses need, the losses, backward and SGD step at the poly lr. Wall time of each part is measured
(CUDA is synchronised between parts so the split is honest) and recorded: it is the time column of Tables 2 and 3.
The first `connector_warmup_epochs` of a distilling run train only the connectors (the authors' trainer).

Multi-GPU: launch under `torchrun`; the process group comes from its environment variables (NCCL on GPUs, gloo on CPU).
Resume: `train(cfg, resume=True)` continues from the last complete epoch with optimizer, scaler, RNG and timer
states restored, so a resumed run ends with the same weights as an uninterrupted one (on CPU, bit for bit).
"""

from __future__ import annotations

import math
import os
import shutil
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from paperkd.checkpoint import CHECKPOINT_NAME, load_checkpoint
from paperkd.config import Config, validate
from paperkd.data import VOCSegmentation, default_standin, train_transforms, val_transforms
from paperkd.data.seeded import EpochBatches, SeededDataset
from paperkd.errors import ConfigError, PaperkdError
from paperkd.inference import evaluate
from paperkd.models import deeplabv3plus
from paperkd.provenance import check_one_teacher, check_teacher, teacher_identity
from paperkd.records import RECORD_NAME, now, run_environment, write_record
from paperkd.run_state import (Progress, build_record, data_description, repair_best, restore_state, save_best,
                               save_state, selected_result)
from paperkd.saved_predictions import save_checkpoint_predictions
from paperkd.step import StepTimer, build_step, load_teacher, optimisation_step


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
        crop=cfg.crop, scale=(cfg.scale_min, cfg.scale_max), label_pad=cfg.label_pad, blur=cfg.blur,
        scale_of=cfg.scale_of))
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

def train(cfg: Config, resume: bool = False, progress: bool = True,
          on_epoch: Callable[[dict[str, Any], float], None] | None = None) -> dict[str, Any]:
    """Train one run described by `cfg`; return its record (also written to <out>/<run name>/record.json).
    `on_epoch(entry, wall_s)`: called with each epoch's log entry (the record's epoch entry, plus that epoch's
    full metrics, which the record keeps for its final and selected epochs only) and the run's wall clock so far,
    once that epoch is checkpointed; an exception it raises stops the run there. Single-process runs only: the
    other ranks of a torchrun would wait for a stopped one."""
    cfg = validate(cfg)
    ddp = init_distributed("cuda" if cfg.device.startswith("cuda") or
                           (cfg.device == "auto" and torch.cuda.is_available()) else "cpu")
    if on_epoch is not None and ddp.world_size > 1:
        raise ConfigError("on_epoch is for single-process runs: under torchrun, a rank it stops leaves the others "
                          "waiting")
    device = pick_device(cfg.device, ddp)
    run_dir = Path(cfg.out) / cfg.name
    ckpt_path = run_dir / CHECKPOINT_NAME
    # the teacher is checked before anything is written: a refused run leaves no folder behind
    teacher_state = load_checkpoint(cfg.teacher, map_location=device) if cfg.distills else None
    teacher_id = teacher_identity(cfg.teacher, teacher_state) if cfg.distills else None  # kept in the record
    if teacher_id is not None:
        check_teacher(teacher_id, cfg.allow_any_teacher)
        check_one_teacher(cfg.out, cfg.name, teacher_id)
    teacher_sha = teacher_id["sha256"] if teacher_id else None
    if ddp.main:
        check_writable(run_dir)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    environment = run_environment(device) | {"world_size": ddp.world_size}  # the code as it was when the run began
    torch.manual_seed(cfg.seed)  # same initial weights on every rank; DDP also broadcasts rank 0's
    show = progress and ddp.main

    # -- data ---------------------------------------------------------------------------------------------------------
    train_set, val_set = build_datasets(cfg)
    data = data_description(cfg, train_set, val_set, loader_workers(cfg.workers))  # reads STANDIN.json: fail early
    train_loader = training_loader(cfg, train_set, device, ddp.rank, ddp.world_size)
    steps_per_epoch = train_loader.batch_sampler.batches_per_epoch
    val_loader = DataLoader(val_set, batch_size=cfg.batch_size if cfg.val_mode == "square" else 1,
                            num_workers=loader_workers(cfg.workers))
    if steps_per_epoch == 0:
        raise ConfigError(f"batch_size={cfg.batch_size} x {ddp.world_size} process(es) is larger than the "
                          f"{len(train_set)} training images")

    # -- models, objective, optimizers -------------------------------------------------------------------------------
    student = deeplabv3plus(cfg.backbone, cfg.num_classes, cfg.output_stride, cfg.backbone_weights)
    teacher = load_teacher(cfg, device, teacher_state) if cfg.distills else None
    del teacher_state  # its tensors now live in the teacher
    step = build_step(cfg, student, teacher, device, max_iter=cfg.epochs * steps_per_epoch,
                      warmup_iters=cfg.connector_warmup_epochs * steps_per_epoch, world_size=ddp.world_size)
    timer = StepTimer(device)

    # -- resume -------------------------------------------------------------------------------------------------------
    done = Progress(history=[], started=now())
    if resume and ckpt_path.is_file():
        done = restore_state(ckpt_path, cfg, step, timer, device, teacher_sha)
        if ddp.main:
            repair_best(run_dir, cfg, done, student)
    elif resume and show:
        tqdm.write(f"no checkpoint at {ckpt_path}: starting from scratch")
    wall_before, t_start = done.wall_s, time.perf_counter()

    # -- epochs -------------------------------------------------------------------------------------------------------
    iteration = done.epoch * steps_per_epoch
    train_loader.batch_sampler.start_epoch = done.epoch
    batches = iter(train_loader)  # one iterator for every remaining epoch (see training_loader)
    for epoch in range(done.epoch, cfg.epochs):
        step.student_net.train()
        warmup = iteration < step.warmup_iters
        sums: dict[str, float] = defaultdict(float)
        stage = " (connectors only)" if warmup else ""
        bar = tqdm(total=steps_per_epoch, desc=f"{cfg.name} epoch {epoch + 1}/{cfg.epochs}{stage}", disable=not show,
                   leave=False)
        epoch_start, lr = time.perf_counter(), step.lr_at(iteration)
        for _ in range(steps_per_epoch):
            with timer.part("data"):
                images, target = next(batches)
                images = images.to(device, non_blocking=True, memory_format=step.memory_format)
                target = target.to(device, non_blocking=True)
            loss, seg, terms = optimisation_step(step, images, target, iteration, timer)
            # the warm-up's steps are not the method's steps; the first ones after it pay for allocation again
            timer.end_iteration(iteration - step.warmup_iters, counted=not warmup)
            iteration += 1
            values = {"loss": loss.item(), "seg": seg.item(), **{k: v.item() for k, v in terms.items()}}
            check_finite(values, cfg, iteration, epoch, ckpt_path)
            for k, v in values.items():
                sums[k] += v
            bar.update()
            rate = bar.n * cfg.batch_size * ddp.world_size / (time.perf_counter() - epoch_start)
            bar.set_postfix({k: f"{v:.3g}" for k, v in values.items()} | {"img/s": f"{rate:.1f}"})
        bar.close()

        entry = {"epoch": epoch + 1, "iterations": steps_per_epoch, "lr": lr, "warmup": warmup,
                 "loss": {k: v / steps_per_epoch for k, v in sums.items()}, "time_s": time.perf_counter() - epoch_start}
        improved = False
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            if ddp.main:
                metrics = evaluate(student, val_loader, device, cfg.num_classes, step.amp_dtype, show)
                entry.update(miou=metrics["miou"], pixel_acc=metrics["pixel_acc"], metrics=metrics)
                if metrics["miou"] > done.best_miou:  # a NaN mIoU never improves
                    done.best_miou, done.best_epoch, improved = metrics["miou"], epoch + 1, True
            if ddp.world_size > 1:
                dist.barrier()
        done.history.append(entry)
        if show:
            miou = f", mIoU {entry['miou']:.4f}" if "miou" in entry else ""
            tqdm.write(f"{cfg.name} epoch {epoch + 1}/{cfg.epochs}{stage}: loss {entry['loss']['loss']:.4f}{miou}")
        done.epoch, done.wall_s = epoch + 1, wall_before + time.perf_counter() - t_start
        if ddp.main:
            save_state(ckpt_path, cfg, step, done, timer, teacher_sha)
            if improved and cfg.model_selection == "best":  # after checkpoint.pt, so a resume can rebuild it
                save_best(run_dir, cfg, epoch + 1, entry["metrics"], student)
            if on_epoch is not None:
                on_epoch(entry, done.wall_s)

    # -- predictions and record ---------------------------------------------------------------------------------------
    selected = selected_result(run_dir, cfg, done) if ddp.main else None
    if ddp.main:  # the reported weights' predictions for the book's figure, before the record
        try:
            save_checkpoint_predictions(selected["checkpoint"] if selected else ckpt_path, val_set, run_dir, device)
        except (OSError, RuntimeError, ValueError) as error:  # a figure is not worth the record of a long run
            warnings.warn(f"{cfg.name}: predictions not saved ({type(error).__name__}: {error}); the record is "
                          f"written anyway, and `paperkd save-predictions {run_dir}` writes them later", stacklevel=1)
    record = build_record(cfg, done, environment, data, timer, student, run_dir, selected, teacher_id)
    if ddp.main:
        write_record(run_dir / RECORD_NAME, record)
    return record


def check_finite(values: dict[str, float], cfg: Config, iteration: int, epoch: int, ckpt_path: Path) -> None:
    """Stop a run whose loss became NaN or infinite, keeping its last complete checkpoint."""
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        name = bad[-1] if len(bad) > 1 else bad[0]
        raise TrainingDiverged(
            f"{cfg.name}: loss term {name} became {values[name]} at iteration {iteration} (epoch {epoch + 1}); "
            f"the last complete checkpoint {ckpt_path} is kept. Lower the learning rate or the distillation weights.")
