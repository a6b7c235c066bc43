"""What a run leaves on disk besides its weights: the resumable state in every checkpoint, and the record.

    save_state(path, cfg, step, progress, timer, teacher_sha)      every epoch (atomic); then save_best if best
    progress = restore_state(path, cfg, step, timer, teacher_sha)  on resume (then repair_best); refuses another
                                                                   config's checkpoint, or another teacher's
    record = build_record(cfg, progress, ...)                      once, at the end (`paperkd.records` writes it)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from paperkd.checkpoint import BEST_NAME, CHECKPOINT_NAME, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from paperkd.config import Config
from paperkd.data.standin import standin_info
from paperkd.errors import ConfigError, PaperkdError
from paperkd.models import parameter_counts
from paperkd.provenance import sha256_of
from paperkd.records import now
from paperkd.step import Step, StepTimer, load_optimizer_states, optimizer_states

# Config fields that may change when a run is resumed (they do not change what is computed).
RESUMABLE_CHANGES = {"device", "workers", "out", "eval_every", "allow_any_teacher"}


@dataclass
class Progress:
    """What a run has done so far, saved in every checkpoint: epochs, their entries, the best epoch, wall time."""

    epoch: int = 0
    history: list | None = None
    best_miou: float = -1.0
    best_epoch: int | None = None
    started: str = ""
    wall_s: float = 0.0

    @property
    def final_metrics(self) -> dict[str, Any] | None:
        """The metrics of the last epoch run (None before any)."""
        return self.history[-1].get("metrics") if self.history else None

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "history": self.history, "best_miou": self.best_miou,
                "best_epoch": self.best_epoch, "started": self.started, "wall_s": self.wall_s}


def save_state(path: Path, cfg: Config, step: Step, progress: Progress, timer: StepTimer,
               teacher_sha: str | None) -> None:
    """Everything a resumed run needs, written atomically; `teacher_sha`: the SHA-256 of the teacher it distils from."""
    save_checkpoint(path, {
        "config": cfg.to_dict(), **progress.to_dict(), "model": step.student.state_dict(),
        "distill": step.distill.state_dict() if step.has_connectors else {}, **optimizer_states(step),
        "rng": rng_state(), "timer": timer.state(), "teacher_sha256": teacher_sha,
    })


STATE_KEYS = ("config", "model", "distill", "optimizer", "scaler", "rng", "timer", "epoch", "history", "best_miou",
              "started", "wall_s")


def restore_state(path: Path, cfg: Config, step: Step, timer: StepTimer, device: torch.device,
                  teacher_sha: str | None) -> Progress:
    """Load `save_state`'s checkpoint into `step` and `timer`; refuse one written with a different config, one whose
    epochs distilled from another teacher than the one at the same path now (`teacher_sha`), or one that is not a
    resumable checkpoint (a best.pt copied over it, weights of another model), in one line."""
    state = load_checkpoint(path, map_location=device, needs=STATE_KEYS)
    resumable = RESUMABLE_CHANGES - ({"eval_every"} if cfg.model_selection == "best" else set())  # it picks epochs
    changed = {k for k, v in state["config"].items() if cfg.to_dict().get(k) != v} - resumable
    missing = {k for k in cfg.to_dict() if k not in state["config"]} - resumable
    if changed or missing:
        raise ConfigError(f"cannot resume {path} with a different config: "
                          f"{', '.join(sorted(changed | missing))} changed; resume with the same options or start "
                          "a new run (--run-name)")
    # the same config names the same teacher path; its bytes may have changed since (a teacher retrained there)
    before = state.get("teacher_sha256")  # absent from checkpoints written before it was kept: nothing to compare
    if before is not None and before != teacher_sha:
        raise ConfigError(f"cannot resume {path}: its {state['epoch']} epoch(s) distilled from a teacher with SHA-256 "
                          f"{before[:12]}…, and {cfg.teacher} is now {teacher_sha[:12]}… (retrained or replaced); "
                          f"delete {path.parent} to train the run again against it")
    try:
        step.student.load_state_dict(state["model"])
        if step.has_connectors:
            step.distill.load_state_dict(state["distill"])
        load_optimizer_states(step, state)
    except (RuntimeError, ValueError, KeyError) as err:
        raise PaperkdError(f"{path} does not fit this run ({type(err).__name__}: "
                           f"{str(err).splitlines()[0] if str(err) else 'no detail'})") from None
    timer.load(state["timer"])
    set_rng_state(state["rng"])
    return Progress(state["epoch"], state["history"], state["best_miou"], state.get("best_epoch"), state["started"],
                    state["wall_s"])


def save_best(run_dir: Path, cfg: Config, epoch: int, metrics: dict[str, Any], model: torch.nn.Module) -> None:
    """best.pt: the weights of the best validation epoch so far, with its epoch and metrics (atomic)."""
    save_checkpoint(run_dir / BEST_NAME, {"config": cfg.to_dict(), "epoch": epoch, "miou": metrics["miou"],
                                          "metrics": metrics, "model": model.state_dict()})


def repair_best(run_dir: Path, cfg: Config, progress: Progress, model: torch.nn.Module) -> None:
    """After a resume: make best.pt the epoch the checkpoint calls best. best.pt is written right after
    checkpoint.pt, so a run killed between the two has a checkpoint whose best epoch is its own last epoch and an
    older (or no) best.pt: rebuilt here from the checkpoint's weights, which are that epoch's."""
    if cfg.model_selection != "best" or progress.best_epoch is None:
        return
    path = run_dir / BEST_NAME
    best_epoch = load_checkpoint(path, needs=("model", "epoch"))["epoch"] if path.is_file() else None
    if best_epoch == progress.best_epoch:
        return
    if progress.best_epoch != progress.epoch:
        raise PaperkdError(f"{path} holds epoch {best_epoch}, but {run_dir / CHECKPOINT_NAME} says the best epoch is "
                           f"{progress.best_epoch}; delete the run folder to train it again")
    save_best(run_dir, cfg, progress.epoch, progress.history[progress.epoch - 1]["metrics"], model)


def selected_result(run_dir: Path, cfg: Config, progress: Progress) -> dict[str, Any] | None:
    """The epoch a run reports, as `record["selected"]`: rule, epoch, checkpoint, its SHA-256 and metrics. Under
    model_selection="best" they are read from best.pt itself; with no epoch scored (NaN mIoU) or "last", the last."""
    if cfg.model_selection == "best" and progress.best_epoch is not None:
        path = run_dir / BEST_NAME
        best = load_checkpoint(path, needs=("model", "epoch", "metrics"))
        rule, epoch, metrics = "best", best["epoch"], best["metrics"]
    else:
        path, rule, epoch, metrics = run_dir / CHECKPOINT_NAME, "last", progress.epoch, progress.final_metrics
    if metrics is None:
        return None
    return {"rule": rule, "epoch": epoch, "checkpoint": str(path), "sha256": sha256_of(path), **metrics}


def build_record(cfg: Config, progress: Progress, environment: dict[str, Any], data: dict[str, Any],
                 timer: StepTimer, student: torch.nn.Module, run_dir: Path, selected: dict[str, Any] | None,
                 teacher: dict[str, Any] | None) -> dict[str, Any]:
    """The run record (`paperkd.records`): config and recipe, environment, data, per-epoch entries, the last
    epoch's metrics (`final`) and the reported one's (`selected`, see `selected_result`), the identity of the
    teacher it distilled from (`paperkd.provenance.teacher_identity`), timing, parameters."""
    history = [{k: v for k, v in entry.items() if k != "metrics"} for entry in progress.history]
    return {
        "schema": 1, "run_name": cfg.name, "preset": cfg.preset, "seed": cfg.seed, "config": cfg.to_dict(),
        "recipe": cfg.recipe, "recipe_deviations": cfg.recipe_deviations(), "environment": environment,
        "data": data, "epochs": history, "final": progress.final_metrics, "best_miou": progress.best_miou, "selected": selected,
        "teacher": teacher, "timing_ms": timer.means_ms(), "params": parameter_counts(student),
        "started": progress.started, "finished": now(), "wall_s": progress.wall_s,
        "checkpoint": str(run_dir / CHECKPOINT_NAME),
    }


def data_description(cfg: Config, train_set: Dataset, val_set: Dataset, workers: int) -> dict[str, Any]:
    """What a record says about its data (a stand-in names how it was made, from its STANDIN.json)."""
    return {"root": str(cfg.data_root) if cfg.data_root else "embedded procedural stand-in",
            "train_images": len(train_set), "val_images": len(val_set), "workers": workers,
            "standin": cfg.dataset == "standin",
            "standin_info": standin_info(cfg.data_root) if cfg.dataset == "standin" and cfg.data_root else None}
