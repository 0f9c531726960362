"""Readable displays of nested settings: a preset printed as an indented tree that fits the page.

A chapter's preset is a frozen dataclass of dataclasses, tuples, dicts and enums. Its generated
``repr`` is one line, thousands of characters long. :func:`pretty` breaks it where it is too wide, as
many fields to a line as fit, nested values indented::

    >>> print(pretty(PRESETS["cpu"]))  # doctest: +SKIP
    Preset(
        dataset='mnist1d',
        permuted=BenchmarkSettings(
            n_tasks=4, hidden=(512, 128), ...

:class:`Pretty` gives a dataclass that display (``print``, ``str`` and IPython's pretty printer)
and keeps its generated ``repr``, so the values and their hash are those of the dataclass alone.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

__all__ = ["WIDTH", "Pretty", "pretty"]

WIDTH = 80  #: characters a line: what a code block of the book's text column holds at 1300 px
INDENT = "    "


def _items(value: Any) -> tuple[str, str, list[tuple[str, Any]]] | None:
    """A container's opening and closing text and its (label, item) pairs; None for a leaf."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = [
            (f"{f.name}=", getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr
        ]
        return f"{type(value).__name__}(", ")", fields
    if isinstance(value, dict):
        return "{", "}", [(f"{_flat(k)}: ", v) for k, v in value.items()]
    if isinstance(value, list):
        return "[", "]", [("", v) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return "(", ")" if len(value) != 1 else ",)", [("", v) for v in value]
    return None


def _flat(value: Any) -> str:
    """``value`` on one line; an enum member as ``Class.NAME``."""
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    parts = _items(value)
    if parts is None:
        return repr(value)
    start, end, items = parts
    return start + ", ".join(label + _flat(item) for label, item in items) + end


def _lines(value: Any, depth: int, width: int, lead: int = 0) -> str:
    """``value`` at indentation ``depth``, after ``lead`` characters of its label and before its
    comma: on one line if it fits; else its items one level deeper, as many to a line as fit, and
    an item too wide for a line broken in turn."""
    flat = _flat(value)
    parts = _items(value)
    if parts is None or len(INDENT * depth) + lead + len(flat) + 1 <= width:
        return flat
    start, end, items = parts
    inner = INDENT * (depth + 1)
    lines: list[str] = []
    for label, item in items:
        text = label + _lines(item, depth + 1, width, len(label)) + ","
        if lines and "\n" not in text and "\n" not in lines[-1]:
            joined = f"{lines[-1]} {text}"
            if len(inner) + len(joined) <= width:
                lines[-1] = joined
                continue
        lines.append(text)
    body = "".join(f"{inner}{line}\n" for line in lines)
    return f"{start}\n{body}{INDENT * depth}{end.lstrip(',')}"


def pretty(value: Any, width: int = WIDTH) -> str:
    """``value`` (dataclasses, dicts, lists, tuples, enums nested in any way) as indented text whose
    lines fit ``width`` characters wherever a single value allows it."""
    return _lines(value, 0, width, -1)  # no comma after the outermost value


class Pretty:
    """Mixin for a dataclass: ``str`` and IPython's display show :func:`pretty`; ``repr`` is the
    dataclass's own."""

    def __str__(self) -> str:
        return pretty(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(f"{type(self).__name__}(...)" if cycle else pretty(self))
