"""From records to tables: summaries, comparisons with the paper, provenance text and plots, on small hand-made run
records (written with the real record writer and read back with `load_records`), every expected number by hand."""

import json
import math

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from paperkd import report  # noqa: E402
from paperkd.config import RECIPES, TABLE_ROWS  # noqa: E402
from paperkd.errors import ConfigError  # noqa: E402
from paperkd.pages.answer import comparison_table  # noqa: E402
from paperkd.pages.campaigns import Source, campaign  # noqa: E402
from paperkd.paper_results import TABLE1, TABLE2, TABLE3, paper_table  # noqa: E402
from paperkd.records import load_records, write_record  # noqa: E402

PARAMS = {"teacher": 59_344_309, "r18": 16_608_181, "mnv2": 5_816_053}


def make_record(folder, preset, seed, miou, *, time_parts=None, params=None, epochs=((2.0, 0.1), (1.0, None)),
                dataset="standin", scale="smoke", data_root=None, device="cpu: x86_64, 2 threads", commit="abc123",
                train_images=16, val_images=8, checkpoint=False, config=None, recipe="authors"):
    """Write one run record as the trainer would; `epochs` are (loss, mIoU or None) pairs. recipe=None writes a
    record of the code before the recipes (no recipe field), like the committed campaigns'."""
    time_parts = time_parts or {"data": 1.0, "student_forward": 10.0, "losses": 1.0, "backward_step": 20.0}
    name = f"{preset}-s{seed}"
    record = {
        "schema": 1, "run_name": name, "preset": preset, "seed": seed,
        "config": {"backbone": "resnet18", "dataset": dataset, "scale": scale, "data_root": data_root, "epochs": 2,
                   "crop": 65, "val_size": 65, "batch_size": 4, **({"recipe": recipe} if recipe else {}),
                   **(config or {})},
        "recipe_deviations": {k: v for k, v in (config or {}).items() if k in RECIPES.get(recipe, {})
                              and RECIPES[recipe][k] != v},
        "environment": {"device": device, "git_commit": commit},
        "data": {"root": data_root or "embedded procedural stand-in", "train_images": train_images,
                 "val_images": val_images, "standin": dataset == "standin"},
        "epochs": [{"epoch": i + 1, "loss": {"loss": loss, "seg": loss}, **({"miou": m} if m is not None else {})}
                   for i, (loss, m) in enumerate(epochs)],
        "final": {"miou": miou}, "best_miou": miou, "timing_ms": {**time_parts, "total": sum(time_parts.values())},
        "params": {"total": params or PARAMS[preset.split("-")[0]]}, "wall_s": 1.0,
        "checkpoint": str(folder / name / "checkpoint.pt"),
    }
    write_record(folder / name / "record.json", record)
    if checkpoint:
        (folder / name / "checkpoint.pt").write_bytes(b"not a real checkpoint")
    return record


@pytest.fixture
def runs(tmp_path):
    make_record(tmp_path, "r18-none", 0, 0.60)
    make_record(tmp_path, "r18-none", 1, 0.64, time_parts={"data": 3.0, "student_forward": 10.0, "losses": 1.0,
                                                            "backward_step": 30.0})
    make_record(tmp_path, "r18-both", 0, 0.70, checkpoint=True,
                time_parts={"data": 1.0, "teacher_forward": 30.0, "student_forward": 10.0, "losses": 5.0,
                            "backward_step": 20.0})
    return load_records(tmp_path)


# -- summaries and comparisons ----------------------------------------------------------------------------------------

