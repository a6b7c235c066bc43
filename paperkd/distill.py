"""The student's objective: cross-entropy plus the distillation terms a config switches on, each with its weight.

    L = L_seg + alpha * L_pi + beta * L_pa                      (eq. 9; alpha = 100, beta = 1)
    L = L_seg + lambda * L_GAT                                  (eq. 3; lambda = 1)
    L = L_seg + Heo et al.'s loss as the authors coded it       (Table 2, "Method of [34]")

`Distillation` only maps config to loss functions and tap names; the formulas live in `paperkd.losses`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from paperkd.config import Config
from paperkd.losses import (
    OverhaulDistillation,
    attention_transfer_loss,
    channelwise_kd_loss,
    logit_kd_loss,
    pairwise_loss,
    pixelwise_loss,
)
from paperkd.models import tap_bn, tap_channels

IGNORE_INDEX = 255
# Heo et al.'s six pre-ReLU taps, as in the authors' segmentation code: four backbone stages, ASPP, decoder.
HEO_TAPS = ("stage1", "stage2", "stage3", "stage4", "encoder", "decoder")


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_seg: pixel-wise cross-entropy against the ground truth, label 255 ignored, mean over labelled pixels."""
    return F.cross_entropy(logits.float(), target, ignore_index=IGNORE_INDEX)


class Distillation(nn.Module):
    """Distillation terms of one student run. Holds trainable parts (Heo's connectors) so DDP and the optimizer see them.

    `forward(t_feats, s_feats, target)` returns the UNWEIGHTED terms by name; `weights` holds their weights. Feature
    dicts come from `paperkd.models.tap` with the names in `taps` (plus "logits").
    """

    def __init__(self, cfg: Config, teacher: nn.Module, student: nn.Module):
        super().__init__()
        self.cfg = cfg
        self.weights = {name: w for name, w in (("pixel", cfg.pixel), ("pair", cfg.pair), ("gat", cfg.gat),
                                                ("heo", cfg.heo), ("logit_kd", cfg.logit_kd), ("cwd", cfg.cwd))
                        if w > 0}
        taps = {"pixel": [cfg.pixel_tap], "pair": [cfg.pair_tap], "gat": [cfg.gat_tap], "heo": list(HEO_TAPS),
                "logit_kd": ["logits"], "cwd": [cfg.cwd_tap]}
        self.taps = sorted({t for name in self.weights for t in taps[name]})
        self.heo = None
        if "heo" in self.weights:
            self.heo = OverhaulDistillation(
                teacher_bns=[tap_bn(teacher, t) for t in HEO_TAPS],
                student_channels=[tap_channels(student, t) for t in HEO_TAPS],
            )

    def forward(self, t_feats: dict[str, torch.Tensor], s_feats: dict[str, torch.Tensor],
                target: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, terms = self.cfg, {}
        if "pixel" in self.weights:
            terms["pixel"] = pixelwise_loss(t_feats[cfg.pixel_tap], s_feats[cfg.pixel_tap], variant=cfg.pixel_variant)
        if "pair" in self.weights:
            terms["pair"] = pairwise_loss(t_feats[cfg.pair_tap], s_feats[cfg.pair_tap], nodes=cfg.pair_nodes)
        if "gat" in self.weights:
            terms["gat"] = attention_transfer_loss(t_feats[cfg.gat_tap], s_feats[cfg.gat_tap])
        if "heo" in self.weights:
            terms["heo"] = self.heo([t_feats[t] for t in HEO_TAPS], [s_feats[t] for t in HEO_TAPS])
        if "logit_kd" in self.weights:
            terms["logit_kd"] = logit_kd_loss(t_feats["logits"], s_feats["logits"], T=cfg.kd_temperature,
                                              valid=target != IGNORE_INDEX)
        if "cwd" in self.weights:
            terms["cwd"] = channelwise_kd_loss(t_feats[cfg.cwd_tap], s_feats[cfg.cwd_tap], T=cfg.cwd_temperature)
        return terms

    def total(self, seg: torch.Tensor, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """eq. 3 / eq. 9: L_seg plus each term times its weight."""
        return seg + sum(self.weights[name] * value for name, value in terms.items())
