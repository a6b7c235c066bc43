"""Paired transforms: image and label stay aligned, padding and dtypes are right, randomness follows torch's seed.

Alignment is checked with images that ENCODE their label: red = 10 * class index (250 for the 255 border), so the
class can be read back from the transformed, normalised image and compared with the transformed label.
"""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from paperkd.data.transforms import IMAGENET_MEAN, IMAGENET_STD, train_transforms, val_transforms
from paperkd.errors import ConfigError

LABEL_FILES = ["2007_000032", "2007_000039", "2007_000063"]  # first stems of the official train split


def synthetic_label(height=73, width=97) -> np.ndarray:
    """A VOC-like label: background, a few objects of different classes, 255 borders 2 px wide around them."""
    label = np.zeros((height, width), np.uint8)
    label[10:40, 8:50] = 255
    label[12:38, 10:48] = 15  # person
    yy, xx = np.mgrid[:height, :width]
    disc = (yy - 45) ** 2 + (xx - 70) ** 2
    label[disc < 20**2] = 255
    label[disc < 18**2] = 7  # car
    label[55:70, 5:30] = 20  # tv, touching the image border, no 255 ring
    return label


def encode(label: np.ndarray) -> Image.Image:
    """RGB image whose red channel is 10 * class (250 for 255) and whose green is its complement."""
    red = np.where(label == 255, 25, label).astype(np.uint8) * 10
    return Image.fromarray(np.stack([red, 255 - red, np.full_like(red, 60)], axis=-1), "RGB")


def decode(image: torch.Tensor) -> torch.Tensor:
    """Class index per pixel read back from a normalised encoded image (nearest code, 25 -> 255)."""
    red = (image[0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]) * 255
    index = torch.round(red / 10).long()
    return torch.where(index == 25, 255, index)


def constant_neighbourhood(label: torch.Tensor, radius: int) -> torch.Tensor:
    """True where every label in the (2r+1)^2 window around a pixel equals the pixel's own (image borders: False)."""
    padded = torch.nn.functional.pad(label[None, None].float(), [radius] * 4, value=-1.0)[0, 0]
    windows = padded.unfold(0, 2 * radius + 1, 1).unfold(1, 2 * radius + 1, 1)
    return (windows == label[..., None, None].float()).all(dim=-1).all(dim=-1)


def agreement(read_back: torch.Tensor, label: torch.Tensor, valid: torch.Tensor) -> float:
    return ((read_back == label) & valid).sum().item() / valid.sum().item()


@pytest.fixture(scope="module")
def real_labels(voc_labels):
    return [np.array(Image.open(voc_labels / "SegmentationClass" / f"{stem}.png")) for stem in LABEL_FILES]


def _check_alignment(label: np.ndarray, transform, seeds, footprint: int) -> int:
    """Run `transform` on (encoded image, label) for each seed and check alignment; returns pixels checked.

    `footprint`: radius, in INPUT pixels, that resizing (and blur) can reach from an output pixel's centre. A pixel is
    an interior pixel when the input label is constant within that radius around the input pixel it comes from: no
    interpolation can bring another class into it. That flag is computed in input space and carried through the
    SAME random geometry as a second mask (one v2 call, so one draw of the random parameters); flagging interiors
    from the output label instead would miss thin structures that downscaling drops from the label but not from the
    image.
    """
    flat_input = tv_tensors.Mask(constant_neighbourhood(torch.from_numpy(label), footprint).to(torch.uint8))
    checked = 0
    for seed in seeds:
        torch.manual_seed(seed)
        image, out_label, flat = transform.pipeline(encode(label), tv_tensors.Mask(torch.from_numpy(label)), flat_input)
        read_back = decode(image)
        # 1. Interiors: the class read from the image equals the label exactly.
        interior = (flat == 1) & (out_label != 255)
        assert torch.equal(read_back[interior], out_label[interior]), f"seed {seed}: misaligned interior"
        checked += int(interior.sum())
        # 2. Edges: the label agrees with the image at least as well as the label moved by one pixel in any
        #    direction (a one-pixel misalignment, invisible to check 1, makes some shift agree better).
        valid = out_label != 255
        here = agreement(read_back, out_label, valid)
        for shift in [(1, 0), (-1, 0), (0, 1), (0, -1)]:
            moved = torch.roll(out_label, shift, dims=(0, 1))
            assert here >= agreement(read_back, moved, valid), f"seed {seed}: label fits better shifted by {shift}"
        # 3. Labels are never interpolated: only classes of the input (and the pad) come out.
        assert set(out_label.unique().tolist()) <= set(np.unique(label).tolist()) | {255}
    return checked


