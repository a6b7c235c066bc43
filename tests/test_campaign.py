import fcntl
import itertools
import json
import re
import shlex
from pathlib import Path

import pytest

from paperkd.campaign import ensure_runs, plan
from paperkd.errors import PaperkdError
from paperkd.pages.campaigns import PLAN

REPO = Path(__file__).resolve().parents[1]


def test_plan_puts_the_teacher_first_and_students_use_its_checkpoint(tmp_path):
    configs = plan(["r18-none", "r18-pixel", "teacher"], [0, 1], scale="smoke", dataset="standin", out=str(tmp_path))
    names = [c.name for c in configs]
    assert names == ["teacher-s0", "r18-none-s0", "r18-pixel-s0", "r18-none-s1", "r18-pixel-s1", "teacher-s1"]
    pixel = [c for c in configs if c.preset == "r18-pixel"]
    assert all(c.teacher == str(tmp_path / "teacher-s0" / "best.pt") for c in pixel)  # authors: its best epoch
    paper = plan(["r18-pixel"], [0], scale="smoke", dataset="standin", out=str(tmp_path), recipe="paper")
    assert paper[1].teacher == str(tmp_path / "teacher-s0" / "checkpoint.pt") and paper[0].recipe == "paper"
    assert all(c.teacher is None for c in configs if c.preset == "r18-none")


def test_teacher_epochs_change_the_teacher_alone(tmp_path):
    configs = plan(["r18-both", "teacher"], [0, 1], scale="cpu", dataset="standin", out=str(tmp_path),
                   teacher_epochs=40)
    assert {c.name: c.epochs for c in configs} == {"teacher-s0": 40, "r18-both-s0": 10, "r18-both-s1": 10,
                                                   "teacher-s1": 40}
    default = plan(["r18-both"], [0], scale="cpu", dataset="standin", out=str(tmp_path))
    assert [c.epochs for c in default] == [60, 10]  # the cpu scale's own teacher schedule
    earlier = plan(["r18-both"], [0], scale="cpu-240", dataset="standin", out=str(tmp_path))
    assert [c.epochs for c in earlier] == [48, 8]  # the earlier cpu scale, for its committed campaigns


def test_a_teacher_trained_elsewhere_is_not_trained_again(tmp_path):
    elsewhere = str(tmp_path / "other" / "teacher-s0" / "best.pt")
    configs = plan(["r18-none", "r18-both"], [0, 1], scale="cpu", dataset="standin", out=str(tmp_path / "here"),
                   teacher=elsewhere)
    assert [c.name for c in configs] == ["r18-none-s0", "r18-both-s0", "r18-none-s1", "r18-both-s1"]
    assert {c.teacher for c in configs if c.preset == "r18-both"} == {elsewhere}


def test_scale_presets_set_single_rows_and_the_equal_compute_row_doubles_the_plain_schedule():
    from paperkd.config import resolve

    plain, matched = resolve("r18-none", "cpu", dataset="standin"), resolve("r18-none-compute", "cpu", dataset="standin")
    assert matched.epochs == 20 and plain.epochs == 10
    assert matched.weights() == plain.weights()  # plain
    kd = resolve("r18-kd", "cpu", teacher="t.pt", dataset="standin")
    assert kd.distills and kd.weights()["logit_kd"] == 10 / 21 and kd.kd_temperature == 1.0


def test_ensure_runs_trains_only_what_is_missing(tmp_path, tiny_standin, monkeypatch):
    import paperkd.train

    calls = []
    real_train = paperkd.train.train
    monkeypatch.setattr(paperkd.train, "train", lambda cfg, **kw: calls.append((cfg.name, kw)) or real_train(cfg, **kw))
    settings = dict(scale="smoke", dataset="standin", data_root=str(tiny_standin), results=str(tmp_path),
                    device="cpu", epochs=1, workers=0, max_train_images=4, progress=False)
    df = ensure_runs(["r18-none"], [0], **settings)
    assert list(df["run_name"]) == ["r18-none-s0"]
    record = tmp_path / "r18-none-s0" / "record.json"
    stamp = record.stat().st_mtime_ns
    df = ensure_runs(["r18-none"], [0], **settings)  # reuse: nothing retrained
    assert record.stat().st_mtime_ns == stamp and len(df) == 1
    ensure_runs(["r18-none"], [0], reuse=False, **settings)  # no reuse: trained again, from scratch
    assert record.stat().st_mtime_ns != stamp
    assert calls == [("r18-none-s0", {"resume": True, "progress": False, "on_epoch": None}),
                     ("r18-none-s0", {"resume": False, "progress": False, "on_epoch": None})]