def test_summarise_means_std_params_and_times_per_preset(runs):
    summary = report.summarise(runs, ["r18-none", "r18-both", "mnv2-none"])
    assert list(summary.index) == ["r18-none", "r18-both", "mnv2-none"]  # the given order, not the records'
    none = summary.loc["r18-none"]
    assert none["n"] == 2 and none["seeds"] == [0, 1]
    assert none["miou_mean"] == pytest.approx(62.0)
    assert none["miou_std"] == pytest.approx(math.sqrt(8.0))  # sample std of 60, 64: sqrt((4 + 4) / 1)
    assert none["params_m"] == pytest.approx(16.608181)
    assert none["time_ms"] == pytest.approx((32.0 + 44.0) / 2)
    assert none["time_data_ms"] == pytest.approx(2.0) and none["time_backward_step_ms"] == pytest.approx(25.0)
    assert math.isnan(none["time_teacher_forward_ms"])  # no teacher without distillation
    assert none["device"] == "cpu: x86_64, 2 threads"
    both = summary.loc["r18-both"]
    assert both["n"] == 1 and both["miou_mean"] == pytest.approx(70.0) and math.isnan(both["miou_std"])
    assert both["time_teacher_forward_ms"] == pytest.approx(30.0)
    absent = summary.loc["mnv2-none"]
    assert absent["n"] == 0 and absent["seeds"] == [] and math.isnan(absent["miou_mean"])


def test_summarise_best_miou_when_asked(tmp_path):
    record = make_record(tmp_path, "r18-none", 0, 0.50)
    record["best_miou"] = 0.55
    write_record(tmp_path / "r18-none-s0" / "record.json", record)
    df = load_records(tmp_path)
    assert report.summarise(df, ["r18-none"]).loc["r18-none", "miou_mean"] == pytest.approx(50.0)
    assert report.summarise(df, ["r18-none"], metric="best_miou").loc["r18-none", "miou_mean"] == pytest.approx(55.0)


def test_summarise_of_no_records_has_every_row_empty(tmp_path):
    summary = report.summarise(load_records(tmp_path), ["teacher", "r18-none"])
    assert list(summary["n"]) == [0, 0] and summary["miou_mean"].isna().all()


@pytest.mark.parametrize("mean, std, n, diverged, text", [
    (66.594, 0.2912, 3, 0, "66.59 ± 0.29 (n=3)"),
    (5.0, math.nan, 1, 0, "5.00 (n=1)"),
    (math.nan, math.nan, 0, 0, "not run"),
    (5.0, math.nan, 1, 2, "5.00 (n=1, 2 diverged)"),
    (math.nan, math.nan, 0, 3, "diverged (n=3)"),
])
def test_mean_std_text(mean, std, n, diverged, text):
    assert report.mean_std_text(mean, std, n, diverged=diverged) == text


def test_diverged_runs_are_counted_and_shown(runs):
    summary = report.summarise(runs, ["r18-none", "r18-pixel"], diverged=["r18-pixel-s0", "r18-pixel-s1",
                                                                            "r18-none-s2"])
    assert summary["diverged"].tolist() == [1, 2]
    source = Source("ours", "runs/x", runs, {n: f"{n}: nan" for n in ("r18-pixel-s0", "r18-pixel-s1", "r18-none-s2")})
    table = comparison_table(source, paper_table("table1").loc[["r18-none", "r18-pixel"]], {})
    assert table["ours mIoU"].tolist() == ["62.00 ± 2.83 (n=2, 1 diverged)", "diverged (n=2)"]
    assert table.loc["r18-pixel", "ours vs plain"] == "diverged"
    text = report.sources_markdown("ours (stand-in, smoke)", runs, "runs/x",
                                   {"r18-pixel-s0": "r18-pixel-s0: loss term pixel became nan at iteration 5"})
    assert "**ours (stand-in, smoke)**, run records in `runs/x`" in text
    assert "- `r18-pixel-s0`: loss term pixel became nan at iteration 5" in text


# -- where the numbers come from --------------------------------------------------------------------------------------

