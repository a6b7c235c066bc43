"""The data validator: a clean stand-in passes, and each way of breaking it is reported with the offending file."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from paperkd.data.check import DataProblem, check_data, check_sample, format_problems, raise_for_problems
from paperkd.data.palette import save_label_png
from paperkd.data.standin import make_standin
from paperkd.errors import DataError


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return make_standin(tmp_path_factory.mktemp("pristine") / "data", n_train=3, n_val=2, size=32, progress=False)


@pytest.fixture
def root(pristine, tmp_path) -> Path:
    """A fresh copy of the tiny stand-in for each test to break."""
    return Path(shutil.copytree(pristine, tmp_path / "data"))


def voc(root: Path) -> Path:
    return root / "VOCdevkit" / "VOC2012"


def first_stem(root: Path, split: str = "train") -> str:
    return (voc(root) / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()[0]


def only_problem(root: Path) -> DataProblem:
    problems = check_data(root, progress=False)
    assert len(problems) == 1, format_problems(problems)
    return problems[0]


def test_clean_folder_has_no_problems(root):
    assert check_data(root, progress=False) == []
    assert format_problems([]) == "no data problems found"
    raise_for_problems([])  # nothing to raise


def test_root_may_be_the_parent_vocdevkit_or_voc2012(root):
    (voc(root) / "SegmentationClass" / f"{first_stem(root)}.png").unlink()
    for given in (root, root / "VOCdevkit", voc(root)):
        assert [p.problem for p in check_data(given, progress=False)] == ["missing label"]


def test_missing_root_and_non_voc_folder(tmp_path):
    assert check_data(tmp_path / "nowhere", progress=False)[0].problem == "folder not found"
    assert check_data(tmp_path, progress=False)[0].problem.startswith("not a VOC 2012 folder")


def test_missing_split_file(root):
    (voc(root) / "ImageSets" / "Segmentation" / "val.txt").unlink()
    problem = only_problem(root)
    assert problem.problem == "missing split file" and problem.path.name == "val.txt" and problem.split == "val"


def test_empty_split(root):
    (voc(root) / "ImageSets" / "Segmentation" / "train.txt").write_text("\n\n")
    problem = only_problem(root)
    assert problem.problem.startswith("empty split") and problem.path.name == "train.txt"


def test_stem_listed_twice(root):
    split_file = voc(root) / "ImageSets" / "Segmentation" / "train.txt"
    split_file.write_text(split_file.read_text() + first_stem(root) + "\n")
    problem = only_problem(root)
    assert problem.problem == f"stem listed twice: {first_stem(root)}"


def test_stem_without_image(root):
    stem = first_stem(root, "val")
    (voc(root) / "JPEGImages" / f"{stem}.jpg").unlink()
    problem = only_problem(root)
    assert problem.problem == "missing image" and problem.path.name == f"{stem}.jpg" and problem.split == "val"


def test_stem_without_label(root):
    stem = first_stem(root)
    (voc(root) / "SegmentationClass" / f"{stem}.png").unlink()
    problem = only_problem(root)
    assert problem.problem == "missing label" and problem.path.name == f"{stem}.png" and problem.split == "train"


def test_missing_image_folder_is_one_problem(root):
    shutil.rmtree(voc(root) / "JPEGImages")
    problem = only_problem(root)
    assert problem.problem == "missing folder" and problem.path.name == "JPEGImages"


def test_truncated_jpeg(root):
    path = voc(root) / "JPEGImages" / f"{first_stem(root)}.jpg"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    problem = only_problem(root)
    assert problem.problem.startswith("unreadable image: ") and "truncated" in problem.problem.lower()
    assert problem.path == path


def test_garbage_png(root):
    path = voc(root) / "SegmentationClass" / f"{first_stem(root)}.png"
    path.write_bytes(b"this is not a png at all")
    problem = only_problem(root)
    assert problem.problem.startswith("unreadable label: ") and problem.path == path


def test_truncated_png(root):
    path = voc(root) / "SegmentationClass" / f"{first_stem(root)}.png"
    path.write_bytes(path.read_bytes()[:-30])  # cuts into the image data / end chunk
    problem = only_problem(root)
    assert problem.problem.startswith("unreadable label: ") and problem.path == path


def test_image_and_label_sizes_differ(root):
    stem = first_stem(root)
    path = voc(root) / "SegmentationClass" / f"{stem}.png"
    with Image.open(path) as png:
        width, height = png.size
        save_label_png(path, np.asarray(png)[:, : width - 3])
    problem = only_problem(root)
    assert problem.problem == (f"image and label sizes differ: image {stem}.jpg is {width}x{height}, "
                               f"label is {width - 3}x{height}")
    assert problem.path == path


def test_label_values_outside_voc(root):
    path = voc(root) / "SegmentationClass" / f"{first_stem(root, 'val')}.png"
    values = np.asarray(Image.open(path)).copy()
    values[0, :3] = (21, 100, 254)
    save_label_png(path, values)
    problem = only_problem(root)
    assert problem.problem == "label values outside 0..20 and 255: 21, 100, 254" and problem.path == path


def test_rgb_coloured_label(root):
    path = voc(root) / "SegmentationClass" / f"{first_stem(root)}.png"
    Image.open(path).convert("RGB").save(path)
    problem = only_problem(root)
    assert problem.problem.startswith("RGB-coloured label: mode RGB") and problem.path == path


def test_every_problem_is_reported_at_once(root):
    train, val = first_stem(root), first_stem(root, "val")
    (voc(root) / "JPEGImages" / f"{train}.jpg").unlink()
    (voc(root) / "SegmentationClass" / f"{train}.png").unlink()
    Image.open(voc(root) / "SegmentationClass" / f"{val}.png").convert("RGBA").save(
        voc(root) / "SegmentationClass" / f"{val}.png")
    problems = check_data(root, progress=False)
    assert sorted(p.kind for p in problems) == ["RGB-coloured label", "missing image", "missing label"]
    report = format_problems(problems)
    assert report.startswith("3 data problems in 3 files under ")
    assert "  missing image (1):" in report and f"{train}.jpg [train]" in report and f"{val}.png [val]" in report
    with pytest.raises(DataError, match=f"{train}.jpg"):
        raise_for_problems(problems)


def test_report_groups_and_caps_long_lists(tmp_path):
    problems = [DataProblem(tmp_path / f"img{i}.jpg", "missing image", "train") for i in range(25)]
    problems.append(DataProblem(tmp_path / "x.png", "label values outside 0..20 and 255: 30"))
    report = format_problems(problems)
    assert report.splitlines()[0] == f"26 data problems in 26 files under {tmp_path}:"
    assert "  missing image (25):" in report and "    ... and 5 more" in report
    assert "  label values outside 0..20 and 255 (1):\n    x.png: 30" in report
    assert "img19.jpg" in report and "img20.jpg" not in report


def test_sbd_reads_train_aug(root):
    problems = check_data(root, sbd=True, progress=False)
    assert {(p.path.name, p.problem) for p in problems} == {
        ("train_aug.txt", "missing split file"), ("SegmentationClassAug", "missing folder")}


def test_check_sample_on_one_pair(root):
    stem = first_stem(root)
    image, label = voc(root) / "JPEGImages" / f"{stem}.jpg", voc(root) / "SegmentationClass" / f"{stem}.png"
    assert check_sample(image, label) == []
    assert [p.problem for p in check_sample(image, label.with_name("nope.png"))] == ["missing label"]
