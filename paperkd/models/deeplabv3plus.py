"""DeepLabV3+ in the "pytorch-deeplab-xception" layout the paper's parameter counts come from.

    backbone (torchvision) -> (low_level stride 4, high_level stride 16)
    aspp:    1x1, three 3x3 atrous (6/12/18 at OS16, 12/24/36 at OS8), image pooling; each conv (no bias) + BN + ReLU,
             256 ch; concat -> 1x1 projection (no bias) + BN + ReLU + Dropout(0.5)            (torchvision's ASPP)
    decoder: low_level -> 1x1 conv 48 + BN + ReLU; concat with the upsampled ASPP output;
             3x3 conv 256 + BN + ReLU + Dropout(0.5); 3x3 conv 256 + BN + ReLU + Dropout(0.1); 1x1 classifier (bias)
    logits upsampled (bilinear) to the input size.

Every bilinear resize uses ``align_corners=True`` like the reference code (at 513 x 513 input the stride-16 and
stride-4 grids, 33 and 129 cells, then line up exactly with the pixel grid). ASPP and decoder ReLUs are not in-place,
so the pre-ReLU BN outputs the taps keep are not overwritten.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.segmentation.deeplabv3 import ASPP
from torchvision.ops import Conv2dNormActivation

from paperkd.errors import ConfigError
from paperkd.models.backbones import BACKBONES, build_backbone, load_backbone_weights

ALIGN_CORNERS = True
ASPP_RATES = {16: (6, 12, 18), 8: (12, 24, 36)}
ASPP_CHANNELS = 256
LOW_LEVEL_REDUCED = 48
DECODER_CHANNELS = 256


class Decoder(nn.Module):
    """DeepLabV3+ decoder with the classifier: refines the ASPP output with the stride-4 low-level feature.

    ``conv2[1]`` is the last 3x3 conv's BN: its output is the ``decoder`` tap (pre-ReLU, stride 4).
    """

    def __init__(self, low_level_channels: int, num_classes: int) -> None:
        super().__init__()
        self.low_level = Conv2dNormActivation(low_level_channels, LOW_LEVEL_REDUCED, kernel_size=1, inplace=False)
        self.conv1 = Conv2dNormActivation(LOW_LEVEL_REDUCED + ASPP_CHANNELS, DECODER_CHANNELS, 3, inplace=False)
        self.drop1 = nn.Dropout(0.5)
        self.conv2 = Conv2dNormActivation(DECODER_CHANNELS, DECODER_CHANNELS, 3, inplace=False)
        self.drop2 = nn.Dropout(0.1)
        self.classifier = nn.Conv2d(DECODER_CHANNELS, num_classes, kernel_size=1)

    def forward(self, low_level: Tensor, encoded: Tensor) -> Tensor:
        low_level = self.low_level(low_level)
        encoded = F.interpolate(encoded, size=low_level.shape[-2:], mode="bilinear", align_corners=ALIGN_CORNERS)
        # Concat order of the reference: upsampled ASPP output first, then the reduced low-level feature.
        x = self.drop1(self.conv1(torch.cat((encoded, low_level), dim=1)))
        x = self.drop2(self.conv2(x))
        return self.classifier(x)


class DeepLabV3Plus(nn.Module):
    """Backbone + ASPP + decoder; ``forward(x)`` returns logits (N, num_classes, H, W) at the input's H x W."""

    def __init__(self, backbone: nn.Module, aspp: nn.Module, decoder: nn.Module, *, backbone_name: str,
                 num_classes: int, output_stride: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.aspp = aspp
        self.decoder = decoder
        self.backbone_name = backbone_name
        self.num_classes = num_classes
        self.output_stride = output_stride

    def forward(self, x: Tensor) -> Tensor:
        low_level, high_level = self.backbone(x)
        logits = self.decoder(low_level, self.aspp(high_level))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=ALIGN_CORNERS)


def init_head(module: nn.Module) -> None:
    """The reference initialisation of ASPP and decoder: ``kaiming_normal_`` (fan_in, gain sqrt 2) for every conv
    weight, BN weight 1 and bias 0; conv biases (only the classifier's) keep PyTorch's default."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def deeplabv3plus(backbone: str, num_classes: int = 21, output_stride: int = 16,
                  backbone_weights: str | os.PathLike | None = None) -> DeepLabV3Plus:
    """DeepLabV3+ with backbone ``"resnet101"``, ``"resnet18"`` or ``"mobilenet_v2"`` (``BACKBONES``).

    ``backbone_weights``: None (torchvision's random init), a path to a torchvision ImageNet state_dict, or a
    torchvision weights name (``"ResNet18_Weights.IMAGENET1K_V1"`` or ``"IMAGENET1K_V1"``) found in the local torch
    hub cache; a missing file raises ``MissingWeightsError`` (a ``PaperkdError`` and ``FileNotFoundError``) naming
    the expected path. ASPP and decoder are always randomly initialised (``init_head``).

    At 21 classes and OS16 the trainable parameters are 59,344,309 / 16,608,181 / 5,816,053.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    body = build_backbone(backbone, output_stride)  # validates backbone and output_stride
    if backbone_weights is not None:
        load_backbone_weights(body, backbone, backbone_weights)
    aspp = ASPP(body.high_level_channels, ASPP_RATES[output_stride], ASPP_CHANNELS)
    decoder = Decoder(body.low_level_channels, num_classes)
    init_head(aspp)
    init_head(decoder)
    return DeepLabV3Plus(body, aspp, decoder, backbone_name=backbone, num_classes=num_classes,
                         output_stride=output_stride)


def without_aspp_dropout(model: DeepLabV3Plus) -> DeepLabV3Plus:
    """The network the authors' distilling trainer runs: the ASPP projection's Dropout(0.5) replaced by an identity
    (their `extract_feature` returns relu(bn1(...)) without it; the decoder's dropouts stay). In place; parameters,
    state_dict and eval-mode outputs are unchanged."""
    if not isinstance(model.aspp.project[-1], (nn.Dropout, nn.Identity)):
        raise ConfigError(f"expected the ASPP projection to end in Dropout, got {model.aspp.project[-1]!r}")
    model.aspp.project[-1] = nn.Identity()
    return model


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Trainable parameters of ``model.backbone``, ``model.aspp``, ``model.decoder`` (classifier included), total."""
    counts = {
        part: sum(p.numel() for p in getattr(model, part).parameters() if p.requires_grad)
        for part in ("backbone", "aspp", "decoder")
    }
    counts["total"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return counts


__all__ = ["BACKBONES", "DeepLabV3Plus", "Decoder", "deeplabv3plus", "init_head", "parameter_counts",
           "without_aspp_dropout"]