def test_data_label_never_calls_a_standin_voc(tmp_path):
    make_record(tmp_path / "a", "r18-none", 0, 0.5)
    assert report.data_label(load_records(tmp_path / "a")) == "stand-in, smoke"
    make_record(tmp_path / "b", "r18-none", 0, 0.5, dataset="voc", scale="paper", data_root=str(tmp_path))
    assert report.data_label(load_records(tmp_path / "b")) == "VOC, paper"

    standin = tmp_path / "standin"
    (standin / "VOCdevkit" / "VOC2012").mkdir(parents=True)
    (standin / "STANDIN.json").write_text(json.dumps({"labels_from": "/data/voc2012-labels", "size": 80}))
    make_record(tmp_path / "c", "r18-none", 0, 0.5, scale="cpu", data_root=str(standin / "VOCdevkit" / "VOC2012"))
    df = load_records(tmp_path / "c")
    assert report.data_label(df) == "stand-in from VOC labels, cpu"
    text = report.describe_data(df)
    assert "NOT Pascal VOC" in text and "real VOC 2012 label maps in `/data/voc2012-labels`" in text
    assert "short side 80" in text


def test_campaign_labels_name_device_and_reading(tmp_path):
    cpu, gpu, mean = tmp_path / "cpu", tmp_path / "gpu", tmp_path / "paper-mean"
    pixel = {"pixel": 100.0, "pixel_variant": "authors"}
    make_record(cpu, "r18-pixel", 0, 0.2, scale="cpu", config=pixel)
    make_record(gpu, "r18-pixel", 0, 0.7, scale="gpu", device="cuda: NVIDIA H100 80GB HBM3", config=pixel)
    make_record(mean, "r18-pixel", 0, 0.03, scale="cpu", config={**pixel, "pixel_variant": "paper-mean"})
    (mean / "r18-both-s0").mkdir()
    (mean / "r18-both-s0" / "diverged.json").write_text(json.dumps({"message": "r18-both-s0: pixel is inf"}))
    make_record(mean, "r18-both", 1, 0.03, scale="cpu", config={**pixel, "pixel_variant": "paper-mean"})
    rows = ["r18-pixel", "r18-both"]
    labels = [campaign(f, rows, name="campaign").label for f in (cpu, gpu, mean)]
    assert labels == ["campaign (stand-in, cpu, CPU, recipe authors)",
                      "campaign (stand-in, gpu, NVIDIA H100 80GB HBM3, recipe authors)",
                      "campaign (stand-in, cpu, CPU, recipe authors, pixel-wise reading paper-mean)"]
    assert campaign(mean, rows).diverged == {"r18-both-s0": "r18-both-s0: pixel is inf"}  # the campaign's own
    assert campaign(mean, ["r18-pixel"]).diverged == {}  # a page without the r18-both row does not list it
    assert campaign(tmp_path / "missing", rows).label == "main campaign (no records yet)"


def test_records_from_before_the_recipes_are_labelled_for_what_they_ran(tmp_path):
    old = tmp_path / "old"
    make_record(old, "r18-both", 0, 0.2, scale="cpu", recipe=None, config={"pixel": 100.0, "pair": 1.0})
    make_record(old, "r18-pixel", 0, 0.2, scale="cpu", recipe=None,
                config={"pixel": 100.0, "pixel_variant": "paper-mean"})
    label = report.recipe_label(load_records(old))
    assert label == "pre-recipe (mixed readings), pixel-wise reading paper-mean"
    text = report.sources_markdown(label, load_records(old), old)
    assert "authors' pixel-wise reading and the paper's channel-node" in text
    assert "recipe authors" not in label and "recipe paper" not in label


