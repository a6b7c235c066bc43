"""Pixel-wise distillation: the partial L2 distance (eq. 4, from Heo et al. [34]) and the pixel-wise loss (eq. 5).

Reduction, decided here because the paper is silent: eq. 4 is a SUM over elements; the pixel-wise loss uses its MEAN
over the B*H*W map elements (= the sum divided by the number of elements). Reasons: the paper's weight alpha = 100
(eq. 9) then means the same thing at both positions it compares (MIDDLE 33x33 and END 129x129 maps differ 16x in
element count, a plain sum would change the loss scale 16x with the position) and for any batch size or crop; and
the authors' code, whose alpha = 100 the paper reports, also takes a plain mean. Heo's baseline keeps its own
reduction (sum over elements, divided by the batch size and the per-layer divisors) via `reduction="sum"`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from paperkd.errors import ConfigError
from paperkd.losses._common import (
    float32_math,
    require_4d,
    require_choice,
    require_same_batch,
    resize_to,
    student_input,
    teacher_input,
)
from paperkd.losses.attention import authors_attention_distance, gam
from paperkd.vocabulary import PIXELWISE_VARIANTS

REDUCTIONS = ("mean", "sum", "batchmean")


def partial_l2(teacher: torch.Tensor, student: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Partial L2 distance, eq. 4: per element 0 if student <= teacher <= 0, else (teacher - student)^2.

    Where the teacher response is non-positive (it would be cut by the ReLU after it) a student that is at least as
    negative is not penalised; everywhere else it is plain squared error. Teacher and student have the same shape.

    reduction: "mean" (default, the pixel-wise loss's choice, see the module docstring) = sum / number of elements;
    "sum" = the literal sum of eq. 4 (Heo's per-layer term); "batchmean" = sum / batch size (dim 0).
    The teacher is detached; float32 inside, also under autocast.
    """
    require_choice("reduction", reduction, REDUCTIONS)
    if teacher.shape != student.shape:
        raise ConfigError(f"partial_l2 needs equal shapes, got teacher {tuple(teacher.shape)} "
                          f"and student {tuple(student.shape)}")
    t, s = teacher_input(teacher), student_input(student)
    with float32_math(t):
        # Penalised where NOT (s <= t <= 0), i.e. where t > 0 or s > t. Multiplying by the mask is cheaper than
        # masked_fill (no copy) and gives the same value and gradient (the benchmark showed ~2x for Heo's six taps).
        diff = s - t
        squared = diff * diff * ((t > 0) | (diff.detach() > 0))
        if reduction == "mean":
            return squared.mean()
        total = squared.sum()
        return total if reduction == "sum" else total / t.shape[0]


def pixelwise_loss(t_feat: torch.Tensor, s_feat: torch.Tensor, variant: str = "paper") -> torch.Tensor:
    """Pixel-wise distillation loss, eq. 5: L_pi = d_p(GAM_{p=1}(t), GAM_{p=1}(s)), a scalar.

    variant="paper" (default): the text's formula. Both features are reduced to their signed channel sums
    (gam(., p=1), eq. 1), then compared by `partial_l2` with reduction "mean" (mean over the B*H*W map elements).
    It is used with alpha = 100 (eq. 9). Channel counts may differ (the sum removes them).

    variant="paper-mean": the same formula with GAM computed as [37]'s code computes attention maps, the channel
    MEAN instead of the sum (still signed, p = 1): exactly "paper" divided by C_t * C_s (C_t = C_s = 256 at both
    positions), since the partial L2 is homogeneous of degree 2 and its zero region depends only on signs and order.
    Why it exists: at alpha = 100 the literal sum over 256 channels dwarfs the cross-entropy and training diverges;
    the mean does not diverge, but still swamps the cross-entropy (book: paper vs code).

    variant="paper-normalised": the nearest reading of the text that trains (the `paper` recipe's): eq. 4-5 on the
    signed channel sums (p = 1, signs kept, partial L2, mean reduction), each map first divided by its per-image L2
    norm, the normalisation the paper's own eq. 2 applies to its attention maps (`unit_per_image`). It keeps every
    part of the text and adds only that scale.

    variant="authors": what the authors' public code does instead (paper.md), `attention.authors_attention_distance`:
    channel mean of A^2 (p = 2, sign lost), column-normalised, plain mean squared difference; weight 100 there too.
    The `authors` recipe's reading.

    Spatial sizes: when they differ the student's MAP (after the channel reduction, before any normalisation) is
    resized bilinearly to the teacher's size. For "paper" this equals resizing the feature first, because both the
    signed channel sum and bilinear interpolation are linear. The teacher is detached; float32 inside.
    """
    require_choice("variant", variant, PIXELWISE_VARIANTS)
    require_4d("t_feat", t_feat)
    require_4d("s_feat", s_feat)
    require_same_batch(t_feat, s_feat)
    t, s = teacher_input(t_feat), student_input(s_feat)
    with float32_math(t):
        if variant in ("paper", "paper-mean"):
            g_t, g_s = gam(t, 1), gam(s, 1)
            if variant == "paper-mean":
                g_t, g_s = g_t / t.shape[1], g_s / s.shape[1]
            return partial_l2(g_t, resize_to(g_s, g_t.shape[-2:]), reduction="mean")
        if variant == "authors":
            return authors_attention_distance(t, s)
        g_t, g_s = gam(t, 1), resize_to(gam(s, 1), t.shape[-2:])
        return partial_l2(unit_per_image(g_t), unit_per_image(g_s), reduction="mean")


def unit_per_image(g: torch.Tensor) -> torch.Tensor:
    """A (B, H, W) map divided by its per-image L2 norm (F.normalize over the flattened map), as eq. 2 normalises
    its attention maps: the normalisation of the "paper-normalised" pixel-wise reading."""
    return F.normalize(g.flatten(1), dim=1).view_as(g)
