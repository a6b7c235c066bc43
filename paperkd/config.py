"""One configuration dataclass, the paper's recipe as defaults, a preset for every row of Tables 1-3, and a scale knob.

A run is fully described by a `Config`. `resolve(preset, scale, **overrides)` builds one in three layers, each
overriding the last: the paper's defaults (the dataclass defaults), the preset (which model, which losses), the scale
(how much data, crop and epochs; never the method), then explicit overrides from the caller or the command line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from paperkd.errors import ConfigError

BACKBONES = ("resnet101", "resnet18", "mobilenet_v2")
TAPS = ("encoder", "decoder")  # MIDDLE and END of Table 3
PIXEL_VARIANTS = ("paper", "paper-mean", "authors")
PAIR_NODES = ("channels", "pixels")
DATASETS = ("standin", "voc")
VAL_MODES = ("square", "short_side")
AMP_DTYPES = ("bf16", "fp16")


@dataclass
class Config:
    """Everything that defines a run. Defaults are the paper's recipe (paper.md "Setup") at full scale."""

    # -- model -------------------------------------------------------------------------------------------------------
    preset: str = "custom"
    backbone: str = "resnet101"
    num_classes: int = 21
    output_stride: int = 16
    backbone_weights: str | None = None  # ImageNet state_dict path or torchvision weights name; None = random init

    # -- distillation (students only; a weight of 0 switches a term off) ---------------------------------------------
    teacher: str | None = None  # path of the trained teacher's checkpoint
    teacher_train_mode: bool = False  # the authors' code runs the frozen teacher in train mode (batch statistics)
    pixel: float = 0.0  # alpha of eq. 9 (paper: 100)
    pixel_tap: str = "decoder"  # END (paper's best for pixel-wise)
    # The authors' code, whose alpha = 100 the paper reports: the literal "paper" (channel sum) diverges at alpha = 100
    # and "paper-mean" collapses the students to background (measured; book/paper_vs_code.md, losses.pixelwise).
    pixel_variant: str = "authors"
    pair: float = 0.0  # beta of eq. 9 (paper: 1)
    pair_tap: str = "encoder"  # MIDDLE (paper's best for pair-wise)
    pair_nodes: str = "channels"
    gat: float = 0.0  # lambda of eq. 3 (paper: 1)
    gat_tap: str = "decoder"
    heo: float = 0.0  # multiplier on Heo et al.'s loss as the authors coded it (1 = as coded)
    logit_kd: float = 0.0  # Hinton et al. soft labels, beyond the paper
    kd_temperature: float = 1.0
    cwd: float = 0.0  # channel-wise distillation (Shu et al. 2021), beyond the paper
    cwd_tap: str = "decoder"
    cwd_temperature: float = 4.0

    # -- data --------------------------------------------------------------------------------------------------------
    dataset: str = "voc"
    data_root: str | None = None  # None with dataset="standin" = the embedded procedural stand-in
    sbd: bool = False  # the paper does NOT train on SBD-augmented labels
    crop: int = 513
    scale_min: float = 0.5
    scale_max: float = 2.0
    label_pad: int = 255  # the authors' code pads labels with 0
    blur: bool = False  # the authors' code adds a Gaussian blur with p = 0.5
    val_size: int = 513
    val_mode: str = "square"  # paper: resize to 513 x 513; authors' code: short side 513 keeping aspect
    max_train_images: int | None = None
    max_val_images: int | None = None
    # Measured on an H100 box (16 cores) at crop 513, batch 6, VOC-sized images, within an epoch: with 2 workers the
    # 27 ms plain step waits on data 45 % of the time, with 6 workers 1.0 %, with 8 0.9 %
    # (results/bench/checks/data-wait-gpu-one-epoch.json); across an epoch boundary 3.8 %, as one loader iterator
    # spans every epoch (train.training_loader). Augmentation is seeded per image and epoch (paperkd.data.seeded), so
    # the worker count never changes a run's numbers.
    workers: int = 8

    # -- optimisation ------------------------------------------------------------------------------------------------
    epochs: int = 120
    batch_size: int = 6
    lr: float = 0.007
    momentum: float = 0.9
    weight_decay: float = 5e-4
    head_lr_mult: float = 10.0  # ASPP, decoder and connectors at 10 x lr, as the code base the paper builds on
    poly_power: float = 0.9
    seed: int = 0
    amp: bool = False
    amp_dtype: str = "bf16"
    channels_last: bool = False
    deterministic: bool = False

    # -- bookkeeping -------------------------------------------------------------------------------------------------
    scale: str = "paper"
    eval_every: int = 1
    out: str = "runs"
    run_name: str | None = None
    device: str = "auto"

    @property
    def distills(self) -> bool:
        return any(w > 0 for w in (self.pixel, self.pair, self.gat, self.heo, self.logit_kd, self.cwd))

    @property
    def name(self) -> str:
        return self.run_name or f"{self.preset}-s{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PAPER_WEIGHTS = {"pixel": 100.0, "pair": 1.0, "gat": 1.0, "heo": 1.0}

