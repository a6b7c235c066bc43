"""A synthetic stand-in for Pascal VOC 2012 in VOC's exact folder layout, so that the real loader, transforms, trainer
and notebooks run end to end where the VOC images cannot be had.

The label maps are either drawn procedurally (the default: needs nothing outside the project) or copied from a real
VOC label folder (then the geometry, class statistics and 255 borders are VOC's own). The images are rendered from the
labels: each class has a base colour and a texture, several classes share a colour (so colour alone does not decide
the class), the background carries clutter in foreground colours, and every image gets its own illumination, colour
cast and sensor noise. Results on these images are never VOC results; `STANDIN.md` beside the data says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm  # the plain text bar: works in terminals and notebooks without ipywidgets

from paperkd.data.palette import IGNORE_INDEX, NUM_CLASSES, read_label, save_label_png
from paperkd.errors import ConfigError, DataError, PaperkdError

GENERATOR_VERSION = 1  # bump whenever the output for a given seed changes: the default stand-in's cache key holds it
DEFAULT_STANDIN = {"n_train": 300, "n_val": 150, "size": 128, "seed": 0}
VOC_SPLIT_SIZES = {"train": 1464, "val": 1449}  # procedural default counts: the official VOC 2012 segmentation splits
SPLITS = ("train", "val")


@dataclass(frozen=True)
class ClassLook:
    """How one foreground class is drawn: colour, texture (kind, cycles per short side, degrees) and shape prior."""

    colour: tuple[int, int, int]
    texture: str  # stripes | checker | dots | waves | noise | speckle
    frequency: float
    angle: float
    shape: str  # ellipse | blob | polygon | box
    aspect: float  # width / height of the shape before rotation


# Six colours are shared by 13 classes (five pairs and one triple) that differ only in texture and shape prior, so a
# model has to use texture, shape and context, not colour alone. The other seven classes have a colour of their own.
_RED, _BLUE, _BROWN, _WHITE, _GREEN, _DARK = (190, 60, 50), (70, 90, 170), (150, 110, 70), (215, 215, 205), \
    (60, 140, 60), (45, 45, 50)
LOOKS: dict[int, ClassLook] = {
    1: ClassLook(_BLUE, "speckle", 0, 0, "polygon", 2.2),  # aeroplane
    2: ClassLook((230, 180, 40), "stripes", 7, 45, "blob", 1.4),  # bicycle
    3: ClassLook((120, 170, 210), "dots", 6, 0, "ellipse", 1.3),  # bird
    4: ClassLook(_BLUE, "waves", 5, 0, "polygon", 1.7),  # boat
    5: ClassLook(_GREEN, "stripes", 9, 90, "ellipse", 0.35),  # bottle
    6: ClassLook(_RED, "stripes", 5, 0, "box", 1.6),  # bus
    7: ClassLook((200, 50, 150), "checker", 5, 20, "box", 1.9),  # car
    8: ClassLook(_BROWN, "stripes", 8, 60, "blob", 1.2),  # cat
    9: ClassLook((130, 70, 140), "waves", 6, 90, "polygon", 0.8),  # chair
    10: ClassLook(_WHITE, "checker", 4, 0, "blob", 1.5),  # cow
    11: ClassLook((100, 60, 30), "stripes", 4, 0, "box", 1.8),  # diningtable
    12: ClassLook(_BROWN, "noise", 6, 0, "blob", 1.3),  # dog
    13: ClassLook(_BROWN, "dots", 4, 30, "blob", 1.4),  # horse
    14: ClassLook(_DARK, "checker", 8, 45, "blob", 1.4),  # motorbike
    15: ClassLook((230, 170, 140), "speckle", 0, 0, "ellipse", 0.45),  # person
    16: ClassLook(_GREEN, "noise", 10, 0, "blob", 0.8),  # pottedplant
    17: ClassLook(_WHITE, "speckle", 0, 0, "ellipse", 1.4),  # sheep
    18: ClassLook(_RED, "noise", 4, 0, "box", 1.9),  # sofa
    19: ClassLook((240, 120, 30), "stripes", 6, 90, "box", 2.5),  # train
    20: ClassLook(_DARK, "waves", 3, 0, "box", 1.3),  # tvmonitor
}
BACKGROUND_COLOURS = ((125, 125, 125), (150, 180, 210), (90, 130, 70), (170, 160, 140), (60, 60, 70), (180, 150, 110))

# Share of VOC 2012 trainval images in which each class 1..20 appears (measured on the real label maps); person leads.
_CLASS_IMAGE_SHARE = np.array([0.061, 0.049, 0.071, 0.051, 0.063, 0.052, 0.088, 0.086, 0.093, 0.046, 0.054, 0.085,
                               0.05, 0.054, 0.305, 0.057, 0.041, 0.063, 0.057, 0.054])
_CLASS_WEIGHTS = _CLASS_IMAGE_SHARE / _CLASS_IMAGE_SHARE.sum()
_N_CLASSES_P = (0.55, 0.32, 0.13)  # 1, 2 or 3 foreground classes per image, as in VOC
_TEXTURE_AMPLITUDE = 40.0  # grey levels


def shared_colour_groups() -> list[tuple[int, ...]]:
    """The groups of classes drawn in the same base colour (by design; see `LOOKS`)."""
    by_colour: dict[tuple[int, int, int], list[int]] = {}
    for cls, look in LOOKS.items():
        by_colour.setdefault(look.colour, []).append(cls)
    return [tuple(group) for group in by_colour.values() if len(group) > 1]


def short_side_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) scaled so that the short side equals `size` (the long side rounded)."""
    scale = size / min(width, height)
    if width <= height:
        return size, max(1, round(height * scale))
    return max(1, round(width * scale)), size


