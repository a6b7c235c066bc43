"""The results pages (paperkd.pages): what each opens with, read from records a test writes, and how it is shown."""

import json
import math
import os
import shutil

import nbformat
import pytest
import torch
import yaml
from test_report import make_record

from paperkd import book, claims
from paperkd.pages import figure2, findings, table1, table3
from paperkd.pages.answer import answer_markdown, comparison_table, pairs_in_paper_order
from paperkd.pages.campaigns import campaign

REPO = book.REPO
CURVE = ((2.0, 0.30), (1.5, 0.40), (1.2, 0.45), (1.1, 0.46))  # (loss, mIoU) per epoch; the last is the run's own


def write_campaign(folder, scores):
    """{preset: [mIoU per seed]} as run records of a campaign folder."""
    for preset, values in scores.items():
        for seed, miou in enumerate(values):
            make_record(folder, preset, seed, miou, epochs=CURVE[:-1] + ((1.0, miou),),
                        config={"backbone": "resnet101" if preset == "teacher" else "resnet18"})


SCORES = {"teacher": [0.50, 0.51, 0.52], "r18-none": [0.40, 0.41, 0.42], "r18-pixel": [0.43, 0.44, 0.45],
          "r18-pair": [0.38, 0.42, 0.40], "r18-both": [0.30, 0.31, 0.32]}


def test_the_table_shows_differences_from_the_plain_student_and_ranks_never_a_gap_to_voc(tmp_path):
    write_campaign(tmp_path, SCORES)
    source = campaign(tmp_path, table1.PAGE.rows)
    table = comparison_table(source, table1.PAGE.paper, table1.PAGE.labels)
    assert list(table.columns) == ["row", "paper mIoU (VOC)", "paper vs plain", "ours mIoU", "ours vs plain",
                                   "rank (paper / ours)"]
    assert table.loc["r18-pixel", "paper vs plain"] == "+2.45"  # 69.04 - 66.59
    assert table.loc["r18-pixel", "ours vs plain"] == "+3.00, above on every seed (p = 0.1)"
    assert table.loc["r18-both", "ours vs plain"] == "-10.00, below on every seed (p = 0.1)"
    assert table.loc["r18-pair", "ours vs plain"] == "-1.00, seeds overlap"
    assert table.loc["teacher", "rank (paper / ours)"] == "1 / 1"
    assert table.loc["r18-both", "rank (paper / ours)"] == "2 / 5"
    assert table.loc["mnv2-none", "ours mIoU"] == "not run" and table.loc["mnv2-none", "rank (paper / ours)"] == ""


def test_the_answer_counts_rows_apart_and_pairs_in_the_papers_order(tmp_path):
    write_campaign(tmp_path, SCORES)
    text = answer_markdown(campaign(tmp_path, table1.PAGE.rows), table1.PAGE.paper)
    assert "seeds 0, 1, 2. Of the 6 distilled rows against their plain student: 1 above on every seed, " \
           "1 below on every seed, 1 seeds overlap; 3 not run." in text
    assert "The paper (VOC) has all 6 above, its differences ranging from +0.64 to +2.62 points." in text
    # ResNet-18 students: pixel > none > pair > both in ours; both > pixel > pair > none in the paper; the teacher
    # and pairs across backbones are not counted
    assert pairs_in_paper_order(campaign(tmp_path, table1.PAGE.rows).summary(table1.PAGE.rows)["miou_mean"],
                                table1.PAGE.paper["miou"]) == (2, 6)
    assert "2 of the 6 pairs of students of one backbone with runs are in the paper's order." in text
    assert "Of the 3 comparisons with enough seeds, 2 are apart; if no row really differed" in text


def test_a_campaign_without_records_says_so_in_one_line(tmp_path):
    text = answer_markdown(campaign(tmp_path / "missing", table1.PAGE.rows), table1.PAGE.paper)
    assert "no records of these rows in" in text and "missing" in text and "so no answer from it" in text


