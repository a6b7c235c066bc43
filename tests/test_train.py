"""The training pipeline end to end at smoke scale on CPU: KD run, record, DDP, resume, divergence."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import SMOKE, interrupted_in_epoch_2
from paperkd.checkpoint import load_checkpoint
from paperkd.config import resolve
from paperkd.records import REQUIRED_KEYS, load_records
from paperkd.step import TIMED_PARTS
from paperkd.train import TrainingDiverged, train

REPO = Path(__file__).resolve().parents[1]


def test_kd_run_learns_and_writes_a_complete_record(tmp_path, tiny_standin, smoke_teacher):
    start = time.perf_counter()
    cfg = resolve("r18-both", "smoke", teacher=str(smoke_teacher), data_root=str(tiny_standin), out=str(tmp_path),
                  epochs=4, max_train_images=8, **SMOKE)
    record = train(cfg, progress=False)
    elapsed = time.perf_counter() - start
    assert elapsed < 120

    losses = [e["loss"]["loss"] for e in record["epochs"]]
    assert losses[-1] < losses[0], losses
    assert set(record["epochs"][0]["loss"]) == {"loss", "seg", "pixel", "pair"}
    assert all(k in record for k in REQUIRED_KEYS)
    assert record["params"]["total"] == 16_608_181
    assert set(record["timing_ms"]) == {*TIMED_PARTS, "total"} and record["timing_ms"]["teacher_forward"] > 0
    assert 0 <= record["final"]["miou"] <= 1 and len(record["final"]["per_class_iou"]) == 21
    assert record["config"]["pixel"] == 100.0 and record["environment"]["torch"] == torch.__version__
    assert record["data"]["standin_info"]["generator"] == "paperkd.data.standin"  # names its data without the folder

    df = load_records(tmp_path)
    assert list(df["preset"]) == ["r18-both"] and df.loc[0, "miou"] == record["final"]["miou"]


def test_teacher_is_frozen_and_unchanged(tmp_path, tiny_standin, smoke_teacher):
    before = load_checkpoint(smoke_teacher)["model"]
    train(resolve("r18-pixel", "smoke", teacher=str(smoke_teacher), data_root=str(tiny_standin), out=str(tmp_path),
                  epochs=1, connector_warmup_epochs=0, **SMOKE), progress=False)
    after = load_checkpoint(smoke_teacher)["model"]
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("preset", ["r18-gat", "r18-heo", "mnv2-pair"])
def test_baselines_and_mobilenet_run(tmp_path, tiny_standin, smoke_teacher, preset):
    record = train(resolve(preset, "smoke", teacher=str(smoke_teacher), data_root=str(tiny_standin),
                           out=str(tmp_path), epochs=1, max_train_images=4, connector_warmup_epochs=0, **SMOKE),
                   progress=False)
    method = {"r18-gat": "gat", "r18-heo": "heo", "mnv2-pair": "pair"}[preset]
    assert record["epochs"][0]["loss"][method] > 0


def test_nan_loss_stops_naming_the_term_and_keeps_the_last_checkpoint(tmp_path, tiny_standin, smoke_teacher,
                                                                      monkeypatch):
    import paperkd.distill as distill

    calls = {"n": 0}
    real = distill.pairwise_loss

    def pairwise_then_nan(*args, **kwargs):
        calls["n"] += 1
        value = real(*args, **kwargs)
        return value * float("nan") if calls["n"] > 4 else value  # epoch 1 has 4 iterations

    monkeypatch.setattr(distill, "pairwise_loss", pairwise_then_nan)
    cfg = resolve("r18-pair", "smoke", teacher=str(smoke_teacher), data_root=str(tiny_standin), out=str(tmp_path),
                  epochs=2, **SMOKE)
    with pytest.raises(TrainingDiverged, match=r"pair.*iteration 5"):
        train(cfg, progress=False)
    assert load_checkpoint(tmp_path / cfg.name / "checkpoint.pt")["epoch"] == 1
    assert not (tmp_path / cfg.name / "record.json").exists()


def _train_cmd(out, data, *extra):
    return [sys.executable, "-m", "paperkd", "train", "--preset", "r18-none", "--scale", "smoke", "--dataset",
            "standin", "--data-root", str(data), "--out", str(out), "--workers", "0", "--epochs", "3",
            "--deterministic", "--quiet", *extra]


def _final_weights(out):
    return load_checkpoint(Path(out) / "r18-none-s0" / "checkpoint.pt")["model"]


@pytest.mark.slow
def test_killed_run_resumes_to_identical_weights_and_record(tmp_path, tiny_standin):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    subprocess.run(_train_cmd(tmp_path / "straight", tiny_standin), check=True, env=env, timeout=300)

    out = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(out, tiny_standin), env=env)
    ckpt = out / "r18-none-s0" / "checkpoint.pt"
    deadline = time.time() + 240
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # now inside epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert load_checkpoint(ckpt)["epoch"] < 3, "the run finished before it could be killed"
    subprocess.run(_train_cmd(out, tiny_standin, "--resume"), check=True, env=env, timeout=300)

    a, b = _final_weights(tmp_path / "straight"), _final_weights(out)
    assert all(torch.equal(a[k], b[k]) for k in a)
    rec_a, rec_b = (json.loads((d / "r18-none-s0" / "record.json").read_text()) for d in (tmp_path / "straight", out))
    strip = lambda rec: [{k: v for k, v in e.items() if k != "time_s"} for e in rec["epochs"]]  # noqa: E731
    assert strip(rec_a) == strip(rec_b) and rec_a["final"] == rec_b["final"]


@pytest.mark.slow
def test_ddp_two_gloo_processes(tmp_path, tiny_standin):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           "-m", "paperkd", "train", "--preset", "r18-none", "--scale", "smoke", "--dataset", "standin",
           "--data-root", str(tiny_standin), "--out", str(tmp_path), "--workers", "0", "--epochs", "1",
           "--batch-size", "2", "--device", "cpu", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, check=True, env=env, timeout=300, cwd=REPO)
    record = json.loads((tmp_path / "r18-none-s0" / "record.json").read_text())
    assert record["environment"]["world_size"] == 2
    # 16 images, 2 per process per step, 2 processes -> 4 steps in the epoch (DistributedSampler shards the data)
    assert record["epochs"][0]["iterations"] == 4
    assert record["final"] is not None


def test_loader_workers_never_exceed_the_usable_cpus(monkeypatch):
    from paperkd.train import loader_workers

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert (loader_workers(8), loader_workers(1), loader_workers(0)) == (2, 1, 0)


@pytest.mark.parametrize("recipe", ["authors", "paper"])
def test_each_recipe_trains_and_its_record_says_which_epoch_it_reports(tmp_path, tiny_standin, smoke_teacher, recipe):
    cfg = resolve("r18-pixel", "smoke", recipe=recipe, teacher=str(smoke_teacher), data_root=str(tiny_standin),
                  out=str(tmp_path), epochs=2, max_train_images=8, **SMOKE)
    record = train(cfg, progress=False)
    run = tmp_path / cfg.name
    assert record["recipe"] == recipe and record["config"]["recipe"] == recipe and record["recipe_deviations"] == {}
    assert [e["warmup"] for e in record["epochs"]] == ([True, False] if recipe == "authors" else [False, False])
    miou = [e["miou"] for e in record["epochs"]]
    if recipe == "authors":  # the best validation epoch, its weights in best.pt
        best = max(range(2), key=lambda i: (miou[i], -i))
        assert record["selected"]["rule"] == "best" and record["selected"]["epoch"] == best + 1
        assert record["selected"]["miou"] == miou[best] == load_checkpoint(run / "best.pt")["miou"]
    else:  # the last epoch, no best.pt
        assert record["selected"]["epoch"] == 2 and record["selected"]["miou"] == miou[-1] == record["final"]["miou"]
        assert not (run / "best.pt").exists()
    assert load_records(tmp_path).loc[0, "miou"] == record["selected"]["miou"]


def test_authors_seg_term_is_the_cross_entropy_divided_by_the_batch(tmp_path, tiny_standin):
    records = {recipe: train(resolve("r18-none", "smoke", recipe=recipe, data_root=str(tiny_standin),
                                     out=str(tmp_path / recipe), epochs=1, max_train_images=4, **SMOKE),
                             progress=False) for recipe in ("authors", "paper")}
    batch = records["authors"]["config"]["batch_size"]
    seg = {recipe: r["epochs"][0]["loss"]["seg"] for recipe, r in records.items()}
    # the same first iterate, so the first epoch's mean CE differs mainly by the factor 1/B
    assert seg["authors"] == pytest.approx(seg["paper"] / batch, rel=0.25)


def test_a_run_interrupted_in_its_warmup_resumes_to_identical_weights(tmp_path, tiny_standin, smoke_teacher):
    def settings(out):  # two warm-up epochs: the interruption falls inside the warm-up, momentum and all
        return resolve("r18-heo", "smoke", teacher=str(smoke_teacher), data_root=str(tiny_standin), out=str(out),
                       epochs=3, max_train_images=8, connector_warmup_epochs=2, **SMOKE)

    straight = train(settings(tmp_path / "straight"), progress=False)
    with interrupted_in_epoch_2():  # epoch 1's checkpoint (the first warm-up epoch) is on disk
        train(settings(tmp_path / "cut"), progress=False)
    state = load_checkpoint(tmp_path / "cut" / "r18-heo-s0" / "checkpoint.pt")
    assert state["epoch"] == 1 and state["warmup_optimizer"] is not None
    resumed = train(settings(tmp_path / "cut"), resume=True, progress=False)
    a = load_checkpoint(tmp_path / "straight" / "r18-heo-s0" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "cut" / "r18-heo-s0" / "checkpoint.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(a["distill"][k], b["distill"][k]) for k in a["distill"])
    assert [e["loss"] for e in straight["epochs"]] == [e["loss"] for e in resumed["epochs"]]
    assert [e["warmup"] for e in resumed["epochs"]] == [True, True, False]
    assert straight["selected"] == {**resumed["selected"], "checkpoint": straight["selected"]["checkpoint"],
                                    "sha256": straight["selected"]["sha256"]}


def test_the_same_run_logs_the_same_floats_so_an_exact_rebuild_follows_it_and_stops_where_it_leaves(
        tmp_path, tiny_standin):
    from paperkd.rebuild import RebuildLeftRecord, follow

    def run(out, **kwargs):
        return train(resolve("r18-none", "smoke", data_root=str(tiny_standin), out=str(out), epochs=2,
                             max_train_images=4, **SMOKE), progress=False, **kwargs)

    first = run(tmp_path / "first")
    seen = []
    again = run(tmp_path / "again", on_epoch=lambda entry, wall_s: (seen.append(entry["epoch"]),
                                                                   follow(first)(entry, wall_s)))
    assert seen == [1, 2] and again["selected"]["miou"] == first["selected"]["miou"]  # the premise of the check
    assert [e["loss"] for e in again["epochs"]] == [e["loss"] for e in first["epochs"]]

    first["epochs"][1]["loss"]["seg"] += 1e-12  # a record this machine cannot follow from epoch 2 on
    with pytest.raises(RebuildLeftRecord, match="at epoch 2: seg") as left:
        run(tmp_path / "left", on_epoch=follow(first))
    assert left.value.epoch == 2 and left.value.wall_s > 0
    assert load_checkpoint(tmp_path / "left" / "r18-none-s0" / "checkpoint.pt", needs=("epoch",))["epoch"] == 2
    assert not (tmp_path / "left" / "r18-none-s0" / "record.json").exists()  # stopped before its record
