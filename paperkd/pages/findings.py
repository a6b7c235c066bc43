"""What the runs show, on one page: each claim of the paper with its verdict from paired seeds (`paperkd.claims`),
whether this regime could show a gain at all (the teacher's lead, the positive control, the equal-compute row), and
whether the regime meets the targets it was chosen for (measured from the pilot's and the campaign's records)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from paperkd import claims, separation
from paperkd.config import EXTRA_ROWS, TABLE_ROWS, Config, scheduled_epochs
from paperkd.pages.answer import provenance_markdown, show, versus_cell
from paperkd.pages.campaigns import MAIN, PLAN, Source, book_runs, campaign
from paperkd.records import load_records, read_json
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
    needed = [("" if n is None or (isinstance(n, float) and math.isnan(n)) else str(int(n)))
              for n in table["seeds_needed"]]
    tables = {c.id: c.table.replace("table", "Table ") for c in claims.CLAIMS}
    return pd.DataFrame({
        "table": [tables.get(i, "") for i in table.index],
        "claim": [f"{b} > {w}" for b, w in zip(table["better"], table["worse"])],
        "paper": table["paper"].map(lambda v: f"{v:+.2f}"),
        "ours, paired (n)": table["ours"],
        "p": table["p"].map(lambda v: "" if math.isnan(v) else f"{v:.2g}"),
        "verdict": table["verdict"],
        "seeds needed": needed,
        "unpaired rule": unpaired,
    }, index=table.index)


def answer(folders: Mapping[str, str] | None = None) -> None:
    """Per recipe of the main campaign: how many claims are reproduced, contradicted, undecided, and the table."""
    for source in sources(folders):
        if source.empty:
            show(f"**{source.label}**: no records in `{source.folder}` yet.")
            continue
        table = claims.claim_table(source.runs, diverged=list(source.diverged))
        judged = (table["verdict"] != claims.NOT_RUN).any()  # a table of "not run" only says nothing
        show(claims.claims_markdown(source.label, table), *([claims_table(source, table).style.hide(axis="index")
                                                             .set_caption(f"The paper's claims: {source.label}")]
                                                            if judged else []))


def could_it_help(folders: Mapping[str, str] | None = None) -> None:
    """The teacher against the plain students; the positive control (logit KD) and the plain student given the
    proposed student's compute, each against the rows it controls for."""
    controls = {"r18-kd": "r18-none", "r18-both": "r18-none-compute", "r18-none-compute": "r18-none"}
    for source in sources(folders):
        if source.empty:
            show(f"**{source.label}**: no records in `{source.folder}` yet.")
            continue
        versus = separation.versus(source.runs, controls, diverged=source.diverged)
        lines = [f"- `{row}` against `{ref}`: {versus_cell(versus.loc[row]) or 'not run'} ({EXTRA_ROWS.get(row, '')})"
                 .replace(" ()", "") for row, ref in controls.items()]
        show(teacher_margin_markdown(source.label, source.runs) + "\n\n" + "\n".join(lines),
             *filter(None, [student_epochs_markdown(source)]))


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
    paper_epochs = Config.__dataclass_fields__["epochs"].default
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


def regime_targets(source: Source, budget_folders: Iterable[str] = (), estimate: float | None = None) -> pd.DataFrame:
    """Each target of the regime, what the records measure, and whether it is met ('not yet' without the runs);
    `estimate`: the whole campaign's hours (`estimated_hours`), which decides the budget before the campaign ends."""
    runs = source.runs
    rows = []
    teacher = separation.seed_scores(runs, "teacher")
    for plain in PLAIN:
        scores = separation.seed_scores(runs, plain)
        if len(teacher) and len(scores):
            lead = teacher.mean() - scores.mean()
            apart = teacher.min() > scores.max()
            rows.append((f"teacher leads {plain} by ≥ {TEACHER_LEAD:g} points, every seed above every seed",
                         f"{lead:+.2f}; {'every seed above' if apart else 'seeds overlap'}",
                         "met" if lead >= TEACHER_LEAD and apart else "missed"))
        else:
            rows.append((f"teacher leads {plain} by ≥ {TEACHER_LEAD:g} points", "no runs", "not yet"))
        records = list(runs[runs["preset"] == plain]["record"]) if len(runs) else []
        gains = [g for g in map(last_quarter_gain, records) if not math.isnan(g)]
        gain = sum(gains) / len(gains) if gains else math.nan
        rows.append((f"{plain} near convergence: the last quarter of its epochs adds < {LAST_QUARTER_GAIN:g}",
                     "no runs" if not gains else f"{gain:+.2f} (mean of {len(gains)} seeds)",
                     "not yet" if not gains else ("met" if gain < LAST_QUARTER_GAIN else "missed")))
        std = scores.std(ddof=1) if len(scores) > 1 else math.nan
        rows.append((f"{plain} seed std ≤ {SEED_STD:g}", "fewer than 2 seeds" if math.isnan(std) else
                     f"{std:.2f} ({len(scores)} seeds)",
                     "not yet" if math.isnan(std) else ("met" if std <= SEED_STD else "missed")))
    hours = campaign_hours([source.folder, *budget_folders])
    estimate = math.nan if estimate is None else estimate
    rows.append((f"the whole campaign within about {BUDGET_HOURS:g} h on a 2-core machine",
                 f"{hours:.1f} h so far (wall clock of the finished runs)" +
                 ("" if math.isnan(estimate) else f"; about {estimate:.0f} h when complete (estimate from the "
                                                  "measured epoch times)"),
                 "missed" if max(hours, 0 if math.isnan(estimate) else estimate) > BUDGET_HOURS else "so far within"))
    return pd.DataFrame(rows, columns=["target", "measured", "verdict"])


