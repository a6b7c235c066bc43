"""Saved predictions: every run writes its reported model's masks of the first validation images before its record,
they read back without torch, broken files are named, and `paperkd save-predictions` backfills old runs."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SMOKE
from PIL import Image

from paperkd.checkpoint import load_checkpoint
from paperkd.cli import main
from paperkd.config import resolve
from paperkd.data import IMAGENET_MEAN, IMAGENET_STD, VOCSegmentation, val_transforms
from paperkd.data.palette import voc_palette_list
from paperkd.inference import load_model
from paperkd.records import RecordError
from paperkd.saved_predictions import FIGURE_IMAGES, has_predictions, read_manifest, read_predictions, save_predictions
from paperkd.train import train

REPO = Path(__file__).resolve().parents[1]


def _train(out: Path, tiny_standin: Path, monkeypatch: pytest.MonkeyPatch, scores: list[float] | None = None,
           **overrides) -> tuple[Path, dict, dict]:
    """A smoke run; `scores` replaces the validation mIoU of each epoch (so the test picks the best epoch). Also
    notes whether the predictions were on disk when the record was written."""
    import paperkd.train as trainer

    real_evaluate, real_write_record, seen = trainer.evaluate, trainer.write_record, {}
    epochs = iter(scores or [])

    def evaluate_with_scores(*args, **kwargs):
        metrics = real_evaluate(*args, **kwargs)
        return {**metrics, "miou": next(epochs)} if scores else metrics

    def write_record_noting_predictions(path, record):
        seen["predictions_before_record"] = has_predictions(Path(path).parent)
        return real_write_record(path, record)

    monkeypatch.setattr(trainer, "evaluate", evaluate_with_scores)
    monkeypatch.setattr(trainer, "write_record", write_record_noting_predictions)
    record = train(resolve("r18-none", "smoke", data_root=str(tiny_standin), out=str(out), max_train_images=8,
                           **SMOKE, **overrides), progress=False)
    return out / record["run_name"], record, seen


@pytest.fixture(scope="module")
def best_run(tmp_path_factory, tiny_standin):
    """Authors recipe (reports the best epoch), 2 epochs scored so that epoch 1 is best: best.pt's weights are not
    the final ones, so predictions of the wrong weights would show."""
    with pytest.MonkeyPatch.context() as mp:
        return _train(tmp_path_factory.mktemp("best"), tiny_standin, mp, scores=[0.9, 0.1], epochs=2)


@pytest.fixture(scope="module")
def last_run(tmp_path_factory, tiny_standin):
    """Paper recipe: reports the last epoch, checkpoint.pt, no best.pt."""
    with pytest.MonkeyPatch.context() as mp:
        return _train(tmp_path_factory.mktemp("last"), tiny_standin, mp, recipe="paper", epochs=1)


def expected(checkpoint: Path, root: Path) -> list[dict]:
    """What the folder must hold, computed here from the checkpoint and the data: stem, input, truth, argmax."""
    model, cfg = load_model(checkpoint)
    val = VOCSegmentation(root, "val", transforms=val_transforms(cfg.val_size, cfg.val_mode))
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    rows = []
    with torch.inference_mode():
        for index in range(FIGURE_IMAGES):
            image, target = val[index]
            rows.append({"stem": val.stems[index],
                         "image": (image * std + mean).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy(),
                         "truth": target.numpy().astype(np.uint8),
                         "prediction": model(image[None]).argmax(1)[0].numpy().astype(np.uint8)})
    return rows


def png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image)


@pytest.mark.parametrize("which", ["best_run", "last_run"])
def test_a_run_saves_its_reported_models_predictions_before_its_record(request, tiny_standin, which):
    run, record, seen = request.getfixturevalue(which)
    reported = {"best_run": "best.pt", "last_run": "checkpoint.pt"}[which]
    assert seen["predictions_before_record"]
    assert Path(record["selected"]["checkpoint"]).name == reported
    if which == "best_run":  # the test means something: the reported weights are not the final ones
        assert record["selected"]["epoch"] == 1 and record["final"]["miou"] != record["selected"]["miou"]
        best, last = load_checkpoint(run / "best.pt")["model"], load_checkpoint(run / "checkpoint.pt")["model"]
        assert not all(torch.equal(best[k], last[k]) for k in best)

    manifest = read_manifest(run)
    want = expected(run / reported, tiny_standin)
    assert manifest["stems"] == [row["stem"] for row in want] == VOCSegmentation(tiny_standin, "val").stems[:4]
    assert manifest["checkpoint"] == {"file": reported, "sha256": record["selected"]["sha256"]}
    assert (manifest["format"], manifest["run_name"], manifest["val_size"], manifest["val_mode"]) == (
        1, record["run_name"], 65, record["config"]["val_mode"])
    assert sorted(p.name for p in (run / "predictions").iterdir()) == sorted(
        ["manifest.json", *(f"{row['stem']}-{kind}.png" for row in want for kind in ("image", "truth", "prediction"))])
    for row in want:  # the files themselves, read with PIL alone, equal what the reported weights predict
        for kind in ("image", "truth", "prediction"):
            np.testing.assert_array_equal(png(run / "predictions" / f"{row['stem']}-{kind}.png"), row[kind],
                                          err_msg=f"{row['stem']}-{kind}")


def test_masks_are_voc_palette_pngs_of_class_indices(best_run):
    run, _, _ = best_run
    labels = set(range(21)) | {255}
    truths = []
    for stem in read_manifest(run)["stems"]:
        with Image.open(run / "predictions" / f"{stem}-image.png") as image:
            assert (image.format, image.mode, min(image.size)) == ("PNG", "RGB", 65)  # short side 65 (authors)
            size = image.size
        for kind in ("truth", "prediction"):
            with Image.open(run / "predictions" / f"{stem}-{kind}.png") as mask:
                assert (mask.format, mask.mode, mask.size) == ("PNG", "P", size)
                assert mask.getpalette()[:768] == voc_palette_list()
                values = set(np.unique(np.array(mask)).tolist())
            assert values <= (labels if kind == "truth" else labels - {255}), (stem, kind, values)
            if kind == "truth":
                truths.append(values)
    assert any(255 in v for v in truths) and any(len(v - {0, 255}) for v in truths)  # borders and objects kept


def test_read_predictions_round_trips_with_numpy_and_pil_only(best_run, tiny_standin):
    run, _, _ = best_run
    rows = read_predictions(run)
    want = expected(run / "best.pt", tiny_standin)
    assert [row["stem"] for row in rows] == [row["stem"] for row in want]
    for got, row in zip(rows, want):
        assert got["image"].dtype == got["truth"].dtype == got["prediction"].dtype == np.uint8
        assert got["image"].shape[2] == 3 and got["image"].shape[:2] == got["truth"].shape == got["prediction"].shape
        for kind in ("image", "truth", "prediction"):
            np.testing.assert_array_equal(got[kind], row[kind])
    assert has_predictions(run) and not has_predictions(run / "nowhere")

    code = ("import sys\nfrom paperkd.saved_predictions import read_predictions\n"
            f"rows = read_predictions({str(run)!r})\n"
            "print(len(rows), [m for m in ('torch', 'paperkd.train', 'paperkd.inference') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.split() == ["4", "[]"], out


def _copy(run: Path, tmp_path: Path, *names: str) -> Path:
    """The run folder copied (predictions/ and the named files), under the same run name."""
    copy = tmp_path / run.name
    shutil.copytree(run / "predictions", copy / "predictions")
    for name in names:
        shutil.copy(run / name, copy / name)
    return copy


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edit_pixel(path: Path) -> None:  # still a valid palette PNG, one pixel changed
    with Image.open(path) as image:
        edited = image.copy()
    edited.putpixel((0, 0), (edited.getpixel((0, 0)) + 1) % 21)
    edited.save(path, format="PNG")


def _garbage(path: Path) -> None:
    path.write_bytes(b"<html>not a file of ours</html>\n")


@pytest.mark.parametrize("damage, target, message", [
    (_truncate, "prediction", r"-prediction\.png is not a readable PNG, truncated"),
    (_edit_pixel, "prediction", r"-prediction\.png is not the file its manifest\.json lists: its SHA-256 differs"),
    (_garbage, "image", r"-image\.png is not a readable PNG"),
    (Path.unlink, "truth", r"saved prediction file not found: .*-truth\.png"),
    (Path.unlink, "manifest", r"predictions manifest not found: .*manifest\.json"),
    (_truncate, "manifest", r"manifest\.json is not a predictions manifest: not valid JSON"),
    (_garbage, "manifest", r"manifest\.json is not a predictions manifest: not valid JSON"),
])
def test_a_broken_file_is_named_in_one_line(best_run, tmp_path, damage, target, message):
    run, _, _ = best_run
    copy = _copy(run, tmp_path)
    stem = read_manifest(copy)["stems"][1]
    path = copy / "predictions" / ("manifest.json" if target == "manifest" else f"{stem}-{target}.png")
    damage(path)
    with pytest.raises(RecordError, match=message) as err:
        read_predictions(copy)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_manifest_of_another_format_or_shape_is_refused(best_run, tmp_path):
    run, _, _ = best_run
    copy = _copy(run, tmp_path)
    path = copy / "predictions" / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "format": 2}))
    with pytest.raises(RecordError, match=r"manifest\.json is a predictions manifest of format 2"):
        read_predictions(copy)
    path.write_text(json.dumps({**manifest, "files": {}}))
    with pytest.raises(RecordError, match=r"manifest\.json lists image .* without a checksum of its image file"):
        read_predictions(copy)


def test_saving_again_replaces_the_folder_and_drops_images_it_no_longer_lists(best_run, tmp_path, tiny_standin):
    run, _, _ = best_run
    copy = _copy(run, tmp_path)
    model, cfg = load_model(run / "best.pt")
    val = VOCSegmentation(tiny_standin, "val", transforms=val_transforms(cfg.val_size, cfg.val_mode))
    model.train()
    save_predictions(model, val, copy, "cpu", count=2)
    assert model.training  # put back as it was
    stems = val.stems[:2]
    manifest = read_manifest(copy)
    assert manifest["stems"] == stems and manifest["checkpoint"] is None
    assert sorted(p.name for p in (copy / "predictions").iterdir()) == sorted(
        ["manifest.json", *(f"{stem}-{kind}.png" for stem in stems for kind in ("image", "truth", "prediction"))])
    for got, want in zip(read_predictions(copy), read_predictions(run)):  # the same weights, the same masks
        assert all(np.array_equal(got[k], want[k]) for k in ("image", "truth", "prediction"))


def test_cli_backfills_a_runs_predictions_identically(best_run, tmp_path, capsys):
    run, _, _ = best_run
    copy = _copy(run, tmp_path, "record.json", "best.pt", "checkpoint.pt")
    shutil.rmtree(copy / "predictions")
    assert main(["save-predictions", str(copy)]) == 0
    assert "predictions of best.pt on 4 validation images written to" in capsys.readouterr().out
    original = {p.name: p.read_bytes() for p in (run / "predictions").iterdir()}
    assert {p.name: p.read_bytes() for p in (copy / "predictions").iterdir()} == original


def _edit_config(run: Path, **changes) -> None:
    record = json.loads((run / "record.json").read_text())
    record["config"].update(changes)
    (run / "record.json").write_text(json.dumps(record))


def test_cli_errors_name_the_run_and_write_nothing(best_run, tmp_path, capsys):
    run, _, _ = best_run

    def refused(*argv):
        code = main(["save-predictions", *argv])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        return err

    empty = tmp_path / "empty"
    empty.mkdir()
    assert f"{empty} is not a finished run: it has no record.json" in refused(str(empty))

    weightless = tmp_path / "weightless" / run.name
    weightless.mkdir(parents=True)
    shutil.copy(run / "record.json", weightless)
    assert f"{weightless} has no best.pt, the weights its record reports" in refused(str(weightless))

    replaced = tmp_path / "replaced" / run.name
    replaced.mkdir(parents=True)
    shutil.copy(run / "record.json", replaced)
    shutil.copy(run / "checkpoint.pt", replaced / "best.pt")
    err = refused(str(replaced))
    assert "best.pt is not the checkpoint" in err and "its SHA-256 differs" in err

    moved = tmp_path / "moved" / run.name
    moved.mkdir(parents=True)
    for name in ("record.json", "best.pt"):
        shutil.copy(run / name, moved)
    _edit_config(moved, data_root=str(tmp_path / "gone"))
    assert f"data root {tmp_path / 'gone'} (from the config of {moved}) not found; pass --data-root" in refused(
        str(moved))
    assert f"data root {tmp_path / 'elsewhere'} (given) not found" in refused(
        str(moved), "--data-root", str(tmp_path / "elsewhere"))

    good = tmp_path / "good" / run.name
    good.mkdir(parents=True)
    for name in ("record.json", "best.pt"):
        shutil.copy(run / name, good)
    refused(str(good), str(empty))  # every folder is checked before anything is written
    assert not (good / "predictions").exists()


def test_a_run_whose_predictions_cannot_be_saved_still_writes_its_record(tmp_path, tiny_standin, monkeypatch):
    import paperkd.train

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(paperkd.train, "save_checkpoint_predictions", full_disk)
    with pytest.warns(UserWarning, match="predictions not saved .*No space left.*`paperkd save-predictions "):
        record = paperkd.train.train(resolve("r18-none", "smoke", data_root=str(tiny_standin), out=str(tmp_path),
                                             max_train_images=8, max_val_images=4, epochs=1), progress=False)
    assert (tmp_path / record["run_name"] / "record.json").is_file()
    assert not has_predictions(tmp_path / record["run_name"])


def test_check_data_against_a_run_says_whether_this_is_the_data_it_saw(best_run, tiny_standin, tmp_path, capsys):
    run, _, _ = best_run
    assert main(["check-data", str(tiny_standin), "--splits", "val", "--against", str(run)]) == 0
    assert "match this data byte for byte" in capsys.readouterr().out
    other = shutil.copytree(tiny_standin, tmp_path / "data")
    stem = read_manifest(run)["stems"][1]
    jpeg = other / "VOCdevkit" / "VOC2012" / "JPEGImages" / f"{stem}.jpg"
    with Image.open(jpeg) as image:
        Image.fromarray(255 - np.array(image)).save(jpeg)  # another rendering of one image, same labels
    assert main(["check-data", str(other), "--splits", "val", "--against", str(run)]) == 1
    assert f"1 of its saved inputs differ from this data's: {stem}-image.png" in capsys.readouterr().out
    (other / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "val.txt").write_text(f"{stem}\n")
    assert main(["check-data", str(other), "--splits", "val", "--against", str(run)]) != 0
    assert re.search(r"error: .*/data has no validation image \S+ of .*: not the data that run saw",
                     capsys.readouterr().err)
