"""Use a trained model: evaluate it on a split (mIoU), or predict masks for image files.

    evaluate(model, loader)             -> metrics of a model in memory (the trainer calls this)
    load_model(checkpoint)              -> the DeepLabV3+ a checkpoint holds, in eval mode
    evaluate_checkpoint(checkpoint, ..) -> metrics of a checkpoint on a VOC-layout split
    predict_images(checkpoint, images)  -> VOC-palette masks and overlays written next to each other
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from paperkd.atomic import atomic_write
from paperkd.checkpoint import load_checkpoint
from paperkd.config import Config, from_dict
from paperkd.data import VOCSegmentation, default_standin, val_transforms
from paperkd.data.palette import colorize, save_label_png
from paperkd.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from paperkd.errors import DataError
from paperkd.metrics import ConfusionMatrix
from paperkd.models import deeplabv3plus


def resolve_device(name: str) -> torch.device:
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else "cpu" if name == "auto" else name)


@torch.inference_mode()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, num_classes: int,
             amp_dtype: torch.dtype | None = None, progress: bool = False) -> dict[str, Any]:
    """mIoU, per-class IoU and pixel accuracy of `model` on `loader` (model in eval mode during the pass)."""
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(num_classes, device=device)
    for images, target in tqdm(loader, desc="eval", leave=False, disable=not progress):
        images, target = images.to(device, non_blocking=True), target.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits = model(images)
        cm.update(logits.argmax(1), target)
    model.train(was_training)
    return cm.compute()


def load_model(checkpoint: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Config]:
    """The model a paperkd checkpoint holds, on `device`, in eval mode, with the config it was trained with."""
    state = load_checkpoint(checkpoint)
    cfg = from_dict(state["config"])
    model = deeplabv3plus(cfg.backbone, num_classes=cfg.num_classes, output_stride=cfg.output_stride)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), cfg


def evaluate_checkpoint(checkpoint: str | Path, data_root: str | Path | None = None, split: str = "val",
                        val_size: int = 513, val_mode: str = "square", device: str = "auto",
                        max_images: int | None = None, progress: bool = True) -> dict[str, Any]:
    """mIoU and per-class IoU of a checkpoint on a VOC-layout split (default root: the embedded stand-in)."""
    dev = resolve_device(device)
    model, cfg = load_model(checkpoint, dev)
    dataset = VOCSegmentation(data_root or default_standin(), split, transforms=val_transforms(val_size, val_mode))
    if max_images is not None:
        dataset = Subset(dataset, range(min(max_images, len(dataset))))
    loader = DataLoader(dataset, batch_size=1)
    return evaluate(model, loader, dev, cfg.num_classes, progress=progress)


@torch.inference_mode()
def predict_images(checkpoint: str | Path, images: list[str | Path], out: str | Path, size: int = 513,
                   device: str = "auto") -> list[Path]:
    """For each image, write <stem>_mask.png (VOC palette, at the image's size) and <stem>_overlay.png."""
    dev = resolve_device(device)
    model, _ = load_model(checkpoint, dev)
    bad = []
    for path in map(Path, images):  # every image checked before anything is written
        try:
            with Image.open(path) as image:
                image.load()
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            bad.append(f"{path} ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'unreadable'})")
    if bad:
        raise DataError(f"cannot read {len(bad)} image(s), nothing written: {'; '.join(bad)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in tqdm(images, desc="predict", disable=len(images) < 2):
        path = Path(path)
        image = Image.open(path).convert("RGB")
        x = TF.to_dtype(TF.to_image(image.resize((size, size), Image.BILINEAR)), torch.float32, scale=True)
        logits = model(TF.normalize(x, IMAGENET_MEAN, IMAGENET_STD)[None].to(dev))
        logits = torch.nn.functional.interpolate(logits, size=image.size[::-1], mode="bilinear", align_corners=False)
        mask = logits.argmax(1)[0].to(torch.uint8).cpu().numpy()
        # each file written whole or not at all
        atomic_write(out / f"{path.stem}_mask.png", lambda f: save_label_png(f, mask))
        overlay = Image.blend(image, Image.fromarray(colorize(mask)), 0.5)
        atomic_write(out / f"{path.stem}_overlay.png", lambda f: overlay.save(f, format="PNG"))
        written.append(out / f"{path.stem}_mask.png")
    return written
