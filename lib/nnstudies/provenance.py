"""Which library source a result depends on, and where a run happened.

A chapter's stored outputs, its stored results and its cached models depend on the
notebook's code and on the library modules it imports, directly or through other
modules. :func:`source_hash` hashes exactly those files, found by reading the import
statements (no import is executed), so an edit to the chapter-4 module leaves
chapters 0–3 current, while an edit to a base module (imported by everyone through
``nnstudies/__init__.py``) makes every chapter stale.

>>> sorted(module_closure(["nnstudies.scales"]))   # doctest: +SKIP
['nnstudies', 'nnstudies.scales']
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as _dt
import enum
import hashlib
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = [
    "LIBRARY",
    "PACKAGE",
    "canonical",
    "code_hashes",
    "environment",
    "git_commit",
    "imported_modules",
    "module_closure",
    "normalized_source",
    "notebook_code_hash",
    "numeric_closure",
    "numeric_hash",
    "source_hash",
]

#: Modules that never compute a recorded number: views, widgets, claims wording, the results store,
#: progress bars, listings. They stay out of :func:`numeric_hash`; a test keeps numeric modules from
#: importing the view modules among them.
NOT_NUMERIC = frozenset(
    {
        "nnstudies.explorer",
        "nnstudies.colab",
        "nnstudies.listing",
        "nnstudies.made",
        "nnstudies.pretty",
        "nnstudies.plotting",
        "nnstudies.progress",
        "nnstudies.provenance",
        "nnstudies.results",
    }
)
#: Module names (last part) that are never numeric anywhere in the package: a chapter's
#: ``views`` and ``claims``; its ``presets`` are hashed by value instead (the scale being run).
NOT_NUMERIC_PARTS = frozenset({"views", "claims", "presets"})

PACKAGE = "nnstudies"
LIBRARY = Path(__file__).resolve().parent


def _path(module: str) -> Path | None:
    """The source file of ``module`` (``nnstudies`` or ``nnstudies.x.y``), or None if it is not
    ours.
    """
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = LIBRARY.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(source: str, *, package: str | None = None) -> set[str]:
    """The ``nnstudies`` modules that ``source`` imports (absolute or, inside ``package``,
    relative).

    ``from nnstudies import x`` counts ``nnstudies.x`` when that is a module, else ``nnstudies``.
    IPython magics (lines starting with ``%`` or ``!``) are ignored.
    """
    text = "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()
    )
    found: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                found.update(".".join(parts[: i + 1]) for i in range(len(parts)))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if package is None:
                    continue
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            parts = base.split(".")
            found.update(".".join(parts[: i + 1]) for i in range(len(parts)))
            found.update(
                f"{base}.{alias.name}" for alias in node.names if _path(f"{base}.{alias.name}")
            )
    return {name for name in found if _path(name) is not None}


def module_closure(modules: Iterable[str]) -> set[str]:
    """``modules`` and every ``nnstudies`` module they import, transitively (packages' ``__init__``
    included).
    """
    seen: set[str] = set()
    todo = [m for m in modules if _path(m) is not None]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _path(name)
        assert path is not None
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        parents = {
            ".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)
        }  # imported first, always
        todo += sorted((imported_modules(path.read_text(), package=package) | parents) - seen)
    return seen


@lru_cache(maxsize=64)
def _hash_files(modules: frozenset[str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(modules):
        path = _path(name)
        assert path is not None
        digest.update(b"\0module\0" + name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def source_hash(modules: Iterable[str], *extra: str) -> str:
    """A hash of the source of ``modules`` and of everything they import from ``nnstudies``, plus
    ``extra`` strings.
    """
    digest = hashlib.sha256(_hash_files(frozenset(module_closure(modules))).encode())
    for text in extra:
        digest.update(b"\0extra\0" + text.encode())
    return digest.hexdigest()


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return tree


def normalized_source(source: str) -> str:
    """``source`` as its abstract syntax tree without docstrings: comments, docstrings and
    formatting do not change it."""
    return ast.dump(_strip_docstrings(ast.parse(source)), annotate_fields=False)


def is_numeric(module: str) -> bool:
    """Whether ``module`` can compute a recorded number (see :data:`NOT_NUMERIC`)."""
    return module not in NOT_NUMERIC and module.rpartition(".")[2] not in NOT_NUMERIC_PARTS


def numeric_closure(modules: Iterable[str]) -> set[str]:
    """The numeric modules that ``modules`` run: themselves and what they import, transitively,
    leaving out the non-numeric ones (whose imports are not followed) and packages' ``__init__``
    files (whose imports are followed: ``from ..optim import X`` counts the optim package's
    modules, but a package's re-export list is not code that computes).
    """
    seen: set[str] = set()
    todo = [m for m in modules if _path(m) is not None]
    while todo:
        name = todo.pop()
        path = _path(name)
        if name in seen or path is None or not is_numeric(name):
            continue
        seen.add(name)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        todo += sorted(imported_modules(path.read_text(), package=package) - seen)
    return {m for m in seen if (p := _path(m)) is not None and p.name != "__init__.py"}


@lru_cache(maxsize=256)
def _normalized_file(name: str, mtime: float) -> str:
    path = _path(name)
    assert path is not None
    return normalized_source(path.read_text())


def numeric_hash(modules: Iterable[str], *extra: str) -> str:
    """A hash of the numeric code that ``modules`` run (:func:`numeric_closure`), as normalized
    syntax trees (:func:`normalized_source`), plus ``extra`` strings (e.g. a preset's values).

    Editing a docstring, a comment, a figure or a claim's wording leaves it unchanged.
    """
    digest = hashlib.sha256()
    for name in sorted(numeric_closure(modules)):
        path = _path(name)
        assert path is not None
        text = _normalized_file(name, path.stat().st_mtime)
        digest.update(b"\0module\0" + name.encode() + b"\0" + text.encode())
    for text in extra:
        digest.update(b"\0extra\0" + text.encode())
    return digest.hexdigest()


def canonical(value: Any, where: str = "value") -> Any:
    """``value`` as plain JSON types, for hashing: dataclasses by type and fields, enums by name,
    floats by ``repr`` (so 0.1 and 0.1000001 differ). Anything else is an error naming it.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {
            f.name: canonical(getattr(value, f.name), f"{where}.{f.name}")
            for f in dataclasses.fields(value)
        }
        return {"__type__": f"{type(value).__module__}.{type(value).__qualname__}", **fields}
    if isinstance(value, enum.Enum):
        return f"{type(value).__qualname__}.{value.name}"
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return [canonical(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"{where}: mapping keys must be str")
        return {k: canonical(v, f"{where}.{k}") for k, v in sorted(value.items())}
    raise TypeError(
        f"{where} is a {type(value).__name__}; expected numbers, strings, enums, tuples or dataclasses"
    )


def chapter_packages(modules: Iterable[str]) -> list[str]:
    """The chapter packages among ``modules`` and their parents (``nnstudies.chapters.<name>``)."""
    found = {
        ".".join(m.split(".")[:3])
        for m in modules
        if m.startswith(f"{PACKAGE}.chapters.") and len(m.split(".")) >= 3
    }
    return sorted(found)


def preset_values(modules: Iterable[str], scale: str) -> str:
    """The values of the preset of ``scale`` of each chapter package among ``modules``
    (``<package>.presets.PRESETS[scale]``), as canonical JSON: what the numeric hash counts of
    a chapter's presets (the other scales' presets are left out).
    """
    import importlib
    import json

    values = {}
    for package in chapter_packages(modules):
        if _path(f"{package}.presets") is None:
            continue
        presets = importlib.import_module(f"{package}.presets").PRESETS
        values[package] = canonical(presets[scale], f"{package}.presets.PRESETS[{scale!r}]")
    return json.dumps(values, sort_keys=True)


def claims_hash(modules: Iterable[str]) -> str:
    """A hash of the rules that judge a chapter: its ``claims`` modules and the verdict logic of
    :mod:`nnstudies.claims` and :mod:`nnstudies.results`, as normalized syntax trees."""
    names = [f"{p}.claims" for p in chapter_packages(modules)]
    names += [f"{PACKAGE}.claims", f"{PACKAGE}.results"]
    digest = hashlib.sha256()
    for name in names:
        path = _path(name)
        if path is not None:
            digest.update(name.encode() + b"\0" + normalized_source(path.read_text()).encode())
    return digest.hexdigest()


def notebook_code_hash(path: Path) -> str:
    """A hash of a notebook's code cells as normalized syntax trees (papermill's injected
    parameters, IPython magics, comments and docstrings left out)."""
    import json

    digest = hashlib.sha256()
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code" or "injected-parameters" in cell.get("metadata", {}).get(
            "tags", []
        ):
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        lines = source.splitlines()
        text = "\n".join("" if x.lstrip().startswith(("%", "!")) else x for x in lines)
        try:
            text = normalized_source(text)
        except SyntaxError:
            pass
        digest.update(b"\0cell\0" + text.encode())
    return digest.hexdigest()


def code_hashes(modules: Iterable[str], scale: str, notebook: Path | None) -> dict[str, str]:
    """What a stored result's numbers depend on, as hashes: ``numeric_hash`` (the numeric code the
    chapter runs and its preset of ``scale``), ``notebook_hash`` (its code cells) and
    ``claims_hash`` (the rules that judge it)."""
    modules = sorted(modules)
    found = {
        "numeric_hash": numeric_hash(modules, preset_values(modules, scale)),
        "claims_hash": claims_hash(modules),
    }
    if notebook is not None and notebook.is_file():
        found["notebook_hash"] = notebook_code_hash(notebook)
    return found


def git_commit(root: Path | None = None) -> str:
    """The checkout's commit (``+dirty`` when library files differ from it), or ``"unknown"``
    outside git.

    ``$NNSTUDIES_COMMIT`` names it where the code runs from a copy without git (e.g. a GPU machine).
    """
    if os.environ.get("NNSTUDIES_COMMIT"):
        return os.environ["NNSTUDIES_COMMIT"]
    where = str(root or LIBRARY)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", ".", "../../notebooks"],
            cwd=str(LIBRARY),
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what ``platform`` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """Where and with what this process computes: device, threads, versions, host, date."""
    import torch

    from .device import get_device

    device = get_device()
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine()
    )
    return {
        "device": f"{device.type} ({name})",
        "cpu": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),  # of this process; runs of the engine use one each
        "threads_per_run": 1,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