# Every row of Tables 1-3. Students need `teacher` (a checkpoint path) at run time.
_STUDENT_METHODS = {
    "none": {},
    "pixel": {"pixel": PAPER_WEIGHTS["pixel"]},
    "pair": {"pair": PAPER_WEIGHTS["pair"]},
    "both": {"pixel": PAPER_WEIGHTS["pixel"], "pair": PAPER_WEIGHTS["pair"]},
}
_SHORT = {"resnet18": "r18", "mobilenet_v2": "mnv2"}

PRESETS: dict[str, dict[str, Any]] = {"teacher": {"backbone": "resnet101"}}
for _backbone, _short in _SHORT.items():
    for _method, _weights in _STUDENT_METHODS.items():
        PRESETS[f"{_short}-{_method}"] = {"backbone": _backbone, **_weights}
PRESETS.update(
    {
        "r18-gat": {"backbone": "resnet18", "gat": PAPER_WEIGHTS["gat"]},  # Table 2
        "r18-heo": {"backbone": "resnet18", "heo": PAPER_WEIGHTS["heo"]},  # Table 2
        "r18-pixel-middle": {"backbone": "resnet18", "pixel": PAPER_WEIGHTS["pixel"], "pixel_tap": "encoder"},
        "r18-pair-end": {"backbone": "resnet18", "pair": PAPER_WEIGHTS["pair"], "pair_tap": "decoder"},
    }
)

# Which preset fills which row of which table (the notebooks read this).
TABLE_ROWS: dict[str, list[str]] = {
    "table1": ["teacher", "r18-none", "r18-pixel", "r18-pair", "r18-both",
               "mnv2-none", "mnv2-pixel", "mnv2-pair", "mnv2-both"],
    "table2": ["teacher", "r18-none", "r18-gat", "r18-heo", "r18-both"],
    "table3": ["r18-pixel-middle", "r18-pixel", "r18-pair", "r18-pair-end"],
}

# The scale knob shrinks data, crop and epochs; it never touches the method. Crops are odd (like 513) so that the
# stride-16 encoder map is odd and the authors' ceil-mode pooling gives exactly 3 x 3.
SCALES: dict[str, dict[str, Any]] = {
    "paper": {},
    # Sized for 2 CPU cores and a stand-in rendered at short side 80 (crop / image ~ 0.8, the paper's 513 / 375 ~ 1.4
    # keeps whole objects in view too): one ResNet-18 distillation run takes minutes, the campaign hours.
    # The teacher gets a longer schedule ("teacher" entry): the paper's starts from ImageNet weights, ours from random
    # ones. Measured against the plain ResNet-18 (about 21.5 mIoU): 10.1 after the students' 8 epochs (1 seed),
    # 21.7 +- 3.6 after 24 (3 seeds, no better; results/cpu-standin-voclabels), 27.2 +- 1.2 after 48 (3 seeds, every
    # one above every seed of the plain ResNet-18; results/cpu-standin-voclabels-teacher48).
    "cpu": {"epochs": 8, "crop": 65, "val_size": 65, "batch_size": 8, "max_train_images": 240,
            "max_val_images": 240, "workers": 1, "teacher": {"epochs": 48}},
    # Sized for one H100/H200 in about 15 minutes of a lent GPU (one seed; the students run four at a time): the
    # whole train/val split of a stand-in rendered at short side 160, bf16 autocast. Teacher: twice the epochs,
    # measured too few: after 40 it was at 64.3 mIoU, below the plain ResNet-18 at 74.4 (1 seed, H100).
    "gpu": {"epochs": 20, "crop": 161, "val_size": 161, "batch_size": 16, "workers": 3, "amp": True,
            "eval_every": 5, "teacher": {"epochs": 40}},
    "smoke": {"epochs": 2, "crop": 65, "val_size": 65, "batch_size": 4, "max_train_images": 16, "max_val_images": 8,
              "workers": 0},
}

