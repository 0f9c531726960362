"""Numbers a chapter writes twice agree: a number in the text and the stored result it quotes, or the
same number in two places of a chapter (its header and its `paper` section, a code comment and the
text)."""

from __future__ import annotations

import importlib
import json
import re
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def markdown(chapter: str) -> str:
    nb = nbformat.read(ROOT / "notebooks" / f"{chapter}.ipynb", as_version=4)
    return "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def quoted(chapter: str, pattern: str) -> list[str]:
    """Every number the chapter's text writes where ``pattern`` (one group) matches; at least one."""
    found = re.findall(pattern, markdown(chapter))
    assert found, f"{chapter}: the text no longer says {pattern!r}: update this test with it"
    return found


def stored(chapter: str) -> dict[str, Any]:
    return json.loads((ROOT / "results" / chapter / "full.json").read_text())


def mean(key: str, scale: float = 1.0) -> Callable[[dict[str, Any]], float]:
    return lambda s: scale * statistics.fmean(s["values"][key])


def sd(key: str, scale: float = 1.0) -> Callable[[dict[str, Any]], float]:
    return lambda s: scale * statistics.stdev(s["values"][key])


def median(key: str) -> Callable[[dict[str, Any]], float]:
    return lambda s: statistics.median(s["values"][key])


def value(key: str) -> Callable[[dict[str, Any]], float]:
    return lambda s: s["values"][key]


def provenance(key: str, scale: float = 1.0) -> Callable[[dict[str, Any]], float]:
    return lambda s: s["provenance"][key] * scale


# (chapter, the text around the number with the number as its one group, the stored value, its format)
QUOTES = [
    (
        "01_permutations",
        r"\(the stored run: [^)]*?(\d+) minutes wall",
        provenance("wall_seconds", 1 / 60),
        ".0f",
    ),
    ("01_permutations", r"the test loss barrier is (\d\.\d+) \(", value("barrier_naive"), ".2f"),
    (
        "01_permutations",
        r"after activation matching the barrier is (\d\.\d+),",
        value("barrier_activations"),
        ".3f",
    ),
    (
        "02_neuron_descent",
        r"The whole run took (\d+) minutes of wall time",
        provenance("wall_seconds", 1 / 60),
        ".0f",
    ),
    (
        "02_neuron_descent",
        r"median of three seeds \[range\]: FOOF (\d\.\d+) \[",
        median("final_loss.foof"),
        ".3f",
    ),
    (
        "02_neuron_descent",
        r"\[range\]: FOOF [\d.]+ \[[^\]]*\], KFAC (\d\.\d+) \[",
        median("final_loss.kfac"),
        ".3f",
    ),
    ("03_continual_learning", r"(\d+) s wall and \d+ s CPU", provenance("wall_seconds"), ".0f"),
    ("03_continual_learning", r"\((\d+) s; \d+ s of CPU\)", provenance("wall_seconds"), ".0f"),
    ("03_continual_learning", r"\d+ s wall and (\d+) s CPU", provenance("cpu_seconds"), ".0f"),
    ("03_continual_learning", r"\(\d+ s; (\d+) s of CPU\)", provenance("cpu_seconds"), ".0f"),
    (
        "03_continual_learning",
        r"ends (\d+\.\d) ± \d+\.\d points above none on Permuted",
        mean("claim.beats_none_permuted", 100),
        ".1f",
    ),
    (
        "03_continual_learning",
        r"ends \d+\.\d ± (\d+\.\d) points above none on Permuted",
        sd("claim.beats_none_permuted", 100),
        ".1f",
    ),
    (
        "03_continual_learning",
        r"(\d\.\d\d) ± \d\.\d\d of SI's mean importance at the paper's batch 256",
        mean("bias_share_batch_256"),
        ".2f",
    ),
    ("03_continual_learning", r"r\(SI, √F_emp\) = (\d\.\d{3})", mean("r_si_sqrt_fisher"), ".3f"),
    (
        "03_continual_learning",
        r"at the same strength, SI − SIU is ([+−-]?\d+\.\d) ±",
        mean("claim.siu_worse_same_c", 100),
        "+.1f",
    ),
    (
        "04_rtrl",
        r"\((\d+) minutes on a shared 2-core machine",
        provenance("wall_seconds", 1 / 60),
        ".0f",
    ),
    ("04_rtrl", r"exact RTRL costs (\d+) times as much as OK", mean("claim.cost_ratio"), ".0f"),
]


@pytest.mark.parametrize(
    ("chapter", "pattern", "get", "fmt"),
    QUOTES,
    ids=[f"{q[0][:2]}:{q[1][:40]}" for q in QUOTES],
)
def test_the_text_quotes_the_stored_results(
    chapter: str, pattern: str, get: Callable[[dict[str, Any]], float], fmt: str
) -> None:
    want = format(get(stored(chapter)), fmt)
    for written in quoted(chapter, pattern):
        assert written == want, (
            f"{chapter}: the text says {written} where the stored result gives {want}"
        )


def test_chapter_2_paper_cost_is_written_once() -> None:
    """The header's estimate and the `paper` section's are the same number of hours."""
    header = quoted("02_neuron_descent", r"`paper` an estimated ([\d.]+) hours")
    section = quoted("02_neuron_descent", r"about ([\d.]+) hours on a T4")
    assert set(header) == set(section) and len(set(header)) == 1, (header, section)


def _explorer_runs(scale: str) -> tuple[int, int]:
    """Distinct training runs of chapter 2's explorer grid at ``scale``, and their updates: every
    learning-rate factor, times every damping factor for a method that has a damping."""
    ch = importlib.import_module("nnstudies.chapters.neuron_descent")
    p = ch.PRESETS[scale]
    runs = sum(
        len(p.explorer_lr_factors)
        * (len(p.explorer_damping_factors) if p.mlp.settings[m].damping is not None else 1)
        for m in p.explorer_methods
    )
    return runs, p.explorer_steps


def test_chapter_2_explorer_grid_is_counted_once() -> None:
    full_runs, _ = _explorer_runs("full")
    assert quoted("02_neuron_descent", r"because its (\d+) runs of the paper's MLP") == [
        str(full_runs)
    ]
    paper_runs, steps = _explorer_runs("paper")
    written = quoted("02_neuron_descent", r"the explorer \((\d+) runs of (\d+) updates")
    assert written == [(str(paper_runs), str(steps))]
    nb = nbformat.read(ROOT / "notebooks" / "02_neuron_descent.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert not re.search(r"grid is \d+ runs", code), (
        "a run count in a code comment: write it once, in the text"
    )
