"""What the runs show, on one page: each claim of the paper with its verdict from paired seeds (`paperkd.claims`),
whether this regime could show a gain at all (the teacher's lead, the positive control, the equal-compute row), and
whether the regime meets the targets it was chosen for (measured from the pilot's and the campaign's records)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from paperkd import claims, separation
from paperkd.config import EXTRA_ROWS, TABLE_ROWS, scheduled_epochs
from paperkd.pages.answer import provenance_markdown, show, versus_cell
from paperkd.pages.campaigns import MAIN, PLAN, TEACHER_RECIPE, Source, book_runs, campaign
from paperkd.records import load_records, lost_runs, read_json
from paperkd.report.plots import plot_seed_scores, plot_training_curves
from paperkd.report.summary import teacher_margin_markdown

ROWS = list(dict.fromkeys([*(p for rows in TABLE_ROWS.values() for p in rows), *EXTRA_ROWS]))
PLAIN = ("r18-none", "mnv2-none")
# The regime's targets (issue: a campaign whose comparisons mean something), checked on the records.
TEACHER_LEAD = 5.0  # mIoU points over each plain student's mean
LAST_QUARTER_GAIN = 1.0  # mIoU points the last quarter of the epochs may still add, mean over seeds
SEED_STD = 1.0  # mIoU points, sample std of a plain student's seeds
BUDGET_HOURS = 16.0  # wall-clock hours of the whole campaign on a 2-core machine
CAMPAIGN_BENCH = "results/bench/cpu-65-b8-campaign.json"  # the step costs of the `cpu` scale, side by side


def sources(folders: Mapping[str, str] | None = None) -> list[Source]:
    return [campaign(folder, ROWS, name=f"main campaign, {recipe} recipe")
            for recipe, folder in (MAIN if folders is None else folders).items()]


def claims_table(source: Source, table: pd.DataFrame) -> pd.DataFrame:
    """The page's table of claims (`table`: `claims.claim_table` of the source): the paper's difference, ours over
    paired seeds with its p and verdict and the seeds a verdict needs, and beside it the table pages' unpaired rule
    (`paperkd.separation`: every seed of one row above every seed of the other), which 3 seeds against 3 can pass."""
    unpaired = [versus_cell(separation.versus(source.runs, {b: w}, diverged=source.diverged).loc[b]).split(", ", 1)[-1]
                for b, w in zip(table["better"], table["worse"])]  # one claim at a time: a row is in several
    def needed(n: object, verdict: str) -> str:
        if n is not None and not (isinstance(n, float) and math.isnan(n)):
            return str(int(n))
        return f"≥ {claims.MIN_PAIRS}" if verdict == claims.UNDECIDED else ""  # nothing to estimate from yet

    def left_out(row: pd.Series) -> str:
        """The seeds that are not in the pairs: a diverged run has no score, an unpaired one no partner."""
        parts = ([f"{', '.join(row['diverged'])} diverged"] if row["diverged"] else []) + \
            ([f"{row['unpaired']} unpaired"] if row["unpaired"] else [])
        return f"{row['ours']}; {'; '.join(parts)}" if parts else row["ours"]

    tables = {c.id: c.table.replace("table", "Table ") for c in claims.CLAIMS}
    notes = [("¹ " if note else "") for note in table["note"]]
    return pd.DataFrame({
        "table": [tables.get(i, "") for i in table.index],
        "claim": [f"{mark}{b} > {w}" for mark, b, w in zip(notes, table["better"], table["worse"])],
        "paper (VOC)": table["paper"].map(lambda v: f"{v:+.2f}"),
        "ours, paired (n)": [left_out(row) for _, row in table.iterrows()],
        "p": table["p"].map(lambda v: "" if math.isnan(v) else f"{v:.3g}"),
        "verdict": table["verdict"],
        "seeds needed (total)": [needed(n, v) for n, v in zip(table["seeds_needed"], table["verdict"])],
        "unpaired rule": unpaired,
    }, index=table.index)


def claim_notes(table: pd.DataFrame) -> str | None:
    """The footnote of the claims marked ¹: where the paper's own numbers order a pair against its text."""
    notes = [f"`{i}`: {note}" for i, note in zip(table.index, table["note"]) if note]
    return "¹ " + "; ".join(notes) + "." if notes else None


