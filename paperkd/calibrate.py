"""Which weights, really? Each weighted distillation term against the cross-entropy, as the optimizer sees them.

    result = calibrate(["r18-pixel", "r18-pair"], teacher="runs/teacher-s0/best.pt", recipes=["authors", "paper"])
    print(format_calibration(result))

For every preset and recipe, on the first `batches` training batches (the recipe's own augmentation, loader and
batch size), with the student at its initialisation and the trainer's own step parts (`paperkd.step.build_step`:
teacher mode, ASPP dropout, CE reduction, loss readings): each weighted term's value relative to the CE as it enters
the objective, the norm of its gradient on the student's parameters relative to the CE's, and the cosine between
the two gradients (norms and products in float64). Mean over the batches.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from paperkd.atomic import atomic_open
from paperkd.config import RECIPES, resolve
from paperkd.distill import segmentation_loss
from paperkd.errors import ConfigError
from paperkd.models import deeplabv3plus
from paperkd.provenance import teacher_identity
from paperkd.records import run_environment
from paperkd.step import build_step, load_teacher
from paperkd.train import Distributed, build_datasets, pick_device, training_loader

DEFAULT_PRESETS = ("r18-pixel", "r18-pair", "r18-gat", "r18-heo", "r18-pixel-middle", "r18-pair-end")


def _flat_grad(value: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    """d value / d params as one float64 vector (a float32 norm over ~1e7 entries is off by ~0.1 %)."""
    grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten().double() for g, p in zip(grads, params)])


def calibrate_one(preset: str, recipe: str, teacher: str, batches: int, on: torch.device,
                  **settings: Any) -> list[dict[str, Any]]:
    """The rows of one preset under one recipe (one per distillation term), means over `batches` batches, on the
    device `on`; `settings` are Config fields (scale, dataset, data_root, seed, ...)."""
    cfg = resolve(preset, recipe=recipe, teacher=str(teacher), **settings)
    device = on
    if not cfg.distills:
        raise ConfigError(f"preset {preset!r} has no distillation term to calibrate")
    torch.manual_seed(cfg.seed)
    train_set, _ = build_datasets(cfg)
    loader = training_loader(cfg, train_set, device)
    if loader.batch_sampler.batches_per_epoch < batches:
        raise ConfigError(f"{preset}: {batches} batches asked for, the training set gives "
                          f"{loader.batch_sampler.batches_per_epoch} per epoch")
    student = deeplabv3plus(cfg.backbone, cfg.num_classes, cfg.output_stride, cfg.backbone_weights)
    step = build_step(cfg, student, load_teacher(cfg, device), device, max_iter=1)
    step.student_net.train()
    params = [p for p in student.parameters() if p.requires_grad]
    sums: dict[str, dict[str, float]] = {}
    it = iter(loader)
    for _ in range(batches):
        images, target = next(it)
        images, target = images.to(device, memory_format=step.memory_format), target.to(device)
        with torch.no_grad():
            _, t_feats = step.teacher_net(images)
        logits, s_feats = step.student_net(images)
        seg = segmentation_loss(logits, target, step.batch_divisor)
        terms = step.objective(t_feats, s_feats, target)
        g_seg = _flat_grad(seg, params)
        for name, value in terms.items():
            weighted = step.distill.weights[name] * value
            g_term = _flat_grad(weighted, params)
            cosine = torch.nn.functional.cosine_similarity(g_term, g_seg, dim=0).item()
            row = {"value": value.item(), "weighted": weighted.item(), "seg": seg.item(),
                   "value_ratio": weighted.item() / seg.item(),
                   "grad_ratio": (g_term.norm() / g_seg.norm()).item(), "cosine": cosine}
            acc = sums.setdefault(name, dict.fromkeys(row, 0.0))
            for k, v in row.items():
                acc[k] += v / batches
    return [{"preset": preset, "recipe": recipe, "term": name, "weight": step.distill.weights[name],
             "reading": _reading(cfg, name), **values} for name, values in sums.items()]


def _reading(cfg, term: str) -> str:
    """The reading of a term under the config, in a few words."""
    return {"pixel": f"{cfg.pixel_variant} at {cfg.pixel_tap}",
            "pair": f"{cfg.pair_nodes} nodes at {cfg.pair_tap}{', norm detached' if cfg.pair_detach_norm else ''}",
            "gat": f"{cfg.gat_form} at {cfg.gat_tap}", "heo": "as the authors coded it (six taps)"}.get(term, "")


def calibrate(presets: Sequence[str] = DEFAULT_PRESETS, *, teacher: str | Path, recipes: Iterable[str] = RECIPES,
              batches: int = 4, scale: str = "cpu", dataset: str = "standin", data_root: str | None = None,
              device: str = "cpu", seed: int = 0, json_path: str | Path | None = None,
              progress: bool = True) -> dict[str, Any]:
    """Every (recipe, preset) of `calibrate_one`, with what the teacher is and where it ran; written to `json_path`."""
    presets = list(presets) or list(DEFAULT_PRESETS)
    recipes = list(recipes)
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        raise ConfigError(f"unknown recipe {unknown[0]!r}; choose one of: {', '.join(RECIPES)}")
    if batches < 1:
        raise ConfigError(f"batches must be >= 1, got {batches}")
    dev = pick_device(device, Distributed())
    summary = teacher_identity(teacher)  # also checks that the file is a readable checkpoint
    settings = {"scale": scale, "dataset": dataset, "data_root": data_root, "seed": seed, "device": str(dev),
                "workers": 0}
    rows = []
    todo = [(recipe, preset) for recipe in recipes for preset in presets]
    for recipe, preset in tqdm(todo, desc="calibrate", disable=not progress):
        rows += calibrate_one(preset, recipe, str(teacher), batches, dev, **settings)
    result = {"teacher": summary, "scale": scale, "dataset": dataset, "data_root": data_root, "batches": batches,
              "seed": seed, "student": "initialisation (seed above), train mode",
              "environment": run_environment(dev), "rows": rows}
    if json_path:
        with atomic_open(json_path, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
    return result


def format_calibration(result: dict[str, Any]) -> str:
    """A plain-text table of `calibrate`'s rows."""
    t = result["teacher"]
    miou = f", mIoU {100 * t['miou']:.2f}" if t["miou"] is not None else ""
    lines = [f"teacher {t['checkpoint']} ({t['backbone']}, {t['epochs']} epochs, recipe {t['recipe']}{miou}, "
             f"sha256 {t['sha256'][:12]}); "
             f"{result['batches']} batches at scale {result['scale']}, student at initialisation",
             f"{'recipe':<8}{'preset':<18}{'term':<6}{'weight':>8}{'w*term/CE':>11}{'|grad|/|CE grad|':>18}"
             f"{'cosine':>8}  reading"]
    for r in result["rows"]:
        lines.append(f"{r['recipe']:<8}{r['preset']:<18}{r['term']:<6}{r['weight']:>8g}{r['value_ratio']:>11.3g}"
                     f"{r['grad_ratio']:>18.3g}{r['cosine']:>8.2f}  {r['reading']}")
    return "\n".join(lines)


__all__ = ["DEFAULT_PRESETS", "calibrate", "calibrate_one", "format_calibration"]
