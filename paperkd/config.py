"""One configuration dataclass, two recipes, a preset for every row of Tables 1-3, and a scale knob.

A run is fully described by a `Config`. `resolve(preset, scale, recipe=..., **overrides)` builds one in layers, each
overriding the last: the defaults (the dataclass's, equal to the `authors` recipe), the recipe (`RECIPES`: how the
whole training is done, read from the authors' code or from the paper's text), the preset (which model, which
losses), the scale (how much data, crop and epochs; never the method), then explicit overrides from the caller or
the command line. `Config.recipe` names the recipe; `Config.recipe_deviations()` lists the fields that differ from it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from paperkd.errors import ConfigError
from paperkd.vocabulary import (ALL_TAPS, AMP_DTYPES, ATTENTION_FORMS, BACKBONES, DATASETS, LOSS_TERMS,
                                MODEL_SELECTIONS, PAIRWISE_NODES, PIXELWISE_VARIANTS, POSITIONS, SCALE_OF,
                                NUM_CLASSES, VAL_MODES)

TAPS = POSITIONS  # MIDDLE and END of Table 3
PIXEL_VARIANTS = PIXELWISE_VARIANTS
PAIR_NODES = PAIRWISE_NODES


@dataclass
class Config:
    """Everything that defines a run. Defaults: the `authors` recipe at the paper's full scale (paper.md "Setup")."""

    # -- model -------------------------------------------------------------------------------------------------------
    preset: str = "custom"
    backbone: str = "resnet101"
    num_classes: int = 21
    output_stride: int = 16
    backbone_weights: str | None = None  # ImageNet state_dict path or torchvision weights name; None = random init

    # -- distillation (students only; a weight of 0 switches a term off) ---------------------------------------------
    teacher: str | None = None  # path of the trained teacher's checkpoint
    teacher_train_mode: bool = True  # the authors' code runs the frozen teacher in train mode (batch statistics)
    allow_any_teacher: bool = False  # distil from a checkpoint that is not a finished teacher run, on purpose
    pixel: float = 0.0  # alpha of eq. 9 (paper: 100)
    pixel_tap: str = "decoder"  # END (paper's best for pixel-wise)
    pixel_variant: str = "authors"  # losses.pixelwise_loss's readings
    pair: float = 0.0  # beta of eq. 9 (paper: 1)
    pair_tap: str = "encoder"  # MIDDLE (paper's best for pair-wise)
    pair_nodes: str = "pixels"  # eq. 6's channel nodes or the 3 x 3 cells the authors' code uses
    pair_detach_norm: bool = True  # the authors' code detaches the node norm of eq. 7
    gat: float = 0.0  # lambda of eq. 3 (paper: 1)
    gat_tap: str = "all"  # a position, or "all" = the six pre-ReLU taps the authors' attention transfer sums over
    gat_form: str = "authors"  # losses.attention_transfer_loss's forms
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
    label_pad: int = 0  # the authors' code pads labels with 0 (background); 255 would be ignored
    blur: bool = True  # the authors' code adds a Gaussian blur with p = 0.5
    val_size: int = 513
    val_mode: str = "short_side"  # paper: resize to 513 x 513; authors' code: short side 513 keeping aspect
    scale_of: str = "crop"  # random scale of the image's size (paper) or of the crop's (authors: short side x 513)
    max_train_images: int | None = None
    max_val_images: int | None = None
    # Sized for a GPU box at crop 513 (the data-wait measurement behind it: results/bench/checks/, the performance
    # page). Augmentation is seeded per image and epoch (paperkd.data.seeded): the worker count never changes a run.
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
    # -- the training around the losses (the recipe decides these; see RECIPES) ---------------------------------------
    seg_batch_average: bool = True  # the authors' CE: mean over pixels, then divided by the batch size
    connector_warmup_epochs: int = 1  # first epochs train only the connectors (the student is not updated)
    distill_without_aspp_dropout: bool = True  # distilled students (and the teacher) skip the ASPP's Dropout(0.5)
    model_selection: str = "best"  # report the last epoch, or the best validation epoch (the authors' trainer)

    # -- bookkeeping -------------------------------------------------------------------------------------------------
    recipe: str = "authors"
    scale: str = "paper"
    eval_every: int = 1
    out: str = "runs"
    run_name: str | None = None
    device: str = "auto"

    @property
    def distills(self) -> bool:
        return any(w > 0 for w in self.weights().values())

    def weights(self) -> dict[str, float]:
        """The weight of every loss term of `LOSS_TERMS` (0 = off)."""
        return {term: getattr(self, weight) for term, (weight, _) in LOSS_TERMS.items()}

    def recipe_deviations(self) -> dict[str, Any]:
        """The recipe-governed fields whose value differs from `RECIPES[self.recipe]` (overridden on purpose)."""
        return {k: getattr(self, k) for k, v in RECIPES.get(self.recipe, {}).items() if getattr(self, k) != v}

    @property
    def name(self) -> str:
        return self.run_name or f"{self.preset}-s{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The two recipes: every field the training around the formulas depends on, set as one whole (book/paper_vs_code.md