def minutes_per_epoch(runs: pd.DataFrame, preset: str) -> float:
    """Median wall-clock minutes per epoch (validation included) of a row's finished runs; NaN without one."""
    records = list(runs[runs["preset"] == preset]["record"]) if len(runs) else []
    minutes = sorted(r["wall_s"] / 60 / len(r["epochs"]) for r in records if r.get("wall_s") and r["epochs"])
    return minutes[len(minutes) // 2] if minutes else math.nan


def estimated_hours(folders: Mapping[str, str], pilot: str | Path, bench: str | Path = CAMPAIGN_BENCH,
                    plan: Mapping[str, Mapping[str, Iterable[int]]] = PLAN) -> float:
    """Hours the whole campaign (`plan`) takes: the finished runs' wall clock, plus each missing run at its row's
    measured minutes per epoch times the `cpu` scale's epochs. A row without a finished run is timed from its
    backbone's plain student, times the proposed step's cost over the plain step's in `bench` when it distils (the
    teacher: from the pilot's teacher). NaN while a needed time is not measured yet."""
    runs = {recipe: campaign(folder, ROWS).runs for recipe, folder in folders.items()}
    every = pd.concat([r for r in runs.values() if len(r)], ignore_index=True) if any(map(len, runs.values())) \
        else pd.DataFrame()
    pilot_runs = load_records(pilot) if Path(pilot).is_dir() else pd.DataFrame()
    steps = {r["preset"]: r["median_ms"] for r in read_json(bench, "benchmark file")["rows"]} \
        if Path(bench).is_file() else {}

    def per_epoch(preset: str) -> float:
        measured = minutes_per_epoch(every, preset)
        if not math.isnan(measured):
            return measured
        if preset == "teacher":
            return minutes_per_epoch(pilot_runs, "teacher")
        backbone = preset.split("-")[0]
        plain = f"{backbone}-none"
        both = steps.get(f"{backbone}-both", math.nan)
        ratio = 1.0 if preset.startswith(plain) else both / steps.get(plain, math.nan)
        return minutes_per_epoch(every, plain) * ratio

    hours = campaign_hours(folders.values())
    for recipe, rows in plan.items():
        done = set(runs[recipe]["run_name"]) if recipe in runs and len(runs[recipe]) else set()
        for preset, seeds in rows.items():
            missing = [s for s in seeds if f"{preset}-s{s}" not in done]
            if missing:
                hours += len(missing) * scheduled_epochs(preset, "cpu") * per_epoch(preset) / 60
    return hours


def campaign_hours(folders: Iterable[str]) -> float:
    """Wall-clock hours of every finished run in `folders` (validation included)."""
    total = 0.0
    for folder in dict.fromkeys(folders):
        runs = load_records(folder) if Path(folder).is_dir() else pd.DataFrame()
        total += sum(float(r.get("wall_s") or 0) for r in runs["record"]) if len(runs) else 0.0
    return total / 3600


def pilot_table(folder: str | Path) -> pd.DataFrame:
    """The pilot's runs: schedule, data, reported mIoU, what the last quarter added, minutes per epoch."""
    runs = load_records(folder) if Path(folder).is_dir() else pd.DataFrame()
    rows = []
    for r in runs["record"] if len(runs) else []:
        minutes = [e["time_s"] / 60 for e in r["epochs"]]
        rows.append({"run": r["run_name"], "epochs": r["config"]["epochs"],
                     "train / val images": f"{r['data']['train_images']} / {r['data']['val_images']}",
                     "mIoU": f"{100 * r['selected']['miou']:.2f}" if r.get("selected") else "",
                     "last quarter added": f"{last_quarter_gain(r):+.2f}",
                     "minutes per epoch (median)": f"{sorted(minutes)[len(minutes) // 2]:.1f}"})
    return pd.DataFrame(rows)


def regime(folders: Mapping[str, str] | None = None, pilot: str = "results/pilot-cpu/a") -> None:
    """The regime's targets on the main campaign (all its folders count for the time), then the pilot's runs."""
    folders = MAIN if folders is None else folders
    main = sources(folders)[0]
    estimate = estimated_hours(folders, pilot)
    show(regime_targets(main, folders.values(), estimate).style.hide(axis="index").set_caption(
        f"The regime's targets, measured on {main.label}"))
    if learning_curves(main, pilot) is not None:
        plt.show()
    table = pilot_table(pilot)
    if len(table):
        show(f"The pilot that chose the regime (`{pilot}`, the runs it finished, {campaign_hours([pilot]):.1f} h of "
             "wall clock not counted in the campaign's):",
             table.style.hide(axis="index").set_caption("Pilot A: plain students and teacher under the authors recipe"))


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
                                title="Learning curves under the authors recipe (shaded: min to max over seeds)")


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


__all__ = ["ROWS", "answer", "campaign_hours", "claims_table", "could_it_help", "estimated_hours", "every_seed",
           "last_quarter_gain", "learning_curves", "minutes_per_epoch", "pilot_table", "provenance", "regime",
           "regime_targets", "smoke_check", "student_epochs_markdown"]