def test_campaigns_differing_only_in_their_teacher_are_labelled_by_its_schedule(tmp_path):
    short, long, students = tmp_path / "short", tmp_path / "long", tmp_path / "students"
    for folder, teacher_epochs in ((short, 24), (long, 48)):
        make_record(folder, "teacher", 0, 0.3, scale="cpu", config={"backbone": "resnet101", "epochs": teacher_epochs})
        make_record(folder, "r18-both", 0, 0.2, scale="cpu",
                    config={"teacher": str(folder / "teacher-s0" / "checkpoint.pt")})
    # a folder of students alone names the teacher they distil from, read beside its checkpoint
    make_record(students, "r18-both", 0, 0.2, scale="cpu", config={"teacher": str(long / "teacher-s0" / "x.pt")})
    make_record(students, "r18-none", 0, 0.2, scale="cpu")
    rows = ["r18-both", "r18-none"]
    assert [campaign(f, rows, name="c").label for f in (short, long, students)] == [
        "c (stand-in, cpu, teacher 24 epochs, CPU, recipe authors)",
        "c (stand-in, cpu, teacher 48 epochs, CPU, recipe authors)",
        "c (stand-in, cpu, teacher 48 epochs, CPU, recipe authors)"]
    assert report.teacher_label(tmp_path / "gone", load_records(students)[lambda d: d["preset"] == "r18-none"]) == ""


def test_teacher_margin_says_when_a_column_cannot_show_a_gain(tmp_path):
    make_record(tmp_path, "teacher", 0, 0.50)
    make_record(tmp_path, "r18-none", 0, 0.60)
    make_record(tmp_path, "r18-none", 1, 0.64)
    make_record(tmp_path, "mnv2-none", 0, 0.40)
    text = report.teacher_margin_markdown("gpu", load_records(tmp_path))
    assert "the teacher (50.00, 1 seed)" in text
    assert "**12.00 points below** `r18-none` (a single seed on one side" in text
    assert "+10.00 points over `mnv2-none`" in text and "not better than `r18-none` cannot be expected" in text
    assert "over `mnv2-none` the teacher is ahead, but with too few seeds" in text
    make_record(tmp_path / "level", "teacher", 0, 0.50)
    make_record(tmp_path / "level", "r18-none", 0, 0.50)
    level = report.teacher_margin_markdown("x", load_records(tmp_path / "level"))
    assert "**level with** `r18-none`" in level and "cannot be expected" in level
    assert "no teacher run" in report.teacher_margin_markdown("none", load_records(tmp_path / "none"))


def test_teacher_margin_is_clear_only_when_every_seed_is_above_with_three_seeds_each(tmp_path):
    for seed, (t, r18, mnv2) in enumerate([(0.25, 0.21, 0.16), (0.26, 0.22, 0.12), (0.24, 0.215, 0.17)]):
        make_record(tmp_path, "teacher", seed, t)
        make_record(tmp_path, "r18-none", seed, r18)
        make_record(tmp_path, "mnv2-none", seed, mnv2)
    text = report.teacher_margin_markdown("cpu", load_records(tmp_path))
    assert "the teacher (25.00 ± 1.00, 3 seeds)" in text
    assert "+3.50 points over `r18-none` (every seed above every seed of it, p = 0.1)" in text
    assert "+10.00 points over `mnv2-none` (every seed above every seed of it, p = 0.1)" in text
    assert "cannot be expected" not in text and "too few seeds" not in text
    make_record(tmp_path, "r18-none", 2, 0.245)  # now one plain seed beats the teacher's worst: overlap
    overlap = report.teacher_margin_markdown("cpu", load_records(tmp_path))
    assert "`r18-none` (their seeds overlap: not evidence of a difference)" in overlap
    assert "not better than `r18-none` cannot be expected to improve it" in overlap  # named, and only that one
    assert "`mnv2-none` cannot" not in overlap and "than `r18-none` and `mnv2-none`" not in overlap


def test_describe_data_reads_everything_from_the_records(runs):
    text = report.describe_data(runs)
    assert "synthetic stand-in (NOT Pascal VOC)" in text and "16 train / 8 val images (3 runs)" in text
    assert "- scale: smoke" in text and "- epochs: 2" in text and "- seeds: 0, 1" in text
    assert "cpu: x86_64, 2 threads" in text and "`abc123`" in text
    assert "- time: 0.00 h of training in all, 0.0 to 0.0 min per run" in text  # three records of 1 s each
    assert "- note:" not in text
    runs.loc[0, "record"]["environment"]["git_commit_note"] = "corrected from abc"
    assert "- note: corrected from abc" in report.describe_data(runs)
    assert report.describe_data(runs.iloc[:0]) == "No run records."