# -- label maps -------------------------------------------------------------------------------------------------------

def _border_radius(short_side: int) -> int:
    """Half-width of the 255 band: VOC's outlines are about 4-5 px wide at the native ~375 px short side."""
    return max(1, round(short_side / 150))


def _shape_points(rng: np.random.Generator, look: ClassLook, area: float, width: int, height: int) -> list[tuple]:
    """A closed polygon (list of (x, y)) for one object of `look`'s shape with about `area` pixels."""
    aspect = look.aspect * rng.uniform(0.8, 1.25)
    a = np.sqrt(area * aspect / np.pi)  # semi-axes of the ellipse of that area
    b = np.sqrt(area / (aspect * np.pi))
    cx, cy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.15, 0.95) * height
    rotation = np.deg2rad(rng.uniform(-20, 20))
    if look.shape == "box":
        x = np.array([-1, 1, 1, -1]) * a * 0.89 + rng.uniform(-0.05, 0.05, 4) * a  # 0.89: same area as the ellipse
        y = np.array([-1, -1, 1, 1]) * b * 0.89 + rng.uniform(-0.05, 0.05, 4) * b
    else:
        if look.shape == "polygon":
            phi = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(5, 9)))
            radius = rng.uniform(0.7, 1.2, phi.size)
        else:
            phi = np.linspace(0, 2 * np.pi, 48, endpoint=False)
            radius = np.ones_like(phi)
            if look.shape == "blob":  # a few low-frequency wobbles of the outline
                for k in (2, 3, 4):
                    radius = radius + rng.uniform(0, 0.18) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
        x, y = a * radius * np.cos(phi), b * radius * np.sin(phi)
    xr = cx + x * np.cos(rotation) - y * np.sin(rotation)
    yr = cy + x * np.sin(rotation) + y * np.cos(rotation)
    return list(zip(xr.tolist(), yr.tolist()))


