"""Certificates: `tools/book.py verify` certifies a change that keeps every number and refuses one
that alters a number, or the preset the stored numbers came from. Checked end to end on a
throwaway repository with a one-cell chapter."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import verify

sys.path.remove(str(ROOT / "tools"))


def _chapter(repo: Path, expression: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell('SCALE = "cpu"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "from nnstudies.results import record\n"
            f"record('00_toy', value={expression}, seconds=123.0)"
        ),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    (repo / "notebooks").mkdir(exist_ok=True)
    nbformat.write(nb, repo / "notebooks" / "00_toy.ipynb")


def _presets(repo: Path, smoke: int, full: int) -> None:
    package = repo / "lib" / "nnstudies" / "chapters" / "toy"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "presets.py").write_text(
        f"PRESETS = {{'smoke': {{'n': {smoke}}}, 'full': {{'n': {full}}}}}\n"
    )


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "lib", repo / "lib", ignore=shutil.ignore_patterns("__pycache__"))
    _chapter(repo, "0.1 + 0.2")
    _presets(repo, smoke=1, full=2)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "chapter")
    return repo


def test_a_refactor_that_keeps_every_number_is_accepted(repo: Path, tmp_path: Path) -> None:
    _chapter(repo, "sum([0.1, 0.2])")  # the same float, by another route
    found = verify.compare("00", "HEAD", ["smoke"], new_root=repo, work=tmp_path / "work")
    assert found == ([], ["smoke"])


def test_a_change_that_alters_one_number_is_refused(repo: Path, tmp_path: Path) -> None:
    _chapter(repo, "0.3")  # 0.3 != 0.1 + 0.2 in floating point
    found = verify.compare("00", "HEAD", ["smoke"], new_root=repo, work=tmp_path / "work")
    assert found == (["smoke: value: 0.30000000000000004 -> 0.3"], ["smoke"])


def test_a_changed_smoke_preset_is_not_compared_and_says_so(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Numbers at a changed smoke preset differ whatever the code: smoke is left out of the
    comparison (and of the certificate's checks), and the full-shaped run still decides."""
    _presets(repo, smoke=3, full=2)
    found = verify.compare(
        "00", "HEAD", ["smoke", "full-dry"], new_root=repo, work=tmp_path / "work"
    )
    assert found == ([], ["full-dry"])
    assert "smoke: not compared: the smoke preset changed" in capsys.readouterr().out


def test_a_changed_full_preset_is_refused_without_a_run(repo: Path, tmp_path: Path) -> None:
    _presets(repo, smoke=1, full=5)
    differences, compared = verify.compare(
        "00", "HEAD", ["full-dry"], new_root=repo, work=tmp_path / "work"
    )
    assert compared == [] and len(differences) == 1
    assert differences[0].startswith("full-dry: the full preset changed since ")
    assert not (tmp_path / "work" / "runs").exists()


def test_timings_and_the_environment_are_not_compared() -> None:
    kept = verify.numbers(
        {"a": 1.0, "wall_seconds": 3.0, "environment": {"x": 1}, "b.time_ms": [1]}
    )
    assert kept == {"a": 1.0}
    old = {"values": {"a": 1.0}, "states": ["s1", "s2"]}
    assert verify.differences(old, {"values": {"a": 1.0}, "states": ["s2", "s1"][::-1]}) == []
    assert "trained states" in verify.differences(old, {"values": {"a": 1.0}, "states": ["s1"]})[0]


def test_claim_values_are_judgements_not_measurements() -> None:
    """The claims modules derive claim values (outside the numeric hash): re-judging stored numbers
    needs no re-run, so they are not compared; the measurements they come from still are."""
    old = {"values": {"claim.gap[0]": 0.1, "claim_rules.gap": "a", "gap[0]": 0.1}, "states": []}
    new = {"values": {"claim.gap[0]": 0.2, "claim_rules.gap": "b", "gap[0]": 0.1}, "states": []}
    assert verify.differences(old, new) == []
    moved = {"values": {**new["values"], "gap[0]": 0.3}, "states": []}
    assert verify.differences(old, moved) == ["gap[0]: 0.1 -> 0.3"]
