"""Which device to compute on, and seeding for repeatable runs."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["DEVICE_ENV", "describe_device", "get_device", "seed_everything", "threads"]

DEVICE_ENV = "NNSTUDIES_DEVICE"


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def get_device(prefer: str | None = None) -> torch.device:
    """The device to use: ``prefer`` or ``$NNSTUDIES_DEVICE`` when given, else CUDA, else Apple MPS,
    else CPU.

    Asking for a device that is not there is an error, not a silent fallback.
    """
    name = prefer or os.environ.get(DEVICE_ENV, "").strip() or None
    if name is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for, but CUDA is not available here")
    if device.type == "mps" and not _mps_available():
        raise RuntimeError(f"device {name!r} was asked for, but Apple MPS is not available here")
    return device


def describe_device(device: torch.device) -> str:
    """One line saying what ``device`` is, e.g. ``device: cpu (2 threads), torch 2.13.0``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        what = f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    elif device.type == "mps":
        what = "mps (Apple GPU)"
    else:
        count = torch.get_num_threads()
        what = f"cpu ({count} thread{'' if count == 1 else 's'})"
    return f"device: {what}, torch {torch.__version__}"


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's, NumPy's and torch's global generators; return a fresh ``torch.Generator``
    seeded alike.

    Same seed, same code, same device: same numbers. (CUDA kernels may still differ
    in the last bits between GPU models.)
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@contextmanager
def threads(count: int | None, device: torch.device | None = None) -> Iterator[None]:
    """Torch's intra-op thread count set to ``count`` inside the block, restored after it.

    The book's one thread policy: runs on the CPU use one thread each (the engine's workers,
    chapters whose matrices are small), so that a run's floating point does not depend on the
    machine's core count and two runs share two cores without OpenMP's busy-waiting. ``None``,
    or a ``device`` that is not the CPU, leaves the count as it is.
    """
    previous = torch.get_num_threads()
    if count is not None and (device is None or device.type == "cpu"):
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
