"""A run's predictions on the first validation images, saved beside its record and read back without its weights.

    save_predictions(model, val_set, run_dir, device)        -> run_dir/predictions/ of a model in memory
    save_checkpoint_predictions(checkpoint, val_set, run_dir) -> the same for the model a checkpoint holds (the
                                                                 trainer's call at the end, on the reported one)
    backfill_plan(run_dir)                                    -> checkpoint and val set of a run made before this
    read_predictions(run_dir)                                 -> [{"stem", "image", "truth", "prediction"}, ...]
    inputs_differ(run_dir, data_root)                         -> the saved inputs this data renders otherwise

The folder holds, per image, `<stem>-image.png` (the RGB input as the validation transform produced it),
`<stem>-truth.png` and `<stem>-prediction.png` (VOC palette PNGs of class indices, 255 = ignored), and
`manifest.json`: which run, images, transform and checkpoint, and the SHA-256 of every file. The manifest is written
last, so its presence means the folder is complete. The files are small and committed with the records (checkpoints
never are), so the book's Figure 2 is drawn from them.

Reading needs numpy and PIL only: torch and the model code are imported inside the saving functions.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

from paperkd.atomic import atomic_write
from paperkd.errors import DataError, PaperkdError
from paperkd.records import RECORD_NAME, RecordError, read_json, read_record

FIGURE_IMAGES = 4  # the first 4 images of the val split, in its file order: the same for every run of one data set
FOLDER = "predictions"
MANIFEST_NAME = "manifest.json"
FORMAT = 1
KINDS = ("image", "truth", "prediction")  # file <stem>-<kind>.png; image is RGB, the other two palette indices
WHAT = "paperkd saved predictions: the reported model's argmax on the first validation images"


def predictions_folder(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / FOLDER


def file_name(stem: str, kind: str) -> str:
    return f"{stem}-{kind}.png"


def has_predictions(run_dir: str | os.PathLike) -> bool:
    """Whether `run_dir` has a complete predictions folder (its manifest, written last, exists); `read_predictions`
    checks the files themselves."""
    return (predictions_folder(run_dir) / MANIFEST_NAME).is_file()


# ---------------------------------------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------------------------------------

def save_predictions(model: Any, val_set: Any, run_dir: str | os.PathLike, device: Any,
                     count: int = FIGURE_IMAGES, checkpoint: str | os.PathLike | None = None) -> Path:
    """Run `model` (in eval mode, under `torch.inference_mode`, fp32) on `val_set[i]` for i < `count` and write
    run_dir/predictions/: input image, ground truth and prediction PNGs per image, then `manifest.json`. `val_set` is
    a `VOCSegmentation` with `val_transforms` (or a `Subset` of one). `checkpoint`: the file the weights came from,
    named with its SHA-256 in the manifest. Files of an earlier save are replaced; returns the folder."""
    import torch

    from paperkd.data.palette import save_label_png

    device = torch.device(device)
    count = min(count, len(val_set))
    stems = image_ids(val_set, count)
    voc, (val_size, val_mode) = base_dataset(val_set), val_geometry(val_set)
    folder = predictions_folder(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    # first the old manifest goes: while files are being replaced the folder must not claim to be complete
    (folder / MANIFEST_NAME).unlink(missing_ok=True)
    files: dict[str, str] = {}
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for index, stem in enumerate(stems):
                image, target = val_set[index]
                prediction = model(image[None].to(device)).argmax(1)[0].to(torch.uint8).cpu().numpy()
                pngs = {**input_pngs(image, target),
                        "prediction": _png_bytes(partial(save_label_png, label=prediction))}
                for kind, data in pngs.items():
                    name = file_name(stem, kind)
                    atomic_write(folder / name, partial(_write, data))
                    files[name] = hashlib.sha256(data).hexdigest()  # of the bytes written, not re-read
    finally:
        model.train(was_training)
    for stale in folder.glob("*.png"):  # images of an earlier save that this one does not list
        if stale.name not in files and stale.name.endswith(tuple(f"-{kind}.png" for kind in KINDS)):
            stale.unlink()
    manifest = {
        "what": WHAT, "format": FORMAT, "run_name": Path(run_dir).resolve().name, "stems": stems,
        "val_size": val_size, "val_mode": val_mode, "data_root": str(voc.voc_root), "device": str(device),
        "checkpoint": None if checkpoint is None else {"file": Path(checkpoint).name,
                                                       "sha256": _sha256_file(Path(checkpoint))},
        "files": files,
    }
    # the manifest last: its presence means every file above is complete
    atomic_write(folder / MANIFEST_NAME, lambda f: f.write(json.dumps(manifest, indent=1) + "\n"), mode="w")
    return folder


def save_checkpoint_predictions(checkpoint: str | os.PathLike, val_set: Any, run_dir: str | os.PathLike,
                                device: Any = "cpu", count: int = FIGURE_IMAGES) -> Path:
    """`save_predictions` of the model `checkpoint` holds (a run's best.pt or checkpoint.pt)."""
    from paperkd.inference import load_model, resolve_device

    device = resolve_device(device)  # "auto" too
    model, _ = load_model(checkpoint, device)
    return save_predictions(model, val_set, run_dir, device, count, checkpoint=checkpoint)


def input_pngs(image: Any, target: Any) -> dict[str, bytes]:
    """The PNG bytes of a validation sample as the folder saves it: "image", the normalised tensor mapped back to
    8-bit RGB, and "truth", its label map in the VOC palette."""
    import torch

    from paperkd.data.palette import save_label_png
    from paperkd.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    rgb = (image * std + mean).clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return {"image": _png_bytes(partial(Image.fromarray(rgb, "RGB").save, format="PNG")),
            "truth": _png_bytes(partial(save_label_png, label=target.to(torch.uint8).numpy()))}


def inputs_differ(run_dir: str | os.PathLike, data_root: str | os.PathLike) -> list[str]:
    """The saved inputs and ground truths of a run (`<stem>-image.png`, `<stem>-truth.png`) that the validation
    images under `data_root`, through the transform its manifest names, render to other bytes; [] when every one
    matches. A spot check that a data folder (a stand-in rendered on another machine, say) is the one the run saw.
    `PaperkdError` naming the folder when the run has no readable predictions or the data lacks one of its images."""
    from paperkd.data import VOCSegmentation, val_transforms

    manifest = read_manifest(run_dir)
    val_set = VOCSegmentation(data_root, "val", transforms=val_transforms(size=manifest["val_size"],
                                                                          mode=manifest["val_mode"]))
    index = {stem: i for i, stem in enumerate(val_set.stems)}
    missing = [stem for stem in manifest["stems"] if stem not in index]
    if missing:
        raise DataError(f"{data_root} has no validation image {missing[0]} of {predictions_folder(run_dir)}: not "
                        "the data that run saw")
    differ = []
    for stem in manifest["stems"]:
        for kind, data in input_pngs(*val_set[index[stem]]).items():
            name = file_name(stem, kind)
            if hashlib.sha256(data).hexdigest() != manifest["files"][name]:
                differ.append(name)
    return differ


def backfill_plan(run_dir: str | os.PathLike, data_root: str | os.PathLike | None = None,
                  count: int = FIGURE_IMAGES) -> tuple[Path, Any, int]:
    """How to backfill the predictions of a finished run made before runs saved them, checked without writing
    anything: (the checkpoint its record reports, best.pt or checkpoint.pt; the val set of its config, `data_root`
    overriding the config's folder; how many images), for `save_checkpoint_predictions`. `PaperkdError` naming the
    folder when there is no record, no such checkpoint (or another one than the record reports), or no data."""
    from paperkd.checkpoint import BEST_NAME, CHECKPOINT_NAME
    from paperkd.config import from_dict
    from paperkd.data import VOCSegmentation, default_standin, val_transforms

    run_dir = Path(run_dir)
    record_path = run_dir / RECORD_NAME
    if not record_path.is_file():
        raise PaperkdError(f"{run_dir} is not a finished run: it has no {RECORD_NAME} (an unfinished run saves its "
                           "predictions itself when it finishes)")
    record = read_record(record_path)
    cfg = from_dict(record["config"])
    selected = record.get("selected")
    if selected:  # the record names the weights it reports (best.pt, or checkpoint.pt when no epoch was scored)
        checkpoint = run_dir / Path(selected["checkpoint"]).name
    else:
        checkpoint = run_dir / (BEST_NAME if cfg.model_selection == "best" else CHECKPOINT_NAME)
    if not checkpoint.is_file():
        raise PaperkdError(f"{run_dir} has no {checkpoint.name}, the weights its record reports (checkpoints are "
                           "not committed: save the predictions where the run was trained)")
    if selected and selected.get("sha256") and _sha256_file(checkpoint) != selected["sha256"]:
        raise PaperkdError(f"{checkpoint} is not the checkpoint {record_path} reports: its SHA-256 differs "
                           "(retrained or replaced since the record was written?)")
    root = data_root or cfg.data_root or (default_standin() if cfg.dataset == "standin" else None)
    if root is None:
        raise DataError(f"{run_dir}: its config names no data_root (dataset {cfg.dataset!r}); pass --data-root")
    if not Path(root).is_dir():
        source = "given" if data_root else f"from the config of {run_dir}"
        raise DataError(f"data root {root} ({source}) not found; pass --data-root with the folder holding VOCdevkit")
    val_set = VOCSegmentation(root, "val", transforms=val_transforms(size=cfg.val_size, mode=cfg.val_mode))
    # the run's val set was its first max_val_images images; the figure's images are among them
    return checkpoint, val_set, min(count, cfg.max_val_images or count)


def base_dataset(dataset: Any) -> Any:
    """The `VOCSegmentation` under any `torch.utils.data.Subset` wrapping of it."""
    while hasattr(dataset, "indices") and hasattr(dataset, "dataset"):
        dataset = dataset.dataset
    if not hasattr(dataset, "stems"):
        raise TypeError(f"saved predictions need a VOCSegmentation (or a Subset of one), not {type(dataset).__name__}")
    return dataset


def image_ids(dataset: Any, count: int) -> list[str]:
    """The image ids (file stems) of `dataset[0]` ... `dataset[count - 1]`, through any `Subset`s."""
    indices = list(range(count))
    while hasattr(dataset, "indices") and hasattr(dataset, "dataset"):
        indices = [dataset.indices[i] for i in indices]
        dataset = dataset.dataset
    return [base_dataset(dataset).stems[i] for i in indices]


def val_geometry(dataset: Any) -> tuple[int, str]:
    """(val_size, val_mode) of the `val_transforms` a dataset applies: its Resize is [size, size] or [short side]."""
    from paperkd.data.transforms import Resize

    transforms = base_dataset(dataset).transforms
    steps = getattr(getattr(transforms, "pipeline", None), "transforms", [])
    for step in steps:
        if isinstance(step, Resize):
            return step.size[0], "square" if len(step.size) == 2 else "short_side"
    raise TypeError(f"saved predictions need a val set built with paperkd.data.val_transforms, not {transforms!r}")


def _png_bytes(save: Callable[[IO], Any]) -> bytes:
    """The bytes `save(file)` writes: encoded in memory, so that their SHA-256 is of exactly what is written."""
    buffer = io.BytesIO()
    save(buffer)
    return buffer.getvalue()


def _write(data: bytes, f: IO) -> None:
    f.write(data)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------------

def read_manifest(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The checked manifest of run_dir/predictions/: `RecordError` naming it when it is missing, empty, not JSON,
    of another format, or lacks its stems or file list."""
    path = predictions_folder(run_dir) / MANIFEST_NAME
    manifest = read_json(path, "predictions manifest")
    if not isinstance(manifest, dict):
        raise RecordError(f"{path} is not a predictions manifest: it holds a JSON {type(manifest).__name__}")
    if manifest.get("format") != FORMAT:
        raise RecordError(f"{path} is a predictions manifest of format {manifest.get('format')!r}; this paperkd "
                          f"reads format {FORMAT}")
    stems, files = manifest.get("stems"), manifest.get("files")
    if (not isinstance(stems, list) or not all(isinstance(s, str) for s in stems) or not isinstance(files, dict)
            or not all(isinstance(v, str) for v in files.values())):
        raise RecordError(f"{path} is not a predictions manifest: its stems or files entry is malformed")
    for stem in stems:
        for kind in KINDS:
            name = file_name(stem, kind)
            if Path(name).name != name or name not in files:  # a name with a folder in it is not one of ours
                raise RecordError(f"{path} lists image {stem!r} without a checksum of its {kind} file")
    return manifest


def read_predictions(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The saved predictions of a run, one dict per image in the manifest's order: {"stem", "image" (H, W, 3) uint8
    RGB, "truth" (H, W) uint8 class indices (255 = ignored), "prediction" (H, W) uint8 class indices}. A missing,
    truncated or garbage manifest or PNG, or one whose SHA-256 is not the manifest's, raises `RecordError` naming
    the file."""
    folder = predictions_folder(run_dir)
    manifest = read_manifest(run_dir)
    rows = []
    for stem in manifest["stems"]:
        row: dict[str, Any] = {"stem": stem}
        for kind in KINDS:
            row[kind] = _read_png(folder / file_name(stem, kind), manifest["files"][file_name(stem, kind)],
                                  "RGB" if kind == "image" else "P")
        if not row["image"].shape[:2] == row["truth"].shape == row["prediction"].shape:
            raise RecordError(f"{folder}: the image, truth and prediction of {stem!r} differ in size "
                              f"({row['image'].shape[:2]}, {row['truth'].shape}, {row['prediction'].shape})")
        rows.append(row)
    return rows


def _read_png(path: Path, sha256: str, mode: str) -> np.ndarray:
    """The pixels of one saved PNG, checked against its manifest's SHA-256 and mode (RGB image, or palette indices)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise RecordError(f"saved prediction file not found: {path} (listed in its {MANIFEST_NAME})") from None
    except OSError as err:
        raise RecordError(f"{path}: cannot read this saved prediction file ({err.strerror or err})") from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            found, pixels = (image.format, image.mode), np.array(image, dtype=np.uint8)  # P: indices, not colours
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        detail = (str(err).splitlines() or ["no detail"])[0]
        raise RecordError(f"{path} is not a readable PNG, truncated or not one at all ({type(err).__name__}: "
                          f"{detail})") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise RecordError(f"{path} is not the file its {MANIFEST_NAME} lists: its SHA-256 differs (edited or "
                          "replaced after it was saved?)")
    if found != ("PNG", mode):
        raise RecordError(f"{path} is a {found[0]} image of mode {found[1]}, not the PNG of mode {mode} a saved "
                          "prediction is")
    return pixels

__all__ = ["FIGURE_IMAGES", "backfill_plan", "has_predictions", "read_manifest", "read_predictions",
           "save_checkpoint_predictions", "save_predictions"]
