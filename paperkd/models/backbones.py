"""torchvision ResNet-101 / ResNet-18 / MobileNetV2 as DeepLabV3+ encoders at output stride 16 or 8.

Each backbone is torchvision's own network (built with ``weights=None``), its classifier dropped, its strides turned into
dilations after construction so that the layout matches the "pytorch-deeplab-xception" code the paper's numbers come
from. ``forward(x)`` returns ``(low_level, high_level)``: the stride-4 feature the decoder refines and the stride-16
(or 8) feature the ASPP reads.

The parameters keep torchvision's names (``conv1.weight``, ``layer4.2.bn3.bias``, ``features.17.conv.2.weight``), so a
torchvision ImageNet state_dict loads into the backbone strictly once its classifier keys are dropped
(``load_backbone_weights``). Nothing here downloads: a weights name is looked up in the local torch hub cache only.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor, nn
from torchvision.models import get_model_weights, mobilenet_v2, resnet18, resnet101
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from paperkd.errors import ConfigError, PaperkdError
from paperkd.vocabulary import BACKBONES

OUTPUT_STRIDES = (16, 8)

# Dilations of the 3x3 convs of every block of a stage whose stride was removed, as in the reference layout
# (every block of a dilated stage, the first one included, gets the stage's dilation; ResNet-101's layer4 uses the
# "multi-grid" (1, 2, 4) x base dilation). Keyed by output stride -> {layer name: per-block dilations}.
_RESNET101_DILATIONS = {
    16: {"layer4": (2, 4, 8)},
    8: {"layer3": (2,) * 23, "layer4": (4, 8, 16)},
}
_RESNET18_DILATIONS = {
    16: {"layer4": (2, 2)},
    8: {"layer3": (2, 2), "layer4": (4, 4)},
}

# Keys of a torchvision ImageNet classification state_dict that have no place in the segmentation backbone.
DROPPED_PREFIXES = {
    "resnet101": ("fc.",),
    "resnet18": ("fc.",),
    # features.18 is the last 320 -> 1280 conv, which the DeepLabV3+ MobileNetV2 encoder does not have.
    "mobilenet_v2": ("classifier.", "features.18."),
}


def stage_end_bn(block: nn.Module) -> nn.BatchNorm2d:
    """The last BatchNorm of a torchvision residual block: ``bn3`` of a Bottleneck, ``bn2`` of a BasicBlock, the
    linear projection BN (``conv[-1]``) of an InvertedResidual. Its output (plus the shortcut) is the block's pre-ReLU
    output; Heo et al. take their margins from it."""
    if isinstance(block, Bottleneck):
        return block.bn3
    if isinstance(block, BasicBlock):
        return block.bn2
    if isinstance(block, InvertedResidual):
        return block.conv[-1]
    raise TypeError(f"no stage-end BatchNorm known for {type(block).__name__}")


def _set_conv(conv: nn.Conv2d, *, stride: int | None = None, dilation: int | None = None) -> None:
    """Change a conv's stride and/or dilation in place; a 3x3 conv keeps 'same' padding = dilation."""
    if stride is not None:
        conv.stride = (stride, stride)
    if dilation is not None:
        conv.dilation = (dilation, dilation)
        conv.padding = (dilation, dilation)


def _dilate_resnet_layer(layer: nn.Sequential, dilations: tuple[int, ...]) -> None:
    """Remove the stride of a ResNet layer and dilate its 3x3 convs, block by block.

    torchvision refuses ``dilation > 1`` for BasicBlock at construction, so this is done afterwards for both block
    types (it touches no parameter, only conv hyper-parameters).
    """
    if len(dilations) != len(layer):
        raise ValueError(f"{len(dilations)} dilations for a layer of {len(layer)} blocks")
    first = layer[0]
    strided = first.conv2 if isinstance(first, Bottleneck) else first.conv1  # torchvision's ResNet V1.5 layout
    _set_conv(strided, stride=1)
    if first.downsample is not None:
        _set_conv(first.downsample[0], stride=1)
    first.stride = 1
    for block, dilation in zip(layer, dilations):
        three_by_three = [block.conv2] if isinstance(block, Bottleneck) else [block.conv1, block.conv2]
        for conv in three_by_three:
            _set_conv(conv, dilation=dilation)