def test_a_diverged_run_is_marked_skipped_and_reported(tmp_path, monkeypatch):
    import paperkd.train
    from paperkd import report
    from paperkd.campaign import diverged_runs

    calls = []

    def fake_train(cfg, **kwargs):  # the pixel student diverges; the others finish (without records, for speed)
        calls.append(cfg.name)
        if cfg.preset == "r18-pixel":
            raise paperkd.train.TrainingDiverged(f"{cfg.name}: loss term pixel became nan at iteration 5")
        if cfg.preset == "teacher":  # students check that the teacher's checkpoint exists
            (tmp_path / cfg.name).mkdir(exist_ok=True)
            (tmp_path / cfg.name / "best.pt").write_bytes(b"")

    monkeypatch.setattr(paperkd.train, "train", fake_train)
    settings = dict(scale="smoke", dataset="standin", results=str(tmp_path), progress=False)
    ensure_runs(["r18-pixel", "r18-none"], [0], **settings)  # the divergence does not stop the campaign
    assert calls == ["teacher-s0", "r18-pixel-s0", "r18-none-s0"]
    assert list(diverged_runs(tmp_path)) == ["r18-pixel-s0"] and "nan" in diverged_runs(tmp_path)["r18-pixel-s0"]

    calls.clear()
    ensure_runs(["r18-pixel"], [0], **settings)
    _, diverged = report.read_rows(["r18-pixel"], [0], tmp_path)
    assert "r18-pixel-s0" not in calls and list(diverged) == ["r18-pixel-s0"]  # reuse: skipped, still reported
    ensure_runs(["r18-pixel"], [0], reuse=False, **settings)
    assert "r18-pixel-s0" in calls  # no reuse: tried again


def test_a_finished_run_of_another_reading_is_refused_not_reused(tmp_path, tiny_standin):
    settings = dict(scale="smoke", data_root=str(tiny_standin), results=str(tmp_path), device="cpu", epochs=1,
                    workers=0, max_train_images=4, progress=False, connector_warmup_epochs=0)
    ensure_runs(["r18-pixel"], [0], **settings)  # the default reading, "authors"
    with pytest.raises(PaperkdError, match="pixel_variant='authors'.*asked: 'paper-mean'"):
        ensure_runs(["r18-pixel"], [0], pixel_variant="paper-mean", **settings)
    ensure_runs(["r18-none"], [0], pixel_variant="paper-mean", **settings)  # no pixel-wise term: nothing to differ
    with pytest.raises(PaperkdError, match="recipe='authors' \\(asked: 'paper'\\)"):
        ensure_runs(["r18-none"], [0], recipe="paper", **settings)  # another recipe is never reused


def test_the_equal_compute_schedule_agrees_with_the_benchmark_it_was_sized_from():
    from paperkd.bench_files import read_bench_file
    from paperkd.config import SCALES

    run = read_bench_file(REPO / "results" / "bench" / "cpu-65-b8-campaign.json")["cpu-65-b8-campaign.json"]
    scale = SCALES["cpu"]
    assert (run["size"], run["batch"]) == (scale["crop"], scale["batch_size"])
    ratio = next(r for r in run["rows"] if r["preset"] == "r18-both")["ratio_to_student"]
    assert scale["presets"]["r18-none-compute"]["epochs"] == round(scale["epochs"] * ratio)