def test_table3_compares_each_loss_with_its_other_position(tmp_path):
    write_campaign(tmp_path, {"r18-pixel": [0.5, 0.5, 0.5], "r18-pixel-middle": [0.4, 0.41, 0.42],
                              "r18-pair": [0.3, 0.3, 0.3], "r18-pair-end": [0.3, 0.31, 0.29]})
    source = campaign(tmp_path, table3.PAGE.rows)
    table = comparison_table(source, table3.PAGE.paper, table3.PAGE.labels, table3.REFERENCES, "vs other position")
    assert table.loc["r18-pixel", "paper vs other position"] == "+0.58"
    assert table.loc["r18-pair", "paper vs other position"] == "-0.07"  # the paper's numbers against its text
    assert table.loc["r18-pixel", "ours vs other position"].startswith("+9.00, above on every seed")
    assert table.loc["r18-pixel-middle", "ours vs other position"] == ""


class Constant(torch.nn.Module):
    """Predicts class `label` everywhere."""

    def __init__(self, label):
        super().__init__()
        self.label = label

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 21, *x.shape[-2:])
        logits[:, self.label] = 1
        return logits


def save_constant_predictions(folder, preset, label, root):
    from paperkd.data import VOCSegmentation, val_transforms
    from paperkd.saved_predictions import save_predictions

    val = VOCSegmentation(root, "val", transforms=val_transforms(65, "short_side"))
    save_predictions(Constant(label), val, folder / f"{preset}-s0", "cpu")


def test_figure2_is_drawn_from_saved_predictions_alone(tmp_path, tiny_standin):
    write_campaign(tmp_path, {"teacher": [0.5], "r18-none": [0.4], "r18-both": [0.45]})
    for preset, label in (("teacher", 15), ("r18-none", 0)):
        save_constant_predictions(tmp_path, preset, label, tiny_standin)
    rows, notes = figure2.grid(tmp_path)
    assert len(rows) == 4 and list(rows[0]) == ["image", "ground truth", "teacher (ResNet-101)", "student (ResNet-18)"]
    assert (rows[0]["teacher (ResNet-101)"] == rows[0]["teacher (ResNet-101)"][0, 0]).all()  # one colour: class 15
    assert not (rows[0]["teacher (ResNet-101)"] == rows[0]["student (ResNet-18)"]).all()
    assert any("`r18-both-s0` saved no predictions" in n and "paperkd save-predictions" in n for n in notes)
    record_path = tmp_path / "r18-none-s0" / "record.json"
    record = json.loads(record_path.read_text())
    for selected, why in (({"epoch": 1}, "names no checkpoint SHA-256"), ({"sha256": "b" * 64}, "SHA-256 differs")):
        record_path.write_text(json.dumps({**record, "selected": selected}))
        rows, notes = figure2.grid(tmp_path)
        assert "student (ResNet-18)" not in rows[0] and any("`r18-none-s0`" in n and why in n for n in notes)
    record_path.write_text(json.dumps(record))
    shutil.rmtree(tmp_path / "teacher-s0" / "predictions")
    (tmp_path / "r18-none-s0" / "predictions" / "manifest.json").write_text("{")
    assert figure2.grid(tmp_path)[0] == []  # nothing readable: no figure, and each column says why