def answer(folders: Mapping[str, str] | None = None) -> None:
    """Per recipe of the main campaign: how many claims are reproduced, contradicted, undecided, and the table."""
    for source in sources(folders):
        if source.empty:
            show(f"**{source.label}**: no records in `{source.folder}` yet.")
            continue
        table = claims.claim_table(source.runs, diverged=list(source.diverged))
        judged = (table["verdict"] != claims.NOT_RUN).any()  # a table of "not run" only says nothing
        shown = [claims_table(source, table).style.hide(axis="index").set_caption(
            f"The paper's claims: {source.label}"), claim_notes(table)] if judged else []
        show(claims.claims_markdown(source.label, table), *(item for item in shown if item is not None))


def could_it_help(folders: Mapping[str, str] | None = None) -> None:
    """The teacher against the plain students; the positive control (logit KD) and the plain student given the
    proposed student's compute, each against the rows it controls for (the controls a recipe's PLAN runs)."""
    controls = {"r18-kd": "r18-none", "r18-both": "r18-none-compute", "r18-none-compute": "r18-none"}
    folders = MAIN if folders is None else folders
    for recipe, source in zip(folders, sources(folders)):
        if source.empty:
            show(f"**{source.label}**: no records in `{source.folder}` yet.")
            continue
        planned = PLAN.get(recipe, controls)
        run = {row: ref for row, ref in controls.items() if row in planned and ref in planned}
        versus = separation.versus(source.runs, run, diverged=source.diverged)
        lines = [f"- `{row}` against `{ref}`: {versus_cell(versus.loc[row]) or 'not run'} ({EXTRA_ROWS.get(row, '')})"
                 .replace(" ()", "") for row, ref in run.items()]
        show(teacher_margin_markdown(source.label, source.runs, **_distils_from(source, folders)) + "\n\n"
             + "\n".join(lines),
             *filter(None, [student_epochs_markdown(source)]))


def _distils_from(source: Source, folders: Mapping[str, str]) -> dict:
    """The teacher a source without its own teacher run distils from: the records of the `TEACHER_RECIPE` folder,
    named, as `teacher_margin_markdown` takes them; nothing for a source that has its teacher."""
    folder = folders.get(TEACHER_RECIPE)
    has_teacher = len(source.runs) and (source.runs["preset"] == "teacher").any()
    if has_teacher or folder is None or folder == source.folder:
        return {}
    teachers = campaign(folder, ["teacher"]).runs
    return {"teacher_runs": teachers, "teacher_from": f"`{folder}`, which its students distil from"} \
        if len(teachers) else {}


def student_epochs_markdown(source: Source) -> str | None:
    """How much of a distilled student's schedule trains its network: the recipe's first `connector_warmup_epochs`
    train only the connectors (the authors' trainer), a share of the schedule that a short one makes large. None
    when no distilled run has such epochs."""
    distilled = source.runs[~source.runs["preset"].isin(["teacher", *PLAIN, "r18-none-compute"])] \
        if len(source.runs) else pd.DataFrame()
    schedules = {(r["config"].get("connector_warmup_epochs") or 0, r["config"]["epochs"])
                 for r in distilled.get("record", [])}
    schedules = sorted((w, e) for w, e in schedules if w)
    if not schedules:
        return None
    paper_epochs = scheduled_epochs("r18-both", "paper")
    parts = [f"the first {w} of {e} epochs train only the connectors (nothing, in a row without connectors), so the "
             f"student's network trains {e - w} epochs "
             f"to the plain student's {e} ({w / e:.0%} of its schedule lost; {w / paper_epochs:.1%} at the paper's "
             f"{paper_epochs})" for w, e in schedules]
    return (f"A handicap of the recipe, not of the method: in the distilled runs of {source.label}, "
            + "; ".join(parts) + ". The `paper` recipe has no such epoch.")


def last_quarter_gain(record: Mapping) -> float:
    """mIoU points the last quarter of a run's epochs added: the last epoch's minus that of epoch E - ceil(E / 4),
    the epoch before the last quarter began (10 epochs: epoch 10 minus epoch 7); NaN without validation at both."""
    scored = {e["epoch"]: e["miou"] for e in record["epochs"] if e.get("miou") is not None}
    last = max(scored, default=None)
    if last is None:
        return math.nan
    earlier = last - math.ceil(last / 4)
    return 100 * (scored[last] - scored[earlier]) if earlier in scored else math.nan


