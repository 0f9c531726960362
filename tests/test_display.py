"""What the page shows a reader: listings without comments for tools, presets that fit the column,
the device in plain words."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import re
from pathlib import Path

import nbformat
import pytest
import torch

import nnstudies
from nnstudies.listing import code_listing
from nnstudies.pretty import WIDTH, pretty

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CHAPTERS = ("getting_started", "permutations", "neuron_descent", "continual_learning", "rtrl")


def test_listing_leaves_out_comments_for_tools() -> None:
    from nnstudies.continual import path
    from nnstudies.optim import optimizers

    shown = code_listing(optimizers.FOOF.step, path.SynapticIntelligence)
    assert "type: ignore" not in shown and "noqa" not in shown
    assert "# an independent minibatch: unbiased" in shown  # a comment for readers stays
    with open(path.__file__) as source:  # the file itself keeps them
        assert "type: ignore" in source.read()


@pytest.mark.parametrize("notebook", sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")), ids=str)
def test_every_listing_asked_for_is_shown(notebook: Path) -> None:
    """A cell shows only its last expression: a ``show_code(...)`` above it would print nothing,
    and the page would lack the code its text promises."""
    hidden = []
    for i, cell in enumerate(nbformat.read(notebook, as_version=4).cells):
        if cell.cell_type != "code":
            continue
        lines = [
            line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!"))
        ]
        for statement in ast.parse("\n".join(lines)).body[:-1]:
            call = statement.value if isinstance(statement, ast.Expr) else None
            if isinstance(call, ast.Call) and ast.unparse(call.func).endswith("show_code"):
                hidden.append(f"cell {i}: {ast.unparse(call)[:80]}")
    assert not hidden, f"{notebook.name}: listings that print nothing: {hidden}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_presets_print_in_the_column(chapter: str) -> None:
    """Printed, a preset is an indented tree whose lines fit the page; its repr and values stay the
    dataclass's own."""
    presets = importlib.import_module(f"nnstudies.chapters.{chapter}").PRESETS
    for scale, preset in presets.items():
        shown = str(preset)
        lines = shown.splitlines()
        assert len(lines) > 3, f"{scale}: printed on {len(lines)} lines"
        too_wide = [line for line in lines if len(line) > WIDTH]
        assert not too_wide, f"{scale}: lines wider than {WIDTH} characters: {too_wide[:2]}"
        assert repr(preset).startswith("Preset(") and "\n" not in repr(preset)
        assert shown == pretty(preset)
        assert dataclasses.replace(preset) == preset


def test_pretty_nests_and_breaks_only_where_too_wide() -> None:
    @dataclasses.dataclass
    class Inner:
        widths: tuple[int, ...]
        name: str

    @dataclasses.dataclass
    class Outer:
        inner: Inner
        table: dict[str, float]

    small = Outer(Inner((1, 2), "a"), {"x": 1.0})
    assert pretty(small) == "Outer(inner=Inner(widths=(1, 2), name='a'), table={'x': 1.0})"
    wide = Outer(Inner(tuple(range(40)), "a"), {"x": 1.0})
    assert pretty(wide, width=60).splitlines()[:2] == ["Outer(", "    inner=Inner("]
    assert pretty((1,)) == "(1,)"


def test_device_reads_in_plain_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert "cpu (1 thread)," in nnstudies.describe_device(torch.device("cpu"))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert "cpu (2 threads)," in nnstudies.describe_device(torch.device("cpu"))


# A tqdm bar's line: "desc: 100%|██████████| 640/640 [00:01<00:00, ...]".
BAR = re.compile(r"\d+%\|[^|\n]*\|\s*\d+/\d+")


@pytest.mark.parametrize(
    "notebook", sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.stem
)
def test_stored_outputs_hold_no_progress_bars(notebook: Path) -> None:
    """The book's executions store no progress bars (their timings change every run and mean nothing
    to a reader); a live kernel still shows them."""
    nb = nbformat.read(notebook, as_version=4)
    bars = [
        line
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
        for line in output.get("text", "").splitlines()
        if BAR.search(line)
    ]
    assert not bars, f"{len(bars)} progress-bar lines stored, e.g. {bars[0]!r}"
