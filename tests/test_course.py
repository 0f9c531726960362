"""The teacher's kit fits the chapters: every control, parameter and preset field the course plan and
the teaching page name exists; each GPU homework fits a free Colab session; the student edition has
room for the students' code."""

from __future__ import annotations

import importlib
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PACKAGES = ["getting_started", "permutations", "neuron_descent", "continual_learning", "rtrl"]
ONE_GPU_HOUR = 60  # minutes: what a free Colab session can be counted on for
OK_SECONDS_PER_STEP = 0.052  # chapter 4: OK on the copy task at n = 128, r = 16 (the authors' logs)


def _code(chapter: int) -> list[nbformat.NotebookNode]:
    nb = nbformat.read(NOTEBOOKS[chapter], as_version=4)
    return [c for c in nb.cells if c.cell_type == "code"]


def _controls(chapter: int) -> set[str]:
    """The labels of the chapter's explorer controls (their ``description``)."""
    return {
        label
        for cell in _code(chapter)
        for label in re.findall(r'description="([^"]+)"', cell.source)
    }


def _parameters(chapter: int) -> set[str]:
    cell = next(c for c in _code(chapter) if "parameters" in c.metadata.get("tags", []))
    return set(re.findall(r"^([A-Z_]+) =", cell.source, re.MULTILINE))


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end > 0 else None]


def _chapters(text: str) -> dict[int, str]:
    """The text of each ``### Chapter N`` section."""
    parts = re.split(r"^### Chapter (\d) ", text, flags=re.MULTILINE)
    return {int(n): body for n, body in zip(parts[1::2], parts[2::2])}


COURSE = (BOOK / "course.md").read_text()
TEACHING = (BOOK / "teaching.md").read_text()
HOMEWORK = _chapters(_section(COURSE, "## The GPU homework"))


def test_every_chapter_has_a_homework() -> None:
    assert sorted(HOMEWORK) == list(range(len(NOTEBOOKS)))


def test_the_explorer_controls_named_exist() -> None:
    explore = _section(TEACHING, "## Explore sections in class")
    bullets = re.findall(
        r"^- \*\*Chapter (\d)\*\*:(.*?)(?=^- |\n\n)", explore, re.MULTILINE | re.DOTALL
    )
    assert sorted(int(n) for n, _ in bullets) == list(range(len(NOTEBOOKS)))
    cited = [(int(n), label) for n, body in bullets for label in re.findall(r'"([^"]+)"', body)]
    # the course plan's sentence: 'the "learning rate" control in chapter 0; "matching" ... in chapter 1; ...'
    sessions = _section(COURSE, "## Sessions")
    sentence = sessions[sessions.index("prediction questions") :]
    for part in sentence.split(";"):
        chapter = re.search(r"chapter (\d)", part)
        assert chapter, part
        cited += [(int(chapter[1]), label) for label in re.findall(r'"([^"]+)"', part)]
    assert len(cited) > 10
    for chapter, label in cited:
        assert label in _controls(chapter), (
            f'chapter {chapter} has no explorer control "{label}"; it has {sorted(_controls(chapter))}'
        )


def test_the_parameters_named_exist_in_every_chapter() -> None:
    for page in ("course.md", "teaching.md", "setup.md"):
        for name in re.findall(r"`([A-Z_]{3,}) = [^`]+`", (BOOK / page).read_text()):
            for chapter in range(len(NOTEBOOKS)):
                assert name in _parameters(chapter), f"{page}: chapter {chapter} has no {name}"


def _apply(chapter: int) -> Any:
    """The chapter's ``paper`` preset, changed as its homework says (its Python block, run on the
    preset variable the chapter's setup cell defines)."""
    ch = importlib.import_module(f"nnstudies.chapters.{PACKAGES[chapter]}")
    preset = ch.PRESETS["paper"]
    blocks = re.findall(r"```python\n(.*?)```", HOMEWORK[chapter], re.DOTALL)
    if not blocks:
        return preset
    (block,) = blocks
    name = re.search(r"^(\w+) = replace\(\1,", block, re.MULTILINE)
    assert name, f"chapter {chapter}: the homework changes no preset: {block}"
    assert any(re.search(rf"^{name[1]} = ", c.source, re.MULTILINE) for c in _code(chapter)[:4]), (
        f"chapter {chapter}'s setup cells define no {name[1]}"
    )
    scope: dict[str, Any] = {name[1]: preset, "replace": replace}
    # the page's own listing, run as a student would run it: an unknown field raises
    exec(block.replace("from dataclasses import replace\n", ""), scope)  # noqa: S102
    assert scope[name[1]] != preset, f"chapter {chapter}: the homework's change changes nothing"
    return scope[name[1]]


def _stated_minutes(chapter: int) -> int:
    found = re.findall(r"GPU time: about (\d+) minutes", HOMEWORK[chapter])
    assert len(found) == 1, f"chapter {chapter}: the homework must state its GPU time once"
    return int(found[0])


@pytest.mark.parametrize("chapter", range(5))
def test_each_gpu_homework_fits_a_free_colab_session(chapter: int) -> None:
    stated = _stated_minutes(chapter)
    assert stated <= ONE_GPU_HOUR
    preset = _apply(chapter)
    if chapter == 1:  # the chapter's own estimate
        from nnstudies.chapters.permutations import gpu_estimate

        assert gpu_estimate(preset).gpu_minutes <= stated
    elif chapter == 3:
        from nnstudies.chapters.continual_learning import cost_table

        rows = str(cost_table(preset).data).strip().splitlines()
        (total,) = [row for row in rows if row.startswith("| total ")]
        hours = float(total.strip("| ").split("|")[-1])
        assert hours * 60 <= stated + 5, total
    elif chapter == 4:  # every run at OK's speed: an upper bound on the sections it runs
        h, c = preset.horizon, preset.curriculum
        steps = h.steps * (2 * len(h.seeds) + 1)
        steps += c.steps * (2 * len(c.seeds) + len(c.companions) * len(c.companion_seeds))
        assert steps * OK_SECONDS_PER_STEP / 60 <= stated
        # the part named ends before the characters, whose section the chapter must have
        assert "Run before section 5" in HOMEWORK[4]
        sources = nbformat.read(NOTEBOOKS[4], as_version=4).cells
        assert any(c.source.startswith("## 5 · ") for c in sources if c.cell_type == "markdown")
    elif chapter == 2:  # T = 10 for both KFACs and FOOF in the MLP comparison
        assert preset.mlp.inv_period == 10


def test_the_student_edition_leaves_a_code_cell_under_each_coding_exercise(
    tmp_path: Path,
) -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import book
    finally:
        sys.path.remove(str(ROOT / "tools"))
    book.student(tmp_path)
    for path in NOTEBOOKS:
        stored = nbformat.read(path, as_version=4).cells
        student = nbformat.read(tmp_path / path.name, as_version=4).cells
        assert not [c for c in student if "solution" in c.metadata.get("tags", [])]
        coding = [stored[i - 1].source for i, c in enumerate(stored) if book.is_coding_solution(c)]
        assert coding, f"{path.name} has no coding exercise"
        for exercise in coding:
            at = next(i for i, c in enumerate(student) if c.source == exercise)
            answer = student[at + 1]
            assert answer.cell_type == "code" and answer.source == "", (
                f"{path.name}: no empty code cell under {exercise[:60]!r}"
            )
        assert sum(c.metadata.get("tags") == ["answer"] for c in student) == len(coding)
        assert all(not c.outputs for c in student if c.cell_type == "code")
