"""How a chapter was made: the stored scales' provenance as a table for the chapter's last section.

Every stored result (``results/<chapter>/<scale>.json``) records when, where and from which code
its numbers came, and each later certificate records new code shown to give the same numbers.
:func:`made_table` lays these out for a reader, one row per stored scale::

    nnstudies.made.made_table("02_neuron_descent")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["made_rows", "made_table"]

SCALES = ("full", "paper")  #: the scales whose results are stored (``cpu`` runs on the page)
HEADER = ["scale", "run on", "from commit", "machine", "threads", "time", "same numbers since"]


def _machine(p: dict[str, Any]) -> str:
    cpu = p.get("cpu")
    if cpu:
        capability = p.get("cpu_capability")
        return f"{cpu} ({capability})" if capability else str(cpu)
    return str(p.get("device", "not recorded"))


def _threads(p: dict[str, Any]) -> str:
    workers = p.get("workers")
    if workers and p.get("threads_per_run"):
        per_run = p["threads_per_run"]
        return f"{workers} workers × {per_run} thread{'' if per_run == 1 else 's'}"
    threads = p.get("threads")
    return f"{threads} thread{'' if threads == 1 else 's'}" if threads else "not recorded"


def _time(p: dict[str, Any]) -> str:
    wall = p.get("wall_seconds")
    if wall is None:
        return "not recorded"
    text = f"{wall / 60:.0f} min wall"
    if p.get("cpu_seconds"):
        text += f", {p['cpu_seconds'] / 60:.0f} min CPU"
    return text


def _certified(p: dict[str, Any]) -> str:
    chain = p.get("certificates") or []
    if not chain:
        return "—"
    last = chain[-1]
    return f"commit {last.get('to', '?')} ({last.get('date', '?')}, {len(chain)} certificate{'s' if len(chain) > 1 else ''})"


def made_rows(chapter: str, scales: Sequence[str] = SCALES) -> list[list[str]]:
    """One row of :data:`HEADER` per scale stored for ``chapter``."""
    from .results import load_results

    rows = []
    for scale in scales:
        stored = load_results(chapter, scale)
        if stored is None:
            continue
        p = stored.provenance
        rows.append(
            [
                f"`{scale}`",
                str(p.get("date", "not recorded")),
                str(p.get("commit", "not recorded")),
                _machine(p),
                _threads(p),
                _time(p),
                _certified(p),
            ]
        )
    return rows


def made_table(chapter: str) -> Any:
    """The stored scales' provenance as a table, or one line when none are stored here."""
    from .results import markdown_table

    rows = made_rows(chapter)
    if not rows:
        print("No stored results here: this copy has only the scales it runs itself.")
        return None
    return markdown_table(HEADER, rows)
