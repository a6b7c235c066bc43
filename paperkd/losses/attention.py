"""Global attention maps (eq. 1) and the attention-transfer baseline GAT (eq. 2, Zagoruyko & Komodakis [37])."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from paperkd.errors import ConfigError
from paperkd.losses._common import (float32_math, require_4d, require_choice, require_same_batch, resize_to,
                                    student_input, teacher_input)
from paperkd.vocabulary import ATTENTION_FORMS

# ---------------------------------------------------------------------------------------------------------------
# Eq. 1 and eq. 2
# ---------------------------------------------------------------------------------------------------------------


def gam(feat: torch.Tensor, p: float) -> torch.Tensor:
    """Global attention map, eq. 1: G = sum_k |A^k|^p over the channels, (B, C, H, W) -> (B, H, W).

    p = 1 is the SIGNED channel sum sum_k A^k, not sum_k |A^k|: the paper takes p = 1 "to preserve negative values"
    of the pre-ReLU feature, and an absolute value would erase exactly those (paper.md, eq. 4-5). Every other p is
    the literal sum_k |A^k|^p. Computed in float32 (or float64 if given float64); gradients flow through `feat`.
    """
    require_4d("feat", feat)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or p <= 0:
        raise ConfigError(f"GAM exponent p must be a positive number, got {p!r}")
    feat = student_input(feat)
    if p == 1:
        return feat.sum(dim=1)
    return feat.abs().pow(p).sum(dim=1)


def attention_map(feat: torch.Tensor) -> torch.Tensor:
    """Attention map as [37]'s code computes it: the channel MEAN of A^2, (B, C, H, W) -> (B, H, W).

    Equals gam(feat, 2) / C; the 1/C disappears in every normalised use, but it is what the code does.
    """
    return student_input(feat).pow(2).mean(dim=1)


def authors_attention_distance(t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """The attention distance the authors' code uses for its pixel-wise term and its attention transfer (paper.md):
    a = channel mean of A^2 (`attention_map`), then F.normalize(a, dim=1) on the (B, H, W) map, which gives each
    COLUMN (fixed b and w, running over H) unit L2 norm (a quirk of normalising a 3-D tensor on dim 1, reproduced on
    purpose), then the plain mean of (a_t - a_s)^2 over all elements. A student map of another size is resized to the
    teacher's before the normalisation. Expects float32 inputs, the teacher already detached."""
    a_t = attention_map(t)
    a_s = resize_to(attention_map(s), a_t.shape[-2:])
    return (F.normalize(a_t, dim=1) - F.normalize(a_s, dim=1)).pow(2).mean()


def attention_transfer_loss(t_feat: torch.Tensor, s_feat: torch.Tensor, form: str = "code") -> torch.Tensor:
    """GAT baseline, eq. 2 (Zagoruyko & Komodakis [37]), a scalar.

    form="code" (default): what [37]'s public code computes: a = channel mean of A^2, flattened per image,
    L2-normalised per image (F.normalize), loss = mean over batch and positions of (a_s - a_t)^2. [37]'s code
    weights this form by beta = 1000 (summed over its taps), not by the paper's lambda = 1 (paper.md).
    form="eq2": the paper's eq. 2 literally: G = gam(A, p=2), flattened and L2-normalised per image, loss =
    || G_t/||G_t|| - G_s/||G_s|| ||_2 per image (a norm, not its square), averaged over the batch.
    form="authors": what the authors' own attention transfer computed (AICSD history, 2022-08; paper.md), the
    column-normalised map of `authors_attention_distance`; their code summed it over the six pre-ReLU taps at weight 1
    (`Config.gat_tap = "all"`).
    "code" and "eq2" are zero for equal inputs; "code" equals ("eq2")^2 / (H*W) per image.

    Channel counts may differ (the maps sum them away). A student of another spatial size has its attention MAP
    (before normalisation) resized bilinearly to the teacher's size. The teacher is detached; float32 inside.
    """
    require_choice("form", form, ATTENTION_FORMS)
    require_4d("t_feat", t_feat)
    require_4d("s_feat", s_feat)
    require_same_batch(t_feat, s_feat)
    t, s = teacher_input(t_feat), student_input(s_feat)
    with float32_math(t):
        if form == "authors":
            return authors_attention_distance(t, s)
        if form == "code":
            a_t, a_s = attention_map(t), attention_map(s)
        else:
            a_t, a_s = gam(t, 2), gam(s, 2)
        a_s = resize_to(a_s, a_t.shape[-2:])
        a_t = F.normalize(a_t.flatten(1), dim=1)
        a_s = F.normalize(a_s.flatten(1), dim=1)
        if form == "code":
            return (a_s - a_t).pow(2).mean()
        return (a_s - a_t).norm(dim=1).mean()
