"""Distillation losses, one function (or module) per published formula; each docstring cites its equation.

Every loss detaches the teacher inside, computes in float32 even under autocast, and resizes a student map of
another spatial size bilinearly to the teacher's. Weights of the paper (eq. 9): alpha = 100 on `pixelwise_loss`
(mean reduction), beta = 1 on `pairwise_loss`; lambda = 1 on `attention_transfer_loss` (eq. 3). Which reading of
each formula a run uses is its recipe's (`paperkd.config.RECIPES`). The choice tuples (`PIXELWISE_VARIANTS`, ...)
are declared in `paperkd.vocabulary`.
"""

from paperkd.losses.attention import ATTENTION_FORMS, attention_map, attention_transfer_loss, gam
from paperkd.losses.logits import channelwise_kd_loss, logit_kd_loss
from paperkd.losses.overhaul import (
    HEO_DIVISORS,
    HEO_SCALE,
    OverhaulDistillation,
    build_connector,
    heo_partial_l2,
    margin_from_bn,
)
from paperkd.losses.pairwise import (
    PAIRWISE_NODES,
    grid_pool_kernel,
    pairwise_loss,
    pool_and_flatten,
    similarity_distance,
    similarity_matrix,
)
from paperkd.losses.pixelwise import PIXELWISE_VARIANTS, partial_l2, pixelwise_loss

__all__ = [
    "ATTENTION_FORMS",
    "HEO_DIVISORS",
    "HEO_SCALE",
    "PAIRWISE_NODES",
    "PIXELWISE_VARIANTS",
    "OverhaulDistillation",
    "attention_map",
    "attention_transfer_loss",
    "build_connector",
    "channelwise_kd_loss",
    "gam",
    "grid_pool_kernel",
    "heo_partial_l2",
    "logit_kd_loss",
    "margin_from_bn",
    "pairwise_loss",
    "partial_l2",
    "pixelwise_loss",
    "pool_and_flatten",
    "similarity_distance",
    "similarity_matrix",
]