def test_the_campaign_script_runs_the_plan_the_pages_estimate_from():
    script = (REPO / "tools" / "campaign_cpu.sh").read_text().replace("\\\n", " ")
    arrays = {m[1]: shlex.split(m[2]) for m in re.finditer(r"^(\w+)=\(([^)]*)\)", script, re.M)}
    ran: dict[str, dict[str, set]] = {}
    for line in script.splitlines():
        if not line.startswith("campaign "):
            continue
        words = [w for word in shlex.split(line)
                 for w in (arrays[word[2:-4]] if word.startswith("${") and word.endswith("[@]}") else [word])]
        recipe, seeds = words[words.index("--recipe") + 1], []
        rows = words[words.index("--rows") + 1:]
        for word in words[words.index("--seeds") + 1:]:
            if not word.isdigit():
                break
            seeds.append(int(word))
        for row in rows:
            ran.setdefault(recipe, {}).setdefault(row, set()).update(seeds)
    assert ran == {recipe: {row: set(seeds) for row, seeds in rows.items()} for recipe, rows in PLAN.items()}


def test_a_dry_run_says_what_the_campaign_would_do_with_each_run_and_trains_nothing(tmp_path):
    from test_report import make_record

    from paperkd.campaign import LOCK_NAME, status
    from paperkd.checkpoint import save_checkpoint

    make_record(tmp_path, "r18-none", 0, 0.4123, scale="cpu")
    save_checkpoint(tmp_path / "r18-none-s1" / "checkpoint.pt", {"config": {}, "epoch": 3})
    (tmp_path / "r18-kd-s0").mkdir()
    (tmp_path / "r18-kd-s0" / "diverged.json").write_text(json.dumps({"run_name": "r18-kd-s0", "message": "nan"}))
    save_checkpoint(tmp_path / "mnv2-none-s0" / "checkpoint.pt", {"config": {}, "epoch": 7})
    with open(tmp_path / "mnv2-none-s0" / LOCK_NAME, "a") as held:  # another process is training it
        fcntl.flock(held, fcntl.LOCK_EX)
        table = status(["r18-none", "r18-kd", "mnv2-none"], [0, 1], scale="cpu", dataset="standin",
                       results=str(tmp_path), teacher=str(save_checkpoint(tmp_path / "t.pt", {})))
    assert dict(zip(table["run"], table["state"])) == {
        "r18-none-s0": "done (41.23 mIoU)", "r18-kd-s0": "diverged: skipped",
        "mnv2-none-s0": "training now, after epoch 7", "r18-none-s1": "resumes after epoch 3",
        "r18-kd-s1": "to train", "mnv2-none-s1": "to train"}
    assert list(table["epochs"]) == [10] * 6
    assert not (tmp_path / "r18-kd-s1").exists() and not (tmp_path / "mnv2-none-s1").exists()  # created nothing



def _fake_teacher_and_students(tmp_path, calls, teacher_bytes, resumed=None, mious=(0.5, 0.5, 0.5)):
    """A stand-in for `train`: writes the run's record (and, for the teacher, best.pt holding `teacher_bytes[0]`;
    raises instead when that is an exception); `resumed` collects the teacher's `resume` argument. Its epochs
    score `mious[0]` (a list the test may change between builds), each passed to `on_epoch` as `train` does."""
    from paperkd.provenance import sha256_of
    from paperkd.records import write_record

    builds = itertools.count(1)

    def fake_train(cfg, **kwargs):
        calls.append(cfg.name)
        run = tmp_path / cfg.name
        run.mkdir(exist_ok=True)
        selected = {"miou": 0.5}
        if cfg.preset == "teacher":
            if resumed is not None:
                resumed.append(kwargs["resume"])
            if isinstance(teacher_bytes[0], Exception):
                raise teacher_bytes[0]
            (run / "best.pt").write_bytes(teacher_bytes[0])
            selected["sha256"] = sha256_of(run / "best.pt")
        epochs = [{"epoch": e + 1, "loss": {"loss": 1.0 / (e + 1)}, "miou": m} for e, m in enumerate(mious)]
        for entry in epochs if kwargs.get("on_epoch") else []:
            kwargs["on_epoch"](entry, 3600.0 * entry["epoch"])  # may stop the run, as in `train`
        record = {"schema": 1, "run_name": cfg.name, "preset": cfg.preset, "seed": cfg.seed, "config": cfg.to_dict(),
                  "environment": {"git_commit": "abc123def456", "device": "cpu"},
                  "epochs": epochs, "final": {"miou": 0.5}, "best_miou": 0.5,
                  "selected": selected, "wall_s": 7200.0, "finished": f"build {next(builds)}",
                  "timing_ms": {"total": 1.0}, "params": {"total": 1}}
        write_record(run / "record.json", record)
        return record
    return fake_train


