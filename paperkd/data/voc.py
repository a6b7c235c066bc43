"""Pascal VOC 2012 segmentation reader (optionally with the SBD-augmented training labels).

Layout (the official one):

    <root>/VOCdevkit/VOC2012/JPEGImages/<stem>.jpg
    <root>/VOCdevkit/VOC2012/SegmentationClass/<stem>.png          palette PNGs: indices 0..20, 255 = border / ignore
    <root>/VOCdevkit/VOC2012/ImageSets/Segmentation/<split>.txt    one stem per line
    <root>/VOCdevkit/VOC2012/SegmentationClassAug/<stem>.png       only for sbd=True (the usual "train_aug" setup)
    <root>/VOCdevkit/VOC2012/ImageSets/Segmentation/train_aug.txt  only for sbd=True

The paper trains on the official 1,464 train images WITHOUT SBD, so `sbd` is off by default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors

from paperkd.data.palette import IGNORE_INDEX, NUM_CLASSES, read_label
from paperkd.errors import DataError

SPLIT_FOLDER = Path("ImageSets") / "Segmentation"


def find_voc_root(root: str | Path) -> Path:
    """The `VOC2012` folder for `root` given as the folder holding `VOCdevkit`, as `VOCdevkit`, or as `VOC2012`.

    Raises DataError naming every path tried when none of them contains `ImageSets/Segmentation`.
    """
    root = Path(root).expanduser()
    candidates = [root / "VOCdevkit" / "VOC2012", root / "VOC2012", root]
    for candidate in candidates:
        if (candidate / SPLIT_FOLDER).is_dir():
            return candidate
    tried = ", ".join(str(c / SPLIT_FOLDER) for c in candidates)
    raise DataError(f"no Pascal VOC 2012 folder found under {root}: none of these exists: {tried}")


def read_split(split_file: Path) -> list[str]:
    """The image stems listed in a split file, one per line (blank lines skipped)."""
    if not split_file.is_file():
        raise DataError(f"split file not found: {split_file}")
    stems = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
    if not stems:
        raise DataError(f"split file lists no images: {split_file}")
    return stems


def read_label_file(path: Path) -> np.ndarray:
    """The class-index map (H, W) uint8 of a VOC label PNG: palette INDICES, never RGB colours (DataError for an
    RGB-coloured label or a missing file)."""
    if not path.is_file():
        raise DataError(f"label file not found: {path}")
    try:
        label = read_label(path)
    except OSError as err:
        raise DataError(f"unreadable label {path}: {err}") from None
    bad = np.unique(label[(label >= NUM_CLASSES) & (label != IGNORE_INDEX)])
    if bad.size:
        raise DataError(f"label {path} has values outside 0..{NUM_CLASSES - 1} and {IGNORE_INDEX}: "
                        f"{', '.join(map(str, bad[:10].tolist()))}")
    return label


def read_image(path: Path) -> Image.Image:
    """The RGB image at `path` (loaded into memory, file closed)."""
    if not path.is_file():
        raise DataError(f"image file not found: {path}")
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as err:  # truncated or corrupt files; PIL raises OSError subclasses for both
        raise DataError(f"unreadable image {path}: {err}") from None


class VOCSegmentation(Dataset):
    """Pascal VOC 2012 semantic segmentation: samples `(PIL RGB image, tv_tensors.Mask uint8 (H, W))`.

    With `transforms` given, a sample is `transforms(image, mask)` instead (e.g. `train_transforms()`).
    `sbd=True` trains on the SBD-augmented labels: for split "train" the stems come from `train_aug.txt` and the
    labels from `SegmentationClassAug/`; other splits (val) keep the official files, so evaluation is unchanged.
    The split file is checked when the dataset is built; image and label files when a sample is read.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transforms: Callable | None = None,
        sbd: bool = False,
    ):
        self.voc_root = find_voc_root(root)
        self.split = split
        self.transforms = transforms
        self.sbd = sbd
        augmented = sbd and split == "train"
        self.split_file = self.voc_root / SPLIT_FOLDER / ("train_aug.txt" if augmented else f"{split}.txt")
        self.label_folder = self.voc_root / ("SegmentationClassAug" if augmented else "SegmentationClass")
        self.image_folder = self.voc_root / "JPEGImages"
        self.stems = read_split(self.split_file)

    def __len__(self) -> int:
        return len(self.stems)

    def image_path(self, index: int) -> Path:
        return self.image_folder / f"{self.stems[index]}.jpg"

    def label_path(self, index: int) -> Path:
        return self.label_folder / f"{self.stems[index]}.png"

    def __getitem__(self, index: int):
        image_path, label_path = self.image_path(index), self.label_path(index)
        image = read_image(image_path)
        mask = tv_tensors.Mask(read_label_file(label_path))
        if image.size != (mask.shape[1], mask.shape[0]):
            raise DataError(
                f"image {image_path} is {image.size[0]}x{image.size[1]} but its label {label_path} is "
                f"{mask.shape[1]}x{mask.shape[0]} (width x height)"
            )
        if self.transforms is not None:
            return self.transforms(image, mask)
        return image, mask

    def __repr__(self) -> str:
        return (
            f"VOCSegmentation({str(self.voc_root)!r}, split={self.split!r}, sbd={self.sbd}, "
            f"{len(self)} images, transforms={self.transforms!r})"
        )
