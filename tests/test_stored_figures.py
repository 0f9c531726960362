"""The `full` results are drawn: each chapter's figure of its claims from the stored curves, labelled
with its scale; where none are stored, one line says so and nothing is drawn. And the chapters' last
section lays out how the stored results were made."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from nnstudies.made import HEADER, made_rows, made_table
from nnstudies.plotting import draw_stored

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = {
    "01_permutations": "permutations",
    "02_neuron_descent": "neuron_descent",
    "03_continual_learning": "continual_learning",
    "04_rtrl": "rtrl",
}


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_full_figures_are_drawn_from_the_stored_curves(chapter: str) -> None:
    assert (ROOT / "results" / chapter / "full.json").is_file()
    ch = importlib.import_module(f"nnstudies.chapters.{CHAPTERS[chapter]}")
    fig = draw_stored(chapter, ch.plot_stored)
    assert isinstance(fig, Figure)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles and all(t.startswith("full: ") for t in titles), titles
    assert all(ax.has_data() for ax in fig.axes), "an empty panel"


def test_no_stored_results_is_one_line_and_no_figure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NNSTUDIES_RESULTS_STORE", str(tmp_path))
    drawn: list[object] = []
    assert draw_stored("02_neuron_descent", drawn.append) is None  # type: ignore[arg-type]
    assert not drawn
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "No stored `full` results here" in out
    assert made_table("02_neuron_descent") is None


def test_made_table_reads_the_provenance() -> None:
    rows = made_rows("03_continual_learning")
    assert len(rows) == 1 and len(rows[0]) == len(HEADER)
    scale, date, commit, machine, threads, time, _ = rows[0]
    assert scale == "`full`" and date.startswith("20") and len(commit) >= 7
    assert "EPYC" in machine and "workers" in threads and "min wall" in time


@pytest.mark.parametrize("notebook", sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")))
def test_each_chapter_ends_with_how_it_was_made(notebook: Path) -> None:
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    headings = [
        line
        for cell in nb.cells
        if cell.cell_type == "markdown"
        for line in cell.source.splitlines()
        if line.startswith("## ")
    ]
    assert headings[-1] == "## How this chapter was made", headings[-3:]
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert any(f'made_table("{notebook.stem}")' in source for source in code)
    if notebook.stem in CHAPTERS:
        assert any(f'draw_stored("{notebook.stem}", ch.plot_stored)' in s for s in code)
