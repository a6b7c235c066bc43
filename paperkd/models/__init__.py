"""DeepLabV3+ teacher and students, their ImageNet weights, named pre-ReLU feature taps, and a size/speed summary."""

from paperkd.models.backbones import BACKBONES, MissingWeightsError
from paperkd.models.deeplabv3plus import DeepLabV3Plus, deeplabv3plus, parameter_counts, without_aspp_dropout
from paperkd.models.summary import model_summary
from paperkd.models.taps import TAP_NAMES, Tapped, tap, tap_bn, tap_channels, tap_names

__all__ = [
    "BACKBONES",
    "DeepLabV3Plus",
    "MissingWeightsError",
    "TAP_NAMES",
    "Tapped",
    "deeplabv3plus",
    "model_summary",
    "parameter_counts",
    "tap",
    "tap_bn",
    "tap_channels",
    "tap_names",
    "without_aspp_dropout",
]