def procedural_label(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw objects of 1-3 classes on background 0; return (classes, instances), both (H, W) uint8, no 255 yet.

    Later objects occlude earlier ones. `instances` numbers the objects 1.. (0 = background) so that a border can be
    drawn between two touching objects of the same class, as VOC does.
    """
    n_classes = rng.choice(len(_N_CLASSES_P), p=_N_CLASSES_P) + 1
    chosen = rng.choice(np.arange(1, NUM_CLASSES), size=n_classes, replace=False, p=_CLASS_WEIGHTS)
    objects = [int(c) for c in chosen for _ in range(rng.choice(3, p=(0.7, 0.2, 0.1)) + 1)]
    rng.shuffle(objects)
    # Share of the frame given to objects, before clipping at the frame and occlusion; what survives is close to
    # VOC's foreground share (median ~0.2, mean ~0.25 of the pixels).
    foreground_share = np.exp(rng.uniform(np.log(0.06), np.log(0.9)))
    areas = np.maximum(rng.dirichlet(np.full(len(objects), 2.0)) * foreground_share, 0.01) * width * height
    classes, instances = Image.new("L", (width, height)), Image.new("L", (width, height))
    draw_classes, draw_instances = ImageDraw.Draw(classes), ImageDraw.Draw(instances)
    for index, (cls, area) in enumerate(zip(objects, areas), start=1):
        points = _shape_points(rng, LOOKS[cls], area, width, height)
        draw_classes.polygon(points, fill=cls)
        draw_instances.polygon(points, fill=index)
    return np.asarray(classes).copy(), np.asarray(instances).copy()


def _max_filter(values: np.ndarray, radius: int) -> np.ndarray:
    """Maximum over the (2 radius + 1)^2 square around each pixel (edges replicated), as two 1-D passes."""
    out = values
    for axis in (0, 1):
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
        length = out.shape[axis]
        out = padded.take(range(0, length), axis=axis)
        for shift in range(1, 2 * radius + 1):
            out = np.maximum(out, padded.take(range(shift, shift + length), axis=axis))
    return out


def border_band(instances: np.ndarray, radius: int) -> np.ndarray:
    """Pixels within `radius` (Chebyshev) of a pixel of another region: VOC's 255 outline, on both sides."""
    instances = instances.astype(np.int16)
    return _max_filter(instances, radius) != -_max_filter(-instances, radius)


def fill_ignored(label: np.ndarray, radius: int) -> np.ndarray:
    """Give 255 pixels the highest class index within `radius` (0 if none): what to render under VOC's borders."""
    known = np.where(label == IGNORE_INDEX, 0, label).astype(np.uint8)
    return np.where(label == IGNORE_INDEX, _max_filter(known, radius), label).astype(np.uint8)


# -- images -----------------------------------------------------------------------------------------------------------

def _noise_field(rng: np.random.Generator, width: int, height: int, cells: float) -> np.ndarray:
    """Smooth zero-mean noise, about `cells` blobs across the short side, unit standard deviation."""
    short = min(width, height)
    grid_w, grid_h = max(2, round(cells * width / short) + 1), max(2, round(cells * height / short) + 1)
    grid = Image.fromarray(rng.standard_normal((grid_h, grid_w)).astype(np.float32))
    field = np.asarray(grid.resize((width, height), Image.Resampling.BICUBIC))
    return (field - field.mean()) / (field.std() + 1e-6)


def _texture(rng: np.random.Generator, look: ClassLook, mask: np.ndarray, short: int) -> np.ndarray:
    """Texture values in about [-1, 1] for the pixels of `mask` (1-D, in mask order)."""
    if look.texture == "speckle":
        return np.clip(rng.standard_normal(int(mask.sum())) * 0.6, -1, 1).astype(np.float32)
    if look.texture == "noise":
        height, width = mask.shape
        return np.clip(_noise_field(rng, width, height, look.frequency)[mask] * 0.6, -1, 1)
    ys, xs = np.nonzero(mask)
    angle = np.deg2rad(look.angle + rng.uniform(-15, 15))
    omega = 2 * np.pi * look.frequency * rng.uniform(0.85, 1.15) / short  # radians per pixel
    u = (xs * np.cos(angle) + ys * np.sin(angle)) * omega + rng.uniform(0, 2 * np.pi)
    v = (-xs * np.sin(angle) + ys * np.cos(angle)) * omega + rng.uniform(0, 2 * np.pi)
    if look.texture == "stripes":
        return np.sin(u).astype(np.float32)
    if look.texture == "checker":
        return np.sign(np.sin(u) * np.sin(v)).astype(np.float32)
    if look.texture == "dots":
        return (np.cos(u) * np.cos(v)).astype(np.float32)
    if look.texture == "waves":
        return np.sin(u + 1.5 * np.sin(v / 3)).astype(np.float32)
    raise ValueError(f"unknown texture {look.texture!r}")


def _paint(image: np.ndarray, mask: np.ndarray, colour: np.ndarray, texture: np.ndarray) -> None:
    """image[mask] = colour + texture (grey-level modulation), in place."""
    image[mask] = colour[None, :] + _TEXTURE_AMPLITUDE * texture[:, None]


def _background(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """The scene behind the objects: a muted colour, smooth shading, and clutter shapes in foreground colours."""
    height, width = under.shape
    colour = np.array(BACKGROUND_COLOURS[rng.integers(len(BACKGROUND_COLOURS))]) * rng.uniform(0.85, 1.15, 3)
    shading = _noise_field(rng, width, height, rng.uniform(1.5, 4)) * 0.6
    image = (colour[None, None, :] + _TEXTURE_AMPLITUDE * shading[:, :, None]).astype(np.float32)
    clutter = Image.new("L", (width, height))
    draw = ImageDraw.Draw(clutter)
    n_clutter = int(rng.integers(2, 7))
    for index in range(1, n_clutter + 1):  # shapes of background class, coloured like some foreground class
        look = LOOKS[int(rng.integers(1, NUM_CLASSES))]
        decoy = ClassLook(look.colour, "noise", 0, 0, str(rng.choice(["ellipse", "polygon", "box"])), 1.0)
        draw.polygon(_shape_points(rng, decoy, rng.uniform(0.005, 0.05) * width * height, width, height), fill=index)
        mask = (np.asarray(clutter) == index) & (under == 0)
        if mask.any():
            flat = rng.uniform(0.2, 0.6) * _noise_field(rng, width, height, rng.uniform(6, 14))[mask]
            _paint(image, mask, np.array(look.colour) * rng.uniform(0.9, 1.1, 3), flat)
    return image


def render_image(rng: np.random.Generator, under: np.ndarray, instances: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Render a (H, W, 3) uint8 RGB image for a label map.

    `under`: class of every pixel (no 255: what lies under VOC's borders); `instances`: object ids (0 = background);
    `band`: where the saved label is 255, rendered as a blend of its neighbourhood like a real object outline.
    """
    height, width = under.shape
    short = min(height, width)
    image = _background(rng, under)
    for instance in np.unique(instances[under > 0]):
        mask = (instances == instance) & (under > 0)
        cls = int(np.bincount(under[mask]).argmax())
        look = LOOKS[cls]
        _paint(image, mask, np.array(look.colour) * rng.uniform(0.9, 1.1, 3), _texture(rng, look, mask, short))
    image = np.clip(image, 0, 255).astype(np.uint8)
    if band.any():
        blurred = np.asarray(Image.fromarray(image).filter(ImageFilter.BoxBlur(_border_radius(short) + 1)))
        image[band] = blurred[band]
    # Per-image camera: global gain, colour cast, a linear illumination gradient, then sensor noise.
    ys, xs = np.ogrid[0:height, 0:width]
    direction = rng.uniform(0, 2 * np.pi)
    gradient = 1 + rng.uniform(-0.2, 0.2) * ((xs * np.cos(direction) + ys * np.sin(direction)) / max(height, width))
    gain = rng.uniform(0.65, 1.25) * rng.uniform(0.88, 1.12, 3)
    light = image.astype(np.float32) * (gradient[:, :, None] * gain[None, None, :]).astype(np.float32)
    light += rng.standard_normal(light.shape, dtype=np.float32) * np.float32(rng.uniform(2, 8))
    return np.clip(light + 0.5, 0, 255).astype(np.uint8)


# -- one sample -------------------------------------------------------------------------------------------------------

def _stem_rng(seed: int, stem: str) -> np.random.Generator:
    """One generator per image, keyed by the stem: image k is the same whatever the counts or their order."""
    return np.random.default_rng([seed, zlib.crc32(stem.encode())])


def _procedural_sample(seed: int, stem: str, size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(image, label) for a procedural stem: VOC-like geometry (500 x 375 or 500 x 333, mostly landscape)."""
    rng = _stem_rng(seed, stem)
    aspect = rng.choice([4 / 3, 3 / 2], p=(0.65, 0.35))
    short = size if size is not None else round(500 / aspect)
    long_side = round(short * aspect)
    width, height = (long_side, short) if rng.uniform() < 0.8 else (short, long_side)
    under, instances = procedural_label(rng, width, height)
    band = border_band(instances, _border_radius(short))
    label = np.where(band, IGNORE_INDEX, under).astype(np.uint8)
    return render_image(rng, under, instances, band), label


def _copied_sample(seed: int, stem: str, label_path: Path, size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(image, label) for a real VOC label map, downscaled with NEAREST when `size` is given."""
    label = read_label(label_path)
    if size is not None:
        height, width = label.shape
        label = np.asarray(Image.fromarray(label).resize(short_side_size(width, height, size), Image.Resampling.NEAREST))
    short = min(label.shape)
    under = fill_ignored(label, 3 * _border_radius(short))
    return render_image(_stem_rng(seed, stem), under, under, label == IGNORE_INDEX), label


# -- the folder -------------------------------------------------------------------------------------------------------

def _voc_label_root(folder: Path) -> Path:
    """The folder holding SegmentationClass/ and ImageSets/ inside `folder` (itself, VOC2012 or VOCdevkit/VOC2012)."""
    for candidate in (folder, folder / "VOC2012", folder / "VOCdevkit" / "VOC2012"):
        if (candidate / "SegmentationClass").is_dir():
            return candidate
    raise DataError(f"{folder}: no SegmentationClass folder in it, in VOC2012/ or in VOCdevkit/VOC2012/")


def _first_stems(split_file: Path, count: int | None) -> list[str]:
    if not split_file.is_file():
        raise DataError(f"{split_file}: split file not found")
    stems = split_file.read_text().split()
    if count is not None and count > len(stems):
        raise ConfigError(f"asked for {count} stems but {split_file} lists only {len(stems)}")
    return stems if count is None else stems[:count]


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise PaperkdError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise PaperkdError(f"{out}: folder is not empty; choose another folder or pass overwrite=True")


def _move_into_place(built: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished temp folder to `out`, replacing an old one only when allowed."""
    _check_out(out, overwrite)
    old = None
    if out.is_dir():
        if any(out.iterdir()):
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / "content")
        else:
            out.rmdir()
    os.replace(built, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _describe(meta: dict) -> str:
    source = meta["labels"]
    size_text = "native (no rescaling)" if meta["size"] is None else f"short side {meta['size']} px"
    return (
        "# Synthetic stand-in for Pascal VOC 2012 (NOT VOC images)\n\n"
        "Every JPEG in this folder was rendered by `paperkd.data.standin.make_standin`; none is a Pascal VOC photo.\n"
        "The folder only mimics the VOC 2012 layout so that the loader, transforms, trainer and notebooks run end to\n"
        "end. Numbers measured on it are stand-in numbers: never report them as Pascal VOC results.\n\n"
        f"- label maps: {source}\n"
        f"- images: rendered from the labels (class colour + texture, shared colours, background clutter,\n"
        f"  per-image illumination, colour cast and Gaussian noise), generator version {meta['generator_version']}\n"
        f"- seed: {meta['seed']}\n"
        f"- size: {size_text}\n"
        f"- images per split: {meta['counts']}\n\n"
        "Rebuild it with\n\n"
        f"    make_standin(out, labels_from={meta['labels_from']!r}, n_train={meta['n_train']!r}, "
        f"n_val={meta['n_val']!r}, size={meta['size']!r}, seed={meta['seed']!r})\n"
    )


def make_standin(out: str | Path, labels_from: str | Path | None = None, n_train: int | None = None,
                 n_val: int | None = None, size: int | None = None, seed: int = 0, progress: bool = True,
                 overwrite: bool = False) -> Path:
    """Write a synthetic VOC-layout dataset to `out` and return `out`.

    `out/VOCdevkit/VOC2012/{JPEGImages, SegmentationClass, ImageSets/Segmentation/{train,val,trainval}.txt}` plus
    `out/STANDIN.md` and `out/STANDIN.json` saying how it was made. Labels are procedural (default; `n_train`/`n_val`
    default to VOC's 1,464/1,449) or copied from the VOC label folder `labels_from` with its official split (the
    first `n_train`/`n_val` stems of each split; all when None). `size`: short side in pixels (labels downscaled
    with NEAREST); None keeps VOC's ~500 x 375. The same arguments give the same bytes. The folder is built beside
    `out` and renamed at the end, so an interrupted run leaves nothing; a non-empty `out` raises `PaperkdError`
    unless `overwrite=True`.
    """
    out = Path(out)
    if size is not None and not (isinstance(size, int) and size >= 8):
        raise ConfigError(f"size must be an int >= 8 (short side in pixels) or None, got {size!r}")
    for name, count in (("n_train", n_train), ("n_val", n_val)):
        if count is not None and not (isinstance(count, int) and count >= 1):
            raise ConfigError(f"{name} must be an int >= 1 or None, got {count!r}")
    _check_out(out, overwrite)
    counts = {"train": n_train, "val": n_val}
    if labels_from is None:
        stems, offset = {}, 0
        for split in SPLITS:
            n = counts[split] if counts[split] is not None else VOC_SPLIT_SIZES[split]
            stems[split] = [f"standin_{offset + i:06d}" for i in range(n)]
            offset += n
        source = "procedural (random ellipses, polygons, blobs and boxes of 1-3 classes with a 255 border band)"
    else:
        label_root = _voc_label_root(Path(labels_from))
        stems = {split: _first_stems(label_root / "ImageSets" / "Segmentation" / f"{split}.txt", counts[split])
                 for split in SPLITS}
        source = f"copied from {Path(labels_from)} (real VOC 2012 label maps, official split, first stems)"

    out.parent.mkdir(parents=True, exist_ok=True)
    built = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        voc = built / "VOCdevkit" / "VOC2012"
        for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
            (voc / sub).mkdir(parents=True)
        todo = [stem for split in SPLITS for stem in stems[split]]
        for stem in tqdm(todo, desc="stand-in", unit="img", disable=not progress):
            if labels_from is None:
                image, label = _procedural_sample(seed, stem, size)
            else:
                image, label = _copied_sample(seed, stem, label_root / "SegmentationClass" / f"{stem}.png", size)
            Image.fromarray(image).save(voc / "JPEGImages" / f"{stem}.jpg", quality=90)
            save_label_png(voc / "SegmentationClass" / f"{stem}.png", label)
        for split in SPLITS:
            (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(s + "\n" for s in stems[split]))
        trainval = sorted(stems["train"] + stems["val"])
        (voc / "ImageSets" / "Segmentation" / "trainval.txt").write_text("".join(s + "\n" for s in trainval))
        meta = {
            "what": "synthetic stand-in for Pascal VOC 2012; NOT VOC images", "generator": "paperkd.data.standin",
            "generator_version": GENERATOR_VERSION, "seed": seed, "labels": source,
            "labels_from": None if labels_from is None else str(labels_from), "size": size,
            "n_train": n_train, "n_val": n_val, "counts": {split: len(stems[split]) for split in SPLITS},
        }
        (built / "STANDIN.json").write_text(json.dumps(meta, indent=2) + "\n")
        (built / "STANDIN.md").write_text(_describe(meta))
        _move_into_place(built, out, overwrite)
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise
    return out


def standin_info(root: str | Path) -> dict | None:
    """The STANDIN.json of a stand-in found at `root` or up to two folders above it (VOC2012, VOCdevkit); else None.

    Lets the trainer and the records mark results measured on a stand-in.
    """
    root = Path(root)
    for folder in (root, root.parent, root.parent.parent):
        path = folder / "STANDIN.json"
        if path.is_file():
            try:
                info = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                raise DataError(f"{path} is not readable stand-in metadata ({type(err).__name__}: {err}); "
                                "rebuild the stand-in with `paperkd make-standin ... --overwrite`") from None
            if not isinstance(info, dict):
                raise DataError(f"{path} is not stand-in metadata (a JSON {type(info).__name__}, not an object); "
                                "rebuild the stand-in with `paperkd make-standin ... --overwrite`")
            return info
    return None


def default_standin(root: str | Path | None = None) -> Path:
    """The embedded default stand-in (procedural, `DEFAULT_STANDIN`), built on first use and reused after.

    It lives in `root`, else `$PAPERKD_CACHE`, else `~/.cache/paperkd`, in a folder named for a hash of its
    parameters and the generator version, so a change to either builds a fresh one. Returns the folder holding
    VOCdevkit.
    """
    cache = Path(root) if root is not None else Path(os.environ.get("PAPERKD_CACHE") or Path.home() / ".cache/paperkd")
    key = json.dumps({**DEFAULT_STANDIN, "generator_version": GENERATOR_VERSION}, sort_keys=True)
    out = cache / f"standin-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if (out / "STANDIN.json").is_file():
        return out
    try:
        make_standin(out, **DEFAULT_STANDIN, progress=False)
    except (PaperkdError, OSError):
        if (out / "STANDIN.json").is_file():  # another process finished it first
            return out
        raise
    return out