def _footprint(downscale: float, blur: bool = False) -> int:
    """Input-pixel radius reached by an antialiased bilinear resize that shrinks by `downscale` (its triangle
    filter spans `downscale` input pixels each side; at least 1 when enlarging), the half-pixel of nearest
    sampling, and the 7-tap blur (3 output pixels each side)."""
    reach = max(downscale, 1.0) * (1 + (3 if blur else 0))
    return int(np.ceil(reach + 0.5))


@pytest.mark.parametrize("blur", [False, True])
def test_train_transform_keeps_synthetic_image_and_label_aligned(blur):
    transform = train_transforms(crop=65, blur=blur)  # scale >= 0.5: shrinks by at most 2
    checked = _check_alignment(synthetic_label(), transform, seeds=range(12), footprint=_footprint(2.0, blur))
    assert checked > 12 * 65 * 65 * (0.08 if blur else 0.2)  # the check looked at a real share of the pixels


@pytest.mark.parametrize("scale_of", ["image", "crop"])
def test_train_transform_keeps_real_voc_labels_aligned(real_labels, scale_of):
    transform = train_transforms(crop=161, scale_of=scale_of)
    # "image": shrinks by at most 1 / 0.5; "crop": a short side of ~375 px may become 0.5 * 161, a shrink of ~4.7.
    downscale = 2.0 if scale_of == "image" else max(min(label.shape) for label in real_labels) / (0.5 * 161)
    footprint = _footprint(downscale)
    checked = sum(_check_alignment(label, transform, range(4), footprint) for label in real_labels)
    assert checked > len(real_labels) * 4 * 161 * 161 * 0.2


@pytest.mark.parametrize("mode", ["square", "short_side"])
def test_val_transform_keeps_real_voc_labels_aligned(real_labels, mode):
    transform = val_transforms(size=97, mode=mode)
    downscale = max(max(label.shape) for label in real_labels) / 97  # "square" shrinks the long side most
    checked = sum(_check_alignment(label, transform, [0], _footprint(downscale)) for label in real_labels)
    assert checked > len(real_labels) * 97 * 97 * 0.2


def test_label_resize_samples_the_same_pixel_centres_as_the_image():
    # 9 columns, class 1 from column 5 on, resized to 6 columns (factor 1.5). Output column 3 has its centre at
    # (3 + 0.5) * 1.5 = 5.25 in input coordinates, inside class 1, and its bilinear image value is 2/3 of the way to
    # class 1. PyTorch's legacy NEAREST (v2's default for masks) would read input column floor(3 * 1.5) = 4: class 0.
    label = np.zeros((9, 9), np.uint8)
    label[:, 5:] = 1
    image, out_label = val_transforms(size=6)(encode(label), label)
    assert out_label[0].tolist() == [0, 0, 0, 1, 1, 1]
    red = (image[0, 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]) * 255
    assert red[3].item() == pytest.approx(10 * 2 / 3, abs=0.6)


def test_train_output_types_shapes_and_dtypes():
    label = synthetic_label()
    image, out_label = train_transforms(crop=65)(encode(label), label)
    assert type(image) is torch.Tensor and type(out_label) is torch.Tensor  # plain tensors, not tv_tensors
    assert image.dtype == torch.float32 and image.shape == (3, 65, 65)
    assert out_label.dtype == torch.int64 and out_label.shape == (65, 65)


