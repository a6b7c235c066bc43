"""Tensor plumbing every loss shares: the teacher is detached, the arithmetic runs in float32 even under autocast,
a student map of another spatial size is resized bilinearly to the teacher's, and bad arguments raise ConfigError."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from paperkd.errors import ConfigError

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
