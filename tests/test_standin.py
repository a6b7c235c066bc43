"""The stand-in dataset: VOC layout, determinism, label values, copied real labels, scaling, class appearance, and the
refusal to clobber a folder."""

import hashlib
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from paperkd.data import standin
from paperkd.data.palette import VOC_PALETTE, colorize, read_label, save_label_png
from paperkd.data.standin import LOOKS, default_standin, make_standin, render_image, shared_colour_groups
from paperkd.errors import DataError, PaperkdError

ALLOWED = set(range(21)) | {255}


def voc(out: Path) -> Path:
    return out / "VOCdevkit" / "VOC2012"


def split(out: Path, name: str) -> list[str]:
    return (voc(out) / "ImageSets" / "Segmentation" / f"{name}.txt").read_text().split()


def label(out: Path, stem: str) -> np.ndarray:
    with Image.open(voc(out) / "SegmentationClass" / f"{stem}.png") as png:
        assert png.mode == "P"
        return np.asarray(png).copy()


def file_hashes(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return make_standin(tmp_path_factory.mktemp("standin") / "out", n_train=6, n_val=4, size=64, seed=0,
                        progress=False)


# -- palette ----------------------------------------------------------------------------------------------------------

def test_voc_palette_known_colours():
    assert VOC_PALETTE[0].tolist() == [0, 0, 0]
    assert VOC_PALETTE[1].tolist() == [128, 0, 0]  # aeroplane
    assert VOC_PALETTE[15].tolist() == [192, 128, 128]  # person
    assert VOC_PALETTE[255].tolist() == [224, 224, 192]  # border


def test_label_png_round_trip_keeps_indices(tmp_path):
    values = np.array([[0, 1, 20], [255, 7, 15]], dtype=np.uint8)
    save_label_png(tmp_path / "x.png", values)
    assert Image.open(tmp_path / "x.png").mode == "P"
    np.testing.assert_array_equal(read_label(tmp_path / "x.png"), values)
    assert colorize(values)[1, 0].tolist() == [224, 224, 192]


def test_read_label_refuses_rgb(tmp_path):
    Image.new("RGB", (4, 4), (128, 0, 0)).save(tmp_path / "rgb.png")
    with pytest.raises(DataError, match="rgb.png"):
        read_label(tmp_path / "rgb.png")


# -- layout -----------------------------------------------------------------------------------------------------------

def test_layout_is_voc(small):
    train, val = split(small, "train"), split(small, "val")
    assert len(train) == 6 and len(val) == 4 and not set(train) & set(val)
    assert split(small, "trainval") == sorted(train + val)
    for stem in train + val:
        with Image.open(voc(small) / "JPEGImages" / f"{stem}.jpg") as jpg, \
                Image.open(voc(small) / "SegmentationClass" / f"{stem}.png") as png:
            assert jpg.format == "JPEG" and jpg.mode == "RGB"
            assert png.format == "PNG" and png.mode == "P"
            assert png.getpalette()[:63] == VOC_PALETTE[:21].reshape(-1).tolist()
            assert jpg.size == png.size and min(jpg.size) == 64
    assert {p.name for p in (voc(small) / "JPEGImages").iterdir()} == {f"{s}.jpg" for s in train + val}


def test_says_it_is_synthetic(small):
    text = (small / "STANDIN.md").read_text()
    assert "NOT VOC images" in text and "seed: 0" in text and "procedural" in text
    meta = json.loads((small / "STANDIN.json").read_text())
    assert meta["seed"] == 0 and meta["size"] == 64 and meta["counts"] == {"train": 6, "val": 4}
    assert standin.standin_info(voc(small)) == meta


def test_label_values_are_voc_values_and_background_dominates(small):
    labels = [label(small, s) for s in split(small, "trainval")]
    values = np.concatenate([lab.ravel() for lab in labels])
    assert set(np.unique(values).tolist()) <= ALLOWED
    assert (values == 0).mean() > 0.5  # VOC: ~70 % background
    assert 0.005 < (values == 255).mean() < 0.2  # VOC: ~5 % border
    for lab in labels:
        foreground = set(np.unique(lab).tolist()) - {0, 255}
        assert len(foreground) <= 3


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    args = dict(n_train=3, n_val=2, size=48, progress=False)
    first = file_hashes(make_standin(tmp_path / "a", seed=1, **args))
    assert first == file_hashes(make_standin(tmp_path / "b", seed=1, **args))
    other = file_hashes(make_standin(tmp_path / "c", seed=2, **args))
    jpgs = [k for k in first if k.endswith(".jpg")]
    assert len(jpgs) == 5 and all(first[k] != other[k] for k in jpgs)


def test_size_sets_the_short_side(tmp_path):
    out = make_standin(tmp_path / "s", n_train=3, n_val=1, size=40, progress=False)
    for jpg in (voc(out) / "JPEGImages").iterdir():
        width, height = Image.open(jpg).size
        assert min(width, height) == 40 and 1.3 <= max(width, height) / 40 <= 1.55


def test_native_procedural_geometry_is_voc_like(tmp_path):
    out = make_standin(tmp_path / "n", n_train=1, n_val=1, progress=False)
    for jpg in (voc(out) / "JPEGImages").iterdir():
        width, height = Image.open(jpg).size
        assert max(width, height) == 500 and min(width, height) in (333, 375)


def test_short_side_size_by_hand():
    assert standin.short_side_size(500, 375, 64) == (85, 64)  # 500 * 64 / 375 = 85.33
    assert standin.short_side_size(333, 500, 96) == (96, 144)  # 500 * 96 / 333 = 144.1


# -- copied real labels -----------------------------------------------------------------------------------------------

def test_labels_from_copies_the_first_stems_of_the_real_split(voc_labels, tmp_path):
    out = make_standin(tmp_path / "r", labels_from=voc_labels, n_train=3, n_val=2, size=64, progress=False)
    split_dir = voc_labels / "ImageSets" / "Segmentation"
    assert split(out, "train") == (split_dir / "train.txt").read_text().split()[:3]
    assert split(out, "val") == (split_dir / "val.txt").read_text().split()[:2]
    for stem in split(out, "trainval"):
        with Image.open(voc_labels / "SegmentationClass" / f"{stem}.png") as source:
            width, height = source.size
            target = (round(width * 64 / height), 64) if width >= height else (64, round(height * 64 / width))
            expected = np.asarray(source.resize(target, Image.Resampling.NEAREST))
        np.testing.assert_array_equal(label(out, stem), expected)
        assert Image.open(voc(out) / "JPEGImages" / f"{stem}.jpg").size == target


def test_labels_from_without_size_is_an_exact_copy(voc_labels, tmp_path):
    out = make_standin(tmp_path / "r", labels_from=voc_labels, n_train=1, n_val=1, progress=False)
    for stem in split(out, "trainval"):
        with Image.open(voc_labels / "SegmentationClass" / f"{stem}.png") as source:
            np.testing.assert_array_equal(label(out, stem), np.asarray(source))


def test_labels_from_asks_too_many(voc_labels, tmp_path):
    with pytest.raises(PaperkdError, match="train.txt"):
        make_standin(tmp_path / "r", labels_from=voc_labels, n_train=10**6, n_val=1, progress=False)


def test_labels_from_a_folder_without_labels(tmp_path):
    with pytest.raises(DataError, match="SegmentationClass"):
        make_standin(tmp_path / "r", labels_from=tmp_path, n_train=1, n_val=1, progress=False)


# -- appearance -------------------------------------------------------------------------------------------------------

def class_mean_colours(n_renders=8, cell=24) -> dict[int, np.ndarray]:
    """Mean rendered colour of each foreground class, over renders with the classes laid out in shuffled cells."""
    sums = {cls: np.zeros(3) for cls in LOOKS}
    for k in range(n_renders):
        rng = np.random.default_rng(k)
        order = rng.permutation(list(LOOKS)).reshape(4, 5)
        under = np.kron(order, np.ones((cell, cell), dtype=int)).astype(np.uint8)
        image = render_image(rng, under, under, np.zeros_like(under, dtype=bool)).astype(float)
        for cls in LOOKS:
            sums[cls] += image[under == cls].mean(axis=0)
    return {cls: total / n_renders for cls, total in sums.items()}


def test_classes_differ_in_colour_except_the_shared_groups():
    means = class_mean_colours()
    groups = shared_colour_groups()
    assert len(groups) >= 3  # by design: several colours are shared
    shared = {frozenset(pair) for group in groups for pair in itertools.combinations(group, 2)}
    distance = {frozenset((a, b)): np.linalg.norm(means[a] - means[b]) for a, b in itertools.combinations(LOOKS, 2)}
    assert all(distance[pair] < 20 for pair in shared)
    others = [d for pair, d in distance.items() if pair not in shared]
    assert np.mean(np.array(others) > 40) > 0.9


def test_shared_colour_classes_have_different_textures():
    for group in shared_colour_groups():
        looks = [LOOKS[c] for c in group]
        assert len({(look.texture, look.frequency) for look in looks}) == len(group)


# -- safety -----------------------------------------------------------------------------------------------------------

def test_refuses_a_non_empty_folder_unless_overwrite(tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(PaperkdError, match="not empty"):
        make_standin(out, n_train=1, n_val=1, size=32, progress=False)
    assert (out / "keep.txt").read_text() == "mine"
    make_standin(out, n_train=1, n_val=1, size=32, progress=False, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "STANDIN.md").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]  # no temp folder left beside it


def test_an_empty_existing_folder_is_fine(tmp_path):
    (tmp_path / "empty").mkdir()
    make_standin(tmp_path / "empty", n_train=1, n_val=1, size=32, progress=False)
    assert len(split(tmp_path / "empty", "train")) == 1


def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    real, calls = standin._procedural_sample, []

    def fail_on_third(*args):
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(standin, "_procedural_sample", fail_on_third)
    with pytest.raises(KeyboardInterrupt):
        make_standin(tmp_path / "out", n_train=4, n_val=2, size=32, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_default_standin_is_built_once_then_reused(tmp_path, monkeypatch):
    monkeypatch.setattr(standin, "DEFAULT_STANDIN", {"n_train": 2, "n_val": 1, "size": 32, "seed": 0})
    monkeypatch.setenv("PAPERKD_CACHE", str(tmp_path / "cache"))
    first = default_standin()
    assert first.parent == tmp_path / "cache" and first.name.startswith("standin-")
    assert len(split(first, "train")) == 2 and len(split(first, "val")) == 1

    def must_not_run(*args, **kwargs):
        raise AssertionError("rebuilt a cached stand-in")

    monkeypatch.setattr(standin, "make_standin", must_not_run)
    assert default_standin() == first
    monkeypatch.setattr(standin, "DEFAULT_STANDIN", {"n_train": 3, "n_val": 1, "size": 32, "seed": 0})
    with pytest.raises(AssertionError):  # other parameters -> another folder, so it must build
        default_standin()