def test_the_regime_targets_are_measured_from_the_records(tmp_path):
    write_campaign(tmp_path, {"teacher": [0.50, 0.51, 0.52], "r18-none": [0.40, 0.41, 0.43],
                              "mnv2-none": [0.30, 0.36, 0.33]})
    three = {"r18-none": range(3), "mnv2-none": range(3)}
    table = findings.regime_targets(campaign(tmp_path, findings.ROWS), plan=three).set_index("target")
    verdicts = dict(zip(table.index.str.split(" ").str[:3].str.join(" "), zip(table["measured"], table["verdict"])))
    assert verdicts["teacher leads r18-none"] == ("+9.67; every seed above (3 teacher seeds, 3 r18-none seeds)", "met")
    assert findings.regime_targets(campaign(tmp_path, findings.ROWS)).iloc[0]["verdict"] == "met so far"  # 3 of 5
    assert verdicts["teacher leads mnv2-none"][1] == "met"
    lead = {k: v for k, v in verdicts.items() if "convergence" in k or "near" in k}
    assert lead and all(v[1] == "met" for v in lead.values())  # the last quarter adds at most 1 point
    assert verdicts["r18-none seed std"] == ("1.53 (3 seeds)", "missed")
    assert verdicts["mnv2-none seed std"][1] == "missed"
    record = json.loads((tmp_path / "r18-none-s0" / "record.json").read_text())
    assert findings.last_quarter_gain(record) == pytest.approx(100 * (0.40 - 0.45))  # epoch 4 minus epoch 3
    ten = {"epochs": [{"epoch": e, "miou": e / 100} for e in range(1, 11)]}
    assert findings.last_quarter_gain(ten) == pytest.approx(3.0)  # epoch 10 minus epoch 7: 2.5 epochs round up


def test_the_regime_targets_say_missed_and_so_far_from_the_records(tmp_path):
    write_campaign(tmp_path, {"teacher": [0.53], "r18-none": [0.50, 0.52]})  # last epochs +5 and +7 over the third
    table = findings.regime_targets(campaign(tmp_path, findings.ROWS)).set_index("target")
    verdicts = dict(zip(table.index.str.split(" ").str[:3].str.join(" "), zip(table["measured"], table["verdict"])))
    assert verdicts["teacher leads r18-none"] == ("+2.00; every seed above (1 teacher seed, 2 r18-none seeds)",
                                                  "missed so far")  # 2 of 3 seeds
    assert verdicts["r18-none near convergence:"] == ("+6.00 (mean of 2 seeds)", "missed so far")
    assert verdicts["teacher leads mnv2-none"] == ("no mnv2-none run yet", "not yet")
    assert verdicts["mnv2-none seed std"] == ("fewer than 2 seeds", "not yet")


def test_the_learning_curves_put_the_pilots_teacher_beside_the_campaigns_runs(tmp_path):
    main, pilot = tmp_path / "main", tmp_path / "pilot"
    assert findings.learning_curves(campaign(main, findings.ROWS), pilot) is None  # nothing to draw
    write_campaign(main, {"r18-none": [0.40, 0.42], "r18-pixel": [0.43]})
    write_campaign(pilot, {"teacher": [0.45], "r18-none": [0.41]})
    fig = findings.learning_curves(campaign(main, findings.ROWS), pilot)
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend == ["pilot teacher (4 epochs)", "r18-none (4 epochs, mean of seeds)"]  # no distilled row
    miou = {line.get_label(): list(line.get_ydata()) for line in fig.axes[1].get_lines()}
    assert miou["pilot teacher (4 epochs)"][-1] == pytest.approx(45.0)
    assert miou["r18-none (4 epochs, mean of seeds)"][-1] == pytest.approx(41.0)


def test_the_connector_only_epochs_of_a_short_schedule_are_stated_as_the_recipes_handicap(tmp_path):
    make_record(tmp_path, "r18-none", 0, 0.40, config={"connector_warmup_epochs": 1, "epochs": 10})
    assert findings.student_epochs_markdown(campaign(tmp_path, findings.ROWS)) is None  # a plain run has no such epoch
    make_record(tmp_path, "r18-both", 0, 0.42, config={"connector_warmup_epochs": 1, "epochs": 10})
    text = findings.student_epochs_markdown(campaign(tmp_path, findings.ROWS))
    assert "the first 1 of 10 epochs" in text and "trains 9 epochs to the plain student's 10" in text
    assert "10% of its schedule lost; 0.8% at the paper's 120" in text
    make_record(tmp_path, "r18-both", 0, 0.42, config={"connector_warmup_epochs": 0, "epochs": 10})
    assert findings.student_epochs_markdown(campaign(tmp_path, findings.ROWS)) is None  # the paper recipe's


