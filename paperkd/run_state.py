"""What a run leaves on disk besides its weights: the resumable state in every checkpoint, and the record.

    save_state(path, cfg, step, progress, timer)      every epoch (atomic)
    progress = restore_state(path, cfg, step, timer)  on resume; refuses a checkpoint of another config
    record = build_record(cfg, progress, ...)         once, at the end (`paperkd.records` writes and reads it)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from paperkd.checkpoint import CHECKPOINT_NAME, load_checkpoint, rng_state, save_checkpoint, selected_checkpoint, \
    set_rng_state
from paperkd.config import Config
from paperkd.data.standin import standin_info
from paperkd.errors import ConfigError
from paperkd.models import parameter_counts
from paperkd.records import now
from paperkd.step import Step, StepTimer, load_optimizer_states, optimizer_states

# Config fields that may change when a run is resumed (they do not change what is computed).
RESUMABLE_CHANGES = {"device", "workers", "out", "eval_every"}


@dataclass
class Progress:
    """What a run has done so far, saved in every checkpoint: epochs, their entries, the best epoch, wall time."""

    epoch: int = 0
    history: list | None = None
    best_miou: float = -1.0
    best_epoch: int | None = None
    started: str = ""
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "history": self.history, "best_miou": self.best_miou,
                "best_epoch": self.best_epoch, "started": self.started, "wall_s": self.wall_s}


def save_state(path: Path, cfg: Config, step: Step, progress: Progress, timer: StepTimer) -> None:
    """Everything a resumed run needs, written atomically."""
    save_checkpoint(path, {
        "config": cfg.to_dict(), **progress.to_dict(), "model": step.student.state_dict(),
        "distill": step.distill.state_dict() if step.has_connectors else {}, **optimizer_states(step),
        "rng": rng_state(), "timer": timer.state(),
    })


def restore_state(path: Path, cfg: Config, step: Step, timer: StepTimer, device: torch.device) -> Progress:
    """Load `save_state`'s checkpoint into `step` and `timer`; refuse one written with a different config."""
    state = load_checkpoint(path, map_location=device)
    changed = {k for k, v in state["config"].items() if cfg.to_dict().get(k) != v} - RESUMABLE_CHANGES
    missing = {k for k in cfg.to_dict() if k not in state["config"]} - RESUMABLE_CHANGES
    if changed or missing:
        raise ConfigError(f"cannot resume {path} with a different config: "
                          f"{', '.join(sorted(changed | missing))} changed; resume with the same options or start "
                          "a new run (--run-name)")
    step.student.load_state_dict(state["model"])
    if step.has_connectors:
        step.distill.load_state_dict(state["distill"])
    load_optimizer_states(step, state)
    timer.load(state["timer"])
    set_rng_state(state["rng"])
    return Progress(state["epoch"], state["history"], state["best_miou"], state.get("best_epoch"), state["started"],
                    state["wall_s"])


def build_record(cfg: Config, progress: Progress, environment: dict[str, Any], data: dict[str, Any],
                 timer: StepTimer, student: torch.nn.Module, run_dir: Path, selected_metrics: dict | None,
                 final_metrics: dict | None) -> dict[str, Any]:
    """The run record (`paperkd.records`): config and recipe, environment, per-epoch entries, the final and the
    selected (reported) epoch's metrics, timing, parameters."""
    history = [{k: v for k, v in entry.items() if k != "metrics"} for entry in progress.history]
    selected_epoch = progress.best_epoch if cfg.model_selection == "best" else cfg.epochs
    return {
        "schema": 1, "run_name": cfg.name, "preset": cfg.preset, "seed": cfg.seed, "config": cfg.to_dict(),
        "recipe": cfg.recipe, "recipe_deviations": cfg.recipe_deviations(), "environment": environment,
        "data": data, "epochs": history, "final": final_metrics, "best_miou": progress.best_miou,
        "selected": ({"rule": cfg.model_selection, "epoch": selected_epoch,
                      "checkpoint": str(selected_checkpoint(run_dir, cfg)), **selected_metrics}
                     if selected_metrics else None),
        "timing_ms": timer.means_ms(), "params": parameter_counts(student), "started": progress.started,
        "finished": now(), "wall_s": progress.wall_s, "checkpoint": str(run_dir / CHECKPOINT_NAME),
    }


def data_description(cfg: Config, train_set: Dataset, val_set: Dataset, workers: int) -> dict[str, Any]:
    """What a record says about its data (a stand-in names how it was made, from its STANDIN.json)."""
    return {"root": str(cfg.data_root) if cfg.data_root else "embedded procedural stand-in",
            "train_images": len(train_set), "val_images": len(val_set), "workers": workers,
            "standin": cfg.dataset == "standin",
            "standin_info": standin_info(cfg.data_root) if cfg.dataset == "standin" and cfg.data_root else None}
