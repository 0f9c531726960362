"""The four scales every chapter runs at, and the dry run.

``smoke``
    seconds on a CPU; used by the tests, same code path as the others.
``cpu``
    the default that ``make book`` executes: each claim visible in minutes on a
    2-core laptop, on embedded data (MNIST-1D, generated tasks, text shipped with Python).
``full``
    real data (Fashion-MNIST; text for chapter 4) and the papers' architectures wherever
    a 2-core CPU can run them, at most an hour per chapter. ``make results SCALE=full``
    runs it and stores ``results/<chapter>/full.json``.
``paper``
    the papers' own settings, on a GPU. A GPU run stores ``results/<chapter>/paper.json``.

A chapter's ``parameters`` cell sets ``SCALE = "cpu"``; the environment variable
``NNSTUDIES_SCALE`` overrides it (the tests and ``make results`` run the notebooks that way).

``NNSTUDIES_DRY_RUN=1`` runs any scale top to bottom in minutes: random data of the real
shapes wherever the real data are absent, and two steps per training loop. What a dry
run records is marked as such and never stored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TypeVar

__all__ = ["DRY_RUN_ENV", "SCALES", "SCALE_ENV", "check_scale", "dry_run", "pick", "resolve_scale"]

SCALES: dict[str, str] = {
    "smoke": "seconds on a CPU, for tests",
    "cpu": "minutes on a 2-core laptop, embedded data (the default)",
    "full": "real data and the papers' models where a CPU allows, up to an hour on 2 cores",
    "paper": "the papers' own data and settings, on a GPU",
}
SCALE_ENV = "NNSTUDIES_SCALE"
DRY_RUN_ENV = "NNSTUDIES_DRY_RUN"

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


def dry_run() -> bool:
    """True when ``$NNSTUDIES_DRY_RUN`` is set to a true value: random data where real data are
    absent, two steps a loop.
    """
    value = os.environ.get(DRY_RUN_ENV, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(
        f"{DRY_RUN_ENV}={value!r} is neither true (1, true, yes, on) nor false (0, false, no, off)"
    )


def pick(presets: Mapping[str, T], scale: str) -> T:
    """The entry of ``presets`` (one per scale) for ``scale``.

    >>> pick({"smoke": 1, "cpu": 10, "full": 50, "paper": 100}, "cpu")
    10
    """
    check_scale(scale)
    missing = [name for name in SCALES if name not in presets]
    if missing:
        raise ValueError(f"presets lack the scale(s) {missing}; every scale needs an entry")
    return presets[scale]
