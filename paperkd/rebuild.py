"""A finished teacher trained again over its own record, because its weights went (checkpoints are not committed, so
a change of machine keeps the record and loses the weights).

    teacher_to_rebuild(configs, results)          -> the teacher a campaign must train again first, or None
    start_rebuild(cfg, results, old, exact=True)  -> refuses what cannot work, says what it does
    follow(old)                                   -> `train`'s per-epoch check of an exact rebuild
    record_rebuild(results, old, new)             -> books the replaced record, says whether the bytes are the old ones

Students that distilled from the old weights stay valid only if the new weights are the same bytes, which needs a
machine whose kernels, threads and versions give the same floats. An exact rebuild (the default) therefore checks
every epoch against its record: the same weights give the same logged numbers, float for float, so the first epoch
that differs proves the rebuild cannot end in the record's bytes. It stops there (`RebuildLeftRecord`), books its
hours in the folder's `lost_runs.json` and deletes its files, so that a machine that can follow the record starts
from epoch 0, instead of spending the teacher's whole schedule on weights its students were not trained against.
`exact=False` trains it out whatever the bytes; its students must then be trained again
(`provenance.check_one_teacher` refuses to mix them).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from paperkd.checkpoint import CHECKPOINT_NAME, load_checkpoint, selected_checkpoint
from paperkd.config import Config
from paperkd.errors import PaperkdError
from paperkd.provenance import sha256_of
from paperkd.records import RecordError, book_lost_run, find_record, lost_runs, read_record


class RebuildLeftRecord(PaperkdError):
    """An epoch of an exact rebuild whose logged numbers are not its record's: other weights. `trained`: the epochs
    the rebuild had trained when found (more than `epoch` for a checkpoint left by a rebuild that was not checked)."""

    def __init__(self, run: str, epoch: int, differences: dict[str, tuple[Any, Any]], wall_s: float,
                 trained: int | None = None):
        self.run, self.epoch, self.differences, self.wall_s = run, epoch, differences, wall_s
        self.trained = epoch if trained is None else trained
        self.shown = ", ".join(f"{name} {new!r} (record: {old!r})" for name, (old, new) in differences.items())
        super().__init__(f"{run}: the rebuild left its record at epoch {epoch}: {self.shown}")


def teacher_to_rebuild(configs: list[Config], results: str | Path, diverged: Iterable[str] = ()) -> Config | None:
    """The planned teacher whose record exists but whose weights do not (its selected checkpoint is missing, or
    holds other bytes than the record names: a rebuild under way), when a planned student that has no readable
    record and has not diverged (`diverged`: run names) distils from them; else None. An unreadable teacher record
    gives None too: the campaign then trains the teacher as a run without a record."""
    teachers = {str(selected_checkpoint(Path(results) / c.name, c)): c for c in configs if c.preset == "teacher"}
    skipped, checked = set(diverged), set()
    for cfg in configs:
        teacher = teachers.get(str(cfg.teacher)) if cfg.teacher else None
        if teacher is None or teacher.name in checked or cfg.name in skipped or readable_record(results, cfg.name):
            continue
        checked.add(teacher.name)  # its weights are hashed once, not once per student
        record = readable_record(results, teacher.name)
        if record is not None and not weights_on_disk(Path(cfg.teacher), record):
            return teacher
    return None


def readable_record(results: str | Path, run_name: str) -> dict[str, Any] | None:
    """The run's record, None when it has none or an unreadable one (`campaign.finished` names those)."""
    path = find_record(results, run_name)
    try:
        return read_record(path) if path is not None else None
    except RecordError:
        return None


def weights_on_disk(checkpoint: Path, record: dict[str, Any]) -> bool:
    """Whether `checkpoint` holds the weights `record` selected (by SHA-256, when the record names one)."""
    if not checkpoint.is_file():
        return False
    sha = (record.get("selected") or {}).get("sha256")
    return sha is None or sha256_of(checkpoint) == sha


