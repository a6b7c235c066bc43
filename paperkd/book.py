"""Build the book: execute every notebook with papermill, then compile the Jupyter Book with warnings as errors.

Notebook sources are jupytext percent files, `notebooks/<name>.py`. Each is read into memory, executed with the
parameters of the build and written to `book/executed/<name>.ipynb`, the copy that `_toc.yml` names (a .ipynb never
sits beside its .py). `jupyter-book build` itself executes nothing (`execute_notebooks: "off"`): the book shows the
notebooks exactly as papermill ran them.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

import yaml

from paperkd.config import DATASETS, DEFAULT_RECIPE, RECIPES, SCALES, TABLE_ROWS
from paperkd.errors import ConfigError, PaperkdError

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR, EXECUTED_DIR = Path("notebooks"), Path("book/executed")  # relative to the repository (and the toc)
NOTEBOOKS = REPO / NOTEBOOKS_DIR
EXECUTED = REPO / EXECUTED_DIR
HTML_INDEX = REPO / "_build" / "html" / "index.html"
KERNEL = "python3"
OUTPUT_TAIL_LINES = 30
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
PROBLEM = re.compile(r"\b(WARNING|ERROR|CRITICAL|SEVERE)\b|Traceback|Exception")


class BookBuildError(PaperkdError):
    """A notebook failed to execute or `jupyter-book build -W` failed; the message says where to look."""


def notebook_names(folder: Path | None = None) -> list[str]:
    """Names of every notebook source, `notebooks/<name>.py` (or `<folder>/<name>.py`), sorted."""
    folder = NOTEBOOKS if folder is None else Path(folder)
    return sorted(p.stem for p in folder.glob("*.py") if not p.name.startswith(("_", ".")))


def build_book(scale: str = "smoke", data_root: str | Path | None = None, dataset: str = "standin",
               results: str | Path = "runs/book", device: str = "cpu", seeds: Iterable[int] | None = None,
               reuse: bool = True, notebooks: Iterable[str] | None = None, build: bool = True,
               progress: bool = True, epochs: int | None = None, recipe: str | None = None) -> Path:
    """Train the runs the pages need, then execute the notebooks into book/executed/ and build the book into
    _build/html; return its index.html. Two steps: running (`paperkd.campaign.ensure_runs` for every row of Tables 1-3
    at the given scale, seeds and recipe, into `results`) and reading (the notebooks only read records, benchmark
    and calibration files; executing one trains nothing).

    Every notebook gets the same parameters (its cell tagged `parameters` declares the defaults):

    - scale: how big the runs the notebooks need are: "smoke" (seconds, checks that everything runs), "cpu" (a small
      study that fits a CPU in hours) or "paper" (the paper's recipe; needs a GPU and the real VOC data).
    - data_root: the data folder: one holding VOCdevkit/VOC2012 (the real data, or a stand-in written by
      `paperkd.data.make_standin`). None with dataset="standin" uses the embedded default stand-in
      (`paperkd.data.default_standin`, built on first use).
    - dataset: "standin" (synthetic images rendered from label maps; never reported as VOC results) or "voc".
    - results: folder of the run records step 1 trains into and the notebooks read (relative to the current directory).
    - device: torch device of the runs, e.g. "cpu", "cuda", "cuda:1".
    - seeds: seeds to train and average over; None keeps each notebook's default for its scale.
    - reuse: reuse finished runs already recorded under `results` instead of training them again.
    - notebooks: names of the notebooks to execute (stems of notebooks/*.py); None executes all of them. Book pages of
      notebooks that were not executed now are kept from an earlier build, or left out of this build if there is none.
    - build: also run `jupyter-book build -W` after executing; False only executes the notebooks.
    - progress: show papermill's per-cell progress bar and the build's log.
    - epochs: override the number of training epochs of the scale; None keeps the scale's.

    Returns the path of _build/html/index.html (not built when build=False). Raises ConfigError for a bad value and
    BookBuildError, with the failing cell or the warnings and tail of the build log, when a notebook or the build
    fails.
    """
    parameters = notebook_parameters(scale=scale, data_root=data_root, dataset=dataset, results=results,
                                     device=device, seeds=seeds, reuse=reuse, epochs=epochs, recipe=recipe)
    names = _select(notebooks)
    check_kernel()
    if set(names) & set(READING_PAGES):
        train_book_runs(parameters, progress=progress)  # step 1: run; the notebooks then only read
    for name in names:
        execute_notebook(name, parameters, progress=progress)
    if not build:
        return HTML_INDEX
    return build_html(progress=progress)


# The pages that read run records, and the rows the book trains for them (every row of Tables 1-3; Figure 2's
# columns are among them) before executing any notebook.
READING_PAGES = ("table1", "table2", "table3", "findings", "figure2", "earlier")
BOOK_ROWS = tuple(dict.fromkeys(p for rows in TABLE_ROWS.values() for p in rows))
DEFAULT_SEEDS = [0]  # the notebooks' own default (`seeds` in their parameters cell)


def train_book_runs(parameters: dict[str, Any], progress: bool = True) -> None:
    """Step 1 of a book build: `paperkd campaign` for every row the pages read, at the build's scale, seeds and
    recipe, into its results folder (finished runs are reused unless reuse=False)."""
    from paperkd.campaign import ensure_runs

    ensure_runs(list(BOOK_ROWS), parameters.get("seeds", DEFAULT_SEEDS), scale=parameters["scale"],
                dataset=parameters["dataset"], data_root=parameters["data_root"], results=parameters["results"],
                device=parameters["device"], epochs=parameters.get("epochs"), reuse=parameters["reuse"],
                recipe=parameters["recipe"], progress=progress)


def notebook_parameters(scale: str = "smoke", data_root: str | Path | None = None, dataset: str = "standin",
                        results: str | Path = "runs/book", device: str = "cpu", seeds: Iterable[int] | None = None,
                        reuse: bool = True, epochs: int | None = None, recipe: str | None = None) -> dict[str, Any]:
    """The papermill parameters of a build, checked; paths made absolute (notebooks run with the repository as cwd).
    `recipe`: the training recipe of the runs the notebooks train (None: the default, `DEFAULT_RECIPE`)."""
    if scale not in SCALES:
        raise ConfigError(f"scale={scale!r} is not allowed; choose one of: {', '.join(SCALES)}")
    if dataset not in DATASETS:
        raise ConfigError(f"dataset={dataset!r} is not allowed; choose one of: {', '.join(DATASETS)}")
    if dataset == "voc" and data_root is None:
        raise ConfigError("dataset='voc' needs data_root: the folder holding VOCdevkit/VOC2012 (see book: reproduce)")
    if data_root is not None and not Path(data_root).is_dir():
        raise ConfigError(f"data_root {str(data_root)!r} is not a folder")
    parameters: dict[str, Any] = {
        "data_root": None if data_root is None else str(Path(data_root).resolve()),
        "dataset": dataset,
        "scale": scale,
        "device": str(device),
        "results": str(Path(results).resolve()),
        "reuse": bool(reuse),
        "recipe": recipe or DEFAULT_RECIPE,
    }
    if parameters["recipe"] not in RECIPES:
        raise ConfigError(f"recipe={recipe!r} is not allowed; choose one of: {', '.join(RECIPES)}")
    if seeds is not None:  # None: the notebook's default for the scale
        seeds = list(seeds)
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise ConfigError(f"seeds must be a non-empty list of integers, got {seeds!r}")
        parameters["seeds"] = seeds
    if epochs is not None:
        if not isinstance(epochs, int) or epochs <= 0:
            raise ConfigError(f"epochs must be a positive integer, got {epochs!r}")
        parameters["epochs"] = epochs
    return parameters


def _select(notebooks: Iterable[str] | None) -> list[str]:
    available = notebook_names()
    if notebooks is None:
        return available
    names = [Path(n).stem for n in ([notebooks] if isinstance(notebooks, str) else notebooks)]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ConfigError(f"unknown notebook(s) {', '.join(unknown)}; choose from: {', '.join(available)}")
    return names


def check_kernel() -> None:
    """Make sure the `python3` kernel runs this interpreter, so notebooks import the same paperkd and torch.

    jupyter_client replaces a bare `python` in the kernel's command with this interpreter; a kernelspec pinned to
    another python (e.g. one in ~/.local/share/jupyter) would silently run the notebooks elsewhere. Environments are
    told apart by their bin folder, without resolving symlinks (every venv's python links to the same base python).
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    fix = f"register one for this environment: {sys.executable} -m ipykernel install --sys-prefix --name {KERNEL}"
    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        raise ConfigError(f"no Jupyter kernel named {KERNEL!r}; {fix}") from None
    program = spec.argv[0]
    bare = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    if program not in bare and Path(program).absolute().parent != Path(sys.executable).absolute().parent:
        raise ConfigError(f"the Jupyter kernel {KERNEL!r} ({spec.resource_dir}) runs {program}, not {sys.executable}; "
                          f"{fix}")


def execute_notebook(name: str, parameters: dict[str, Any], progress: bool = True) -> Path:
    """Run notebooks/<name>.py with papermill into book/executed/<name>.ipynb and return that path.

    The source is converted in memory. Papermill writes as it goes, so it writes to `<name>.running.ipynb` first: a
    failed run never replaces the last good page; it is kept as `<name>.failed.ipynb` to read the traceback in.
    """
    import jupytext
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = NOTEBOOKS / f"{name}.py"
    notebook = jupytext.read(source)
    EXECUTED.mkdir(parents=True, exist_ok=True)
    final = EXECUTED / f"{name}.ipynb"
    running = EXECUTED / f"{name}.running.ipynb"
    failed = EXECUTED / f"{name}.failed.ipynb"
    if progress:
        print(f"paperkd book: executing {source.relative_to(REPO)} -> {final.relative_to(REPO)}", flush=True)
    try:
        papermill.execute_notebook(notebook, str(running), parameters=parameters, kernel_name=KERNEL,
                                   language="python", cwd=str(REPO), progress_bar=progress)
    except PapermillExecutionError as error:
        raise BookBuildError(f"notebook {source} failed in cell {error.exec_count}: {error.ename}: {error.evalue} "
                             f"(the executed notebook with the traceback: {failed})") from None
    else:
        hide_inputs(running)
        running.replace(final)
        failed.unlink(missing_ok=True)
    finally:
        if running.exists():  # any failure, including a dead kernel or Ctrl-C
            running.replace(failed)
    return final


HIDDEN = "hide-input"  # Jupyter Book shows the output and folds the code behind a "show code" toggle
REMOVED = "remove-input"  # the parameters cells: no output, and their values are under each page's provenance
SHOWN = (REMOVED, HIDDEN, "show-input")  # a cell tagged with one of these keeps its own choice
PARAMETER_TAGS = ("parameters", "injected-parameters")


def hide_inputs(path: Path) -> None:
    """Tag every code cell of an executed notebook `hide-input`, so that a page opens with its answers and a reader
    can still unfold the code that made them; the parameters cells (papermill's injected one too) `remove-input`."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if cell.cell_type == "code" and not set(tags) & set(SHOWN):
            tags.append(REMOVED if set(tags) & set(PARAMETER_TAGS) else HIDDEN)
    nbformat.write(notebook, path)


def build_html(progress: bool = True, root: Path = REPO) -> Path:
    """Run `jupyter-book build <root> -W` with this environment's jupyter-book; return <root>/_build/html/index.html.

    Every page is rebuilt (--all), so a warning from any page fails the build, not only from the pages that changed.
    Notebook pages named in _toc.yml that have not been executed yet are left out of this build (a partial toc).
    """
    root = Path(root)
    index = root / "_build" / "html" / "index.html"
    program = Path(sys.executable).parent / "jupyter-book"
    if not program.exists():
        program = Path(shutil.which("jupyter-book") or "jupyter-book")
    command = [str(program), "build", str(root), "-W", "--keep-going", "--all"]
    toc = buildable_toc(root, progress)
    if toc is not None:
        command += ["--toc", str(toc)]
    if progress:
        print(f"paperkd book: {' '.join(command)}", flush=True)
    # The warnings that fail a -W build come long before the end of the log: keep them as well as the tail.
    tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)
    problems: list[str] = []
    environment = {**os.environ, "NO_COLOR": "1"}  # plain text in the error message
    with subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=environment) as proc:
        for line in proc.stdout:
            if progress:
                print(line, end="", flush=True)
            line = ANSI_ESCAPE.sub("", line.rstrip("\n"))
            tail.append(line)
            if PROBLEM.search(line):
                problems.append(line)
    if proc.returncode != 0 or not index.exists():
        raise BookBuildError(f"jupyter-book build -W failed (exit {proc.returncode}).\nWarnings and errors:\n"
                             + "\n".join(problems or ["(none reported)"])
                             + "\nLast lines of its output:\n" + "\n".join(tail))
    if progress:
        print(f"paperkd book: {index}", flush=True)
    return index


def buildable_toc(root: Path = REPO, progress: bool = False) -> Path | None:
    """None if every page of _toc.yml exists; else write a toc without the unexecuted notebook pages and return it.

    A toc entry book/executed/<name> must have a source notebooks/<name>.py; notebooks missing from the toc are named.
    """
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    entries = list(_toc_files(toc))
    executed = [f for f in entries if Path(f).parent == EXECUTED_DIR]
    sources = set(notebook_names(root / NOTEBOOKS_DIR))
    orphans = [f for f in executed if Path(f).stem not in sources]
    if orphans:
        raise ConfigError(f"_toc.yml lists {', '.join(orphans)} but there is no notebooks/<name>.py for "
                          f"{', '.join(Path(f).stem for f in orphans)}")
    unlisted = sorted(sources - {Path(f).stem for f in executed})
    if unlisted and progress:
        print(f"paperkd book: not in _toc.yml, so not in the book: {', '.join(unlisted)}", flush=True)
    missing = {f for f in executed if not (root / f).with_suffix(".ipynb").exists()}
    if not missing:
        return None
    if progress:
        print(f"paperkd book: not executed yet, left out of this build: {', '.join(sorted(missing))}", flush=True)
    partial = root / "_build" / "partial_toc.yml"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_text(yaml.safe_dump(_without(toc, missing), sort_keys=False))
    return partial


def _toc_files(node: Any) -> Iterable[str]:
    """Every `file:` (and the root) named anywhere in a jupyter-book toc, without suffix."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("file", "root") and isinstance(value, str):
                yield _page(value)
            else:
                yield from _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            yield from _toc_files(item)


def _page(toc_file: str) -> str:
    """A toc entry without its optional suffix: "book/executed/a.ipynb" and "book/executed/a" are the same page."""
    return os.path.splitext(toc_file)[0]


def _without(node: Any, files: set[str]) -> Any:
    """A copy of a toc with the entries whose `file` is in `files` removed (at any depth)."""
    if isinstance(node, list):
        return [_without(item, files) for item in node
                if not (isinstance(item, dict) and _page(item.get("file", "")) in files)]
    if isinstance(node, dict):
        return {key: _without(value, files) for key, value in node.items()}
    return node


__all__ = ["BookBuildError", "build_book", "build_html", "buildable_toc", "check_kernel", "execute_notebook",
           "notebook_names", "notebook_parameters"]