# has a row per field with the repository, commit and path behind the `authors` side).
RECIPES: dict[str, dict[str, Any]] = {
    # What the authors' training code does (AICSD afc4b52 train_kd.py / train.py, overhaul-distillation
    # Segmentation/, pytorch-deeplab-xception's utils and transforms).
    "authors": {
        "seg_batch_average": True,  # utils/loss.py SegmentationLosses(batch_average=True)
        "connector_warmup_epochs": 1,  # init_optimizer in epoch 0
        "distill_without_aspp_dropout": True,  # modeling/aspp.py extract_feature
        "teacher_train_mode": True,  # t_net.train()
        "pixel_variant": "authors",
        "pair_nodes": "pixels", "pair_detach_norm": True,  # distiller.py similarity: L2(feat).detach()
        "gat_form": "authors", "gat_tap": ALL_TAPS,  # AICSD 7d7ac7d distiller.py (the six-tap attention)
        "model_selection": "best",  # best_pred
        "scale_of": "crop", "label_pad": 0, "blur": True, "val_mode": "short_side",  # custom_transforms.py
    },
    # The paper's text read literally wherever it speaks; where it is silent, no quirk of the code.
    "paper": {
        "seg_batch_average": False,
        "connector_warmup_epochs": 0,
        "distill_without_aspp_dropout": False,
        "teacher_train_mode": False,
        # The literal "paper" reading diverges at alpha = 100 and "paper-mean" collapses the students to background
        # (book/paper_vs_code.md); "paper-normalised" is the nearest reading that trains, named as such.
        "pixel_variant": "paper-normalised",
        "pair_nodes": "channels", "pair_detach_norm": False,  # eq. 6 as written, eq. 7's gradient
        "gat_form": "eq2", "gat_tap": "decoder",
        "model_selection": "last",
        "scale_of": "image", "label_pad": 255, "blur": False, "val_mode": "square",
    },
}
DEFAULT_RECIPE = "authors"  # the recipe that produced the paper's numbers

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
        # Beyond the tables. A positive control: Hinton soft-label KD as the authors ran it as their baseline
        # (AICSD f99949e distiller.py: T = 1, weight 10 on a KLDivLoss averaged over B*C*H*W, i.e. 10 / 21 on our
        # per-pixel sum over the 21 classes). Distillation that cannot pass this on cannot pass on a feature either.
        "r18-kd": {"backbone": "resnet18", "logit_kd": 10.0 / NUM_CLASSES, "kd_temperature": 1.0},
        # Equal compute: the plain student trained for as long as the proposed student costs (the epochs come from
        # the scale's "presets" entry, sized from a benchmark of the two steps side by side).
        "r18-none-compute": {"backbone": "resnet18"},
    }
)
# Which row each beyond-the-tables preset is compared with, and what it is for (the findings page reads this).
EXTRA_ROWS: dict[str, str] = {
    "r18-kd": "positive control: Hinton logit KD (the authors' KD baseline settings)",
    "r18-none-compute": "ResNet-18 without distillation, trained for the compute of the proposed student",
}

