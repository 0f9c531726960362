"""A cache of trained models keyed by their configuration.

Re-running a cell or moving a widget back to a value seen before loads the
trained weights instead of training again. Entries live in ``$NNSTUDIES_CACHE``
(default: the user cache folder, ``~/.cache/nnstudies/models`` on Linux) and in
memory. The key is the configuration *and* a hash of the library source the model's
code uses, so a change to the training code never serves stale models. A damaged entry is
reported, deleted and rebuilt.

>>> model, history = cached(                                   # doctest: +SKIP
...     {"kind": "mlp", "width": 256, "lr": 0.05, "seed": 0},
...     build=lambda: MLP(40, [256, 256], 10),
...     fit=lambda model: train(model, data, lr=0.05, epochs=10))
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pooch
import torch
from torch import nn

from .provenance import LIBRARY, PACKAGE, source_hash
from .scales import dry_run
from .training import History

__all__ = ["CACHE_ENV", "cache_dir", "cache_key", "cached", "clear_cache", "use_google_drive"]

CACHE_ENV = "NNSTUDIES_CACHE"
_MEMORY: dict[tuple[Path, str], tuple[dict[str, torch.Tensor], Any]] = {}


def cache_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: ``root``, else ``$NNSTUDIES_CACHE``, else the user cache."""
    folder = Path(root or os.environ.get(CACHE_ENV) or Path(pooch.os_cache("nnstudies")) / "models")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _code_version(modules: Iterable[str]) -> str:
    """A hash of the library source that ``modules`` run: themselves and what they import,
    transitively.

    Code defined outside the library (a notebook cell) counts the whole library.
    """
    named = {m for m in modules if m}
    ours = sorted(m for m in named if m == PACKAGE or m.startswith(PACKAGE + "."))
    if not ours or len(ours) < len(named):
        ours = sorted(
            PACKAGE + "." + p.relative_to(LIBRARY).with_suffix("").as_posix().replace("/", ".")
            for p in LIBRARY.rglob("*.py")
            if p.name != "__init__.py"
        )
    return source_hash(ours, "dry-run" if dry_run() else "")[:16]


def _check_json(value: Any, where: str) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"cache config key {where}{k!r} must be a str")
            _check_json(v, f"{where}{k}.")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_json(v, f"{where}{i}.")
    elif not (value is None or isinstance(value, (str, int, float, bool))):
        raise TypeError(
            f"cache config value at {where.rstrip('.') or 'top'} is a {type(value).__name__}; use str, int, float, bool, None, lists or dicts"
        )


def cache_key(config: Mapping[str, Any], modules: Iterable[str] = ()) -> str:
    """The key of ``config``: a hash of its canonical JSON and of the source of ``modules`` (see
    :func:`_code_version`;
    none or modules outside the library: the whole library)."""
    _check_json(config, "")
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{_code_version(modules)}|{text}".encode()).hexdigest()[:32]


def _pack(result: Any) -> Any:
    return {"__history__": result.to_dict()} if isinstance(result, History) else result


def _unpack(result: Any) -> Any:
    if isinstance(result, dict) and set(result) == {"__history__"}:
        return History.from_dict(result["__history__"])
    return result


def cached(
    config: Mapping[str, Any],
    *,
    build: Callable[[], nn.Module],
    fit: Callable[[nn.Module], Any],
    root: str | os.PathLike[str] | None = None,
    refresh: bool = False,
) -> tuple[nn.Module, Any]:
    """Return ``(model, result)``: from the cache when ``config`` was trained before, else train and
    store.

    ``build()`` makes a fresh model; ``fit(model)`` trains it in place and returns a
    result (a :class:`History`, or tensors, numbers, lists and dicts of them).
    ``config`` must say everything that decides the outcome (sizes, learning rate,
    seed, data, epochs); JSON types only. ``refresh=True`` retrains regardless.
    The key also holds the source of the library modules that ``build`` and ``fit`` come
    from (and what they import), so editing one chapter's module leaves the others'
    models cached; a dry run keeps its two-step models apart.
    Each call returns its own model object, so changing it leaves the cache intact.
    """
    key = cache_key(
        config, {getattr(build, "__module__", "") or "", getattr(fit, "__module__", "") or ""}
    )
    folder = cache_dir(root)
    path = folder / f"{key}.pt"
    entry = None if refresh else _MEMORY.get((folder, key))
    if entry is None and not refresh and path.exists():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            if stored.get("config") != json.loads(json.dumps(config)):
                raise ValueError("its stored configuration differs from the key's")
            entry = (stored["state_dict"], _unpack(stored["result"]))
        except Exception as error:  # noqa: BLE001 - any damage means: rebuild
            warnings.warn(
                f"cache entry {path} is damaged ({type(error).__name__}: {error}); retraining",
                stacklevel=2,
            )
            path.unlink(missing_ok=True)
    model = build()
    if entry is None:
        result = fit(model)
        state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(
            {
                "config": json.loads(json.dumps(config)),
                "state_dict": state,
                "result": _pack(result),
            },
            tmp,
        )
        os.replace(tmp, path)
        entry = (state, result)
    else:
        device = next(model.parameters(), torch.empty(0)).device
        model.load_state_dict({k: v.to(device) for k, v in entry[0].items()})
    _MEMORY[(folder, key)] = entry
    return model, copy.deepcopy(entry[1])


def use_google_drive(folder: str = "nnstudies-cache") -> Path:
    """On Colab: keep trained models on Google Drive (``MyDrive/<folder>``) so they survive the
    runtime.

    Mounts the drive (Colab asks for permission) and points ``$NNSTUDIES_CACHE`` there.
    Outside Colab this is an error that says so.
    """
    try:
        from google.colab import drive  # type: ignore[import-not-found]
    except ImportError:
        raise RuntimeError(
            "use_google_drive works on Colab only; elsewhere set $NNSTUDIES_CACHE to a folder"
        ) from None
    drive.mount("/content/drive")
    path = Path("/content/drive/MyDrive") / folder
    path.mkdir(parents=True, exist_ok=True)
    os.environ[CACHE_ENV] = str(path)
    print(f"trained models are kept in {path}")
    return path


def clear_cache(root: str | os.PathLike[str] | None = None) -> int:
    """Delete every cached model (on disk and in memory); return how many files were removed."""
    _MEMORY.clear()
    removed = 0
    for path in cache_dir(root).glob("*.pt"):
        path.unlink()
        removed += 1
    return removed
