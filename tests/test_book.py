"""The book: its configuration avoids the known build pitfalls, the driver checks its inputs, and a real build of the
method notebook with warnings as errors produces the pages with their equations and figures."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from paperkd import book
from paperkd.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
RESULTS_PAGES = ("table1", "table2", "table3", "figure2", "findings", "earlier")  # the paper's tables and figure, rebuilt from run records
BOOK_PARAMETERS = {"data_root", "dataset", "scale", "recipe", "seeds", "epochs", "device", "results", "reuse"}
EQUATION_LABELS = ("eq-gam", "eq-gat", "eq-gat-total", "eq-partial-l2", "eq-pixelwise", "eq-pool", "eq-similarity",
                   "eq-pairwise", "eq-total")  # eq. 1-9 in the paper's order


def toc_files(toc_path: Path) -> set[str]:
    return set(book._toc_files(yaml.safe_load(toc_path.read_text())))


# -- configuration ---------------------------------------------------------------------------------------------------

def test_every_notebook_and_page_is_in_the_toc():
    files = toc_files(REPO / "_toc.yml")
    for name in book.notebook_names():
        assert f"book/executed/{name}" in files, f"notebooks/{name}.py is not in _toc.yml as book/executed/{name}"
    for page in (REPO / "book").glob("*.md"):
        assert f"book/{page.stem}" in files, f"{page} is not in _toc.yml"
    static = [f for f in files if not f.startswith("book/executed/")]
    assert all((REPO / f).with_suffix(".md").is_file() for f in static), static


def test_config_avoids_the_known_build_pitfalls():
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert config["only_build_toc_files"] is True
    assert config["execute"]["execute_notebooks"] == "off"  # the book shows papermill's executed copies
    url = (config.get("repository") or {}).get("url") or ""
    assert url == "" or url.startswith("https://github.com/"), url
    assert not list((REPO / "notebooks").glob("*.ipynb")), "a .ipynb beside its .py source confuses jupyter-book"


@pytest.mark.parametrize("name, extra", [("method", {"calibration_file"}), ("performance", {"bench"}),
                                         ("figure2", {"campaign"}), ("findings", {"campaign", "campaign_paper", "pilot"}),
                                         ("earlier", {"earlier"})]
                         + [(page, {"campaign", "campaign_paper"}) for page in ("table1", "table2", "table3")])
def test_notebooks_have_the_parameter_convention(name, extra):
    import jupytext

    notebook = jupytext.read(REPO / "notebooks" / f"{name}.py")
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    names = {line.split("=")[0].strip() for line in tagged[0].source.splitlines() if "=" in line}
    assert names == BOOK_PARAMETERS | extra


def test_kernel_runs_this_interpreter():
    book.check_kernel()  # the venv's python3 kernel: no error


def test_kernel_pinned_to_another_python_is_refused(tmp_path, monkeypatch):
    spec = tmp_path / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": ["/opt/other/bin/python", "-m", "ipykernel_launcher", "-f",
                                                           "{connection_file}"], "display_name": "other",
                                                  "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))  # searched before the environment's own kernels
    with pytest.raises(ConfigError, match="/opt/other/bin/python"):
        book.check_kernel()


# -- parameters ------------------------------------------------------------------------------------------------------

def test_parameters_are_checked_and_paths_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = book.notebook_parameters(scale="cpu", results="runs/x", device="cuda:1", reuse=False)
    assert params == {"data_root": None, "dataset": "standin", "scale": "cpu", "device": "cuda:1",
                      "results": str(tmp_path / "runs" / "x"), "reuse": False,
                      "recipe": "authors"}  # seeds/epochs: notebook defaults; the default recipe
    params = book.notebook_parameters(data_root=".", dataset="voc", seeds=[1, 2], epochs=3)
    assert params["data_root"] == str(tmp_path) and params["seeds"] == [1, 2] and params["epochs"] == 3


@pytest.mark.parametrize("kwargs, message", [
    ({"scale": "huge"}, "choose one of: .*smoke"),
    ({"dataset": "cityscapes"}, "choose one of: .*standin"),
    ({"dataset": "voc"}, "needs data_root"),
    ({"data_root": "/no/such/folder"}, "/no/such/folder"),
    ({"seeds": []}, "seeds"),
    ({"seeds": [0.5]}, "seeds"),
    ({"epochs": 0}, "epochs"),
    ({"recipe": "both"}, "recipe='both' is not allowed; choose one of: authors, paper"),
])
def test_bad_parameters_raise_config_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        book.notebook_parameters(**kwargs)


def test_unknown_notebook_is_refused_before_anything_runs():
    with pytest.raises(ConfigError, match="method"):  # the message lists the notebooks there are
        book.build_book(notebooks=["no_such_notebook"], build=False, progress=False)


# -- the table of contents of a partial build ------------------------------------------------------------------------

def _mini_repo(root: Path, toc: dict, sources=(), executed=()) -> Path:
    (root / "notebooks").mkdir(parents=True)
    (root / "book" / "executed").mkdir(parents=True)
    for name in sources:
        (root / "notebooks" / f"{name}.py").write_text("# %%\n")
    for name in executed:
        (root / "book" / "executed" / f"{name}.ipynb").write_text("{}")
    (root / "_toc.yml").write_text(yaml.safe_dump(toc))
    return root


NESTED_TOC = {"format": "jb-book", "root": "book/intro", "parts": [
    {"caption": "Method", "chapters": [{"file": "book/method"}, {"file": "book/executed/a"}]},
    {"caption": "Results", "chapters": [{"file": "book/executed/b", "sections": [{"file": "book/detail"}]},
                                        {"file": "book/executed/c.ipynb"}]},
]}


def test_partial_toc_leaves_out_only_unexecuted_notebook_pages(tmp_path):
    root = _mini_repo(tmp_path, NESTED_TOC, sources=("a", "b", "c"), executed=("a",))
    partial = book.buildable_toc(root)
    assert partial is not None and partial.parent == root / "_build"
    assert toc_files(partial) == {"book/intro", "book/method", "book/executed/a"}
    assert yaml.safe_load(partial.read_text())["parts"][1]["chapters"] == []


def test_complete_toc_is_used_as_it_is(tmp_path):
    root = _mini_repo(tmp_path, NESTED_TOC, sources=("a", "b", "c"), executed=("a", "b", "c"))
    assert book.buildable_toc(root) is None


def test_toc_page_without_notebook_source_is_an_error(tmp_path):
    root = _mini_repo(tmp_path, NESTED_TOC, sources=("a", "b"), executed=("a", "b", "c"))
    with pytest.raises(ConfigError, match="book/executed/c"):
        book.buildable_toc(root)


# -- real builds -----------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_build_fails_on_a_warning(tmp_path):
    """The build runs with -W: a page with a dangling reference (a warning only) must fail it, naming the cause."""
    (tmp_path / "_config.yml").write_text((REPO / "_config.yml").read_text())
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    (tmp_path / "intro.md").write_text("# Intro\n\nSee {doc}`no-such-page`.\n")
    with pytest.raises(book.BookBuildError, match="no-such-page"):
        book.build_html(progress=False, root=tmp_path)


@pytest.mark.slow
def test_build_book_with_the_method_notebook(monkeypatch):
    commands = []
    real_popen = subprocess.Popen

    def spy(command, *args, **kwargs):
        commands.append(command)
        return real_popen(command, *args, **kwargs)

    monkeypatch.setattr(book.subprocess, "Popen", spy)
    index = book.build_book(notebooks=["method"], progress=False)

    assert index == REPO / "_build" / "html" / "index.html" and index.is_file()
    # Only the book build counts: a kernel launcher imported after the patch (when this test runs first) or a tool
    # probing for pandoc goes through the same Popen.
    [command] = [c for c in commands if Path(str(c[0])).name == "jupyter-book"]
    assert command[1:3] == ["build", str(REPO)] and "-W" in command

    executed = json.loads((REPO / "book" / "executed" / "method.ipynb").read_text())
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert executed["metadata"]["papermill"]["parameters"]["scale"] == "smoke"
    assert not (REPO / "book" / "executed" / "method.running.ipynb").exists()

    html = index.parent
    method = (html / "book" / "method.html").read_text()
    for label in EQUATION_LABELS:
        assert f'id="equation-{label}"' in method, label
    for function in ("paperkd.losses.gam", "attention_transfer_loss", "partial_l2", "pixelwise_loss",
                     "pairwise_loss", "Distillation.total"):
        assert function in method, function
    notebook_page = (html / "book" / "executed" / "method.html").read_text()
    assert notebook_page.count("<img") >= 4  # image + label, GAM maps, pixel-wise maps, similarity matrices
    assert "pixel-wise (eq. 5)" in notebook_page  # the loss table


@pytest.mark.slow
def test_failing_notebook_keeps_the_last_good_page(tmp_path, monkeypatch):
    """A notebook error names the cell and the exception, keeps the failed copy and leaves the good page alone."""
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "broken.py").write_text(
        '# %% tags=["parameters"]\nscale = "smoke"\n\n# %%\nraise ValueError(f"boom at {scale}")\n')
    executed = tmp_path / "book" / "executed"
    executed.mkdir(parents=True)
    (executed / "broken.ipynb").write_text("last good page")
    monkeypatch.setattr(book, "REPO", tmp_path)
    monkeypatch.setattr(book, "NOTEBOOKS", tmp_path / "notebooks")
    monkeypatch.setattr(book, "EXECUTED", executed)

    with pytest.raises(book.BookBuildError, match="ValueError: boom at cpu"):
        book.build_book(scale="cpu", notebooks=["broken"], build=False, progress=False)
    assert (executed / "broken.ipynb").read_text() == "last good page"
    failed = json.loads((executed / "broken.failed.ipynb").read_text())
    assert any(o["output_type"] == "error" for c in failed["cells"] if c["cell_type"] == "code" for o in c["outputs"])
    assert not (executed / "broken.running.ipynb").exists()


@pytest.mark.slow
def test_a_smoke_build_of_the_results_pages_reads_the_committed_records():
    """A smoke build of the results notebooks (reusing the runs under runs/book): no page fails, each shows a table
    and names the paper's numbers, and the intro's links to them resolve (what each page opens with is checked on
    records written by the test, tests/test_pages.py)."""
    index = book.build_book(notebooks=list(RESULTS_PAGES), progress=False)
    html = index.parent
    for name in RESULTS_PAGES:
        executed = json.loads((REPO / "book" / "executed" / f"{name}.ipynb").read_text())
        outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
        assert not [o for o in outputs if o["output_type"] == "error"], name
        assert executed["metadata"]["papermill"]["parameters"]["scale"] == "smoke"
        assert all({"hide-input", "remove-input"} & set(c["metadata"]["tags"])
                   for c in executed["cells"] if c["cell_type"] == "code")
        page = (html / "book" / "executed" / f"{name}.html").read_text()
        assert "synthetic stand-in (NOT Pascal VOC)" in page and "paperkd git commit" in page, name
        if name.startswith("table") or name == "earlier":
            assert "<table" in page, name
    table1 = (html / "book" / "executed" / "table1.html").read_text()
    for value in ("74.78", "66.59", "69.21", "64.71"):
        assert value in table1, value
    earlier = (html / "book" / "executed" / "earlier.html").read_text()
    assert "cpu-standin-voclabels-teacher48" in earlier and "cpu-240" in earlier
    intro = (html / "book" / "intro.html").read_text()
    for name in RESULTS_PAGES:
        assert f'href="executed/{name}.html"' in intro, name


@pytest.mark.slow
def test_performance_page_reads_the_benchmark_files():
    index = book.build_book(notebooks=["performance"], progress=False)
    page = (index.parent / "book" / "executed" / "performance.html").read_text()
    files = sorted((REPO / "results" / "bench").glob("*.json"))
    assert files and all(f.name in page for f in files)
    assert "<table" in page and "<img" in page and "ratio to plain student" in page and "fp32 self" in page
    assert page.index("proposed ResNet-18 step costs") < page.index("<h2>Where the time of a step goes")  # answer first


@pytest.mark.slow
def test_executed_notebooks_pass_nbval_lax():
    """Re-run every executed notebook with nbval (lax: errors fail, outputs with timings are not compared). Runs after
    the build tests above, which write book/executed/*.ipynb; the smoke runs they trained are reused."""
    notebooks = sorted(str(p) for p in (REPO / "book" / "executed").glob("*.ipynb")
                       if not p.name.endswith((".running.ipynb", ".failed.ipynb")))
    assert {Path(n).stem for n in notebooks} >= {"method", "performance", *RESULTS_PAGES}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "--nbval-lax", "-p", "no:cacheprovider",
                           "--rootdir", str(REPO), *notebooks], cwd=REPO, capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]

