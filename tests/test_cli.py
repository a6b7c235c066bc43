"""The command line: help texts, one-line errors (no traceback, exit 2) for bad values and bad data."""

import argparse
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from paperkd.checkpoint import save_checkpoint
from paperkd.cli import main
from paperkd.config import SCALES, resolve
from paperkd.data.palette import save_label_png

# one epoch, so no connectors-only warm-up epoch (the authors recipe's) before it
SMOKE = ["--scale", "smoke", "--dataset", "standin", "--epochs", "1", "--max-train-images", "4", "--quiet",
         "--connector-warmup-epochs", "0"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_help_shows_defaults_and_explains_the_recipe(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "--pixel PIXEL" in out and "(default: 0.007)" in out and "r18-pixel-middle" in out
    assert "--recipe RECIPE the whole training recipe: authors = what the authors' training code does" in out
    assert "(default: authors pixels, paper channels)" in out  # a field each recipe sets differently


def test_unknown_recipe_is_one_line_with_the_allowed_ones(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--preset", "r18-none", "--dataset", "standin", "--recipe", "x"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--recipe: invalid choice: 'x'" in err and "authors" in err and "paper" in err
    code, _, err = run(capsys, "train", "--preset", "r18-pixel", *SMOKE, "--teacher", "t.pt",
                       "--connector-warmup-epochs", "1")
    assert code == 2 and "connector_warmup_epochs=1 leaves no epoch" in err


@pytest.mark.parametrize("argv, words", [
    (["--lr", "-1"], ["lr must be > 0", "-1"]),
    (["--pixel-tap", "middle"], ["pixel_tap", "encoder, decoder"]),
    (["--crop", "5000"], ["crop", "1025"]),
])
def test_bad_values_fail_before_work_with_one_line(capsys, tmp_path, argv, words):
    code, _, err = run(capsys, "train", "--preset", "r18-none", *SMOKE, "--out", str(tmp_path), *argv)
    assert code == 2
    for word in words:
        assert word in err
    assert not any(tmp_path.iterdir())  # nothing was started


def test_distilling_preset_without_teacher(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--preset", "r18-both", *SMOKE, "--out", str(tmp_path))
    assert code == 2 and "--teacher" in err


def _copy(standin, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(standin, root)
    voc = root / "VOCdevkit" / "VOC2012"
    stem = (voc / "ImageSets" / "Segmentation" / "train.txt").read_text().split()[0]
    return root, voc, stem


@pytest.mark.parametrize("workers", ["0", "1"])
def test_truncated_image_names_the_file(capsys, tmp_path, tiny_standin, workers):
    root, voc, stem = _copy(tiny_standin, tmp_path)
    jpg = voc / "JPEGImages" / f"{stem}.jpg"
    jpg.write_bytes(jpg.read_bytes()[:200])
    code, _, err = run(capsys, "train", "--preset", "r18-none", *SMOKE, "--data-root", str(root),
                       "--out", str(tmp_path / "runs"), "--workers", workers)
    assert code == 2 and f"{stem}.jpg" in err and len(err.strip().splitlines()) == 1


def test_label_value_out_of_range_names_the_file(capsys, tmp_path, tiny_standin):
    root, voc, stem = _copy(tiny_standin, tmp_path)
    png = voc / "SegmentationClass" / f"{stem}.png"
    from paperkd.data.palette import read_label

    label = read_label(png)
    label[0, 0] = 30
    save_label_png(png, label)
    code, _, err = run(capsys, "train", "--preset", "r18-none", *SMOKE, "--data-root", str(root),
                       "--out", str(tmp_path / "runs"), "--workers", "0")
    assert code == 2 and f"{stem}.png" in err and "30" in err


def test_check_data_reports_every_problem(capsys, tmp_path, tiny_standin):
    root, voc, stem = _copy(tiny_standin, tmp_path)
    (voc / "JPEGImages" / f"{stem}.jpg").unlink()
    (voc / "ImageSets" / "Segmentation" / "val.txt").unlink()
    code, out, _ = run(capsys, "check-data", str(root))
    assert code == 1 and f"{stem}.jpg" in out and "val.txt" in out
    code, out, _ = run(capsys, "check-data", str(tiny_standin))
    assert code == 0 and "no problems" in out


def test_teacher_with_other_class_count_or_foreign_weights(capsys, tmp_path, tiny_standin):
    wrong_classes = tmp_path / "t5.pt"
    save_checkpoint(wrong_classes, {"config": resolve("teacher", dataset="standin", num_classes=5).to_dict(),
                                    "model": {}, "epoch": 120})
    code, _, err = run(capsys, "train", "--preset", "r18-pixel", *SMOKE, "--data-root", str(tiny_standin),
                       "--out", str(tmp_path / "runs"), "--teacher", str(wrong_classes))
    assert code == 2 and "5 classes" in err

    wrong_weights = tmp_path / "tw.pt"
    save_checkpoint(wrong_weights, {"config": resolve("teacher", dataset="standin").to_dict(),
                                    "model": {"conv.weight": torch.zeros(1)}, "epoch": 120})
    code, _, err = run(capsys, "train", "--preset", "r18-pixel", *SMOKE, "--data-root", str(tiny_standin),
                       "--out", str(tmp_path / "runs"), "--teacher", str(wrong_weights))
    assert code == 2 and "tw.pt" in err and "does not fit" in err

    code, _, err = run(capsys, "train", "--preset", "r18-pixel", *SMOKE, "--data-root", str(tiny_standin),
                       "--out", str(tmp_path / "runs"), "--teacher", str(tmp_path / "missing.pt"))
    assert code == 2 and "missing.pt" in err


def test_unwritable_results_folder(capsys, tmp_path, tiny_standin):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, _, err = run(capsys, "train", "--preset", "r18-none", *SMOKE, "--data-root", str(tiny_standin),
                       "--out", str(blocker / "runs"))
    assert code == 2 and "cannot write to the results folder" in err


def test_info_prints_the_parameter_table(capsys):
    code, out, _ = run(capsys, "info", "--size", "65", "--repeats", "1", "--backbones", "resnet18", "mobilenet_v2")
    assert code == 0 and "16,608,181" in out and "5,816,053" in out and "GFLOPs" in out


def test_eval_and_predict_a_checkpoint(capsys, tmp_path, tiny_standin):
    code, *_ = run(capsys, "train", "--preset", "r18-none", *SMOKE, "--data-root", str(tiny_standin),
                   "--out", str(tmp_path), "--workers", "0")
    ckpt = tmp_path / "r18-none-s0" / "checkpoint.pt"
    code, out, _ = run(capsys, "eval", str(ckpt), "--data-root", str(tiny_standin), "--val-size", "65", "--quiet",
                       "--json", str(tmp_path / "m.json"))
    assert code == 0 and "mIoU" in out and "aeroplane" in out and (tmp_path / "m.json").is_file()
    image = next((Path(tiny_standin) / "VOCdevkit" / "VOC2012" / "JPEGImages").iterdir())
    code, out, _ = run(capsys, "predict", str(ckpt), str(image), "--out", str(tmp_path / "pred"), "--size", "65")
    from PIL import Image

    mask = Image.open(tmp_path / "pred" / f"{image.stem}_mask.png")
    assert code == 0 and mask.mode == "P" and mask.size == Image.open(image).size
    assert np.asarray(mask).max() < 21


def test_campaign_passes_imagenet_weights_and_never_trains_from_random(capsys, tmp_path, tiny_standin, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    code, _, err = run(capsys, "campaign", "--tables", "table1", "--seeds", "0", "--scale", "smoke",
                       "--data-root", str(tiny_standin), "--results", str(tmp_path / "runs"),
                       "--backbone-weights", "IMAGENET1K_V1", "--quiet")
    assert code == 2 and "resnet101-63fe2227.pth" in err and str(tmp_path / "torch") in err
    assert not list((tmp_path / "runs").rglob("record.json"))


def test_campaign_rows_reading_and_amp_reach_the_runs(capsys, tmp_path, monkeypatch):
    import pandas as pd

    import paperkd.campaign

    calls = []

    def fake_ensure_runs(presets, seeds, **settings):
        calls.append((presets, seeds, settings))
        return pd.DataFrame({"preset": presets, "miou": [0.5] * len(presets)})

    monkeypatch.setattr(paperkd.campaign, "ensure_runs", fake_ensure_runs)
    code, out, _ = run(capsys, "campaign", "--rows", "r18-pixel", "teacher", "r18-pixel", "--seeds", "1", "2",
                       "--results", str(tmp_path), "--pixel-variant", "paper-mean", "--amp", "--quiet",
                       "--teacher-epochs", "48")
    assert code == 0 and "r18-pixel" in out
    presets, seeds, settings = calls[0]
    assert presets == ["r18-pixel", "teacher"] and seeds == [1, 2]  # the order given, not the tables'
    assert settings["pixel_variant"] == "paper-mean" and settings["amp"] is True
    assert settings["teacher_epochs"] == 48 and settings["epochs"] is None
    run(capsys, "campaign", "--tables", "table3", "--seeds", "0", "--results", str(tmp_path), "--quiet")
    presets, _, settings = calls[1]
    assert presets == ["r18-pixel-middle", "r18-pixel", "r18-pair", "r18-pair-end"]
    assert settings["pixel_variant"] is None and settings["amp"] is None  # not given: the config's own
    run(capsys, "campaign", "--rows", "r18-none", "--scale", "gpu", "--no-amp", "--results", str(tmp_path), "--quiet")
    assert calls[2][2]["amp"] is False  # switched off even where the scale turns it on


def test_campaign_dry_run_lists_the_plan_and_trains_nothing(capsys, tmp_path, monkeypatch):
    import paperkd.campaign

    monkeypatch.setattr(paperkd.campaign, "ensure_runs", lambda *a, **k: pytest.fail("a dry run trained"))
    code, out, _ = run(capsys, "campaign", "--rows", "r18-none", "r18-both", "--seeds", "0", "--scale", "cpu",
                       "--results", str(tmp_path), "--dry-run")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["run", "recipe", "epochs", "state"]
    assert [line.split()[:3] for line in lines[1:]] == [["teacher-s0", "authors", "60"], ["r18-none-s0", "authors",
                                                        "10"], ["r18-both-s0", "authors", "10"]]
    assert all(line.endswith("to train") for line in lines[1:]) and not list(tmp_path.iterdir())


def test_campaign_rows_and_tables_exclude_each_other(capsys, tmp_path):
    with pytest.raises(SystemExit):
        run(capsys, "campaign", "--rows", "r18-none", "--tables", "table1", "--results", str(tmp_path))
    assert "not allowed with" in capsys.readouterr().err


def test_campaign_refuses_an_unknown_row(capsys, tmp_path):
    with pytest.raises(SystemExit):
        run(capsys, "campaign", "--rows", "r18-nope", "--results", str(tmp_path))
    assert "r18-nope" in capsys.readouterr().err


def test_every_option_of_every_command_says_what_it_does():
    from paperkd.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    silent = [f"{name} {action.dest}" for name, command in commands.items() for action in command._actions
              if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()]
    assert not silent, f"options without help: {silent}"
    assert set(commands) >= {"train", "eval", "predict", "campaign", "bench", "book", "make-standin"}


def test_the_scale_help_is_read_from_the_scales(capsys):
    with pytest.raises(SystemExit):
        main(["campaign", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    cpu = SCALES["cpu"]
    teacher = cpu["presets"]["teacher"]["epochs"]
    assert (f"cpu = {cpu['epochs']} epochs (teacher {teacher}, r18-none-compute "
            f"{cpu['presets']['r18-none-compute']['epochs']}), crop {cpu['crop']}, batch {cpu['batch_size']}, "
            f"all train and {cpu['max_val_images']} val images") in out
    assert "paper = 120 epochs, crop 513, batch 6, all train and all val images" in out and "(default: cpu)" in out
