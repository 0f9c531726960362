"""The method on the page: show the library's own source of a function where the book explains it.

The library is the single source of every algorithm, and the tests check it. A chapter
shows that same code beside its equation with :func:`show_code`, so what the reader
reads is what runs::

    nnstudies.show_code(nnstudies.training.classification_step)

The code appears as a highlighted Python block headed by the file it lives in: in
Jupyter, on Colab, on GitHub and in the book alike (it is a Markdown output).
"""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import Path
from typing import Any

__all__ = ["code_listing", "show_code"]


# Comments addressed to the type checker and the linter, not to a reader: "  # type: ignore[arg-type]",
# "  # noqa: E501". The listing leaves them out; the file keeps them.
TOOL_COMMENT = re.compile(
    r"[ \t]*#[ \t]*(?:type:[ \t]*ignore(?:\[[^\]]*\])?|noqa(?::[ \t]*[A-Z0-9, ]+?)?)(?=[ \t]*(?:#|$))"
)


def _for_readers(source: str) -> str:
    """``source`` without the comments that speak to tools at the end of its lines."""
    return "\n".join(TOOL_COMMENT.sub("", line).rstrip() for line in source.splitlines())


def code_listing(*objects: Any) -> str:
    """Markdown holding the source of each function or class in ``objects``, with its module and
    line.
    """
    if not objects:
        raise ValueError("show_code needs at least one function or class")
    parts = []
    for obj in objects:
        target = inspect.unwrap(obj)
        try:
            lines, first = inspect.getsourcelines(target)
            path = Path(inspect.getsourcefile(target) or "?")
        except (TypeError, OSError) as error:
            raise TypeError(f"cannot show the source of {obj!r}: {error}") from None
        where = (
            f"{target.__module__.replace('.', '/')}.py"
            if path.name != "__init__.py"
            else path.as_posix()
        )
        source = _for_readers(textwrap.dedent("".join(lines)).rstrip())
        parts.append(f"`{where}`, line {first}:\n\n```python\n{source}\n```")
    return "\n\n".join(parts)


def show_code(*objects: Any) -> Any:
    """Display the source of ``objects`` (functions, classes) as highlighted code; see
    :func:`code_listing`.
    """
    from IPython.display import Markdown

    return Markdown(code_listing(*objects))
