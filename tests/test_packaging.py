"""The project's set-up files agree with each other: one place pins versions, everything else points there."""

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_environment_yml_installs_the_pinned_project():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python="))
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert python == "python=3.11" and ">=3.11" in requires and "<3.12" in requires
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict))
    # Installing the project itself means pip reads the pins from pyproject.toml: no second list to drift.
    assert pip_section == ["-e .[book,test]"]


def test_every_dependency_is_pinned_exactly_once():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = project["dependencies"] + [d for group in project["optional-dependencies"].values() for d in group]
    names = [re.split(r"[=<>~]", p)[0].lower() for p in pins]
    assert len(names) == len(set(names))
    assert all("==" in p for p in pins), [p for p in pins if "==" not in p]
    assert "torch==2.14.1" in pins and "torchvision==0.29.1" in pins and "jupyter-book==1.0.4.post1" in pins


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    command = re.search(r"## Run the tests\s+```bash\n(.+?)\n```", readme).group(1).strip()
    assert command in (REPO / ".ci" / "run").read_text()
