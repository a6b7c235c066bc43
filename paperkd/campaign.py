"""Run many rows x seeds into one results folder, skipping runs whose record exists: resumable over several sittings.

    ensure_runs(["teacher", "r18-both"], seeds=[0, 1, 2], scale="cpu", results="results/cpu")  -> DataFrame
    status(["teacher", "r18-both"], seeds=[0, 1, 2], scale="cpu", results="results/cpu")       -> what it would do

Students distil from the teacher of seed `teacher_seed` (0): the paper trains one teacher, then freezes it. The
teacher's other seeds are trained too when asked for (Table 2 reports the teacher's spread over seeds).
An interrupted run continues from its last complete epoch; a finished one is never retrained unless `reuse=False`,
with one exception: a finished teacher whose checkpoint is missing (checkpoints are not committed, so a change of
machine loses them) is trained again, under the same config, before the students that still need it
(`paperkd.rebuild`); its old record stays until the new one replaces it, and its hours go into the folder's
ledger of lost runs (`lost_runs.json`). By default each epoch of the rebuild is checked against the record and the
first that differs stops the campaign (this machine cannot give the bytes the students distilled from); with
`exact_rebuild=False` it is trained out, whether the bytes are the old ones is said, and students that distilled
from other bytes are then refused by `provenance.check_one_teacher`.
A run whose loss diverges leaves `<run>/diverged.json` (the trainer's message) instead of a record: the campaign goes
on with the other runs, and later calls skip it (reported by `diverged_runs`) unless `reuse=False`.
Several campaign processes may share one results folder: each run is trained under a lock of its own (`run_lock`),
so no run is trained twice; a process finding a run busy goes on with the others and comes back to it at the end.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from paperkd.atomic import atomic_open
from paperkd.checkpoint import CHECKPOINT_NAME, load_checkpoint, selected_checkpoint
from paperkd.config import PRESETS, Config, resolve
from paperkd.errors import PaperkdError
from paperkd.rebuild import (RebuildLeftRecord, abandon_rebuild, follow, record_rebuild, start_rebuild,
                             teacher_to_rebuild, weights_on_disk)
from paperkd.records import (DIVERGED_NAME, PRE_RECIPE, RecordError, diverged_runs, find_record, load_records,
                             read_record, reported_metrics)

LOCK_NAME = ".lock"  # held while a process trains the run (campaign.run_lock)


def plan(presets: list[str], seeds: list[int], *, teacher_seed: int = 0, teacher_epochs: int | None = None,
         teacher: str | None = None, **settings: Any) -> list[Config]:
    """The configs to run, teacher first (students need its checkpoint), in the given preset order, seed-major so
    that a partial campaign already covers every row with one seed. `teacher_epochs` overrides the teacher's epochs
    alone (every seed of it), e.g. a stronger teacher for the same students. Students distil from the teacher's
    selected checkpoint (its best epoch under the `authors` recipe, its last under `paper`), or from `teacher`, a
    checkpoint trained elsewhere (then no teacher seed is trained unless "teacher" is among `presets`)."""
    results = settings["out"]
    teacher_settings = {**settings, **({"epochs": teacher_epochs} if teacher_epochs is not None else {})}
    teacher_cfg = resolve("teacher", seed=teacher_seed, **teacher_settings)
    teacher_ckpt = teacher or str(selected_checkpoint(Path(results) / teacher_cfg.name, teacher_cfg))
    needs_teacher = teacher is None and any(_distils(p) for p in presets)
    configs: list[Config] = []
    if needs_teacher or "teacher" in presets:
        configs.append(teacher_cfg)
    for seed in seeds:
        for preset in presets:
            if preset == "teacher":
                if seed != teacher_seed:
                    configs.append(resolve("teacher", seed=seed, **teacher_settings))
                continue
            configs.append(resolve(preset, seed=seed, teacher=teacher_ckpt if _distils(preset) else None, **settings))
    return configs


def _distils(preset: str) -> bool:
    return Config(**PRESETS[preset]).distills


def campaign_plan(presets: list[str], seeds: list[int], *, scale: str = "smoke", dataset: str = "standin",
                  data_root: str | None = None, results: str = "runs/book", device: str = "auto",
                  epochs: int | None = None, teacher_seed: int = 0, teacher_epochs: int | None = None,
                  teacher: str | None = None, **overrides: Any) -> list[Config]:
    """`plan` for a results folder: the configs `ensure_runs` (and `status`) work through, done or not."""
    settings = {"scale": scale, "dataset": dataset, "data_root": data_root, "out": results, "device": device,
                "epochs": epochs, **overrides}
    return plan(presets, seeds, teacher_seed=teacher_seed, teacher_epochs=teacher_epochs, teacher=teacher,
                **settings)


def status(presets: list[str], seeds: list[int], *, results: str = "runs/book", exact_rebuild: bool = True,
           **settings: Any) -> pd.DataFrame:
    """What `ensure_runs` with the same arguments would do, without training: one row per planned run, its epochs,
    and its state: done (its record's mIoU), diverged (skipped), resumes after epoch k of its checkpoint, or new; a
    finished teacher whose checkpoint is missing says so, and how it is trained again (`exact_rebuild`), and is
    shown as the run it will be trained again as."""
    configs = campaign_plan(presets, seeds, results=results, **settings)
    diverged = diverged_runs(results)
    rebuild = teacher_to_rebuild(configs, results, diverged)
    rows = []
    for cfg in configs:
        checkpoint = Path(results) / cfg.name / CHECKPOINT_NAME
        if cfg is not rebuild and finished(results, cfg.name, progress=False):
            state = f"done ({100 * reported_metrics(read_record(find_record(results, cfg.name)))['miou']:.2f} mIoU)"
        elif cfg.name in diverged:
            state = "diverged: skipped"
        elif checkpoint.is_file():
            try:
                state = f"after epoch {load_checkpoint(checkpoint, needs=('epoch',))['epoch']}"
            except PaperkdError as err:
                state = f"starts over: {err}"
            state = f"training now, {state}" if busy(results, cfg.name) else f"resumes {state}"
        else:
            state = "training now" if busy(results, cfg.name) else "to train"
        if cfg is rebuild:
            rule = "each epoch checked against its record" if exact_rebuild else "not checked against its record"
            state = f"weights missing or not its record's, trained again ({rule}): {state}"
        rows.append({"run": cfg.name, "recipe": cfg.recipe, "epochs": cfg.epochs, "state": state})
    return pd.DataFrame(rows, columns=["run", "recipe", "epochs", "state"])


def ensure_runs(presets: list[str], seeds: list[int], *, scale: str = "smoke", dataset: str = "standin",
                data_root: str | None = None, results: str = "runs/book", device: str = "auto",
                epochs: int | None = None, reuse: bool = True, teacher_seed: int = 0, progress: bool = True,
                teacher_epochs: int | None = None, teacher: str | None = None, exact_rebuild: bool = True,
                **overrides: Any) -> pd.DataFrame:
    """Train every (preset, seed) whose record is missing from `results`; return the records of those runs.
    `epochs` overrides the scale's epochs of every run, `teacher_epochs` then those of the teacher alone; `teacher`
    is a checkpoint trained elsewhere for every student to distil from (see `plan`). `exact_rebuild`: a teacher
    trained again over its record stops at the first epoch that leaves it (`paperkd.rebuild`); False: trained out."""
    if teacher is not None and not Path(teacher).is_file():
        raise PaperkdError(f"teacher checkpoint not found: {teacher}")
    configs = campaign_plan(presets, seeds, scale=scale, dataset=dataset, data_root=data_root, results=results,
                            device=device, epochs=epochs, teacher_seed=teacher_seed, teacher_epochs=teacher_epochs,
                            teacher=teacher, **overrides)
    known_diverged = diverged_runs(results) if reuse else {}
    rebuild = teacher_to_rebuild(configs, results, known_diverged) if reuse else None
    done = {c.name for c in configs if reuse and c is not rebuild and finished(results, c.name, progress)}
    for cfg in configs:
        if cfg.name in done:
            check_reading(cfg, find_record(results, cfg.name))
    todo = [c for c in configs if c.name not in done and not (reuse and c.name in known_diverged)]
    deferred = []  # runs another process holds the lock of: come back to them at the end
    students_teacher = next((c.teacher for c in configs if c.teacher), None)
    for cfg in tqdm(todo, desc=f"runs ({scale})", disable=not progress or not todo):
        # the students' teacher is waited for (they need it); any other busy run is left for later
        needed = students_teacher is not None and Path(students_teacher).parent.name == cfg.name
        if not run_once(cfg, results, reuse, progress, wait=needed, rebuild=cfg is rebuild, exact=exact_rebuild):
            deferred.append(cfg)
    for cfg in deferred:
        run_once(cfg, results, reuse, progress, wait=True, rebuild=cfg is rebuild, exact=exact_rebuild)
    wanted = {c.name for c in configs}
    df = load_records(results)
    return df[df["run_name"].isin(wanted)].reset_index(drop=True) if len(df) else df


@contextlib.contextmanager
def run_lock(results: str | Path, run_name: str, wait: bool) -> Iterator[bool]:
    """Hold `<results>/<run>/.lock` (an flock, which the kernel releases when its process dies, so a crash never
    leaves it stuck); yields False without waiting when another process holds it and `wait` is False."""
    path = Path(results) / run_name / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def busy(results: str | Path, run_name: str) -> bool:
    """Whether another process holds the run's lock (is training it); creates nothing."""
    if not (Path(results) / run_name / LOCK_NAME).is_file():
        return False
    with run_lock(results, run_name, wait=False) as free:
        return not free


def run_once(cfg: Config, results: str | Path, reuse: bool, progress: bool, wait: bool,
             rebuild: bool = False, exact: bool = True) -> bool:
    """Train `cfg` under its run lock unless it finished meanwhile (another process); False if the lock is busy
    and `wait` is False. A divergence leaves `<run>/diverged.json`; a diverging teacher stops the campaign.
    `rebuild`: `cfg` is a finished teacher whose checkpoint is missing (`teacher_to_rebuild`): trained again
    unless its checkpoint reappeared meanwhile, then `record_rebuild` books the replaced record; `exact`: checked
    epoch by epoch against its record, and stopped at the first that differs (`paperkd.rebuild`)."""
    from paperkd.train import TrainingDiverged, train  # here, so that reading records never imports the trainer

    if wait and progress:
        with run_lock(results, cfg.name, wait=False) as free:
            if not free:
                tqdm.write(f"waiting for {cfg.name}: another process is training it")
    with run_lock(results, cfg.name, wait) as mine:
        if not mine:
            return False
        marker = Path(results) / cfg.name / DIVERGED_NAME
        old_record = read_record(find_record(results, cfg.name)) if rebuild else None
        if old_record is not None:
            if weights_on_disk(selected_checkpoint(Path(results) / cfg.name, cfg), old_record):
                return True  # rebuilt by another process while we waited
            check_reading(cfg, find_record(results, cfg.name))
            try:
                start_rebuild(cfg, results, old_record, progress, exact)
            except RebuildLeftRecord as left:
                raise abandon_rebuild(cfg, results, old_record, left) from None
        if reuse and not rebuild and finished(results, cfg.name, progress):  # trained by another process meanwhile
            check_reading(cfg, find_record(results, cfg.name))
            return True
        if reuse and marker.is_file():  # it diverged in another process: not tried twice
            return True
        if cfg.teacher and not Path(cfg.teacher).is_file():
            raise PaperkdError(f"{cfg.name} distils from {cfg.teacher}, which is missing (its record exists but "
                               "its checkpoint was not kept); plan the teacher in the same campaign (its row, or the "
                               "default teacher rather than --teacher) to train it again, or delete its record")
        marker.unlink(missing_ok=True)
        try:
            check = follow(old_record) if old_record is not None and exact else None
            record = train(cfg, resume=reuse, progress=progress, on_epoch=check)  # reuse: an interrupted run continues
            if old_record is not None:
                message = record_rebuild(results, old_record, record)
                tqdm.write(message) if progress else warnings.warn(message, stacklevel=2)
        except RebuildLeftRecord as left:
            raise abandon_rebuild(cfg, results, old_record, left) from None
        except TrainingDiverged as err:
            if cfg.preset == "teacher":
                raise  # nothing can distil from it
            with atomic_open(marker, "w") as f:
                json.dump({"run_name": cfg.name, "message": str(err), "config": cfg.to_dict()}, f, indent=1)
            if progress:
                tqdm.write(f"{cfg.name} diverged and is skipped: {err}")
    return True


def finished(results: str | Path, run_name: str, progress: bool = True) -> bool:
    """Whether `run_name` has a readable record under `results`. An unreadable one (empty, truncated, garbage) is
    named and its run trained again, which replaces it; the other runs are not held up."""
    path = find_record(results, run_name)
    if path is None:
        return False
    try:
        read_record(path)
    except RecordError as err:
        message = f"{err}; {run_name} is trained again"
        tqdm.write(message) if progress else warnings.warn(message, stacklevel=2)
        return False
    return True


def check_reading(cfg: Config, record_path: Path | None) -> None:
    """Refuse to reuse a finished run that used another recipe or another reading of a loss than `cfg` asks for (it
    would be shown under the wrong one): the recipe always, the pixel-wise variant when the pixel-wise term is on,
    the pair-wise nodes likewise."""
    if record_path is None:
        return
    done = read_record(record_path)["config"]
    fields = [f for f, on in (("recipe", True), ("pixel_variant", cfg.pixel > 0), ("pair_nodes", cfg.pair > 0)) if on]
    # A record without the recipe field predates the recipes; one without a loss field predates that field.
    recorded = {f: done.get(f, PRE_RECIPE if f == "recipe" else None) for f in fields}
    differ = [f"{f}={v!r} (asked: {getattr(cfg, f)!r})" for f, v in recorded.items()
              if v is not None and v != getattr(cfg, f)]
    if differ:
        raise PaperkdError(f"{record_path} was trained with {', '.join(differ)}; keep each reading in its own results "
                           "folder (--results), or delete that run to retrain it")
