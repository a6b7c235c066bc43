"""Global attention maps (eq. 1) and the attention-transfer baseline GAT (eq. 2, Zagoruyko & Komodakis [37]).

This module also holds the small tensor plumbing every loss of the package shares, because every other loss module
imports it anyway (eq. 5 is built on eq. 1): the teacher is detached, the arithmetic runs in float32 even under
autocast, and a student map of another spatial size is resized bilinearly to the teacher's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from paperkd.errors import ConfigError

# ---------------------------------------------------------------------------------------------------------------
# Shared plumbing
# ---------------------------------------------------------------------------------------------------------------


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    # bfloat16/float16 features (autocast) are upcast; float64 stays float64 so gradcheck-style tests keep working.
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def teacher_input(x: torch.Tensor) -> torch.Tensor:
    """The teacher side of a loss: detached (the teacher is frozen, no gradient flows into it) and in float32."""
    return _at_least_float32(x.detach())


def student_input(x: torch.Tensor) -> torch.Tensor:
    """The student side of a loss: keeps its gradient, in float32."""
    return _at_least_float32(x)


def float32_math(x: torch.Tensor) -> torch.autocast:
    """Context that switches autocast off on `x`'s device: the loss arithmetic (matmuls included) stays float32."""
    return torch.autocast(device_type=x.device.type, enabled=False)


def resize_to(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize (align_corners=False) of a (B, C, H, W) or (B, H, W) tensor to `size`; a no-op when equal."""
    size = tuple(size)
    if tuple(x.shape[-2:]) == size:
        return x
    if x.dim() == 3:
        return F.interpolate(x.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def require_4d(name: str, x: torch.Tensor) -> None:
    """Raise ConfigError unless `x` is a (B, C, H, W) feature map."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ConfigError(f"{name} must be a (B, C, H, W) tensor, got {shape}")


def require_same_batch(t: torch.Tensor, s: torch.Tensor) -> None:
    """Raise ConfigError when teacher and student batches differ."""
    if t.shape[0] != s.shape[0]:
        raise ConfigError(f"teacher batch {t.shape[0]} != student batch {s.shape[0]}")


def require_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    """Raise ConfigError listing `allowed` when `value` is not one of them."""
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not allowed; choose one of {', '.join(map(repr, allowed))}")


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


ATTENTION_FORMS = ("code", "eq2")


def attention_transfer_loss(t_feat: torch.Tensor, s_feat: torch.Tensor, form: str = "code") -> torch.Tensor:
    """GAT baseline, eq. 2 (Zagoruyko & Komodakis [37]), a scalar.

    form="code" (default): what [37]'s public code computes, the reading behind its published numbers and the one
    used with lambda = 1 (eq. 3): a = channel mean of A^2, flattened per image, L2-normalised per image
    (F.normalize), loss = mean over batch and positions of (a_s - a_t)^2.
    form="eq2": the paper's eq. 2 literally: G = gam(A, p=2), flattened and L2-normalised per image, loss =
    || G_t/||G_t|| - G_s/||G_s|| ||_2 per image (a norm, not its square), averaged over the batch.
    Both are zero for equal inputs; "code" equals ("eq2")^2 / (H*W) per image.

    Channel counts may differ (the maps sum them away). A student of another spatial size has its attention MAP
    (before normalisation) resized bilinearly to the teacher's size. The teacher is detached; float32 inside.
    """
    require_choice("form", form, ATTENTION_FORMS)
    require_4d("t_feat", t_feat)
    require_4d("s_feat", s_feat)
    require_same_batch(t_feat, s_feat)
    t, s = teacher_input(t_feat), student_input(s_feat)
    with float32_math(t):
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
