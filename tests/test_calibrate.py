"""`paperkd calibrate`: each weighted term against the cross-entropy, value and gradient, per recipe."""

import json

import pytest

from paperkd.calibrate import calibrate, calibrate_one, format_calibration
from paperkd.cli import main


def test_rows_per_recipe_and_term_and_the_file_it_writes(tmp_path, tiny_standin, smoke_teacher):
    out = tmp_path / "calibration.json"
    result = calibrate(["r18-both", "r18-heo"], teacher=smoke_teacher, batches=1, scale="smoke",
                       data_root=str(tiny_standin), json_path=out, progress=False)
    assert json.loads(out.read_text()) == result
    keys = [(r["recipe"], r["preset"], r["term"]) for r in result["rows"]]
    assert keys == [("authors", "r18-both", "pixel"), ("authors", "r18-both", "pair"), ("authors", "r18-heo", "heo"),
                    ("paper", "r18-both", "pixel"), ("paper", "r18-both", "pair"), ("paper", "r18-heo", "heo")]
    for r in result["rows"]:
        assert r["value_ratio"] == pytest.approx(r["weighted"] / r["seg"])
        assert r["grad_ratio"] > 0 and -1 <= r["cosine"] <= 1
    readings = {(r["recipe"], r["term"]): r["reading"] for r in result["rows"]}
    assert readings[("authors", "pair")] == "pixels nodes at encoder, norm detached"
    assert readings[("paper", "pixel")] == "paper-normalised at decoder"
    # the CE as it enters the objective: divided by the batch under the authors recipe
    seg = {r["recipe"]: r["seg"] for r in result["rows"] if r["preset"] == "r18-both"}
    assert seg["authors"] < seg["paper"]
    assert result["teacher"]["backbone"] == "resnet101" and "recipe authors" in format_calibration(result)


def test_ratios_scale_with_the_weight_and_the_cosine_does_not(tiny_standin, smoke_teacher):
    import torch

    settings = dict(scale="smoke", dataset="standin", data_root=str(tiny_standin), workers=0)
    one = calibrate_one("r18-pixel", "paper", str(smoke_teacher), 1, torch.device("cpu"), **settings)[0]
    ten = calibrate_one("r18-pixel", "paper", str(smoke_teacher), 1, torch.device("cpu"), pixel=1000.0,
                        **settings)[0]
    assert ten["weight"] == 10 * one["weight"]
    assert ten["value_ratio"] == pytest.approx(10 * one["value_ratio"], rel=1e-5)
    assert ten["grad_ratio"] == pytest.approx(10 * one["grad_ratio"], rel=1e-4)
    assert ten["cosine"] == pytest.approx(one["cosine"], abs=1e-5)


def test_a_plain_preset_or_a_missing_teacher_is_one_line(tmp_path, capsys, tiny_standin, smoke_teacher):
    assert main(["calibrate", "r18-none", "--teacher", str(smoke_teacher), "--scale", "smoke",
                 "--data-root", str(tiny_standin), "--quiet"]) == 2
    assert "'r18-none' has no distillation term" in capsys.readouterr().err
    assert main(["calibrate", "r18-pixel", "--teacher", str(tmp_path / "nope.pt"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "nope.pt" in err and "Traceback" not in err