class ResNetBackbone(IntermediateLayerGetter):
    """torchvision ResNet up to ``layer4``: low-level = ``layer1`` output (stride 4), high-level = ``layer4`` output.

    Children keep torchvision's names (``conv1``, ``bn1``, ``relu``, ``maxpool``, ``layer1``..``layer4``).
    """

    def __init__(self, resnet: ResNet) -> None:
        super().__init__(resnet, return_layers={"layer1": "low_level", "layer4": "high_level"})
        self.low_level_channels = stage_end_bn(self.layer1[-1]).num_features
        self.high_level_channels = stage_end_bn(self.layer4[-1]).num_features

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        features = super().forward(x)
        return features["low_level"], features["high_level"]

    def stage_ends(self) -> list[nn.Module]:
        """The last block of ``layer1``..``layer4`` (their pre-ReLU outputs are the taps ``stage1``..``stage4``)."""
        return [self.layer1[-1], self.layer2[-1], self.layer3[-1], self.layer4[-1]]


class MobileNetV2Backbone(nn.Module):
    """torchvision MobileNetV2 (width 1.0) ``features[0:18]``, i.e. without the last 320 -> 1280 conv.

    low-level = output of ``features[0:4]`` (24 channels, stride 4); high-level = output of ``features[17]``
    (320 channels). Stage ends for the taps: ``features[3]`` (24 ch, stride 4), ``features[6]`` (32 ch, stride 8),
    ``features[13]`` (96 ch, stride 16 at OS16) and ``features[17]`` (320 ch, stride 16 at OS16) -- the blocks the
    authors' Heo-baseline code reads; a MobileNetV2 block ends with a linear projection (no ReLU), so these outputs are
    already pre-activation.

    Border values differ from the reference, which zero-pads each block's input before the 1x1 expansion conv; here
    torchvision pads inside the depthwise conv (same parameters, same interior values).
    """

    LOW_LEVEL_INDEX = 3
    STAGE_END_INDICES = (3, 6, 13, 17)

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        self.features = features
        self.low_level_channels = stage_end_bn(features[self.LOW_LEVEL_INDEX]).num_features
        self.high_level_channels = stage_end_bn(features[-1]).num_features

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        low_level = x
        for index, block in enumerate(self.features):
            x = block(x)
            if index == self.LOW_LEVEL_INDEX:
                low_level = x
        return low_level, x

    def stage_ends(self) -> list[nn.Module]:
        """``features[3]``, ``[6]``, ``[13]``, ``[17]`` (taps ``stage1``..``stage4``)."""
        return [self.features[i] for i in self.STAGE_END_INDICES]


def _dilate_mobilenet(features: nn.Sequential, output_stride: int) -> None:
    """Turn the strides after ``output_stride`` into dilations of the depthwise convs, stage by stage, as the
    reference does: once the running stride reaches ``output_stride``, a stage keeps stride 1 and all its blocks get
    the current rate, and the rate is then multiplied by the stride the stage would have had. At OS16 this gives the
    160-channel stage stride 1 (dilation 1) and the 320-channel block dilation 2."""
    blocks = [b for b in features if isinstance(b, InvertedResidual)]
    stages: list[list[InvertedResidual]] = []
    for block in blocks:  # a stage = consecutive blocks with the same output width
        if stages and stages[-1][0].out_channels == block.out_channels:
            stages[-1].append(block)
        else:
            stages.append([block])
    current_stride, rate = 2, 1  # after the stem conv
    for stage in stages:
        stage_stride = stage[0].stride
        if current_stride == output_stride:
            stride, dilation = 1, rate
            rate *= stage_stride
        else:
            stride, dilation = stage_stride, 1
            current_stride *= stage_stride
        for i, block in enumerate(stage):
            depthwise = block.conv[-3][0]  # [pw expand,] dw ConvNormActivation, pw-linear conv, BN
            _set_conv(depthwise, stride=stride if i == 0 else 1, dilation=dilation)
            block.stride = stride if i == 0 else 1


def build_backbone(name: str, output_stride: int = 16) -> nn.Module:
    """A randomly initialised (torchvision init) backbone ``name`` at ``output_stride`` (16 or 8)."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; allowed: {', '.join(BACKBONES)}")
    if output_stride not in OUTPUT_STRIDES:
        raise ConfigError(f"output_stride {output_stride!r} is not supported; allowed: 16, 8")
    if name == "mobilenet_v2":
        features = mobilenet_v2(weights=None).features[:-1]  # keeps torchvision's indices 0..17
        _dilate_mobilenet(features, output_stride)
        return MobileNetV2Backbone(features)
    resnet, dilations = {
        "resnet101": (resnet101, _RESNET101_DILATIONS),
        "resnet18": (resnet18, _RESNET18_DILATIONS),
    }[name]
    network = resnet(weights=None)
    for layer_name, layer_dilations in dilations[output_stride].items():
        _dilate_resnet_layer(getattr(network, layer_name), layer_dilations)
    return ResNetBackbone(network)


def strip_classifier(name: str, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A torchvision classification state_dict without the keys the segmentation backbone ``name`` does not have."""
    dropped = DROPPED_PREFIXES[name]
    return {k: v for k, v in state_dict.items() if not k.startswith(dropped)}