def regime_targets(source: Source, budget_folders: Iterable[str] = (), estimate: Estimate | None = None,
                   plan: Mapping[str, Iterable[int]] = PLAN["authors"]) -> pd.DataFrame:
    """Each target of the regime, what the records measure, and whether it is met ('not yet' without the runs; 'so
    far' while a plain student has fewer seeds than `plan` gives it); `estimate`: the whole campaign's hours
    (`estimated_hours`), which judges the budget before the campaign ends. Measures are compared as shown (2
    decimals), so a row never reads "+5.00 ... missed"."""
    runs = source.runs
    rows = []
    teacher = separation.seed_scores(runs, "teacher")

    for plain in PLAIN:
        planned = len(tuple(plan.get(plain, ())))
        scores = separation.seed_scores(runs, plain)
        target = f"teacher leads {plain} by ≥ {TEACHER_LEAD:g} points, every seed above every seed"
        if len(teacher) and len(scores):
            lead = round(teacher.mean() - scores.mean(), 2)
            apart = teacher.min() > scores.max()
            # A threshold on the records, not a test. With one teacher seed, "Could distillation help?" calls the
            # same lead too few seeds to judge by, so the row says how many seeds it read.
            seeds = ", ".join(f"{n} {who} seed{'s' * (n > 1)}" for who, n in (("teacher", len(teacher)),
                                                                              (plain, len(scores))))
            rows.append((target, f"{lead:+.2f}; {'every seed above' if apart else 'seeds overlap'} ({seeds})",
                         target_verdict(lead >= TEACHER_LEAD and apart, len(scores), planned)))
        else:
            missing = " and ".join(w for w, n in (("teacher", len(teacher)), (plain, len(scores))) if not n)
            rows.append((target, f"no {missing} run yet", "not yet"))
        records = list(runs[runs["preset"] == plain]["record"]) if len(runs) else []
        gains = [g for g in map(last_quarter_gain, records) if not math.isnan(g)]
        gain = round(sum(gains) / len(gains), 2) if gains else math.nan
        rows.append((f"{plain} near convergence: the last quarter of its epochs adds < {LAST_QUARTER_GAIN:g}",
                     f"no {plain} run yet" if not gains else
                     f"{gain:+.2f} (mean of {len(gains)} seed{'s' * (len(gains) > 1)})",
                     "not yet" if not gains else target_verdict(gain < LAST_QUARTER_GAIN, len(gains), planned)))
        std = round(scores.std(ddof=1), 2) if len(scores) > 1 else math.nan
        rows.append((f"{plain} seed std ≤ {SEED_STD:g}", "fewer than 2 seeds" if math.isnan(std) else
                     f"{std:.2f} ({len(scores)} seeds)",
                     "not yet" if math.isnan(std) else target_verdict(std <= SEED_STD, len(scores), planned)))
    folders = [source.folder, *budget_folders]
    lost = lost_hours(folders)
    rows.append(budget_row(finished_hours(folders) + lost, estimate, lost))
    return pd.DataFrame(rows, columns=["target", "measured", "verdict"])


def target_verdict(met: bool, seeds: int, planned: int) -> str:
    """A target's verdict, 'so far' while fewer seeds than `planned` are in."""
    return ("met" if met else "missed") + (" so far" if seeds < planned else "")


def epoch_minutes(runs: pd.DataFrame, preset: str) -> tuple[float, float]:
    """Median minutes per epoch of a row's finished runs: training, and the rest of the wall clock (validation,
    checkpoints); NaNs without a run. A record without per-epoch training times counts all of it as training."""
    records = [r for r in (runs[runs["preset"] == preset]["record"] if len(runs) else []) if r.get("wall_s")
               and r["epochs"]]
    if not records:
        return math.nan, math.nan
    train = [sum(e.get("time_s", r["wall_s"] / len(r["epochs"])) for e in r["epochs"]) / len(r["epochs"]) / 60
             for r in records]
    rest = [r["wall_s"] / len(r["epochs"]) / 60 - t for r, t in zip(records, train)]
    return statistics.median(train), statistics.median(rest)


@dataclass(frozen=True)
class Estimate:
    """The whole campaign's hours (`hours`: the finished runs' wall clock plus the estimate of the `remaining`
    runs; NaN while a time it needs is not measured yet)."""

    hours: float
    remaining: int


