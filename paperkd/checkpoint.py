"""Checkpoints: written atomically, loaded with `weights_only=True`, recognisable as paperkd's.

A checkpoint is a dict of tensors and plain Python values (no pickled objects), so that `torch.load(...,
weights_only=True)` can read it without executing code from the file.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from paperkd.atomic import atomic_open
from paperkd.errors import PaperkdError

FORMAT = "paperkd-checkpoint"
VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"  # the last complete epoch, with everything a resume needs
BEST_NAME = "best.pt"  # the best validation epoch's weights (runs whose config selects the best epoch)


def selected_checkpoint(run_dir: str | os.PathLike, cfg: Any) -> Path:
    """The checkpoint whose weights a run reports (and a teacher lends its students): best.pt when the config
    selects the best validation epoch (`Config.model_selection`), else the last epoch's checkpoint.pt."""
    return Path(run_dir) / (BEST_NAME if cfg.model_selection == "best" else CHECKPOINT_NAME)


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Save `state` (tensors and plain values) so that `path` is never half-written."""
    with atomic_open(path, "wb") as f:
        torch.save({"format": FORMAT, "version": VERSION, **state}, f)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu",
                    needs: tuple[str, ...] = ("config", "model")) -> dict[str, Any]:
    """Load a paperkd checkpoint safely. A missing, empty, truncated, garbage or foreign file, one of another format
    version, or one that lacks the entries `needs` gets one `PaperkdError` naming the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise PaperkdError(f"checkpoint not found: {path}")
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as err:
        raise PaperkdError(f"{path}: cannot read this checkpoint ({err.strerror or err})") from None
    if not head:
        raise PaperkdError(f"{path} is empty, not a checkpoint (a run or a copy interrupted before it was written?)")
    if head.lstrip()[:1] in (b"{", b"["):
        raise PaperkdError(f"{path} is a JSON file (a run record?), not a checkpoint; give the checkpoint.pt or "
                           "best.pt beside it")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError, OSError) as err:
        # torch's first sentence only: its advice (e.g. weights_only=False) is not for a broken file
        detail = (str(err).splitlines() or ["no detail"])[0].split(". ")[0][:120]
        raise PaperkdError(f"{path} is not a readable paperkd checkpoint, truncated or not one at all "
                           f"({type(err).__name__}: {detail})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise PaperkdError(f"{path} is not a paperkd checkpoint (it lacks format={FORMAT!r}; a torchvision state "
                           "dict?); give a checkpoint written by `paperkd train`")
    if state.get("version") != VERSION:
        raise PaperkdError(f"{path} is a paperkd checkpoint of format version {state.get('version')!r}; this paperkd "
                           f"reads version {VERSION}")
    missing = [k for k in needs if k not in state]
    if missing:
        raise PaperkdError(f"{path} is a paperkd checkpoint without {', '.join(missing)} (a checkpoint of another "
                           "kind?)")
    return state


def rng_state() -> dict[str, Any]:
    """Every random state a training step draws from (torch CPU and CUDA); the data's order and augmentation are
    reseeded from (seed, epoch) each epoch (train.training_loader), so they need no state here."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