# Which preset fills which row of which table (the notebooks read this).
TABLE_ROWS: dict[str, list[str]] = {
    "table1": ["teacher", "r18-none", "r18-pixel", "r18-pair", "r18-both",
               "mnv2-none", "mnv2-pixel", "mnv2-pair", "mnv2-both"],
    "table2": ["teacher", "r18-none", "r18-gat", "r18-heo", "r18-both"],
    "table3": ["r18-pixel-middle", "r18-pixel", "r18-pair", "r18-pair-end"],
}

# The scale knob shrinks data, crop and epochs; it never touches the method. Crops are odd (like 513) so that the
# stride-16 encoder map is odd and the authors' ceil-mode pooling gives exactly 3 x 3. A scale's "presets" entry
# changes the schedule of single presets (a teacher trained from scratch needs more epochs than its students).
SCALES: dict[str, dict[str, Any]] = {
    "paper": {},
    # Sized for 2 CPU cores and a stand-in rendered at short side 80 from the real VOC label maps: the whole
    # 1,464-image train split, a fixed 300-image val subset, crop 65, batch 8; students 10 epochs, the teacher 60.
    # Chosen by a pilot of candidate regimes (book: reproduce, from results/pilot-cpu), whose 30-epoch teacher only
    # tied the plain ResNet-18. The equal-compute row's epochs: 10 x the proposed step's cost over the plain one's,
    # rounded, as measured side by side at this crop and batch in results/bench/cpu-65-b8-campaign.json
    # (tests/test_campaign.py checks the two agree).
    "cpu": {"epochs": 10, "crop": 65, "val_size": 65, "batch_size": 8, "max_train_images": None,
            "max_val_images": 300, "workers": 1,
            "presets": {"teacher": {"epochs": 60}, "r18-none-compute": {"epochs": 20}}},
    # The earlier CPU scale (240 train / 240 val images, 8 epochs, teacher 48), kept for the campaigns made with it
    # (results/cpu-standin-voclabels*), whose records name it "cpu".
    "cpu-240": {"epochs": 8, "crop": 65, "val_size": 65, "batch_size": 8, "max_train_images": 240,
                "max_val_images": 240, "workers": 1, "presets": {"teacher": {"epochs": 48}}},
    # Sized for one H100/H200 in about 15 minutes of a lent GPU (one seed; the students run four at a time): the
    # whole train/val split of a stand-in rendered at short side 160, bf16 autocast. Teacher: twice the epochs, too
    # few to lead its students (book: reproduce, from results/gpu-standin-voclabels-160).
    "gpu": {"epochs": 20, "crop": 161, "val_size": 161, "batch_size": 16, "workers": 3, "amp": True,
            "eval_every": 5, "presets": {"teacher": {"epochs": 40}}},
    "smoke": {"epochs": 2, "crop": 65, "val_size": 65, "batch_size": 4, "max_train_images": 16, "max_val_images": 8,
              "workers": 0},
}

_CHOICES = {
    "backbone": BACKBONES, "pixel_tap": TAPS, "pair_tap": TAPS, "gat_tap": (*TAPS, ALL_TAPS), "cwd_tap": TAPS,
    "pixel_variant": PIXEL_VARIANTS, "pair_nodes": PAIR_NODES, "gat_form": ATTENTION_FORMS, "dataset": DATASETS,
    "val_mode": VAL_MODES, "amp_dtype": AMP_DTYPES, "scale": tuple(SCALES), "recipe": tuple(RECIPES),
    "model_selection": MODEL_SELECTIONS, "scale_of": SCALE_OF,
}
_POSITIVE = ("epochs", "batch_size", "lr", "crop", "val_size", "num_classes", "eval_every", "kd_temperature",
             "cwd_temperature")
_NON_NEGATIVE = ("pixel", "pair", "gat", "heo", "logit_kd", "cwd", "weight_decay", "momentum", "workers",
                 "head_lr_mult", "poly_power", "connector_warmup_epochs")
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
    if cfg.distills and cfg.connector_warmup_epochs >= cfg.epochs:
        raise ConfigError(f"connector_warmup_epochs={cfg.connector_warmup_epochs} leaves no epoch to train the "
                          f"student in; it must be < epochs={cfg.epochs}")
    if cfg.teacher and cfg.backbone == "resnet101" and cfg.preset == "teacher":
        raise ConfigError("the teacher preset trains the teacher itself; it takes no --teacher")
    if cfg.dataset == "voc" and not cfg.data_root:
        raise ConfigError("dataset='voc' needs data_root, the folder holding VOCdevkit/VOC2012 (see the book's "
                          "'reproduce' page); without VOC, use dataset='standin' (--dataset standin)")
    return cfg