@pytest.mark.parametrize("mask_as", ["numpy", "pil", "tensor", "tv_mask"])
def test_mask_given_in_any_form_is_treated_as_labels(mask_as):
    label = synthetic_label()
    mask = {
        "numpy": label,
        "pil": Image.fromarray(label, "L"),
        "tensor": torch.from_numpy(label),
        "tv_mask": tv_tensors.Mask(torch.from_numpy(label)),
    }[mask_as]
    torch.manual_seed(3)
    image, out_label = train_transforms(crop=65)(encode(label), mask)
    torch.manual_seed(3)
    expected_image, expected_label = train_transforms(crop=65)(encode(label), tv_tensors.Mask(torch.from_numpy(label)))
    assert torch.equal(out_label, expected_label) and torch.equal(image, expected_image)


@pytest.mark.parametrize("label_pad", [255, 0])
def test_padding_uses_label_pad_and_the_mean_colour(label_pad):
    # A 40 x 30 white image of class 7 scaled by exactly 0.5 -> 20 x 15 inside a 65 x 65 crop: the rest is padding.
    label = np.full((30, 40), 7, np.uint8)
    white = Image.new("RGB", (40, 30), (255, 255, 255))
    torch.manual_seed(0)
    image, out_label = train_transforms(crop=65, scale=(0.5, 0.5), label_pad=label_pad)(white, label)
    content = out_label == 7
    assert content.sum().item() == 20 * 15
    assert (out_label[~content] == label_pad).all()
    assert image[:, ~content].abs().max().item() < 0.01  # mean colour normalises to ~0
    white_normalised = torch.tensor([(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)])
    assert torch.allclose(image[:, content], white_normalised[:, None], atol=1e-5)


def test_scale_of_crop_scales_the_short_side_relative_to_the_crop():
    # Authors' recipe: short side = factor * crop. With factor 1 a 40 x 30 image becomes 85 x 64 and covers a 64 crop.
    label = np.full((30, 40), 3, np.uint8)
    image = Image.new("RGB", (40, 30))
    _, by_crop = train_transforms(crop=64, scale=(1.0, 1.0), scale_of="crop")(image, label)
    _, by_image = train_transforms(crop=64, scale=(1.0, 1.0), scale_of="image")(image, label)
    assert (by_crop == 3).all()
    assert (by_image == 3).sum().item() == 40 * 30


def test_flip_happens_and_only_flips():
    label = synthetic_label(32, 48)
    transform = train_transforms(crop=48, scale=(1.0, 1.0))  # 48 wide, 32 high: the crop only pads rows
    original = torch.from_numpy(label).long()
    flips = set()
    for seed in range(10):
        torch.manual_seed(seed)
        _, out_label = transform(encode(label), label)
        content = out_label[(out_label != 255).any(dim=1)]  # the 32 rows that hold the image
        if torch.equal(content, original):
            flips.add(False)
        else:
            assert torch.equal(content, original.flip(1)), f"seed {seed}: neither the original nor its mirror"
            flips.add(True)
    assert flips == {False, True}


def test_same_seed_same_sample_different_seeds_differ():
    label = synthetic_label()
    transform = train_transforms(crop=65, blur=True)
    outputs = []
    for seed in [5, 5, 6, 7]:
        torch.manual_seed(seed)
        outputs.append(transform(encode(label), label))
    assert torch.equal(outputs[0][0], outputs[1][0]) and torch.equal(outputs[0][1], outputs[1][1])
    assert not all(torch.equal(outputs[0][0], other[0]) for other in outputs[2:])


def test_val_square_and_short_side_shapes():
    label = synthetic_label(30, 40)
    image = encode(label)
    square = val_transforms(size=65, mode="square")(image, label)
    short = val_transforms(size=60, mode="short_side")(image, label)
    assert square[0].shape == (3, 65, 65) and square[1].shape == (65, 65)
    assert short[0].shape == (3, 60, 80) and short[1].shape == (60, 80)
    assert square[0].dtype == torch.float32 and square[1].dtype == torch.int64


def test_unknown_choices_are_config_errors_listing_the_allowed_values():
    with pytest.raises(ConfigError, match="square.*short_side"):
        val_transforms(mode="letterbox")
    with pytest.raises(ConfigError, match="image.*crop"):
        train_transforms(scale_of="short")
    with pytest.raises(ConfigError, match="scale"):
        train_transforms(scale=(2.0, 0.5))
