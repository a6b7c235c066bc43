"""Reading never trains: nothing the report module or a results notebook imports pulls in the trainer, and the
book trains (through the campaign command) before it executes the notebooks, never while."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAINING = ("paperkd.train", "paperkd.step", "paperkd.campaign", "paperkd.distill", "paperkd.run_state")


def notebook_imports(name: str) -> list[str]:
    """The paperkd modules a notebook imports, `from paperkd.pages import table1` as paperkd.pages.table1."""
    source = (REPO / "notebooks" / f"{name}.py").read_text()
    modules = set(re.findall(r"^(?:from|import) (paperkd[\w.]*)", source, re.M))
    for package, names in re.findall(r"^from (paperkd[\w.]*) import ([\w, ]+)", source, re.M):
        if importlib.util.find_spec(package).submodule_search_locations:  # a package: its names are modules
            modules.update(f"{package}.{n.split(' as ')[0].strip()}" for n in names.split(","))
    return sorted(modules)


def test_report_pages_and_every_results_notebook_import_nothing_that_trains():
    import pkgutil

    import paperkd.pages

    modules = {"paperkd.report", *(f"paperkd.pages.{m.name}" for m in pkgutil.iter_modules(paperkd.pages.__path__))}
    for name in ("table1", "table2", "table3", "findings", "figure2", "performance", "earlier"):
        modules.update(notebook_imports(name))
    assert {"paperkd.pages.table1", "paperkd.pages.earlier", "paperkd.pages.answer"} <= modules
    code = ("import importlib, sys\n"
            f"for m in {sorted(modules)!r}: importlib.import_module(m)\n"
            f"print([m for m in {TRAINING!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]", (sorted(modules), out.stdout)


def test_the_book_runs_the_campaign_before_it_executes_the_notebooks(monkeypatch, tmp_path):
    from paperkd import book, campaign

    order = []
    monkeypatch.setattr(campaign, "ensure_runs", lambda presets, seeds, **kw: order.append(("run", len(presets),
                                                                                            seeds, kw["recipe"])))
    monkeypatch.setattr(book, "check_kernel", lambda: None)
    monkeypatch.setattr(book, "execute_notebook", lambda name, parameters, progress: order.append(("read", name)))
    book.build_book(results=tmp_path, notebooks=["table1", "table2"], build=False, progress=False, recipe="paper")
    assert order == [("run", len(book.BOOK_ROWS), [0], "paper"), ("read", "table1"), ("read", "table2")]
    order.clear()
    book.build_book(results=tmp_path, notebooks=["method"], build=False, progress=False)
    assert order == [("read", "method")]  # a page that reads no run records trains nothing
