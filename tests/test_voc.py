import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torchvision import tv_tensors

from paperkd.data.voc import VOCSegmentation, find_voc_root
from paperkd.errors import DataError

N_IMAGES = 4


def _write_jpeg_like(label_png: Path, out: Path, seed: int) -> None:
    """An RGB JPEG with the label's size: noise plus the label index, so images differ from each other."""
    with Image.open(label_png) as label:
        width, height = label.size
        indices = np.array(label)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 200, size=(height, width, 3), dtype=np.uint8)
    pixels[..., 0] = (indices % 21) * 12
    Image.fromarray(pixels, "RGB").save(out, quality=90)


@pytest.fixture(scope="module")
def tiny_voc(voc_labels, tmp_path_factory) -> Path:
    """<tmp>/VOCdevkit/VOC2012 with 4 real train label maps, hand-made JPEGs, a train and a val split, and an SBD
    variant whose 'augmented' labels differ from the official ones (so the switch is observable)."""
    parent = tmp_path_factory.mktemp("voc")
    voc = parent / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "SegmentationClassAug", "ImageSets/Segmentation"):
        (voc / folder).mkdir(parents=True)
    stems = (voc_labels / "ImageSets/Segmentation/train.txt").read_text().split()[:N_IMAGES]
    for i, stem in enumerate(stems):
        src = voc_labels / "SegmentationClass" / f"{stem}.png"
        shutil.copy(src, voc / "SegmentationClass" / f"{stem}.png")
        _write_jpeg_like(src, voc / "JPEGImages" / f"{stem}.jpg", seed=i)
        # SBD-style label: a grey ("L") PNG without the 255 border, as the SegmentationClassAug files are.
        with Image.open(src) as label:
            aug = np.array(label)
        aug[aug == 255] = 0
        Image.fromarray(aug, "L").save(voc / "SegmentationClassAug" / f"{stem}.png")
    splits = voc / "ImageSets/Segmentation"
    (splits / "train.txt").write_text("\n".join(stems[:3]) + "\n")
    (splits / "val.txt").write_text(stems[3] + "\n")
    (splits / "train_aug.txt").write_text("\n".join(stems) + "\n")
    return parent


@pytest.mark.parametrize("level", ["parent", "VOCdevkit", "VOC2012"])
@pytest.mark.parametrize("split", ["train", "val"])
def test_samples_match_torchvision_exactly(tiny_voc, level, split):
    root = {"parent": tiny_voc, "VOCdevkit": tiny_voc / "VOCdevkit", "VOC2012": tiny_voc / "VOCdevkit/VOC2012"}[level]
    ours = VOCSegmentation(root, split=split)
    theirs = torchvision.datasets.VOCSegmentation(tiny_voc, year="2012", image_set=split, download=False)
    assert len(ours) == len(theirs) == (3 if split == "train" else 1)
    for (image, mask), (their_image, their_label) in zip(ours, theirs):
        assert isinstance(image, Image.Image) and image.mode == "RGB"
        assert isinstance(mask, tv_tensors.Mask) and mask.dtype == torch.uint8 and mask.ndim == 2
        assert np.array_equal(np.array(image), np.array(their_image))
        assert their_label.mode == "P"
        assert np.array_equal(mask.numpy(), np.array(their_label))  # palette indices, not colours


def test_labels_are_real_voc_indices(tiny_voc):
    mask = VOCSegmentation(tiny_voc)[0][1]
    values = set(torch.unique(mask).tolist())
    assert 255 in values and 0 in values  # VOC borders and background
    assert values <= set(range(21)) | {255}
    assert len(values) >= 3  # at least one object class besides background and border


def test_stems_follow_the_split_file(tiny_voc):
    listed = (tiny_voc / "VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt").read_text().split()
    assert VOCSegmentation(tiny_voc, "train").stems == listed


def test_sbd_switch_reads_train_aug_and_augmented_labels(tiny_voc):
    plain = VOCSegmentation(tiny_voc, "train")
    augmented = VOCSegmentation(tiny_voc, "train", sbd=True)
    assert len(plain) == 3 and len(augmented) == N_IMAGES
    assert augmented.stems[:3] == plain.stems
    assert 255 in plain[0][1] and 255 not in augmented[0][1]
    expected = plain[0][1].clone()
    expected[expected == 255] = 0
    assert torch.equal(augmented[0][1], expected)
    # val keeps the official labels even with sbd=True
    assert torch.equal(VOCSegmentation(tiny_voc, "val", sbd=True)[0][1], VOCSegmentation(tiny_voc, "val")[0][1])


def test_transforms_receive_image_and_mask(tiny_voc):
    seen = []
    dataset = VOCSegmentation(tiny_voc, transforms=lambda image, mask: seen.append((image, mask)) or "done")
    assert dataset[1] == "done"
    image, mask = seen[0]
    assert image.size == (mask.shape[1], mask.shape[0])


def test_with_the_training_transform_samples_are_tensors(tiny_voc):
    from paperkd.data.transforms import train_transforms

    image, label = VOCSegmentation(tiny_voc, transforms=train_transforms(crop=65))[0]
    assert image.shape == (3, 65, 65) and image.dtype == torch.float32
    assert label.shape == (65, 65) and label.dtype == torch.int64


def test_no_voc_folder_names_the_paths_tried(tmp_path):
    with pytest.raises(DataError) as error:
        find_voc_root(tmp_path)
    message = str(error.value)
    assert str(tmp_path / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation") in message
    assert str(tmp_path / "ImageSets" / "Segmentation") in message


def test_missing_split_file_is_an_error_at_construction(tiny_voc):
    with pytest.raises(DataError, match="trainval.txt"):
        VOCSegmentation(tiny_voc, split="trainval")


def _copy_voc(tiny_voc, tmp_path) -> Path:
    shutil.copytree(tiny_voc / "VOCdevkit", tmp_path / "VOCdevkit")
    return tmp_path / "VOCdevkit" / "VOC2012"


def test_missing_image_or_label_is_an_error_naming_the_file_when_read(tiny_voc, tmp_path):
    voc = _copy_voc(tiny_voc, tmp_path)
    dataset = VOCSegmentation(tmp_path)
    stem0, stem1 = dataset.stems[:2]
    (voc / "JPEGImages" / f"{stem0}.jpg").unlink()
    (voc / "SegmentationClass" / f"{stem1}.png").unlink()
    with pytest.raises(DataError, match=f"{stem0}.jpg"):
        dataset[0]
    with pytest.raises(DataError, match=f"{stem1}.png"):
        dataset[1]
    dataset[2]  # the untouched sample still reads


def test_rgb_label_png_is_refused(tiny_voc, tmp_path):
    voc = _copy_voc(tiny_voc, tmp_path)
    dataset = VOCSegmentation(tmp_path)
    label_file = voc / "SegmentationClass" / f"{dataset.stems[0]}.png"
    with Image.open(label_file) as label:
        label.convert("RGB").save(label_file)
    with pytest.raises(DataError, match=f"{dataset.stems[0]}.png.*RGB"):
        dataset[0]


def test_image_and_label_of_different_sizes_is_an_error(tiny_voc, tmp_path):
    voc = _copy_voc(tiny_voc, tmp_path)
    dataset = VOCSegmentation(tmp_path)
    Image.new("RGB", (7, 5)).save(voc / "JPEGImages" / f"{dataset.stems[0]}.jpg")
    with pytest.raises(DataError, match="7x5"):
        dataset[0]