_CHOICES = {
    "backbone": BACKBONES, "pixel_tap": TAPS, "pair_tap": TAPS, "gat_tap": TAPS, "cwd_tap": TAPS,
    "pixel_variant": PIXEL_VARIANTS, "pair_nodes": PAIR_NODES, "dataset": DATASETS, "val_mode": VAL_MODES,
    "amp_dtype": AMP_DTYPES, "scale": tuple(SCALES),
}
_POSITIVE = ("epochs", "batch_size", "lr", "crop", "val_size", "num_classes", "eval_every", "kd_temperature",
             "cwd_temperature")
_NON_NEGATIVE = ("pixel", "pair", "gat", "heo", "logit_kd", "cwd", "weight_decay", "momentum", "workers",
                 "head_lr_mult", "poly_power")
MAX_CROP = 1025  # beyond this a DeepLabV3+ step does not fit a 80 GB GPU at batch 6; almost surely a typo


def validate(cfg: Config) -> Config:
    """Check every value before any work starts; raise `ConfigError` naming the field and the allowed values."""
    for key, allowed in _CHOICES.items():
        if getattr(cfg, key) not in allowed:
            raise ConfigError(f"{key}={getattr(cfg, key)!r} is not allowed; choose one of: {', '.join(allowed)}")
    if cfg.preset != "custom" and cfg.preset not in PRESETS:
        raise ConfigError(f"unknown preset {cfg.preset!r}; choose one of: {', '.join(PRESETS)}")
    for key in _POSITIVE:
        if not getattr(cfg, key) > 0:
            raise ConfigError(f"{key} must be > 0, got {getattr(cfg, key)!r}")
    for key in _NON_NEGATIVE:
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{key} must be >= 0, got {getattr(cfg, key)!r}")
    if cfg.output_stride not in (8, 16):
        raise ConfigError(f"output_stride must be 8 or 16, got {cfg.output_stride!r}")
    if not cfg.crop <= MAX_CROP or not cfg.val_size <= MAX_CROP:
        raise ConfigError(f"crop and val_size must be <= {MAX_CROP}, got crop={cfg.crop}, val_size={cfg.val_size}")
    if not 0 < cfg.scale_min <= cfg.scale_max:
        raise ConfigError(f"need 0 < scale_min <= scale_max, got {cfg.scale_min}, {cfg.scale_max}")
    if cfg.label_pad not in (0, 255):
        raise ConfigError(f"label_pad must be 255 (ignored, paper) or 0 (authors' code), got {cfg.label_pad!r}")
    if cfg.distills and not cfg.teacher:
        raise ConfigError(f"preset {cfg.preset!r} distils from a teacher: give its checkpoint with --teacher PATH")
    if cfg.teacher and cfg.backbone == "resnet101" and cfg.preset == "teacher":
        raise ConfigError("the teacher preset trains the teacher itself; it takes no --teacher")
    if cfg.dataset == "voc" and not cfg.data_root:
        raise ConfigError("dataset='voc' needs data_root, the folder holding VOCdevkit/VOC2012 (see the book's "
                          "'reproduce' page); without VOC, use dataset='standin' (--dataset standin)")
    return cfg


def resolve(preset: str = "custom", scale: str = "paper", **overrides: Any) -> Config:
    """Defaults <- preset <- scale <- overrides (None values in `overrides` mean "not given" and are skipped)."""
    if preset != "custom" and preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; choose one of: {', '.join(SCALES)}")
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown config field(s) {', '.join(unknown)}; known fields: {', '.join(sorted(known))}")
    values: dict[str, Any] = {"preset": preset, "scale": scale}
    values.update(PRESETS.get(preset, {}))
    scale_values = dict(SCALES[scale])
    teacher_values = scale_values.pop("teacher", {})
    values.update(scale_values)
    if preset == "teacher":
        values.update(teacher_values)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return validate(Config(**values))


def from_dict(values: dict[str, Any]) -> Config:
    """Rebuild a Config from `Config.to_dict()` output (a checkpoint or a run record)."""
    known = {f.name for f in dataclasses.fields(Config)}
    return Config(**{k: v for k, v in values.items() if k in known})


__all__ = ["Config", "PRESETS", "SCALES", "TABLE_ROWS", "PAPER_WEIGHTS", "resolve", "validate", "from_dict"]