def test_epoch_history_is_one_row_per_epoch_with_miou_in_percent(runs):
    history = report.epoch_history(runs)
    assert len(history) == 6
    first = history[history["preset"] == "r18-both"]
    assert first["loss"].tolist() == [2.0, 1.0] and first["miou"].iloc[0] == pytest.approx(10.0)
    assert math.isnan(first["miou"].iloc[1])  # an epoch without evaluation


# -- plots ------------------------------------------------------------------------------------------------------------

def test_seed_scores_dot_every_seed_and_colour_rows_apart_from_their_plain_student(tmp_path):
    for seed, (none, pixel, pair) in enumerate([(0.21, 0.12, 0.20), (0.23, 0.17, 0.22), (0.22, 0.19, 0.235)]):
        make_record(tmp_path, "r18-none", seed, none)
        make_record(tmp_path, "r18-pixel", seed, pixel)
        make_record(tmp_path, "r18-pair", seed, pair)
    rows = ["r18-none", "r18-pixel", "r18-pair", "r18-both"]
    fig = report.plot_seed_scores({"cpu": load_records(tmp_path)}, {"r18-pixel": "r18-none", "r18-pair": "r18-none",
                                                                     "r18-both": "r18-none"}, rows)
    ax = fig.axes[0]
    dots = [line for line in ax.lines if line.get_marker() == "o"]
    assert [sorted(line.get_xdata()) for line in dots[:3]] == [pytest.approx([21, 22, 23]),
                                                               pytest.approx([12, 17, 19]),
                                                               pytest.approx([20, 22, 23.5])]
    assert [line.get_color() for line in dots[:3]] == ["tab:blue", "tab:red", "tab:blue"]  # pixel: all below
    assert len(ax.collections) == 3  # the plain student's band behind each compared row, r18-both included
    assert "not run" in [t.get_text() for t in ax.texts]  # r18-both has no runs
    plt.close(fig)


def test_training_curves_and_prediction_grid(runs):
    fig = report.plot_training_curves(runs, ["r18-none", "r18-both"])
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[1].lines) == 2
    plt.close(fig)
    import numpy as np

    tile = np.zeros((4, 4, 3), dtype=np.uint8)
    fig = report.plot_prediction_grid([{"image": tile, "truth": tile}] * 3)
    assert len(fig.axes) == 6 and fig.axes[1].get_title() == "truth"
    plt.close(fig)


# -- the paper's numbers ----------------------------------------------------------------------------------------------

def test_paper_tables_cover_the_rows_of_every_table_in_order():
    for name, rows in TABLE_ROWS.items():
        assert list(paper_table(name).index) == rows, name


def test_paper_numbers_as_printed():
    assert TABLE1["teacher"]["miou"] == 74.78 and TABLE2["teacher"]["miou"] == 74.48  # the paper disagrees with itself
    assert TABLE1["r18-both"] == {"pixel": True, "pair": True, "miou": 69.21, "params": 16.6}
    assert TABLE2["r18-heo"] == {"miou": 68.53, "std": 0.25, "time_ms": 560.0}
    assert TABLE3["r18-pair-end"] == {"miou": 68.54, "time_ms": 760.0}
    for preset, row in TABLE1.items():
        assert row["params"] == round(PARAMS[preset.split("-")[0]] / 1e6, 1)
    assert paper_table("table2").loc["r18-both", "label"] == "Proposed"


def test_unknown_paper_table_is_refused():
    with pytest.raises(ConfigError, match="table1"):
        paper_table("table4")