def test_a_finished_teacher_whose_checkpoint_went_is_trained_again_before_the_students_that_need_it(tmp_path,
                                                                                                     monkeypatch):
    import paperkd.train
    from paperkd.campaign import status
    from paperkd.records import lost_runs

    calls, teacher_bytes = [], [b"weights"]
    monkeypatch.setattr(paperkd.train, "train", _fake_teacher_and_students(tmp_path, calls, teacher_bytes))
    settings = dict(scale="smoke", dataset="standin", results=str(tmp_path), progress=False)
    ensure_runs(["r18-both"], [0], **settings)
    assert calls == ["teacher-s0", "r18-both-s0"] and lost_runs(tmp_path) == []

    (tmp_path / "teacher-s0" / "best.pt").unlink()  # a change of machine: the record stays, the weights go
    calls.clear()
    ensure_runs(["r18-both"], [0], **settings)
    assert calls == []  # every student that needs it has finished: nothing to rebuild it for
    (tmp_path / "r18-both-s1").mkdir()
    (tmp_path / "r18-both-s1" / "diverged.json").write_text(json.dumps({"run_name": "r18-both-s1", "message": "nan"}))
    ensure_runs(["r18-both"], [0, 1], **settings)
    assert calls == []  # a student that diverged is skipped, so it needs no teacher either
    table = status(["r18-both"], [0, 2], **{k: v for k, v in settings.items() if k != "progress"})
    assert dict(zip(table["run"], table["state"]))["teacher-s0"] == \
        "weights missing or not its record's, trained again (each epoch checked against its record): to train"
    table = status(["r18-both"], [0, 2], exact_rebuild=False, **{k: v for k, v in settings.items() if k != "progress"})
    assert dict(zip(table["run"], table["state"]))["teacher-s0"] == \
        "weights missing or not its record's, trained again (not checked against its record): to train"

    ledger = tmp_path / "lost_runs.json"
    earlier = {"run": "r18-none-s0", "hours": 0.5, "epochs": 2, "why": "a machine went"}
    ledger.write_text(json.dumps([earlier]))
    with pytest.warns(UserWarning) as said:
        ensure_runs(["r18-both"], [0, 2], **settings)
    assert calls == ["teacher-s0", "r18-both-s2"]
    assert "its record is kept but not its weights" in str(said[0].message)
    assert re.search(r"teacher-s0 trained again .*the same bytes as before.*2.0 h booked", str(said[-1].message))
    older, entry = lost_runs(tmp_path)  # appended; the replaced record's hours stay counted
    assert older == earlier and (entry["run"], entry["hours"], entry["epochs"]) == ("teacher-s0", 2.0, 3)
    assert "finished build 1" in entry["why"] and "the same bytes" in entry["why"]
    assert json.loads((tmp_path / "teacher-s0" / "record.json").read_text())["finished"] == "build 3"


def test_a_teacher_rebuilt_halfway_resumes_and_other_bytes_are_named(tmp_path, monkeypatch):
    import paperkd.train
    from paperkd.checkpoint import save_checkpoint
    from paperkd.records import lost_runs

    calls, resumed, teacher_bytes = [], [], [b"weights"]
    monkeypatch.setattr(paperkd.train, "train", _fake_teacher_and_students(tmp_path, calls, teacher_bytes, resumed))
    settings = dict(scale="smoke", dataset="standin", results=str(tmp_path), progress=False)
    ensure_runs(["r18-both"], [0], **settings)
    record = (tmp_path / "teacher-s0" / "record.json").read_text()
    (tmp_path / "teacher-s0" / "best.pt").write_bytes(b"an epoch of a rebuild cut short")  # not the record's bytes
    save_checkpoint(tmp_path / "teacher-s0" / "checkpoint.pt", {"config": {}, "epoch": 1})
    calls.clear()
    teacher_bytes[0] = RuntimeError("the machine went again")
    with pytest.warns(UserWarning, match="training it again"), pytest.raises(RuntimeError, match="went again"):
        ensure_runs(["r18-both"], [1], **settings)
    assert (tmp_path / "teacher-s0" / "record.json").read_text() == record and lost_runs(tmp_path) == []

    teacher_bytes[0] = b"other weights"
    with pytest.warns(UserWarning) as said:
        ensure_runs(["r18-both"], [1], **settings)
    assert "training it again" in str(said[0].message)
    assert re.search("other bytes than before .*must be trained again", str(said[-1].message))
    assert calls == ["teacher-s0", "teacher-s0", "r18-both-s1"] and resumed[1:] == [True, True]  # it resumed
    assert "other bytes" in lost_runs(tmp_path)[0]["why"]
    calls.clear()
    ensure_runs(["r18-both"], [0, 1], **settings)  # the rebuilt teacher is its record's now: not rebuilt again
    assert calls == []


