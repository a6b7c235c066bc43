"""One optimisation step and everything it needs, shared by the trainer and the benchmark.

    step = build_step(cfg, student, teacher, device, max_iter=..., warmup_iters=...)
    loss, seg, terms = optimisation_step(step, images, target, iteration, timer)

`build_step` turns a config and its models into the parts of a step: the tapped networks, the objective (eq. 3 / 9,
with Heo's connectors), the SGD optimizer over the backbone (lr) and the head and connectors (head_lr_mult x lr), the
connectors-only warm-up optimizer of the authors' trainer, the poly schedule and the gradient scaler.
`optimisation_step` runs one iteration, each part timed on a `StepTimer`.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from paperkd.checkpoint import load_checkpoint
from paperkd.config import Config, from_dict
from paperkd.distill import Distillation, segmentation_loss
from paperkd.errors import ConfigError, PaperkdError
from paperkd.models import deeplabv3plus, tap, without_aspp_dropout
from paperkd.vocabulary import TIMED_PARTS

WARMUP_ITERATIONS = 3  # left out of the timing means: first iterations pay for allocation and lazy initialisation
AMP_TORCH_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


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

    def end_iteration(self, iteration: int, counted: bool = True) -> None:
        """Close an iteration; it enters the means unless it is among the first ones or `counted` is False."""
        if counted and iteration >= WARMUP_ITERATIONS:
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


def load_teacher(cfg: Config, device: torch.device, state: dict[str, Any] | None = None) -> nn.Module:
    """The trained teacher from its checkpoint (`state`: already loaded), frozen; eval mode unless
    `cfg.teacher_train_mode` (the authors')."""
    state = load_checkpoint(cfg.teacher) if state is None else state
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


class PolySchedule:
    """lr = base_lr * (1 - iteration / max_iter) ** power for every group, set before each step from the global
    iteration (as the reference code base's LR_Scheduler does), so it needs no state of its own and covers the
    warm-up optimizer and the main one with one count."""

    def __init__(self, max_iter: int, power: float):
        self.max_iter, self.power = max_iter, power

    def factor(self, iteration: int) -> float:
        return max(0.0, 1 - iteration / self.max_iter) ** self.power

    def apply(self, optimizer: torch.optim.Optimizer, iteration: int) -> None:
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * self.factor(iteration)


def sgd(groups: list[dict[str, Any]], cfg: Config) -> torch.optim.SGD:
    """SGD with the config's momentum and weight decay (BN included); each group remembers its base lr."""
    optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    for group in optimizer.param_groups:
        group["initial_lr"] = group["lr"]
    return optimizer


def memory_format_of(cfg: Config) -> torch.memory_format:
    """channels_last when the config asks for it (models, connectors and inputs alike), else contiguous."""
    return torch.channels_last if cfg.channels_last else torch.contiguous_format


@dataclass
class Step:
    """The parts of one optimisation step (see `build_step`)."""

    cfg: Config
    student: nn.Module  # the bare model (save its state_dict)
    student_net: nn.Module  # tapped, maybe DDP-wrapped
    teacher_net: nn.Module | None
    objective: nn.Module | None  # Distillation, maybe DDP-wrapped
    distill: Distillation | None  # the bare objective
    optimizer: torch.optim.Optimizer
    warmup_optimizer: torch.optim.Optimizer | None  # connectors only, for the first warmup_iters
    warmup_iters: int
    schedule: PolySchedule
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    memory_format: torch.memory_format
    batch_divisor: int | None  # the authors' CE is divided by the (global) batch size

    @property
    def taps(self) -> list[str]:
        return self.distill.taps if self.distill is not None else []

    @staticmethod
    def connectors_of(distill: Distillation | None) -> bool:
        """Whether an objective has trainable parts of its own (Heo's connectors)."""
        return distill is not None and any(p.requires_grad for p in distill.parameters())

    @property
    def has_connectors(self) -> bool:
        return self.connectors_of(self.distill)

    def optimizer_at(self, iteration: int) -> torch.optim.Optimizer | None:
        """The optimizer that steps at `iteration`: the warm-up one (None when there is nothing to warm up: the
        student is then not updated at all, as in the authors' trainer) during the warm-up, else the main one."""
        if iteration < self.warmup_iters:
            return self.warmup_optimizer
        return self.optimizer

    def lr_at(self, iteration: int) -> float:
        """The base (backbone) lr in effect at `iteration`."""
        return self.cfg.lr * self.schedule.factor(iteration)


def build_step(cfg: Config, student: nn.Module, teacher: nn.Module | None, device: torch.device, *, max_iter: int,
               warmup_iters: int = 0, world_size: int = 1, tap_teacher: bool = True) -> Step:
    """The parts of a step for `cfg`: `student` (fresh) and `teacher` (frozen, or None for a plain run) go to
    `device`; under `cfg.distill_without_aspp_dropout` both lose the ASPP dropout when the run distils.
    `tap_teacher=False` leaves `teacher_net` None for a caller that taps its own copy of the teacher."""
    memory_format = memory_format_of(cfg)
    distill = None
    if teacher is not None:
        if cfg.distill_without_aspp_dropout:
            without_aspp_dropout(student)
            without_aspp_dropout(teacher)
        # Heo's connectors take the students' memory format: they see the layout of the features they map.
        distill = Distillation(cfg, teacher, student).to(device, memory_format=memory_format)
    student.to(device, memory_format=memory_format)
    taps = distill.taps if distill is not None else []
    student_net: nn.Module = tap(student, taps)
    teacher_net = None
    if teacher is not None and tap_teacher:
        teacher_net = tap(teacher.to(device, memory_format=memory_format), taps)
    has_connectors = Step.connectors_of(distill)
    objective: nn.Module | None = distill
    if world_size > 1:
        ids = [device.index] if device.type == "cuda" else None
        student_net = DistributedDataParallel(student_net, device_ids=ids)
        if has_connectors:
            objective = DistributedDataParallel(distill, device_ids=ids)
    optimizer = sgd(param_groups(student, distill if has_connectors else None, cfg), cfg)
    # The authors' warm-up optimizer holds the connectors alone; their scheduler gives its one group the base lr.
    warmup_optimizer = sgd([{"params": list(distill.parameters()), "lr": cfg.lr}], cfg) if has_connectors else None
    amp_dtype = AMP_TORCH_DTYPES[cfg.amp_dtype] if cfg.amp else None
    return Step(cfg=cfg, student=student, student_net=student_net, teacher_net=teacher_net, objective=objective,
                distill=distill, optimizer=optimizer, warmup_optimizer=warmup_optimizer,
                warmup_iters=warmup_iters if distill is not None else 0,
                schedule=PolySchedule(max_iter, cfg.poly_power),
                scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16), amp_dtype=amp_dtype,
                memory_format=memory_format,
                batch_divisor=cfg.batch_size * world_size if cfg.seg_batch_average else None)


