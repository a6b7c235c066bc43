"""The benchmark's plumbing on a tiny CPU run: schema, ratios from the measured medians, precision, data wait.

No timing assertions: how fast a step is belongs in the benchmark's output, not in a test.
"""

import json
import statistics

import pytest
import torch

from paperkd.bench import (
    TeacherSettings,
    bench_config,
    check_methods,
    data_wait_fraction,
    format_table,
    run_benchmark,
    teacher_agreement,
    torch_threads,
    training_step,
)
from paperkd.errors import ConfigError
from paperkd.models import deeplabv3plus
from paperkd.step import TIMED_PARTS, StepTimer

METHODS = ["r18-pixel", "r18-heo"]
REPEATS = 2


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a CPU shared with other jobs, two spinning OpenMP threads run up to 10x slower."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_standin):
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    result = run_benchmark(size=65, batch=2, repeats=REPEATS, warmup=1, methods=METHODS, teacher_dtype="bf16",
                           json_path=str(path), progress=False, inference_size=65, data_steps=2,
                           data_root=str(tiny_standin), threads=1)
    return result, path


def test_json_schema(tiny_run):
    result, path = tiny_run
    on_disk = json.loads(path.read_text())
    assert on_disk == json.loads(json.dumps(result))
    for key in ("device", "torch", "size", "batch", "repeats", "settings", "rows", "inference", "teacher_agreement",
                "data_wait_fraction", "recipe"):
        assert key in on_disk, key
    assert on_disk["recipe"] == "authors"  # the default recipe, named in the file
    assert (on_disk["size"], on_disk["batch"], on_disk["repeats"]) == (65, 2, REPEATS)
    assert on_disk["settings"]["teacher_dtype"] == "bf16" and on_disk["settings"]["inference_mode"] is True
    assert on_disk["settings"]["threads"] == 1

    presets = [(r["preset"], r["kind"]) for r in on_disk["rows"]]
    assert presets == [("teacher", "train_step"), ("r18-none", "student_step"), ("teacher", "teacher_forward"),
                       ("r18-pixel", "distill_step"), ("r18-heo", "distill_step")]
    for row in on_disk["rows"]:
        for key in ("method", "preset", "median_ms", "spread_ms", "parts_ms", "ratio_to_student", "overhead"):
            assert key in row, (row["preset"], key)
        assert len(row["times_ms"]) == REPEATS and all(t > 0 for t in row["times_ms"])
        assert row["median_ms"] == pytest.approx(statistics.median(row["times_ms"]))
        assert row["spread_ms"] == pytest.approx(max(row["times_ms"]) - min(row["times_ms"]))
        assert set(row["parts_ms"]) <= set(TIMED_PARTS)
    parts = {r["preset"] + r["kind"]: set(r["parts_ms"]) for r in on_disk["rows"]}
    assert parts["r18-pixeldistill_step"] == set(TIMED_PARTS)
    assert parts["r18-nonestudent_step"] == set(TIMED_PARTS) - {"teacher_forward"}
    assert parts["teacherteacher_forward"] == {"teacher_forward"}

    assert [r["backbone"] for r in on_disk["inference"]] == ["resnet101", "resnet18", "mobilenet_v2"]
    params = {r["backbone"]: r["params"] for r in on_disk["inference"]}
    assert params == {"resnet101": 59_344_309, "resnet18": 16_608_181, "mobilenet_v2": 5_816_053}
    assert all(r["latency_ms"] > 0 and r["images_per_s"] > 0 and r["gflops"] > 0 for r in on_disk["inference"])
    assert 0 <= on_disk["data_wait_fraction"] <= 1
    assert on_disk["teacher_agreement"]["dtype"] == "bf16"
    assert 0 < on_disk["teacher_agreement"]["fraction"] <= 1


def test_ratio_and_overhead_come_from_the_measured_medians(tiny_run):
    rows = tiny_run[0]["rows"]
    plain = next(r["median_ms"] for r in rows if r["kind"] == "student_step")
    teacher_forward = next(r["median_ms"] for r in rows if r["kind"] == "teacher_forward")
    for row in rows:
        assert row["ratio_to_student"] == pytest.approx(row["median_ms"] / plain)
        if row["kind"] == "distill_step":
            assert row["overhead"] == pytest.approx(row["median_ms"] / (plain + teacher_forward) - 1)
        else:
            assert row["overhead"] is None
    heo_paper = next(r for r in rows if r["preset"] == "r18-heo")["paper_ratio"]
    assert heo_paper == pytest.approx(560 / 250)


def test_format_table_shows_every_row(tiny_run):
    table = format_table(tiny_run[0])
    for preset in ("teacher", "r18-none", *METHODS):
        assert preset in table
    assert "bf16 teacher agrees" in table and "waits on the loader" in table


def test_agreement_of_fp32_with_itself_is_one_and_bf16_a_fraction():
    torch.manual_seed(0)
    model = deeplabv3plus("mobilenet_v2").train()
    images = torch.randn(2, 3, 65, 65)
    assert teacher_agreement(model, images, "fp32") == 1.0
    assert teacher_agreement(model, images, None) == 1.0
    bf16 = teacher_agreement(model, images, torch.bfloat16)
    assert 0 < bf16 <= 1
    assert model.training  # put back in the mode it came in


def test_teacher_settings_do_not_change_the_loss():
    """inference_mode instead of no_grad is a pure speed switch: the first step's loss is bit for bit the same."""
    cfg = bench_config("r18-both", 65, 2)
    batch = (torch.randn(2, 3, 65, 65), torch.randint(0, 21, (2, 65, 65)))
    losses = []
    for inference_mode in (True, False):
        torch.manual_seed(0)
        teacher = deeplabv3plus("resnet101").requires_grad_(False).eval()
        student = deeplabv3plus("resnet18")
        step = training_step(cfg, student, teacher, batch, torch.device("cpu"),
                             TeacherSettings(inference_mode=inference_mode))
        timer = StepTimer(torch.device("cpu"))
        losses.append(step(timer).item())
        assert set(timer.current) == set(TIMED_PARTS)
    assert losses[0] == losses[1]


def test_data_wait_fraction_is_a_fraction(tiny_standin):
    fraction = data_wait_fraction(5.0, steps=3, data_root=str(tiny_standin), crop=65, batch_size=2, workers=0)
    assert 0 < fraction < 1  # with no workers every batch is loaded while the step waits


def test_torch_threads_is_restored():
    before = torch.get_num_threads()
    with torch_threads(3):
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


def test_without_teacher_step_nor_extras():
    result = run_benchmark(size=65, batch=2, repeats=1, warmup=0, methods=["r18-pair"], progress=False,
                           inference_size=None, data_steps=0, teacher_step=False)
    assert [r["kind"] for r in result["rows"]] == ["student_step", "teacher_forward", "distill_step"]
    assert result["inference"] is None and result["teacher_agreement"] is None and result["data_wait_fraction"] is None


def test_bad_choices_name_the_allowed_values():
    with pytest.raises(ConfigError, match="r18-pixel"):
        check_methods(["r18-pixle"])
    with pytest.raises(ConfigError, match="bf16"):
        run_benchmark(size=65, batch=2, methods=["r18-pixel"], teacher_dtype="int8", progress=False)
