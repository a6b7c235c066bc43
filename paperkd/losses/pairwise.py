"""Pair-wise distillation, eq. 6-8 (after Liu et al. [35]): compare the self-similarity of pooled features.

The paper is ambiguous about the nodes (paper.md): eq. 6 defines one 9-vector per CHANNEL (E is C x C), while the
text after it and eq. 8's 1/(w h)^2 fit [35]'s spatial-cell nodes (E is 9 x 9), which is also what the authors'
code computes. Both are here: nodes="channels" (default, eq. 6 as written) and nodes="pixels".

Normalisations, stated once:
- eq. 6 pooling: max-pool with kernel = stride and ceil mode, the kernel being the largest that yields `grid` cells
  per side (`grid_pool_kernel`); for grid = 3 and odd sizes this is exactly the authors' int(0.5 * W) (33 -> 16).
- eq. 7: each node vector is divided by (its L2 norm + 1e-8), the authors' epsilon, then E = f f^T.
- eq. 8: sum of squared differences of E divided by the number of entries N^2 (N = C channels or grid^2 cells,
  eq. 8's 1/(w h)^2 for cell nodes) and by the batch size, i.e. the mean over (B, N, N). For cell nodes and
  grid = 3 that is the authors' sum / 9^2 / B. Used with beta = 1 (eq. 9).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from paperkd.errors import ConfigError
from paperkd.losses._common import (
    float32_math,
    require_4d,
    require_choice,
    require_same_batch,
    student_input,
    teacher_input,
)
from paperkd.vocabulary import PAIRWISE_NODES

NODE_NORM_EPS = 1e-8  # the authors' epsilon, added to the norm (not a clamp as in F.normalize)


def grid_pool_kernel(size: int, grid: int) -> int | None:
    """Largest kernel = stride k with ceil(size / k) == grid (max-pool windows in ceil mode), or None if none exists.

    k must satisfy size/grid <= k < size/(grid-1); the largest such integer is ceil(size/(grid-1)) - 1. For grid = 3
    and an odd size that is int(0.5 * size), the authors' kernel (33 -> 16, 129 -> 64); for an even size the
    authors' int(0.5 * size) would give only 2 x 2 cells, this gives the 3 x 3 the paper asks for (32 -> 15).
    None for the few tiny sizes where no kernel = stride fits (e.g. size 4, grid 3).
    """
    if grid == 1:
        return size
    kernel = math.ceil(size / (grid - 1)) - 1
    if kernel >= 1 and math.ceil(size / kernel) == grid:
        return kernel
    return None


def pool_and_flatten(feat: torch.Tensor, nodes: str, grid: int) -> torch.Tensor:
    """Eq. 6, f = Flatten(MaxPool(M)): (B, C, H, W) -> node vectors (B, N, D).

    nodes="channels": N = C nodes, each a grid^2 vector (eq. 6 as written). nodes="pixels": N = grid^2 cells, each a
    C vector ([35], the authors' code). Pooling as `grid_pool_kernel` says; if a side admits no kernel = stride
    (only tiny maps), adaptive max pooling to grid x grid is used instead.
    """
    height, width = feat.shape[-2:]
    if height < grid or width < grid:
        raise ConfigError(f"feature map {height}x{width} is smaller than the pooling grid {grid}x{grid}")
    kernel_h, kernel_w = grid_pool_kernel(height, grid), grid_pool_kernel(width, grid)
    if kernel_h is None or kernel_w is None:
        pooled = F.adaptive_max_pool2d(feat, grid)
    else:
        pooled = F.max_pool2d(feat, (kernel_h, kernel_w), stride=(kernel_h, kernel_w), ceil_mode=True)
    flat = pooled.flatten(2)  # (B, C, grid^2)
    return flat if nodes == "channels" else flat.transpose(1, 2)


def similarity_matrix(nodes: torch.Tensor, detach_norm: bool = False) -> torch.Tensor:
    """Eq. 7, e_ij = f_i . f_j / (||f_i|| ||f_j||): (B, N, D) -> (B, N, N), norms + 1e-8 (the authors' epsilon).

    detach_norm=True divides by a DETACHED norm, as the authors' code (from Liu et al.'s) does: the same value, but
    no gradient flows through the norm, so the gradient is not that of eq. 7."""
    norm = nodes.norm(dim=2, keepdim=True) + NODE_NORM_EPS
    unit = nodes / (norm.detach() if detach_norm else norm)
    return unit @ unit.transpose(1, 2)


def similarity_distance(e_t: torch.Tensor, e_s: torch.Tensor) -> torch.Tensor:
    """Eq. 8, sum_ij (e_ij^t - e_ij^s)^2 / N^2, averaged over the batch: the mean over (B, N, N)."""
    return (e_t - e_s).pow(2).mean()


def pairwise_loss(t_feat: torch.Tensor, s_feat: torch.Tensor, nodes: str = "channels", grid: int = 3,
                  detach_norm: bool = False) -> torch.Tensor:
    """Pair-wise distillation loss, eq. 6-8, a scalar; see the module docstring for the normalisations.

    detach_norm: the authors' detached node norm (`similarity_matrix`); the value is unchanged, the gradient differs.

    nodes="channels" needs equal teacher and student channel counts (E is C x C); nodes="pixels" does not. Spatial
    sizes may differ: each side is pooled to grid x grid on its own. The teacher is detached; float32 inside (the
    similarity matmul too, autocast is switched off).
    """
    require_choice("nodes", nodes, PAIRWISE_NODES)
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 1:
        raise ConfigError(f"grid must be a positive integer, got {grid!r}")
    require_4d("t_feat", t_feat)
    require_4d("s_feat", s_feat)
    require_same_batch(t_feat, s_feat)
    if nodes == "channels" and t_feat.shape[1] != s_feat.shape[1]:
        raise ConfigError(f"nodes='channels' needs equal channel counts, got teacher {t_feat.shape[1]} and student "
                          f"{s_feat.shape[1]}; use nodes='pixels' for different counts")
    t, s = teacher_input(t_feat), student_input(s_feat)
    with float32_math(t):
        e_t = similarity_matrix(pool_and_flatten(t, nodes, grid))
        e_s = similarity_matrix(pool_and_flatten(s, nodes, grid), detach_norm=detach_norm)
        return similarity_distance(e_t, e_s)