def optimisation_step(step: Step, images: torch.Tensor, target: torch.Tensor, iteration: int, timer: StepTimer,
                      teacher_context: Callable[[], Any] = torch.no_grad) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """One iteration once the batch is on the device: teacher forward without autograd, student forward with the
    taps, the losses (eq. 3 / 9), backward and SGD step at the poly lr of `iteration`. Each part is timed on `timer`.
    Returns (total loss, L_seg as it enters the objective, unweighted distillation terms)."""
    optimizer = step.optimizer_at(iteration)
    with torch.autocast(images.device.type, dtype=step.amp_dtype or torch.float32, enabled=step.amp_dtype is not None):
        t_feats = {}
        if step.teacher_net is not None:
            with timer.part("teacher_forward"), teacher_context():
                _, t_feats = step.teacher_net(images)
        with timer.part("student_forward"):
            logits, s_feats = step.student_net(images)
        with timer.part("losses"):
            seg = segmentation_loss(logits, target, step.batch_divisor)
            terms = step.objective(t_feats, s_feats, target) if step.objective is not None else {}
            loss = step.distill.total(seg, terms) if step.distill is not None else seg
    with timer.part("backward_step"):
        if optimizer is not None:  # None: a warm-up with nothing to train
            step.schedule.apply(optimizer, iteration)
            optimizer.zero_grad(set_to_none=True)
            step.scaler.scale(loss).backward()
            step.scaler.step(optimizer)
            step.scaler.update()
    return loss, seg, terms


def optimizer_states(step: Step) -> dict[str, Any]:
    """The optimizers' states for a checkpoint."""
    return {"optimizer": step.optimizer.state_dict(), "scaler": step.scaler.state_dict(),
            "warmup_optimizer": step.warmup_optimizer.state_dict() if step.warmup_optimizer is not None else None}


def load_optimizer_states(step: Step, state: dict[str, Any]) -> None:
    """Restore what `optimizer_states` saved."""
    step.optimizer.load_state_dict(state["optimizer"])
    step.scaler.load_state_dict(state["scaler"])
    if step.warmup_optimizer is not None and state.get("warmup_optimizer"):
        step.warmup_optimizer.load_state_dict(state["warmup_optimizer"])
