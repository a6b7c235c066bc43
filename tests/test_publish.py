"""The GitHub Pages workflow cannot run here: check that it builds the book with the README's own command and
deploys what that command writes."""

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def readme_book_command() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Set up and build the book", 1)[1]
    return re.search(r"```bash\n(.+?)\n```", section, re.S).group(1).strip()


def test_workflow_builds_with_the_readme_command_and_deploys_the_html():
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "book.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert "main" in triggers["push"]["branches"]
    assert workflow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    build, deploy = workflow["jobs"]["build"], workflow["jobs"]["deploy"]
    runs = [step["run"] for step in build["steps"] if "run" in step]
    assert readme_book_command() in runs
    upload = next(step for step in build["steps"] if step.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "_build/html"
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert any(step.get("uses", "").startswith("actions/deploy-pages") for step in deploy["steps"])


def test_the_readme_command_builds_the_book_and_the_code_is_licensed():
    assert readme_book_command().endswith(".venv/bin/paperkd book")
    assert (REPO / "LICENSE").read_text().startswith("MIT License")


def test_the_citation_names_the_software_and_the_paper_it_reproduces():
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["type"] == "software"
    assert citation["license"] == "MIT" and "MIT License" in (REPO / "LICENSE").read_text()
    assert citation["version"] == tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    article = next(r for r in citation["references"] if r["type"] == "article")
    assert "pixel-wise and pair-wise" in article["title"] and "working title" in article["title"]
    assert all(r["authors"] for r in citation["references"])  # the schema requires them
    assert any(r.get("repository-code") == "https://github.com/AmirMansurian/AICSD" for r in citation["references"])
