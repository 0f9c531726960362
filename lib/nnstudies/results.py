"""Headline numbers a chapter records, so tests can check the direction of its claims.

A chapter calls ``record("01_permutations", barrier_naive=..., barrier_aligned=...)``.
The values are kept in memory and, when ``$NNSTUDIES_RESULTS_DIR`` is set (the
tests set it), merged into ``<dir>/<chapter>.json``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["RESULTS_ENV", "markdown_table", "record", "recorded"]

RESULTS_ENV = "NNSTUDIES_RESULTS_DIR"
_RECORDED: dict[str, dict[str, float | int | str | bool]] = {}


def record(chapter: str, **values: float | str | bool) -> dict[str, float | int | str | bool]:
    """Record named headline numbers of ``chapter``; return everything recorded for it so far."""
    for name, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{chapter}: the recorded value {name}={value} is not finite")
        if not isinstance(value, (float, int, str, bool)):
            raise TypeError(f"{chapter}: recorded values must be numbers or strings, {name} is a {type(value).__name__}")
    entry = _RECORDED.setdefault(chapter, {})
    entry.update(values)
    folder = os.environ.get(RESULTS_ENV)
    if folder:
        path = Path(folder) / f"{chapter}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        stored = json.loads(path.read_text()) if path.exists() else {}
        stored.update(values)
        path.write_text(json.dumps(stored, indent=2, sort_keys=True))
    return dict(entry)


def recorded(chapter: str) -> dict[str, float | int | str | bool]:
    """What ``chapter`` has recorded in this process."""
    return dict(_RECORDED.get(chapter, {}))


def markdown_table(header: list[str], rows: list[list[object]]) -> Any:
    """A table for a notebook cell: rendered as Markdown by Jupyter and by the book."""
    from IPython.display import Markdown

    if any(len(row) != len(header) for row in rows):
        raise ValueError("every row needs one entry per header column")
    escape = lambda v: str(v).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(escape, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(escape, row)) + " |" for row in rows]
    return Markdown("\n".join(lines))
