"""The publishing workflows in .github/: they cannot run here, so two linters read them.

actionlint checks their syntax, expressions and action inputs; zizmor, offline and pedantic, checks
them for security (unpinned actions, broad permissions, credentials left in the checkout, ...).
Both come with the test extra of pyproject.toml.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} is not installed: it comes with the test extra (make test installs it)"
        )
    return found


def _load(name: str) -> dict:
    text = (WORKFLOWS / name).read_text()
    return yaml.load(text, Loader=yaml.BaseLoader)  # BaseLoader: "on" stays a string key


def test_actionlint_finds_nothing() -> None:
    files = sorted(map(str, WORKFLOWS.glob("*.yml")))
    assert len(files) == 2, files
    done = subprocess.run(
        [_tool("actionlint"), "-no-color", "-oneline", *files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_finds_nothing() -> None:
    done = subprocess.run(
        [_tool("zizmor"), "--offline", "--no-progress", "--persona=pedantic", str(WORKFLOWS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_test_workflow_runs_the_readmes_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme
    steps = [s for job in _load("test.yml")["jobs"].values() for s in job["steps"]]
    assert any(re.match(r"make test( |$)", s.get("run", "")) for s in steps), steps


def test_the_book_workflow_builds_from_stored_outputs_and_deploys_on_push_to_main() -> None:
    workflow = _load("book.yml")
    assert workflow["on"]["push"]["branches"] == ["main"]
    assert workflow["permissions"] == {}, "no permission at the top: each job names its own"
    build, deploy = workflow["jobs"]["build"], workflow["jobs"]["deploy"]
    runs = " ".join(s.get("run", "") for s in build["steps"])
    assert "make html" in runs and "make book" not in runs, "build from stored outputs only"
    assert 'execute_notebooks: "off"' in (ROOT / "_config.yml").read_text()
    uploads = [s for s in build["steps"] if "upload-pages-artifact" in s.get("uses", "")]
    assert [s["with"]["path"] for s in uploads] == ["_build/html"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert any("deploy-pages" in s.get("uses", "") for s in deploy["steps"])


def test_every_action_is_pinned_to_a_commit() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        for ref in re.findall(r"uses:\s*(\S+)", path.read_text()):
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{path.name}: {ref}"


def test_each_chapter_page_names_the_commit_that_stored_its_outputs() -> None:
    """The line under each chapter's title (book/_ext/nnstudies_book.py): the commit it names holds
    the notebook with the hash its outputs were made from, and no earlier commit does."""
    import json
    import subprocess

    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    try:
        from nnstudies_book import outputs_made
    finally:
        sys.path.remove(str(ROOT / "book" / "_ext"))

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)

    if git("rev-parse").returncode != 0:
        pytest.skip("not a git checkout")
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        made = outputs_made(path)
        assert made is not None, f"{path.name}: no line under its title"
        scale, commit, date = made
        assert scale == "cpu", f"{path.name}: stored outputs at {scale}"
        if not commit:  # executed, not committed yet
            continue
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", date)
        made_from = json.loads(path.read_text())["metadata"]["nnstudies"]["source_hash"]
        name = f"notebooks/{path.name}"
        assert made_from in git("show", f"{commit}:{name}").stdout, (
            f"{path.name}: {commit} does not hold these outputs"
        )
        assert made_from not in git("show", f"{commit}~1:{name}").stdout, (
            f"{path.name}: stored before {commit}"
        )
