"""Beyond the paper: two response-based distillation losses for dense prediction, for comparison runs.

- `logit_kd_loss`: Hinton et al. 2015 [8], per-pixel soft-label KD over the classes.
- `channelwise_kd_loss`: Shu et al. 2021, "Channel-wise knowledge distillation for dense prediction" (CWD):
  each channel's map becomes a distribution over the spatial positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from paperkd.errors import ConfigError
from paperkd.losses._common import (
    float32_math,
    require_4d,
    require_same_batch,
    resize_to,
    student_input,
    teacher_input,
)


def _require_temperature(T: float) -> None:
    if isinstance(T, bool) or not isinstance(T, (int, float)) or T <= 0:
        raise ConfigError(f"temperature T must be a positive number, got {T!r}")


def _require_same_channels(t: torch.Tensor, s: torch.Tensor) -> None:
    if t.shape[1] != s.shape[1]:
        raise ConfigError(f"teacher and student need equal channel counts, got {t.shape[1]} and {s.shape[1]}")


def logit_kd_loss(
    t_logits: torch.Tensor, s_logits: torch.Tensor, T: float = 1.0, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Hinton et al. 2015 soft-label KD per pixel: KL(softmax(t/T) || softmax(s/T)) over classes, times T^2.

    Reduction: the mean over pixels (B*H*W), or over the pixels where `valid` (bool, (B, H, W) at the teacher's size,
    e.g. `target != 255`) is True; no valid pixel gives 0. The T^2 keeps gradient magnitudes comparable across T.
    Student logits of another spatial size are resized bilinearly to the teacher's. Teacher detached; float32.
    """
    _require_temperature(T)
    require_4d("t_logits", t_logits)
    require_4d("s_logits", s_logits)
    require_same_batch(t_logits, s_logits)
    _require_same_channels(t_logits, s_logits)
    t, s = teacher_input(t_logits), student_input(s_logits)
    with float32_math(t):
        s = resize_to(s, t.shape[-2:])
        log_p_t = F.log_softmax(t / T, dim=1)
        log_p_s = F.log_softmax(s / T, dim=1)
        per_pixel = F.kl_div(log_p_s, log_p_t, reduction="none", log_target=True).sum(dim=1) * (T * T)
        if valid is None:
            return per_pixel.mean()
        if valid.dtype != torch.bool or valid.shape != per_pixel.shape:
            raise ConfigError(f"valid must be a bool tensor of shape {tuple(per_pixel.shape)}, "
                              f"got {valid.dtype} {tuple(valid.shape)}")
        return per_pixel[valid].sum() / valid.sum().clamp(min=1)


def channelwise_kd_loss(t: torch.Tensor, s: torch.Tensor, T: float = 4.0) -> torch.Tensor:
    """Shu et al. 2021 channel-wise KD: per channel, softmax over the H*W positions of x/T; KL(teacher || student)
    summed over positions, times T^2, then divided by B*C (the mean over channels and images).

    Works on logits or features with equal channel counts (CWD's 1x1 alignment conv for unequal counts is not
    part of this function). Student of another spatial size is resized bilinearly first. Teacher detached; float32.
    """
    _require_temperature(T)
    require_4d("t", t)
    require_4d("s", s)
    require_same_batch(t, s)
    _require_same_channels(t, s)
    t_in, s_in = teacher_input(t), student_input(s)
    with float32_math(t_in):
        s_in = resize_to(s_in, t_in.shape[-2:])
        log_p_t = F.log_softmax(t_in.flatten(2) / T, dim=2)
        log_p_s = F.log_softmax(s_in.flatten(2) / T, dim=2)
        total = F.kl_div(log_p_s, log_p_t, reduction="sum", log_target=True) * (T * T)
        return total / (t_in.shape[0] * t_in.shape[1])