class MissingWeightsError(PaperkdError, FileNotFoundError):
    """Backbone weights were asked for but their file is not there (the message names the path and the URL)."""


def _weights_enum(name: str, weights: str):
    """The torchvision weights enum member that ``weights`` names for backbone ``name``.

    Accepts the full name (``"ResNet18_Weights.IMAGENET1K_V1"``) or the member alone (``"IMAGENET1K_V1"``,
    ``"DEFAULT"``); the enum must belong to ``name``.
    """
    enum = get_model_weights(name)
    prefix, _, member = weights.rpartition(".")
    if prefix and prefix != enum.__name__:
        raise ConfigError(f"weights {weights!r} are not for backbone {name!r}; its weights are {enum.__name__}.*")
    try:
        return enum[member]
    except KeyError:
        allowed = ", ".join(f"{enum.__name__}.{m}" for m in enum.__members__)
        raise ConfigError(
            f"backbone_weights {weights!r} is neither an existing file nor a weights name of {name!r}; "
            f"allowed names: {allowed} (or a path to a state_dict file)"
        ) from None


def resolve_weights_file(name: str, weights: str | os.PathLike) -> Path:
    """The state_dict file that ``weights`` designates for backbone ``name``; never downloads.

    ``weights`` is a path (anything that exists, ends in .pth/.pt or contains a path separator) or a torchvision
    weights name, which resolves to ``torch.hub.get_dir()/checkpoints/<file name of the enum's URL>`` -- the file
    ``torch.hub`` itself would have downloaded. A missing file raises ``MissingWeightsError`` naming the path.
    """
    text = os.fspath(weights)
    looks_like_path = (
        isinstance(weights, os.PathLike) or os.sep in text or "/" in text or text.endswith((".pth", ".pt"))
    )
    if looks_like_path or Path(text).exists():
        path = Path(text).expanduser()
        if not path.is_file():
            raise MissingWeightsError(f"backbone weights file {path} does not exist (backbone {name!r})")
        return path
    member = _weights_enum(name, text)
    file_name = Path(urlparse(member.url).path).name
    path = Path(torch.hub.get_dir()) / "checkpoints" / file_name
    if not path.is_file():
        raise MissingWeightsError(
            f"ImageNet weights {type(member).__name__}.{member.name} for backbone {name!r} not found at {path}; "
            f"paperkd never downloads: fetch {member.url} ({file_name}) and put it at that path "
            f"(the torch hub cache, set by TORCH_HOME), or pass the file's path as backbone_weights"
        )
    return path


def load_backbone_weights(backbone: nn.Module, name: str, weights: str | os.PathLike) -> Path:
    """Load a torchvision ImageNet state_dict into ``backbone`` (built by ``build_backbone(name)``), strictly.

    The classifier keys (and MobileNetV2's last conv, ``features.18``) are dropped first; every other backbone
    tensor must be in the file with the right shape, otherwise a ``PaperkdError`` names the file and the keys.
    Returns the file that was loaded.
    """
    path = resolve_weights_file(name, weights)
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unreadable, truncated or not a tensor file
        raise PaperkdError(f"cannot read backbone weights {path}: {error}") from error
    if not isinstance(state_dict, dict):
        raise PaperkdError(f"backbone weights {path} hold a {type(state_dict).__name__}, not a state_dict")
    state_dict = strip_classifier(name, state_dict)
    # BatchNorm fills in a missing ``num_batches_tracked`` itself (older torchvision files do not have it).
    expected = {k for k in backbone.state_dict() if not k.endswith("num_batches_tracked") or k in state_dict}
    missing, unexpected = sorted(expected - set(state_dict)), sorted(set(state_dict) - expected)
    if missing or unexpected:
        raise PaperkdError(
            f"backbone weights {path} do not fit backbone {name!r}: {len(missing)} missing keys "
            f"{_first(missing)}, {len(unexpected)} unexpected keys {_first(unexpected)}"
        )
    try:
        backbone.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:  # same keys, but some tensor has the wrong shape
        raise PaperkdError(f"backbone weights {path} do not fit backbone {name!r}: {error}") from error
    return path


def _first(keys: list[str], n: int = 4) -> str:
    """A short preview of a key list for an error message."""
    return "[" + ", ".join(keys[:n]) + (", ...]" if len(keys) > n else "]")
