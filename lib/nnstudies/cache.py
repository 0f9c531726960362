"""Where trained runs are kept: a folder on disk, and the same entries in memory.

Re-running a cell or moving a widget back to a value seen before loads the trained weights
instead of training again. Entries are written by the engine (:func:`nnstudies.runs.execute`),
keyed by the run's spec and the numeric code it runs, and live in ``$NNSTUDIES_CACHE``
(default: the user cache folder, ``~/.cache/nnstudies/models`` on Linux). On Colab,
:func:`use_google_drive` keeps them on Google Drive.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pooch
import torch

__all__ = ["CACHE_ENV", "MEMORY", "cache_dir", "clear_cache", "use_google_drive"]

CACHE_ENV = "NNSTUDIES_CACHE"
#: Entries read or written in this process, by (folder, key): state, result, seconds.
MEMORY: dict[tuple[Path, str], tuple[dict[str, torch.Tensor], Any, float]] = {}


def cache_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: ``root``, else ``$NNSTUDIES_CACHE``, else the user cache."""
    folder = Path(root or os.environ.get(CACHE_ENV) or Path(pooch.os_cache("nnstudies")) / "models")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


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
    """Delete every cached run (on disk and in memory); return how many files were removed."""
    MEMORY.clear()
    removed = 0
    for path in cache_dir(root).glob("*.pt"):
        path.unlink()
        removed += 1
    return removed