def estimated_hours(folders: Mapping[str, str], pilot: str | Path, bench: str | Path = CAMPAIGN_BENCH,
                    plan: Mapping[str, Mapping[str, Iterable[int]]] = PLAN) -> Estimate:
    """Hours the whole campaign (`plan`, {recipe: {row: seeds}}) takes: the finished runs' wall clock, plus each
    missing run at its row's measured minutes per epoch times the `cpu` scale's epochs (a diverged run is not tried
    again, so it is not missing). A row without a finished run is timed from its backbone's plain student, its
    training minutes times the proposed step's cost over the plain step's in `bench` when it distils (validation
    costs what the plain student's does); the teacher without a run, from the pilot's teacher."""
    sources = {recipe: campaign(folder, ROWS) for recipe, folder in folders.items()}
    every = pd.concat([s.runs for s in sources.values() if len(s.runs)], ignore_index=True) \
        if any(len(s.runs) for s in sources.values()) else pd.DataFrame()
    pilot_runs = load_records(pilot) if Path(pilot).is_dir() else pd.DataFrame()
    steps = {r["preset"]: r["median_ms"] for r in read_json(bench, "benchmark file")["rows"]} \
        if Path(bench).is_file() else {}

    def per_epoch(preset: str) -> float:
        train, rest = epoch_minutes(every, preset)
        if not math.isnan(train):
            return train + rest
        if preset == "teacher":
            return sum(epoch_minutes(pilot_runs, "teacher"))
        backbone = preset.split("-")[0]
        plain = f"{backbone}-none"
        both = steps.get(f"{backbone}-both", math.nan)
        ratio = 1.0 if preset.startswith(plain) else both / steps.get(plain, math.nan)
        train, rest = epoch_minutes(every, plain)
        return train * ratio + rest

    hours, remaining = campaign_hours(folders.values()), 0
    for recipe, rows in plan.items():
        source = sources.get(recipe)
        done = (set(source.runs["run_name"]) if len(source.runs) else set()) | set(source.diverged) if source else set()
        for preset, seeds in rows.items():
            missing = [s for s in seeds if f"{preset}-s{s}" not in done]
            remaining += len(missing)
            if missing:
                hours += len(missing) * scheduled_epochs(preset, "cpu") * per_epoch(preset) / 60
    return Estimate(hours, remaining)


def budget_row(hours: float, estimate: Estimate | None, lost: float = 0.0) -> tuple[str, str, str]:
    """The regime's budget target: met or missed once the campaign is complete, 'on course' or 'on course to miss'
    by the estimate while runs remain, 'not yet' while nothing estimates it. `hours` counts the `lost` ones."""
    target = f"the whole campaign within about {BUDGET_HOURS:g} h of wall clock on the 2-core machine"
    lost_part = f", plus {lost:.1f} h on runs lost with their machine" if lost else ""
    so_far = f"{hours:.1f} h so far (wall clock of the finished runs{lost_part})"
    if estimate is not None and estimate.remaining == 0:
        return target, f"{hours:.1f} h, complete{lost_part}", "met" if hours <= BUDGET_HOURS else "missed"
    if estimate is None or math.isnan(estimate.hours):
        return target, f"{so_far}; no estimate yet (a time it needs is not measured)", \
            "missed" if hours > BUDGET_HOURS else "not yet"
    return (target, f"{so_far}; about {estimate.hours:.0f} h when complete ({estimate.remaining} runs to go, "
            "estimated from the measured epoch times)",
            "on course to miss (estimate)" if estimate.hours > BUDGET_HOURS else "on course (estimate)")


def campaign_hours(folders: Iterable[str]) -> float:
    """Wall-clock hours the campaign in `folders` has spent: its finished runs plus the runs its ledgers name as
    lost."""
    return finished_hours(folders) + lost_hours(folders)


def finished_hours(folders: Iterable[str]) -> float:
    """Wall-clock hours of every finished run in `folders` (validation included)."""
    total = 0.0
    for folder in distinct(folders):
        runs = load_records(folder) if Path(folder).is_dir() else pd.DataFrame()
        total += sum(float(r.get("wall_s") or 0) for r in runs["record"]) if len(runs) else 0.0
    return total / 3600


def lost_hours(folders: Iterable[str]) -> float:
    """Hours spent on runs that never finished, from each folder's `lost_runs.json` (`records.lost_runs`)."""
    return sum(float(e["hours"]) for folder in distinct(folders) for e in lost_runs(folder))


def distinct(folders: Iterable[str]) -> list[Path]:
    """Each folder once, however it is spelled (relative, absolute, a trailing slash, a link)."""
    return list(dict.fromkeys(Path(f).resolve() for f in folders))


