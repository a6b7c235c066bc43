"""Validate a VOC-layout dataset and report every problem at once, each with its file, instead of failing on the
first bad file halfway through an epoch.

`check_data` walks a whole root; `check_sample` checks one (image, label) pair, for the loader to call lazily;
`format_problems` turns the list into one readable report and `raise_for_problems` into one `DataError`.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm  # the plain text bar: works in terminals and notebooks without ipywidgets

from paperkd.data.palette import IGNORE_INDEX, LABEL_MODES, NUM_CLASSES
from paperkd.errors import DataError

SPLIT_FOLDER = Path("ImageSets") / "Segmentation"
_ALLOWED = np.zeros(256, dtype=bool)
_ALLOWED[:NUM_CLASSES] = True
_ALLOWED[IGNORE_INDEX] = True
_MAX_LISTED = 20  # per kind of problem in the report; the count says how many there are in all


@dataclass(frozen=True)
class DataProblem:
    """One problem with one file or folder. `problem` reads "<kind>" or "<kind>: <detail>"."""

    path: Path
    problem: str
    split: str | None = None

    @property
    def kind(self) -> str:
        """The problem without its detail: what the report groups by."""
        return self.problem.split(":", 1)[0]

    def __str__(self) -> str:
        where = f" [{self.split}]" if self.split else ""
        return f"{self.path}{where}: {self.problem}"


def _voc2012(root: Path) -> Path | None:
    """The VOC2012 folder for `root` given as the folder holding VOCdevkit, as VOCdevkit, or as VOC2012.

    More lenient than the loader's lookup on purpose: a folder with only some of the VOC subfolders is still found,
    so that the report can name the missing ones.
    """
    for candidate in (root / "VOCdevkit" / "VOC2012", root / "VOC2012", root):
        if any((candidate / sub).is_dir() for sub in ("JPEGImages", "SegmentationClass", "ImageSets")):
            return candidate
    return None


def _open_fully(path: Path, what: str) -> tuple[Image.Image | None, DataProblem | None]:
    """Open `path` and decode every pixel (PIL `verify` checks PNG checksums, `load` catches truncation)."""
    image = None
    try:
        with Image.open(path) as verified:
            verified.verify()
        image = Image.open(path)
        image.load()
        return image, None
    except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, struct.error... for broken files
        if image is not None:
            image.close()
        reason = str(error) or type(error).__name__
        return None, DataProblem(path, f"unreadable {what}: {reason}")


def _label_problems(label: Image.Image, path: Path) -> list[DataProblem]:
    if label.mode in ("RGB", "RGBA"):
        return [DataProblem(path, f"RGB-coloured label: mode {label.mode}, expected a palette-index PNG (mode P)")]
    if label.mode not in LABEL_MODES:
        return [DataProblem(path, f"unexpected label mode: {label.mode}, expected a palette-index PNG (mode P)")]
    counts = np.bincount(np.asarray(label, dtype=np.uint8).ravel(), minlength=256)
    bad = np.flatnonzero((counts > 0) & ~_ALLOWED)
    if bad.size:
        listed = ", ".join(str(v) for v in bad[:10]) + (", ..." if bad.size > 10 else "")
        return [DataProblem(path, f"label values outside 0..{NUM_CLASSES - 1} and {IGNORE_INDEX}: {listed}")]
    return []


def check_sample(image_path: str | Path, label_path: str | Path) -> list[DataProblem]:
    """Every problem with one (JPEG image, label PNG) pair: missing, unreadable or truncated file, RGB-coloured
    label, label values outside 0..20 and 255, image and label of different sizes."""
    image_path, label_path = Path(image_path), Path(label_path)
    problems: list[DataProblem] = []
    image = label = None
    if not image_path.is_file():
        problems.append(DataProblem(image_path, "missing image"))
    else:
        image, problem = _open_fully(image_path, "image")
        problems += [problem] if problem else []
    if not label_path.is_file():
        problems.append(DataProblem(label_path, "missing label"))
    else:
        label, problem = _open_fully(label_path, "label")
        problems += [problem] if problem else _label_problems(label, label_path)
    if image is not None and label is not None and image.size != label.size:
        problems.append(DataProblem(
            label_path, f"image and label sizes differ: image {image_path.name} is {image.width}x{image.height}, "
                        f"label is {label.width}x{label.height}"))
    for opened in (image, label):
        if opened is not None:
            opened.close()
    return problems


def _read_split(split_file: Path, split: str) -> tuple[list[str], list[DataProblem]]:
    if not split_file.is_file():
        return [], [DataProblem(split_file, "missing split file", split)]
    try:
        stems = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        return [], [DataProblem(split_file, f"unreadable split file: {error}", split)]
    if not stems:
        return [], [DataProblem(split_file, "empty split: the file lists no images", split)]
    twice = [stem for stem, n in Counter(stems).items() if n > 1]
    problems = [DataProblem(split_file, f"stem listed twice: {stem}", split) for stem in twice]
    return list(dict.fromkeys(stems)), problems


def check_data(root: str | Path, splits: tuple[str, ...] = ("train", "val"), sbd: bool = False,
               progress: bool = True) -> list[DataProblem]:
    """Every problem of a VOC-layout dataset at once (an empty list when it is clean).

    `root` is the folder holding VOCdevkit, VOCdevkit, or VOC2012. Checks the split files of `splits` (missing,
    empty, duplicate stems) and every listed pair with `check_sample`. With `sbd=True` the train split is
    `train_aug.txt` with labels in `SegmentationClassAug/`, as `VOCSegmentation(sbd=True)` reads it.
    """
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    root = Path(root).expanduser()
    if not root.is_dir():
        return [DataProblem(root, "folder not found")]
    voc = _voc2012(root)
    if voc is None:
        return [DataProblem(root, "not a VOC 2012 folder: no JPEGImages, SegmentationClass or ImageSets in it, "
                                  "in VOC2012/ or in VOCdevkit/VOC2012/")]
    problems: list[DataProblem] = []
    missing_folders: set[Path] = set()
    for folder in [voc / "JPEGImages", voc / SPLIT_FOLDER] + [_label_folder(voc, s, sbd) for s in splits]:
        if not folder.is_dir() and folder not in missing_folders:
            missing_folders.add(folder)
            problems.append(DataProblem(folder, "missing folder"))

    pairs: dict[tuple[Path, Path], str] = {}  # each pair checked once, reported with the first split listing it
    for split in splits:
        split_name = "train_aug" if sbd and split == "train" else split
        stems, split_problems = _read_split(voc / SPLIT_FOLDER / f"{split_name}.txt", split)
        problems += split_problems
        label_folder = _label_folder(voc, split, sbd)
        for stem in stems:
            pairs.setdefault((voc / "JPEGImages" / f"{stem}.jpg", label_folder / f"{stem}.png"), split)

    for (image_path, label_path), split in tqdm(pairs.items(), desc="checking", unit="pair", disable=not progress):
        for problem in check_sample(image_path, label_path):
            if problem.path.parent not in missing_folders:  # a missing folder is one problem, not one per file
                problems.append(replace(problem, split=split))
    return problems


def _label_folder(voc: Path, split: str, sbd: bool) -> Path:
    return voc / ("SegmentationClassAug" if sbd and split == "train" else "SegmentationClass")


def format_problems(problems: list[DataProblem]) -> str:
    """A readable report: a headline with the counts, then the problems grouped by kind, paths relative to their
    common folder (at most 20 listed per kind)."""
    if not problems:
        return "no data problems found"
    paths = [str(p.path) for p in problems]
    base = Path(os.path.commonpath([os.path.dirname(p) for p in paths]))
    n_files = len(set(paths))
    lines = [f"{len(problems)} data problem{'s' * (len(problems) != 1)} in {n_files} file{'s' * (n_files != 1)} "
             f"under {base}:"]
    groups: dict[str, list[DataProblem]] = {}
    for problem in problems:
        groups.setdefault(problem.kind, []).append(problem)
    for kind, members in groups.items():
        lines.append(f"  {kind} ({len(members)}):")
        for problem in members[:_MAX_LISTED]:
            detail = problem.problem[len(kind) + 1:].strip()
            split = f" [{problem.split}]" if problem.split else ""
            lines.append(f"    {os.path.relpath(problem.path, base)}{split}" + (f": {detail}" if detail else ""))
        if len(members) > _MAX_LISTED:
            lines.append(f"    ... and {len(members) - _MAX_LISTED} more")
    return "\n".join(lines)


def raise_for_problems(problems: list[DataProblem]) -> None:
    """Raise one `DataError` holding the whole report when there is any problem."""
    if problems:
        raise DataError(format_problems(problems))
