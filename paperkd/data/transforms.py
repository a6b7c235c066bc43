"""Paired image + label transforms of the paper's recipe, built from torchvision.transforms.v2.

Train (paper, Setup): random scale 0.5-2.0, random horizontal flip, random crop 513 x 513. Validation: resize to
513 x 513. The authors' code differs in details (short side scaled relative to 513, label padded with 0, Gaussian blur
with p = 0.5, validation keeps the aspect ratio); each of those is an option here, the paper's reading is the default.

Geometry runs on the uint8 image; the label is a `tv_tensors.Mask`, so v2 applies the same flip / pad / crop to it.
One deliberate departure from v2's defaults: v2 resizes masks with InterpolationMode.NEAREST (PyTorch's legacy
nearest, source index floor(i * in / out)), which sits up to half an output pixel off the bilinear image
(half-pixel centres). Labels are resized with NEAREST_EXACT instead (floor((i + 0.5) * in / out)), which samples the
same pixel centres as the image, so region borders of image and label coincide.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from paperkd.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SCALE_OF = ("image", "crop")
VAL_MODES = ("square", "short_side")
# Authors' blur: PIL GaussianBlur(radius=random.random()), i.e. sigma uniform in [0, 1); 7 taps cover +-3 sigma.
BLUR_KERNEL = 7
BLUR_SIGMA = (0.01, 1.0)


class PairedResize(v2.Transform):
    """Resize image (bilinear, antialiased) and mask (NEAREST_EXACT) to a size chosen by `output_size`."""

    def output_size(self, height: int, width: int) -> list[int]:
        """[height, width], or [short side] to keep the aspect ratio (as `v2.functional.resize` reads it)."""
        raise NotImplementedError

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        return {"size": self.output_size(height, width)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Mask):
            interpolation = v2.InterpolationMode.NEAREST_EXACT
        else:
            interpolation = v2.InterpolationMode.BILINEAR
        return self._call_kernel(F.resize, inpt, params["size"], interpolation=interpolation, antialias=True)


class Resize(PairedResize):
    """Deterministic resize: `size` is [height, width] or [short side]."""

    def __init__(self, size: list[int]):
        super().__init__()
        self.size = list(size)

    def output_size(self, height: int, width: int) -> list[int]:
        return self.size


class RandomScale(PairedResize):
    """Resize by a factor drawn uniformly from `scale` (torch's global RNG, so `torch.manual_seed` fixes it).

    reference=None (the paper's "random scale 0.5-2.0"): both sides of the image are multiplied by the factor.
    reference=513 (the authors' code): the short side becomes factor * 513 whatever the image's own size.
    """

    def __init__(self, scale: tuple[float, float] = (0.5, 2.0), reference: int | None = None):
        super().__init__()
        self.scale = scale
        self.reference = reference

    def output_size(self, height: int, width: int) -> list[int]:
        factor = float(torch.empty(()).uniform_(self.scale[0], self.scale[1]))
        if self.reference is not None:
            return [max(1, round(factor * self.reference))]
        return [max(1, round(factor * height)), max(1, round(factor * width))]


class SegmentationTransform:
    """`(image, mask) -> (float32 tensor (3, H, W), int64 tensor (H, W))` around a v2 pipeline.

    The mask is wrapped as a `tv_tensors.Mask` first (from a PIL "P"/"L" image, a numpy array or a tensor): v2 would
    otherwise treat a plain tensor or PIL label as a second image and interpolate its class indices.
    """

    def __init__(self, pipeline: v2.Transform):
        self.pipeline = pipeline

    def __call__(self, image: Any, mask: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pipeline(image, as_mask(mask))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.pipeline!r})"


def as_mask(mask: Any) -> tv_tensors.Mask:
    """`mask` as a (H, W) `tv_tensors.Mask` of class indices (PIL palette images give their indices)."""
    if isinstance(mask, tv_tensors.Mask):
        return mask
    if isinstance(mask, Image.Image):
        mask = np.array(mask)
    return tv_tensors.Mask(torch.as_tensor(mask))


def _finish(mean: tuple[float, ...], std: tuple[float, ...]) -> list[Callable]:
    # uint8 image -> float in [0, 1] -> ImageNet-normalised; mask -> int64; plain tensors out.
    return [
        v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.int64, "others": None}, scale=True),
        v2.Normalize(mean=list(mean), std=list(std)),
        v2.ToPureTensor(),
    ]


def train_transforms(
    crop: int = 513,
    scale: tuple[float, float] = (0.5, 2.0),
    label_pad: int = 255,
    blur: bool = False,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
    scale_of: str = "image",
) -> SegmentationTransform:
    """The training augmentation: random scale, horizontal flip (p = 0.5), pad to at least `crop`, random crop.

    - scale_of="image" (paper): the image is resized by a factor uniform in `scale`; "crop" (authors' code): its short
      side becomes factor * `crop`.
    - Padding (only where the scaled image is smaller than `crop`): the image with the mean colour, which is ~0 after
      normalisation; the label with `label_pad` (255 = ignored by the loss; the authors' code pads with 0 =
      background).
    - blur=True: Gaussian blur of the image only, with p = 0.5 and sigma uniform in (0, 1] (authors' code).
    Output: (float32 (3, crop, crop) normalised with `mean`/`std`, int64 (crop, crop)).
    """
    if scale_of not in SCALE_OF:
        raise ConfigError(f"scale_of={scale_of!r} is not one of {SCALE_OF}")
    if not 0 < scale[0] <= scale[1]:
        raise ConfigError(f"scale={scale!r} must be (low, high) with 0 < low <= high")
    mean_pixel = tuple(round(255 * m) for m in mean)  # padding colour in the uint8 image
    steps = [
        v2.ToImage(),
        RandomScale(scale, reference=crop if scale_of == "crop" else None),
        v2.RandomHorizontalFlip(p=0.5),
        v2.RandomCrop(crop, pad_if_needed=True, fill={tv_tensors.Image: mean_pixel, tv_tensors.Mask: label_pad}),
    ]
    if blur:
        steps.append(v2.RandomApply([v2.GaussianBlur(BLUR_KERNEL, sigma=BLUR_SIGMA)], p=0.5))
    return SegmentationTransform(v2.Compose(steps + _finish(mean, std)))


def val_transforms(
    size: int = 513,
    mode: str = "square",
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> SegmentationTransform:
    """The validation transform: mode="square" resizes to size x size (paper); "short_side" resizes the short side to
    `size` keeping the aspect ratio (authors' code). Labels are resized with nearest-exact, never interpolated.
    Output: (float32 (3, H, W) normalised, int64 (H, W))."""
    if mode not in VAL_MODES:
        raise ConfigError(f"val transform mode={mode!r} is not one of {VAL_MODES}")
    resize = Resize([size, size] if mode == "square" else [size])
    return SegmentationTransform(v2.Compose([v2.ToImage(), resize] + _finish(mean, std)))
