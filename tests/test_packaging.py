"""The repository's own promises: dependencies in step, the README's commands, CI calling them."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _norm(spec: str) -> str:
    return re.sub(r"\s+", "", spec).lower()


def test_environment_yml_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [
        *project["dependencies"],
        *(d for extra in project["optional-dependencies"].values() for d in extra),
    ]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(
        item["pip"] for item in env["dependencies"] if isinstance(item, dict) and "pip" in item
    )
    assert sorted(map(_norm, pip)) == sorted(map(_norm, wanted))
    assert project["requires-python"] == ">=3.10,<3.14"
    assert "python>=3.10,<3.14" in env["dependencies"]


def test_jupyter_book_pin() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "jupyter-book>=1.0.4,<2" in project["optional-dependencies"]["book"]


def test_readme_commands_and_ci() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make book" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.MULTILINE), (
        ".ci/run must call the README's test command"
    )
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^book:", makefile, re.MULTILINE) and re.search(
        r"^test:", makefile, re.MULTILINE
    )


def test_the_sphinx_extensions_load_without_torch() -> None:
    """Building the book needs the stored notebooks only: its extensions import no nnstudies, no torch."""
    import subprocess

    code = (
        "import sys; sys.path.insert(0, 'book/_ext'); import nnstudies_book, nnstudies_vega; "
        "assert 'torch' not in sys.modules and 'nnstudies' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_one_version_number() -> None:
    """pip's version is ``nnstudies.__version__``: pyproject.toml reads it, and writes none of its own.
    (tests/test_colab.py checks the same of a copy that pip built and installed.)"""
    import importlib.metadata

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "nnstudies.__version__"}
    init = (ROOT / "lib" / "nnstudies" / "__init__.py").read_text()
    written = re.findall(r'^__version__ = "([^"]+)"', init, re.MULTILINE)
    assert len(written) == 1, "nnstudies/__init__.py writes its version once, as a literal"
    import nnstudies

    assert nnstudies.__version__ == written[0]
    assert importlib.metadata.version("nnstudies") == written[0], (
        "the installed metadata is stale: reinstall (make env)"
    )