def pilot_table(folder: str | Path) -> pd.DataFrame:
    """The pilot's runs: schedule, data, reported mIoU, what the last quarter added, minutes per epoch."""
    runs = load_records(folder) if Path(folder).is_dir() else pd.DataFrame()
    rows = []
    for r in runs["record"] if len(runs) else []:
        minutes = [e["time_s"] / 60 for e in r["epochs"]]
        gain = last_quarter_gain(r)
        rows.append({"run": r["run_name"], "epochs": r["config"]["epochs"],
                     "train / val images": f"{r['data']['train_images']} / {r['data']['val_images']}",
                     "mIoU": f"{100 * r['selected']['miou']:.2f}" if r.get("selected") else "",
                     "last quarter added": "" if math.isnan(gain) else f"{gain:+.2f}",
                     "training minutes per epoch (median)": f"{statistics.median(minutes):.1f}" if minutes else ""})
    return pd.DataFrame(rows)


def regime(folders: Mapping[str, str] | None = None, pilot: str = "results/pilot-cpu/a") -> None:
    """The regime's targets on the main campaign (all its folders count for the time), then the pilot's runs."""
    folders = MAIN if folders is None else folders
    main = campaign(folders["authors"], ROWS, name="main campaign, authors recipe")
    estimate = estimated_hours(folders, pilot)
    show(regime_targets(main, folders.values(), estimate).style.hide(axis="index").set_caption(
        f"The regime's targets, measured on {main.label}"))
    if learning_curves(main, pilot) is not None:
        plt.show()
    table = pilot_table(pilot)
    if len(table):
        show(f"The pilot that chose the regime (`{pilot}`, the runs it finished, {finished_hours([pilot]):.1f} h of "
             "wall clock not counted in the campaign's):",
             table.style.hide(axis="index").set_caption("Pilot A: plain students and teacher under the authors "
                                                        "recipe, on the stand-in (not VOC)"))


def learning_curves(main: Source, pilot: str | Path) -> plt.Figure | None:
    """Validation mIoU per epoch of the teacher and the plain students of the main campaign, beside the pilot's
    teacher: how far each schedule took its network, and whether it was still rising when it stopped."""
    curves = main.runs[main.runs["preset"].isin(["teacher", *PLAIN])] if len(main.runs) else pd.DataFrame()
    pilot_runs = load_records(pilot) if Path(pilot).is_dir() else pd.DataFrame()
    pilot_teacher = pilot_runs[pilot_runs["preset"] == "teacher"].assign(preset="pilot teacher") \
        if len(pilot_runs) else pd.DataFrame()
    df = pd.concat([f for f in (curves, pilot_teacher) if len(f)], ignore_index=True) \
        if len(curves) or len(pilot_teacher) else pd.DataFrame()
    if not len(df):
        return None
    epochs = {p: int(df[df["preset"] == p]["record"].map(lambda r: r["epochs"][-1]["epoch"]).max())
              for p in df["preset"].unique()}
    labels = {p: f"{p} ({n} epochs{', mean of seeds' if (df['preset'] == p).sum() > 1 else ''})"
              for p, n in epochs.items()}
    return plot_training_curves(df, ["teacher", "pilot teacher", *PLAIN], labels=labels,
                                title="Learning curves on the stand-in (not VOC), authors recipe (shaded: min to "
                                      "max over seeds)")


def every_seed(folders: Mapping[str, str] | None = None) -> None:
    """Every seed of every row against its plain student's range, per recipe."""
    references = {**separation.plain_references(ROWS), "r18-none-compute": "r18-none"}
    found = {s.label: s.runs for s in sources(folders) if len(s.runs)}
    if found:
        plot_seed_scores(found, references, ROWS, title="mIoU of every seed (grey: the plain student's range)")
        plt.show()


def smoke_check(results: str, seeds: Iterable[int]) -> None:
    source = book_runs(results, ROWS, seeds)
    table = claims.claim_table(source.runs, diverged=list(source.diverged))
    show("The runs this build trained itself (smoke scale unless asked otherwise): the claims as they come out of "
         "them, a check that the verdicts are computed, not a result.", claims.claims_markdown(source.label, table))


def provenance(results: str, seeds: Iterable[int], folders: Mapping[str, str] | None = None) -> None:
    show(provenance_markdown([*sources(folders), book_runs(results, ROWS, seeds)]))


__all__ = ["Estimate", "ROWS", "answer", "budget_row", "campaign_hours", "claim_notes", "claims_table",
           "could_it_help", "epoch_minutes", "estimated_hours", "every_seed", "finished_hours", "last_quarter_gain",
           "learning_curves", "lost_hours", "pilot_table", "provenance", "regime", "regime_targets", "smoke_check",
           "student_epochs_markdown"]
