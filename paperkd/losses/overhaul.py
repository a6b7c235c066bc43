"""Baseline "Method of [34]": Heo et al. 2019, A comprehensive overhaul of feature distillation.

As their segmentation code does it (paper.md): pre-ReLU teacher taps pass a margin ReLU t' = max(t, margin) with a
per-channel margin from the teacher BN's affine parameters; student taps pass a connector (1x1 conv + BN) to the
teacher's channel count; each tap contributes the partial L2 of eq. 4, summed over elements (Heo's mask
"(s > t') or (t' > 0)" is exactly eq. 4's complement of "s <= t' <= 0", so `partial_l2` is reused as is).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from paperkd.errors import ConfigError
from paperkd.losses._common import float32_math, require_4d, resize_to, student_input, teacher_input
from paperkd.losses.pixelwise import partial_l2

HEO_DIVISORS = (8, 4, 2, 1, 1, 16)  # the six taps of their DeepLabV3+ code: 4 backbone stages, ASPP, decoder
HEO_SCALE = 1e-5
TAIL_PROBABILITY_FLOOR = 0.001  # below this P(x < 0) Heo uses the margin -3 s instead of the conditional mean


def margin_from_bn(bn: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    """Heo's per-channel margin: the expected value of the negative part of the BN output, (C,) float32.

    Modelling channel c's response as N(m, s^2) with s = |gamma_c|, m = beta_c:
    margin = E[x | x < 0] = m - s * phi(m/s) / Phi(-m/s) when Phi(-m/s) > 0.001, else -3 s.
    Computed in float64 with erfc for Phi. Degenerate gamma = 0: margin = beta if beta < 0, else 0.
    """
    if not isinstance(bn, nn.modules.batchnorm._BatchNorm) or bn.weight is None or bn.bias is None:
        raise ConfigError(f"Heo's margin needs a BatchNorm with affine weight and bias, got {bn!r}")
    s = bn.weight.detach().double().abs()
    m = bn.bias.detach().double()
    z = m / s  # +-inf when s == 0 and m != 0, NaN when both are 0
    tail = 0.5 * torch.special.erfc(z / math.sqrt(2.0))  # Phi(-z)
    density = torch.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)  # phi(z)
    conditional_mean = m - s * density / tail  # may be NaN where tail = 0; torch.where below never selects it there
    margin = torch.where(tail > TAIL_PROBABILITY_FLOOR, conditional_mean, -3.0 * s)
    return margin.float()


def heo_partial_l2(teacher: torch.Tensor, student: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    """One of Heo's per-tap terms: sum over elements of eq. 4 between t' = max(teacher, margin) and the student.

    teacher and student are (B, C, H, W) of equal shape (the student already through its connector); margin is (C,).
    Not divided by anything: the caller applies the divisor, batch size and scale. Teacher detached; float32.
    """
    t = teacher_input(teacher)
    clipped = torch.maximum(t, margin.to(t).view(1, -1, 1, 1))
    return partial_l2(clipped, student, reduction="sum")


def build_connector(student_channels: int, teacher_channels: int) -> nn.Sequential:
    """Heo's connector: 1x1 conv (no bias) student -> teacher channels, then BN; conv weight ~ N(0, 2 / C_teacher)
    (kaiming normal, fan_out, as Heo's init), BN weight 1 and bias 0."""
    conv = nn.Conv2d(student_channels, teacher_channels, kernel_size=1, bias=False)
    bn = nn.BatchNorm2d(teacher_channels)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    nn.init.ones_(bn.weight)
    nn.init.zeros_(bn.bias)
    return nn.Sequential(conv, bn)


class OverhaulDistillation(nn.Module):
    """Heo et al. 2019 distillation over several pre-ReLU taps; owns the connectors (train them with the student).

    teacher_bns: the BN before each teacher tap, read ONCE here for the margins (build this after the teacher's
    weights are loaded; the margins are buffers, so they travel with state_dict and .to()).
    student_channels: the student's channel count at each tap. divisors: per-tap divisors, one per tap
    (default Heo's six). scale: the overall factor (Heo's 1e-5).

    forward(t_feats, s_feats) -> scalar = scale / B * sum_i heo_partial_l2(t_i, connector_i(s_i), margin_i) / divisor_i.
    The connector runs under whatever autocast is active (it is part of the trained student side); its output, cast
    to float32, is resized bilinearly to the teacher's spatial size if they differ. Teachers are detached.
    """

    def __init__(
        self,
        teacher_bns: Sequence[nn.modules.batchnorm._BatchNorm],
        student_channels: Sequence[int],
        divisors: Sequence[float] = HEO_DIVISORS,
        scale: float = HEO_SCALE,
    ) -> None:
        super().__init__()
        teacher_bns, student_channels, divisors = list(teacher_bns), list(student_channels), list(divisors)
        if not (len(teacher_bns) == len(student_channels) == len(divisors)) or not teacher_bns:
            raise ConfigError(f"OverhaulDistillation needs one teacher BN, student channel count and divisor per tap; "
                              f"got {len(teacher_bns)} BNs, {len(student_channels)} channel counts, "
                              f"{len(divisors)} divisors (default divisors {HEO_DIVISORS} are for 6 taps)")
        if any(d <= 0 for d in divisors):
            raise ConfigError(f"divisors must be positive, got {tuple(divisors)}")
        if scale <= 0:
            raise ConfigError(f"scale must be positive, got {scale!r}")
        self.divisors = tuple(float(d) for d in divisors)
        self.scale = float(scale)
        for i, bn in enumerate(teacher_bns):
            self.register_buffer(f"margin{i}", margin_from_bn(bn))
        self.connectors = nn.ModuleList(
            build_connector(c, bn.num_features) for c, bn in zip(student_channels, teacher_bns)
        )

    @property
    def margins(self) -> list[torch.Tensor]:
        """The per-channel margins, one (C_teacher,) tensor per tap."""
        return [getattr(self, f"margin{i}") for i in range(len(self.connectors))]

    def forward(self, t_feats: Sequence[torch.Tensor], s_feats: Sequence[torch.Tensor]) -> torch.Tensor:
        taps = len(self.connectors)
        if len(t_feats) != taps or len(s_feats) != taps:
            raise ConfigError(f"expected {taps} teacher and student features, got {len(t_feats)} and {len(s_feats)}")
        total = None
        for i, (t, s, connector, margin, divisor) in enumerate(
            zip(t_feats, s_feats, self.connectors, self.margins, self.divisors)
        ):
            require_4d(f"t_feats[{i}]", t)
            require_4d(f"s_feats[{i}]", s)
            if t.shape[1] != margin.numel() or s.shape[1] != connector[0].in_channels:
                raise ConfigError(f"tap {i}: expected teacher {margin.numel()} and student {connector[0].in_channels} "
                                  f"channels, got {t.shape[1]} and {s.shape[1]}")
            t = teacher_input(t)
            mapped = student_input(connector(s))
            with float32_math(t):
                mapped = resize_to(mapped, t.shape[-2:])
                term = heo_partial_l2(t, mapped, margin) / divisor
            total = term if total is None else total + term
        return total / t_feats[0].shape[0] * self.scale