def timed_record(folder, preset, epochs, train_s, wall_s):
    """A finished run of `epochs` epochs, each `train_s` seconds of training, `wall_s` seconds in all."""
    make_record(folder, preset, 0, 0.4, epochs=((1.0, 0.3),) * epochs)
    path = folder / f"{preset}-s0" / "record.json"
    record = json.loads(path.read_text())
    record["epochs"] = [{**e, "time_s": train_s} for e in record["epochs"]]
    path.write_text(json.dumps({**record, "wall_s": wall_s}))


def test_the_budget_is_estimated_from_measured_epoch_times_and_the_step_costs(tmp_path):
    main, paper, pilot, bench = (tmp_path / name for name in ("main", "paper", "pilot", "bench.json"))
    timed_record(main, "r18-none", 2, 90.0, 240.0)  # 1.5 min of training and 0.5 of the rest, an epoch
    timed_record(paper, "r18-none", 2, 90.0, 240.0)  # the same run name under the other recipe: done there too
    timed_record(pilot, "teacher", 4, 240.0, 1200.0)  # 5 min an epoch
    (main / "r18-pair-s1").mkdir()
    (main / "r18-pair-s1" / "diverged.json").write_text(json.dumps({"run_name": "r18-pair-s1", "message": "nan"}))
    bench.write_text(json.dumps({"rows": [{"preset": "r18-none", "median_ms": 100.0},
                                          {"preset": "r18-both", "median_ms": 250.0}]}))
    plan = {"authors": {"teacher": (0,), "r18-none": (0, 1), "r18-pair": (0, 1), "r18-none-compute": (0,)},
            "paper": {"r18-none": (0,), "r18-both": (0,)}}
    estimate = findings.estimated_hours({"authors": str(main), "paper": str(paper)}, pilot, bench, plan)
    # finished 4 + 4 min; teacher 60 x 5; r18-none-s1 10 x 2; r18-pair-s0 and paper's r18-both-s0 each
    # 10 x (1.5 x 2.5 + 0.5), the step-cost ratio on the training time only; r18-none-compute 20 x 2; r18-pair-s1
    # diverged, so it is not tried again
    assert estimate.hours == pytest.approx((8 + 300 + 20 + 42.5 + 40 + 42.5) / 60) and estimate.remaining == 5
    no_bench = findings.estimated_hours({"authors": str(main)}, pilot, tmp_path / "none.json", plan)
    assert math.isnan(no_bench.hours)
    source = campaign(main, findings.ROWS)
    verdicts = {e: findings.regime_targets(source, estimate=e).iloc[-1]["verdict"]
                for e in (estimate, findings.Estimate(17.0, 3), findings.Estimate(0.07, 0), no_bench, None)}
    assert list(verdicts.values()) == ["on course (estimate)", "on course to miss (estimate)", "met", "not yet",
                                       "not yet"]
    assert "about 8 h when complete (5 runs to go" in findings.regime_targets(source, estimate=estimate).iloc[-1]["measured"]


def test_the_budget_counts_the_hours_of_runs_lost_with_their_machine(tmp_path):
    timed_record(tmp_path, "r18-none", 2, 90.0, 1800.0)
    assert findings.campaign_hours([str(tmp_path)]) == pytest.approx(0.5)
    (tmp_path / "lost_runs.json").write_text(json.dumps([{"run": "teacher-s0", "hours": 2.5, "epochs": 41,
                                                          "why": "its checkpoint went with its machine"}]))
    spellings = [str(tmp_path), f"{tmp_path}/", str(tmp_path / "r18-none-s0" / ".."), os.path.relpath(tmp_path)]
    assert findings.lost_hours(spellings) == pytest.approx(2.5)  # a folder counts once, however it is spelled
    assert findings.finished_hours(spellings) == pytest.approx(0.5)
    assert findings.campaign_hours([str(tmp_path)]) == pytest.approx(3.0)
    measured = findings.regime_targets(campaign(tmp_path, findings.ROWS), estimate=None).iloc[-1]["measured"]
    assert measured.startswith("3.0 h so far (wall clock of the finished runs, plus 2.5 h on runs lost with")