def resolve(preset: str = "custom", scale: str = "paper", recipe: str | None = None, **overrides: Any) -> Config:
    """Defaults <- recipe <- preset <- scale <- overrides (None values in `overrides` mean "not given" and are
    skipped; `recipe=None` is the default recipe, `DEFAULT_RECIPE`)."""
    return validate(Config(**layered_values(preset, scale, recipe, **overrides)))


def layered_values(preset: str = "custom", scale: str = "paper", recipe: str | None = None,
                   **overrides: Any) -> dict[str, Any]:
    """The config values `resolve` layers (recipe <- preset <- scale <- overrides) before the defaults fill the rest
    and `validate` checks them; unknown presets, scales, recipes and fields get a `ConfigError`."""
    if preset != "custom" and preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; choose one of: {', '.join(SCALES)}")
    recipe = recipe or DEFAULT_RECIPE
    if recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}; choose one of: {', '.join(RECIPES)}")
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown config field(s) {', '.join(unknown)}; known fields: {', '.join(sorted(known))}")
    values: dict[str, Any] = {"preset": preset, "scale": scale, "recipe": recipe, **RECIPES[recipe]}
    values.update(PRESETS.get(preset, {}))
    scale_values = dict(SCALES[scale])
    per_preset = scale_values.pop("presets", {})
    values.update(scale_values)
    values.update(per_preset.get(preset, {}))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return values


def scheduled_epochs(preset: str, scale: str) -> int:
    """The epochs `preset` trains at `scale`, as `resolve` gives them, without building a config (which would want
    a teacher for a distilling preset)."""
    return layered_values(preset, scale).get("epochs", Config.__dataclass_fields__["epochs"].default)


def scale_name(values: dict[str, Any]) -> str:
    """The scale a recorded config was made at: a scale's name can pass to a new definition (the records of the
    earlier `cpu` scale say "cpu"), so a recorded name whose values no longer match gives way to the scale whose
    values do (`cpu-240`); a run that merely overrode some values keeps its recorded name."""
    def matches(name: str) -> bool:  # epochs aside: campaigns often set them (a longer teacher)
        return all(values.get(k) == v for k, v in SCALES[name].items() if k not in ("presets", "epochs"))

    recorded = values.get("scale", "paper")
    if recorded in SCALES and matches(recorded):
        return recorded
    return next((name for name in SCALES if name != "paper" and matches(name)), recorded)


def from_dict(values: dict[str, Any]) -> Config:
    """Rebuild a Config from `Config.to_dict()` output (a checkpoint or a run record).

    A record written before the recipes existed lacks their fields; it is rebuilt with what that code did (no
    recipe layer: plain CE mean, no warm-up, ASPP dropout on, the last epoch, the paper's transforms, the node
    norm not detached) and `recipe="pre-recipe"`, never silently relabelled as either recipe."""
    known = {f.name for f in dataclasses.fields(Config)}
    values = {k: v for k, v in values.items() if k in known}
    if "recipe" not in values:
        values = {**PRE_RECIPE_FIELDS, **values}
    return Config(**values)


# What the code did before the recipe layer, for records without a `recipe` field (see `from_dict`): the committed
# campaigns ran the authors' pixel-wise reading with the paper's channel-node pair-wise reading, neither recipe.
PRE_RECIPE_FIELDS: dict[str, Any] = {
    **RECIPES["paper"], "recipe": "pre-recipe", "pixel_variant": "authors", "teacher_train_mode": False,
    "gat_form": "code", "gat_tap": "decoder",
}


__all__ = ["Config", "PRESETS", "EXTRA_ROWS", "SCALES", "TABLE_ROWS", "PAPER_WEIGHTS", "RECIPES", "DEFAULT_RECIPE",
           "layered_values", "resolve", "scale_name", "scheduled_epochs", "validate", "from_dict"]
