"""The student's objective: cross-entropy plus the distillation terms a config switches on, each with its weight.

    L = L_seg + alpha * L_pi + beta * L_pa                      (eq. 9; alpha = 100, beta = 1)
    L = L_seg + lambda * L_GAT                                  (eq. 3; lambda = 1)
    L = L_seg + Heo et al.'s loss as the authors coded it       (Table 2, "Method of [34]")

`Distillation` only maps config to loss functions and tap names; the formulas live in `paperkd.losses`, the term
names, weights and positions in `paperkd.vocabulary.LOSS_TERMS`.
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
from paperkd.vocabulary import ALL_TAPS, IGNORE_INDEX, LOSS_TERMS, PRE_RELU_TAPS

# Heo et al.'s six pre-ReLU taps, as in the authors' segmentation code for ResNets (on MobileNet-V2 their stage taps
# are other layers; see paperkd.models.taps)
HEO_TAPS = PRE_RELU_TAPS


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, batch_divisor: int | None = None) -> torch.Tensor:
    """L_seg: pixel-wise cross-entropy against the ground truth, label 255 ignored, mean over labelled pixels.

    batch_divisor: the authors' `SegmentationLosses(batch_average=True)` then divides that mean by the batch size
    (`Config.seg_batch_average`); None (the paper's text) leaves the plain mean."""
    loss = F.cross_entropy(logits.float(), target, ignore_index=IGNORE_INDEX)
    return loss / batch_divisor if batch_divisor else loss


def term_taps(cfg: Config, term: str) -> list[str]:
    """The tap names one loss term reads (see `LOSS_TERMS`)."""
    position = LOSS_TERMS[term][1]
    if term == "heo" or (term == "gat" and cfg.gat_tap == ALL_TAPS):
        return list(HEO_TAPS)
    if term == "logit_kd":
        return ["logits"]
    return [getattr(cfg, position)]


class Distillation(nn.Module):
    """Distillation terms of one student run. Holds trainable parts (Heo's connectors) so DDP and the optimizer see them.

    `forward(t_feats, s_feats, target)` returns the UNWEIGHTED terms by name; `weights` holds their weights. Feature
    dicts come from `paperkd.models.tap` with the names in `taps` (plus "logits").
    """

    def __init__(self, cfg: Config, teacher: nn.Module, student: nn.Module):
        super().__init__()
        self.cfg = cfg
        self.weights = {term: w for term, w in cfg.weights().items() if w > 0}
        self.term_taps = {term: term_taps(cfg, term) for term in self.weights}
        self.taps = sorted({t for taps in self.term_taps.values() for t in taps})
        self.heo = None
        if "heo" in self.weights:
            self.heo = OverhaulDistillation(
                teacher_bns=[tap_bn(teacher, t) for t in HEO_TAPS],
                student_channels=[tap_channels(student, t) for t in HEO_TAPS],
            )

    def forward(self, t_feats: dict[str, torch.Tensor], s_feats: dict[str, torch.Tensor],
                target: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, taps, terms = self.cfg, self.term_taps, {}
        if "pixel" in self.weights:
            (at,) = taps["pixel"]
            terms["pixel"] = pixelwise_loss(t_feats[at], s_feats[at], variant=cfg.pixel_variant)
        if "pair" in self.weights:
            (at,) = taps["pair"]
            terms["pair"] = pairwise_loss(t_feats[at], s_feats[at], nodes=cfg.pair_nodes,
                                          detach_norm=cfg.pair_detach_norm)
        if "gat" in self.weights:  # summed over its taps (one, or the authors' six)
            terms["gat"] = sum(attention_transfer_loss(t_feats[at], s_feats[at], form=cfg.gat_form)
                               for at in taps["gat"])
        if "heo" in self.weights:
            terms["heo"] = self.heo([t_feats[t] for t in HEO_TAPS], [s_feats[t] for t in HEO_TAPS])
        if "logit_kd" in self.weights:
            terms["logit_kd"] = logit_kd_loss(t_feats["logits"], s_feats["logits"], T=cfg.kd_temperature,
                                              valid=target != IGNORE_INDEX)
        if "cwd" in self.weights:
            (at,) = taps["cwd"]
            terms["cwd"] = channelwise_kd_loss(t_feats[at], s_feats[at], T=cfg.cwd_temperature)
        return terms

    def total(self, seg: torch.Tensor, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """eq. 3 / eq. 9: L_seg plus each term times its weight."""
        return seg + sum(self.weights[name] * value for name, value in terms.items())