def test_the_claims_table_names_the_seeds_left_out_and_the_papers_own_disorder(tmp_path):
    write_campaign(tmp_path, {"r18-none": [0.40, 0.41, 0.42], "r18-both": [0.43, 0.45], "r18-pair": [0.40],
                              "r18-pair-end": [0.41]})
    (tmp_path / "r18-both-s2").mkdir()
    (tmp_path / "r18-both-s2" / "diverged.json").write_text(json.dumps({"run_name": "r18-both-s2", "message": "nan"}))
    source = campaign(tmp_path, findings.ROWS)
    table = claims.claim_table(source.runs, diverged=list(source.diverged))
    shown = findings.claims_table(source, table)
    both = shown.loc["r18-both-over-none"]
    assert both["ours, paired (n)"] == "+3.50 ± 0.71 (n=2); r18-both-s2 diverged; 1 unpaired"
    assert both["p"] == "0.5" and both["verdict"] == claims.UNDECIDED and both["paper (VOC)"] == "+2.62"
    assert shown.loc["r18-pair-middle-over-end", "seeds needed (total)"] == f"≥ {claims.MIN_PAIRS}"  # one pair
    assert shown.loc["r18-pair-middle-over-end", "claim"].startswith("¹ ")
    assert findings.claim_notes(table).startswith("¹ `r18-pair-middle-over-end`: the paper's own Table 3")


