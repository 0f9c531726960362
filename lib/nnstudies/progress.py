"""Progress bars and the switch between live widgets and static output.

In a live Jupyter kernel (Colab included), bars are notebook widgets
(``tqdm.auto``). A script or a terminal gets plain text, one line per bar,
written once when it finishes. When ``$NNSTUDIES_STATIC`` is set — the book's
executions through papermill, whose outputs are stored in the notebooks, and
the tests — there are no bars at all: a bar's timings differ from run to run
and mean nothing to a reader of the stored page.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm import tqdm as text_tqdm

__all__ = ["QUIET_ENV", "STATIC_ENV", "is_interactive", "is_static", "progress"]

STATIC_ENV = "NNSTUDIES_STATIC"
QUIET_ENV = "NNSTUDIES_QUIET"  #: set in the engine's workers: their runs show no bars of their own
T = TypeVar("T")


def is_static() -> bool:
    """True when ``$NNSTUDIES_STATIC`` is set to a true value: outputs are being made to be stored."""
    return os.environ.get(STATIC_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def is_interactive() -> bool:
    """True in a live Jupyter kernel with ipywidgets, unless ``$NNSTUDIES_STATIC`` is set to a true
    value.
    """
    if is_static():
        return False
    try:
        from IPython import get_ipython

        shell = get_ipython()
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


class _FinalOnly(text_tqdm):
    """A text bar that prints one line, when it closes (no carriage-return churn in stored outputs)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("file", sys.stdout)
        super().__init__(
            *args,
            mininterval=float("inf"),
            maxinterval=float("inf"),
            miniters=0,
            delay=float("inf"),
            **kwargs,
        )

    def close(self) -> None:
        if (
            not self.disable
            and getattr(self, "leave", True)
            and not getattr(self, "_printed", False)
        ):
            self._printed = True
            self.fp.write(self.__str__() + "\n")
            self.fp.flush()
        self.leave = False
        super().close()


def progress(
    iterable: Iterable[T] | None = None,
    *,
    total: int | None = None,
    desc: str | None = None,
    disable: bool = False,
    **kwargs: Any,
) -> Any:
    """A tqdm progress bar: a widget in a live notebook, one final text line in a script; none
    when outputs are made to be stored (``$NNSTUDIES_STATIC``), and none in an engine worker
    (``$NNSTUDIES_QUIET``), whose sweep has one bar over its runs."""
    disable = disable or bool(os.environ.get(QUIET_ENV)) or is_static()
    if is_interactive():
        from tqdm.auto import tqdm as auto_tqdm

        return auto_tqdm(iterable, total=total, desc=desc, disable=disable, **kwargs)
    return _FinalOnly(iterable, total=total, desc=desc, disable=disable, **kwargs)
