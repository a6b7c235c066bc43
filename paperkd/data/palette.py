"""The Pascal VOC colour palette, and label maps to and from palette PNGs.

VOC stores a label map as a palette ("P" mode) PNG: each pixel holds a class index (0..20, 255 = border / ignore) and
the palette only decides how it looks. Reading the indices back needs PIL's raw "P" data, never an RGB conversion.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from paperkd.errors import DataError
from paperkd.vocabulary import IGNORE_INDEX  # noqa: F401  (re-exported: the data modules import it from here)

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
NUM_CLASSES = len(VOC_CLASSES)
LABEL_MODES = ("P", "L")  # index-valued modes; "L" is how SBD-converted labels are often stored


def _voc_palette() -> np.ndarray:
    """The 256-entry VOC palette: the bits of the index are spread over the high bits of R, G and B."""
    index = np.arange(256)
    rgb = np.zeros((256, 3), dtype=np.int64)
    for shift in range(8):  # bit 3*k+c of the index lands in bit (7-k) of channel c
        for channel in range(3):
            bit = (index >> (3 * shift + channel)) & 1
            rgb[:, channel] |= bit << (7 - shift)
    return rgb.astype(np.uint8)


VOC_PALETTE: np.ndarray = _voc_palette()
"""(256, 3) uint8: row i is the colour of class index i (row 255 is the cream border colour, 224,224,192)."""


def voc_palette_list() -> list[int]:
    """The palette flattened as PIL's `putpalette` wants it: [r0, g0, b0, r1, ...], 768 ints."""
    return VOC_PALETTE.reshape(-1).tolist()


def save_label_png(path: str | Path, label: np.ndarray) -> None:
    """Write a (H, W) array of class indices (0..255) as a VOC palette PNG."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"a label map is 2-D (H, W); got shape {label.shape}")
    if label.dtype != np.uint8:
        if label.min(initial=0) < 0 or label.max(initial=0) > 255:
            raise ValueError("label indices must lie in 0..255 to fit a palette PNG")
        label = label.astype(np.uint8)
    image = Image.fromarray(label)  # mode "L" ...
    image.putpalette(voc_palette_list())  # ... becomes "P" with the VOC colours, indices untouched
    image.save(path, format="PNG")


def read_label(path: str | Path) -> np.ndarray:
    """Read a label PNG's class indices as a (H, W) uint8 array; an RGB-coloured label raises `DataError`."""
    with Image.open(path) as image:
        if image.mode not in LABEL_MODES:
            raise DataError(
                f"{path}: label is mode {image.mode}, expected a palette-index PNG (mode P) holding class indices"
            )
        return np.asarray(image, dtype=np.uint8).copy()


def colorize(label: np.ndarray) -> np.ndarray:
    """Colour a (H, W) label map (or batch (..., H, W)) with the VOC palette: returns (..., H, W, 3) uint8 RGB."""
    label = np.asarray(label)
    return VOC_PALETTE[label.astype(np.int64) & 255]