def test_every_code_cell_of_an_executed_page_is_hidden_but_kept(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# A page"), nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(x)"), nbformat.v4.new_code_cell("y", metadata={"tags": ["remove-input"]})])
    path = tmp_path / "page.ipynb"
    nbformat.write(notebook, path)
    book.hide_inputs(path)
    tags = [c.metadata.get("tags", []) for c in nbformat.read(path, as_version=4).cells]
    assert tags == [[], ["parameters", "remove-input"], ["hide-input"], ["remove-input"]]


@pytest.mark.slow
def test_results_pages_open_with_their_answer_and_hide_their_code(tmp_path, tiny_standin, monkeypatch):
    """Execute the table, Figure 2 and findings pages against a campaign written here, build them into a small book,
    and read the HTML: each opens with its answer and table, shows its figure, folds its code and its provenance."""
    main = tmp_path / "campaign"
    write_campaign(main, {**SCORES, "mnv2-none": [0.30, 0.31, 0.32], "r18-kd": [0.41, 0.42, 0.44]})
    for preset, label in (("teacher", 15), ("r18-none", 0), ("r18-both", 8)):
        save_constant_predictions(main, preset, label, tiny_standin)
    root = tmp_path / "book"
    monkeypatch.setattr(book, "EXECUTED", root / "book" / "executed")
    pages = ("table1", "figure2", "findings")
    parameters = book.notebook_parameters(results=tmp_path / "none")
    for name in pages:
        extra = {"campaign": str(main)} if name == "figure2" else {"campaign": str(main),
                                                                   "campaign_paper": str(tmp_path / "no-paper")}
        book.execute_notebook(name, {**parameters, **extra}, progress=False)
    (root / "notebooks").mkdir()
    for name in pages:
        shutil.copy(REPO / "notebooks" / f"{name}.py", root / "notebooks")
    shutil.copy(REPO / "_config.yml", root)
    (root / "intro.md").write_text("# Test book\n")
    toc = {"format": "jb-book", "root": "intro", "chapters": [{"file": f"book/executed/{n}"} for n in pages]}
    (root / "_toc.yml").write_text(yaml.safe_dump(toc))
    html = book.build_html(progress=False, root=root).parent / "book" / "executed"
    for name in pages:
        page = (html / f"{name}.html").read_text()
        body = page[page.index("<h1"):]
        first_output = body[body.index('class="cell_output'):][:20000]
        assert "main campaign, authors recipe" in first_output, name  # the answer comes first
        assert body.count("tag_hide-input") >= 2 and "tag_remove-input" in body, name  # code folded, parameters gone
        assert "tag_hide-output" in page, name  # the provenance folded
        assert "<img" in page, name
    table1_page = (html / "table1.html").read_text()
    assert "<table" in table1_page and "+3.00, above on every seed (p = 0.1)" in table1_page
    summary = campaign(main, table1.PAGE.rows).summary(table1.PAGE.rows)["miou_mean"].dropna()
    gaps = (summary - table1.PAGE.paper["miou"].reindex(summary.index)).map("{:+.2f}".format)
    assert not [g for g in gaps if g in table1_page]  # no gap between a stand-in number and the paper's VOC one
    figure = (html / "figure2.html").read_text()
    assert "validation images" in figure and "synthetic stand-in (NOT Pascal VOC)" in figure
    assert "claims with runs of both rows" in (html / "findings.html").read_text()


def test_students_of_a_teacher_in_another_folder_are_checked_against_that_teacher(tmp_path):
    from paperkd.report.sources import expected_teacher

    teacher = tmp_path / "authors" / "teacher-s0"
    make_record(tmp_path / "authors", "teacher", 0, 0.5, config={"backbone": "resnet101"})
    record = json.loads((teacher / "record.json").read_text())
    (teacher / "record.json").write_text(json.dumps({**record, "selected": {"sha256": "a" * 64}}))
    make_record(tmp_path / "paper", "r18-both", 0, 0.4, config={"teacher": str(teacher / "best.pt")})
    source = campaign(tmp_path / "paper", ["r18-both"])
    assert expected_teacher(source.folder, source.runs) == "a" * 64


def test_a_campaign_whose_runs_all_diverged_says_so(tmp_path):
    (tmp_path / "r18-both-s0").mkdir()
    (tmp_path / "r18-both-s0" / "diverged.json").write_text(json.dumps({"message": "r18-both-s0: pixel is inf"}))
    source = campaign(tmp_path, table1.PAGE.rows)
    assert not source.empty and "every run of these rows" in answer_markdown(source, table1.PAGE.paper)


def test_a_folder_without_its_own_teacher_is_measured_against_the_teacher_it_distils_from(tmp_path, monkeypatch):
    authors, paper = tmp_path / "authors", tmp_path / "paper"
    write_campaign(authors, {"teacher": [0.56], "r18-none": [0.48], "r18-kd": [0.54]})
    write_campaign(paper, {"r18-none": [0.50]})
    shown = []
    monkeypatch.setattr(findings, "show", lambda *items: shown.extend(i for i in items if isinstance(i, str)))
    findings.could_it_help({"authors": str(authors), "paper": str(paper)})
    authors_text, paper_text = shown[0], shown[-1]
    assert "the teacher (56.00, 1 seed) is +8.00 points over `r18-none`" in authors_text
    assert "`r18-kd` against `r18-none`: +6.00" in authors_text
    assert f"the teacher of `{authors}`, which its students distil from (56.00, 1 seed) is +6.00 points" in paper_text
    assert "no teacher run" not in paper_text
    assert "r18-kd" not in paper_text and "r18-none-compute" not in paper_text  # not in the paper recipe's plan
    shutil.rmtree(authors / "teacher-s0")
    shown.clear()
    findings.could_it_help({"authors": str(authors), "paper": str(paper)})
    assert "no teacher run" in shown[-1]  # nothing to read the lead from is said, not guessed
