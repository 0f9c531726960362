"""The three scales every chapter runs at.

``smoke``
    seconds on a CPU; used by the tests, same code path as the others.
``cpu``
    the default: the chapter's claims visible in a few minutes on a 2-core laptop,
    on data that needs no download.
``paper``
    the paper's datasets and architectures on a GPU, budgets cut to about an hour.

A chapter's ``parameters`` cell sets ``SCALE = "cpu"``; the environment variable
``NNSTUDIES_SCALE`` overrides it (the tests run the stored notebooks that way).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TypeVar

__all__ = ["SCALES", "SCALE_ENV", "check_scale", "pick", "resolve_scale"]

SCALES: dict[str, str] = {
    "smoke": "seconds on a CPU, for tests",
    "cpu": "minutes on a 2-core laptop, embedded data (the default)",
    "paper": "the paper's datasets and widths, about an hour on one GPU",
}
SCALE_ENV = "NNSTUDIES_SCALE"

T = TypeVar("T")


def check_scale(scale: str) -> str:
    """Return ``scale`` if it names a known scale, else raise a ``ValueError`` listing them."""
    if scale not in SCALES:
        valid = ", ".join(repr(name) for name in SCALES)
        raise ValueError(f"unknown scale {scale!r}; choose one of {valid}")
    return scale


def resolve_scale(default: str = "cpu") -> str:
    """The scale to run at: ``$NNSTUDIES_SCALE`` when set, else ``default``; both are checked."""
    override = os.environ.get(SCALE_ENV, "").strip()
    if override:
        try:
            return check_scale(override)
        except ValueError as error:
            raise ValueError(f"{error} (from the environment variable {SCALE_ENV})") from None
    return check_scale(default)


def pick(presets: Mapping[str, T], scale: str) -> T:
    """The entry of ``presets`` (one per scale) for ``scale``.

    >>> pick({"smoke": 1, "cpu": 10, "paper": 100}, "cpu")
    10
    """
    check_scale(scale)
    missing = [name for name in SCALES if name not in presets]
    if missing:
        raise ValueError(f"presets lack the scale(s) {missing}; every scale needs an entry")
    return presets[scale]