def test_a_rebuild_is_refused_for_another_schedule_or_over_the_finished_run_and_skipped_for_a_bad_record(
        tmp_path, monkeypatch):
    import paperkd.train
    from paperkd.rebuild import teacher_to_rebuild
    from paperkd.checkpoint import save_checkpoint

    calls = []
    monkeypatch.setattr(paperkd.train, "train", _fake_teacher_and_students(tmp_path, calls, [b"weights"]))
    settings = dict(scale="smoke", dataset="standin", results=str(tmp_path), progress=False)
    ensure_runs(["r18-both"], [0], **settings)
    (tmp_path / "teacher-s0" / "best.pt").unlink()
    calls.clear()
    with pytest.raises(PaperkdError, match="trained .* epochs and this campaign asks for 7"):
        ensure_runs(["r18-both"], [1], teacher_epochs=7, **settings)
    epochs = plan(["teacher"], [0], scale="smoke", dataset="standin", out=str(tmp_path))[0].epochs
    save_checkpoint(tmp_path / "teacher-s0" / "checkpoint.pt", {"config": {}, "epoch": epochs})
    with pytest.raises(PaperkdError, match="holds the finished run its record describes"):
        ensure_runs(["r18-both"], [1], **settings)
    assert calls == []
    (tmp_path / "teacher-s0" / "record.json").write_text("{")  # unreadable: trained as a run without a record
    assert teacher_to_rebuild(plan(["r18-both"], [1], scale="smoke", dataset="standin", out=str(tmp_path)),
                              tmp_path) is None


def test_an_exact_rebuild_stops_at_the_first_epoch_that_leaves_its_record_and_deletes_its_files(tmp_path, monkeypatch):
    import paperkd.train
    from paperkd.checkpoint import save_checkpoint
    from paperkd.records import lost_runs

    calls, mious, teacher_bytes = [], [0.5, 0.5, 0.5], [b"weights"]
    monkeypatch.setattr(paperkd.train, "train", _fake_teacher_and_students(tmp_path, calls, teacher_bytes,
                                                                           mious=mious))
    settings = dict(scale="smoke", dataset="standin", results=str(tmp_path), progress=False)
    ensure_runs(["r18-both"], [0], **settings)
    teacher = tmp_path / "teacher-s0"
    record = (teacher / "record.json").read_text()
    (teacher / "best.pt").write_bytes(b"a rebuild's best epoch")  # not the record's bytes: a rebuild under way
    calls.clear()
    teacher_bytes[0], mious[1] = b"other weights", 0.5000001  # epoch 1 follows the record, epoch 2 does not
    with pytest.warns(UserWarning, match="the first that differs stops it"), \
            pytest.raises(PaperkdError, match=r"left its record at epoch 2: mIoU 0.5000001 \(record: 0.5\).*--rebuild any"):
        ensure_runs(["r18-both"], [1], **settings)
    assert calls == ["teacher-s0"]  # no student distilled from the weights it left behind
    assert not (teacher / "best.pt").exists() and (teacher / "record.json").read_text() == record
    (entry,) = lost_runs(tmp_path)
    assert (entry["run"], entry["hours"], entry["epochs"]) == ("teacher-s0", 2.0, 2) and "epoch 2" in entry["why"]

    # a rebuild cut short whose checkpoint already left the record is stopped before it trains on
    # (left by a rebuild that was not checked, so it trained on past the epoch that left the record)
    save_checkpoint(teacher / "checkpoint.pt", {"config": {}, "epoch": 2, "wall_s": 1800.0,
                                               "history": [{"epoch": 1, "loss": {"loss": 0.9}, "miou": 0.5},
                                                           {"epoch": 2, "loss": {"loss": 0.4}, "miou": 0.5}]})
    with pytest.raises(PaperkdError, match=r"epoch 1: loss 0.9 \(record: 1.0\)"):
        ensure_runs(["r18-both"], [1], **settings)
    assert calls == ["teacher-s0"] and not (teacher / "checkpoint.pt").exists()
    assert [(e["hours"], e["epochs"]) for e in lost_runs(tmp_path)] == [(2.0, 2), (0.5, 2)]
    assert "stopped after epoch 2" in lost_runs(tmp_path)[-1]["why"]

    with pytest.warns(UserWarning) as said:  # --rebuild any trains it out
        ensure_runs(["r18-both"], [1], exact_rebuild=False, **settings)
    assert "not checked against the record" in str(said[0].message)
    assert "other bytes than before" in str(said[-1].message)
    assert calls == ["teacher-s0", "teacher-s0", "r18-both-s1"]
    assert "other bytes than before" in lost_runs(tmp_path)[-1]["why"]