def epoch_differences(recorded: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The logged numbers of one epoch that differ between a record and a rebuild: each mean loss term and the
    validation mIoU; {name: (record's, rebuild's)}, None for a number one side lacks (a term added or renamed: the
    computation changed). Compared exactly: the same weights give the same floats, and any difference, however
    small, means other weights."""
    old_loss, new_loss = recorded.get("loss") or {}, new.get("loss") or {}
    pairs = {name: (old_loss.get(name), new_loss.get(name)) for name in old_loss | new_loss}
    pairs["mIoU"] = (recorded.get("miou"), new.get("miou"))
    return {name: (a, b) for name, (a, b) in pairs.items()
            if not (a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)))}


def follow(old: dict[str, Any]) -> Callable[[dict[str, Any], float], None]:
    """`train`'s `on_epoch` for an exact rebuild of the run `old` records: raises `RebuildLeftRecord` at the first
    epoch whose numbers differ from the record's (`epoch_differences`); epochs the record lacks are not judged."""
    recorded = {entry["epoch"]: entry for entry in old["epochs"]}

    def check(entry: dict[str, Any], wall_s: float) -> None:
        differences = epoch_differences(recorded[entry["epoch"]], entry) if entry["epoch"] in recorded else {}
        if differences:
            raise RebuildLeftRecord(old["run_name"], entry["epoch"], differences, wall_s)
    return check


def start_rebuild(cfg: Config, results: str | Path, old: dict[str, Any], progress: bool, exact: bool = True) -> None:
    """Check that the teacher `cfg` may be trained again over its record `old`, then say so, naming the device the
    record was trained on and this one. Refused (PaperkdError) when the record trained other epochs, when the
    ledger of lost runs is unreadable (found now, not after the training), or when checkpoint.pt holds the finished
    run itself (`train` would resume at its end); an `exact` one also when the run reports its last epoch
    (`model_selection="last"`: the selected file is checkpoint.pt, which holds the run's timings too, so no rebuild
    gives its bytes). An `exact` rebuild whose checkpoint.pt (a rebuild cut short)
    already left the record raises `RebuildLeftRecord`, as `follow` would have at that epoch."""
    from paperkd.inference import resolve_device
    from paperkd.records import device_name

    if old["config"].get("epochs") != cfg.epochs:
        raise PaperkdError(f"{cfg.name}: its record trained {old['config'].get('epochs')} epochs and this campaign "
                           f"asks for {cfg.epochs}; keep each schedule in its own results folder (--results)")
    if exact and cfg.model_selection == "last":
        raise PaperkdError(f"{cfg.name}: its record selected its last epoch, whose file (checkpoint.pt) also holds "
                           "the run's timings, so no rebuild can give the record's bytes and its students would be "
                           "trained again in any case; pass --rebuild any to train a new teacher")
    lost_runs(results)
    checkpoint = Path(results) / cfg.name / CHECKPOINT_NAME
    if checkpoint.is_file():
        state = load_checkpoint(checkpoint, needs=("epoch",))
        if exact:  # first: a checkpoint that left the record is not its finished run either
            check = follow(old)
            try:
                for entry in state.get("history") or []:
                    check(entry, state.get("wall_s") or 0.0)
            except RebuildLeftRecord as left:
                raise RebuildLeftRecord(left.run, left.epoch, left.differences, left.wall_s, state["epoch"]) from None
        if state["epoch"] >= cfg.epochs:
            raise PaperkdError(f"{checkpoint} holds the finished run its record describes, but not the weights the "
                               f"record selected; delete {checkpoint} to train {cfg.name} again")
    here = device_name(resolve_device(cfg.device))
    rule = ("each epoch is checked against the record's, and the first that differs stops it" if exact else
            "not checked against the record (--rebuild any): its students are trained again if the bytes differ")
    message = (f"{cfg.name}: its record is kept but not its weights; training it again (its record: "
               f"{old['environment'].get('device')}; here: {here}). Only where the kernels, the threads and the "
               f"versions agree can the new weights be the old bytes; {rule}.")
    tqdm.write(message) if progress else warnings.warn(message, stacklevel=3)


def abandon_rebuild(cfg: Config, results: str | Path, old: dict[str, Any], left: RebuildLeftRecord) -> PaperkdError:
    """After `left`: delete the rebuild's checkpoint.pt and its selected file (what is there was written by the
    rebuild: it runs only while the record's bytes are missing, and a file proved to hold them is kept), book its
    hours in `lost_runs.json`, and return the error that stops the campaign, saying what happened and what to do.
    The old record stays."""
    from paperkd.inference import resolve_device
    from paperkd.records import device_name

    run_dir = Path(results) / cfg.name
    here = device_name(resolve_device(cfg.device))
    old_sha = (old.get("selected") or {}).get("sha256")
    sha = f"{old_sha[:12]}…" if old_sha else "its record names no SHA-256"
    for path in {run_dir / CHECKPOINT_NAME, selected_checkpoint(run_dir, cfg)}:  # first: a crash books nothing twice
        if path.is_file() and not (old_sha and sha256_of(path) == old_sha):
            path.unlink()
    ledger = book_lost_run(results, cfg.name, left.wall_s / 3600, left.trained,
                           f"A rebuild of {cfg.name} on {here} left its record at epoch {left.epoch} "
                           f"({left.shown}), so it could not end in the record's bytes ({sha}): it was stopped "
                           f"after epoch {left.trained} and its files deleted (its record: "
                           f"{old['environment'].get('device')}).")
    return PaperkdError(
        f"{left}. This machine ({here}) does not give the record's weights ({sha}; its record: "
        f"{old['environment'].get('device')}), so the students that distilled from them would have to be trained "
        f"again. The rebuild is stopped, its {left.wall_s / 3600:.2f} h booked in {ledger} and its files deleted, "
        "so that a machine that can follow the record starts it from epoch 0. To train a new teacher here instead, "
        "pass --rebuild any (then delete the students that name the old one, which are refused), or train the rows "
        "that need no teacher meanwhile (--rows)")


def record_rebuild(results: str | Path, old: dict[str, Any], new: dict[str, Any]) -> str:
    """Book a teacher trained again over its own record: the replaced record's hours go into `lost_runs.json` (the
    record is gone, its compute was spent), and the returned line says whether the new weights are the old bytes
    (then the students that distilled from it stay valid) or not (then `check_one_teacher` refuses to mix them).
    Under `model_selection="last"` (the `paper` recipe) the selected file is checkpoint.pt, which also holds the
    run's timings: its bytes differ at every rebuild, so such a teacher is always a new teacher."""
    old_sha = (old.get("selected") or {}).get("sha256")
    new_sha = (new.get("selected") or {}).get("sha256")
    same = old_sha is not None and old_sha == new_sha
    verdict = ("the same bytes as before: its students stay valid" if same else
               "its old record names no SHA-256, so whether its students stay valid is unknown" if old_sha is None
               else f"other bytes than before ({old_sha[:12]}…): the students that distilled from the old ones must "
                    "be trained again")
    hours = round(old["wall_s"] / 3600, 2)
    ledger = book_lost_run(results, old["run_name"], hours, len(old["epochs"]),
                           f"its record (finished {old.get('finished', '?')}, commit "
                           f"{str(old['environment'].get('git_commit'))[:12]}, {old['environment'].get('device')}) "
                           "was replaced when its weights, not committed, were missing and it was trained again; "
                           f"the new checkpoint (SHA-256 {str(new_sha)[:12]}…): {verdict}")
    return f"{old['run_name']} trained again (SHA-256 {str(new_sha)[:12]}…), {verdict}; {hours} h booked in {ledger}"
