"""The end of a chapter's part: ``python -m nnstudies.chapters.<name> <part> --scale paper`` runs
one study of a chapter alone (sized for one GPU), then :func:`finish` prints its claims' verdicts
and its time, and records what it measured as the notebook would (:func:`nnstudies.results.record`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from .claims import Claim, Values
from .results import record

__all__ = ["finish"]


def finish(
    chapter: str,
    part: str,
    scale: str,
    started: float,
    *,
    claims: Sequence[Claim] = (),
    judged: Mapping[str, Values] | None = None,
    **values: Any,
) -> dict[str, Any]:
    """Print the verdict of each of ``claims`` with values in ``judged`` (per run, or for a tuned
    claim ``{protocol: values}``, as :meth:`~nnstudies.claims.Claim.judge` takes them) and the seconds since
    ``started`` (a :func:`time.perf_counter` reading); record ``values``, the part's name and time,
    and the judged values as ``claim.<key>``. Returns what :func:`~nnstudies.results.record` returns."""
    judged = dict(judged or {})
    for claim in claims:
        if claim.key in judged:
            print(f"{claim.key}: {claim.judge(judged[claim.key], scale).verdict}")
    seconds = time.perf_counter() - started
    print(f"{seconds:.0f} s")
    return record(
        chapter,
        scale=scale,
        part=part,
        part_seconds=seconds,
        **values,
        **{f"claim.{key}": value for key, value in judged.items()},
    )