def test_epochs_differ_by_any_number_either_side_lacks_and_agree_on_nan_or_on_no_validation():
    from paperkd.rebuild import epoch_differences

    nan = float("nan")
    same = {"epoch": 1, "loss": {"loss": 1.5, "ce": nan}, "miou": None}
    assert epoch_differences(same, dict(same)) == {}
    assert epoch_differences(same, {"epoch": 1, "loss": {"loss": 1.5, "ce": nan, "kd": 0.0}}) == {"kd": (None, 0.0)}
    left = epoch_differences(same, {"epoch": 1, "loss": {"loss": 1.5}})
    assert list(left) == ["ce"] and left["ce"][1] is None
    assert epoch_differences({"loss": {}, "miou": 0.25}, {"loss": {}, "miou": 0.25 + 1e-17}) == {}  # the same float
    assert epoch_differences({"loss": {}, "miou": 0.25}, {"loss": {}, "miou": 0.2500000001}) == \
        {"mIoU": (0.25, 0.2500000001)}


def test_an_exact_rebuild_is_refused_for_a_teacher_that_reports_its_last_epoch(tmp_path):
    import dataclasses

    from paperkd.rebuild import start_rebuild

    cfg = dataclasses.replace(plan(["teacher"], [0], scale="smoke", dataset="standin", out=str(tmp_path))[0],
                              model_selection="last")
    old = {"config": {"epochs": cfg.epochs}, "environment": {"device": "cpu"}, "epochs": []}
    with pytest.raises(PaperkdError, match="checkpoint.pt.*timings.*--rebuild any"):
        start_rebuild(cfg, tmp_path, old, progress=False)
    with pytest.warns(UserWarning, match="not checked against the record"):
        start_rebuild(cfg, tmp_path, old, progress=False, exact=False)


def test_an_abandoned_rebuild_of_a_record_without_a_sha_deletes_what_it_wrote(tmp_path):
    from paperkd.rebuild import RebuildLeftRecord, abandon_rebuild
    from paperkd.records import lost_runs

    cfg = plan(["teacher"], [0], scale="smoke", dataset="standin", out=str(tmp_path))[0]
    (tmp_path / cfg.name).mkdir()
    for name in ("checkpoint.pt", "best.pt"):
        (tmp_path / cfg.name / name).write_bytes(b"the rebuild's")
    old = {"run_name": cfg.name, "environment": {"device": "cpu"}, "selected": {"miou": 0.5}, "epochs": []}
    error = abandon_rebuild(cfg, tmp_path, old, RebuildLeftRecord(cfg.name, 1, {"mIoU": (0.5, 0.4)}, 360.0))
    assert not any((tmp_path / cfg.name).iterdir())
    assert "its record names no SHA-256" in str(error) and "None" not in str(error)
    assert [(e["hours"], e["epochs"]) for e in lost_runs(tmp_path)] == [(0.1, 1)]
