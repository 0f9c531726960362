"""nnstudies: the library behind the book of four studies on how neural networks train.

Three layers:

- **base** — ``scales`` (smoke / cpu / full / paper, the dry run), ``device`` (device,
  seeding), ``data`` (data sets), ``models`` (MLP, CNN), ``training`` (the one loop,
  :func:`fit`), ``runs`` (run specs, :func:`execute` and :func:`run_all`, the engine that
  spreads a sweep over every core or a cluster), ``cache`` (where runs are kept), ``plotting``,
  ``explorer`` (widgets and the book's explorers), ``results`` (recorded numbers, the results store, claims),
  ``listing`` (the method on the page), ``provenance``;
- **methods** — ``permutations``, ``optim``, ``continual``, ``rtrl``: each algorithm in
  one place, named as in its paper, with its equation in the docstring;
- **chapter experiments** — ``getting_started`` and one ``*_chapter`` module per study:
  typed presets per scale, method registries, step functions.

Importing ``nnstudies`` sets ``OMP_WAIT_POLICY=PASSIVE`` unless it is set already (and
only when torch is not imported yet): on a shared 2-core machine, OpenMP threads that
busy-wait can slow some kernels 10–100×.
"""

from __future__ import annotations

import os
import sys

if "torch" not in sys.modules:  # the policy is read once, when torch's OpenMP runtime loads
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from .cache import clear_cache
from .data import DATASETS, Dataset, DownloadError, load_dataset
from .device import describe_device, get_device, seed_everything
from .explorer import Choice, LogSlider, Slider, explore
from .listing import show_code
from .models import CNN, MLP
from .plotting import use_style
from .progress import is_interactive, progress
from .results import Claim, Rule, claims_table, load_results, record
from .runs import Run, Spec, execute, run_all
from .scales import SCALES, check_scale, dry_run, pick, resolve_scale
from .training import DivergenceError, History, evaluate, fit, train

__version__ = "0.2.0"  # the one version number: pyproject.toml reads it from here

__all__ = [
    "CNN",
    "DATASETS",
    "MLP",
    "SCALES",
    "Choice",
    "Claim",
    "Dataset",
    "DivergenceError",
    "DownloadError",
    "History",
    "LogSlider",
    "Rule",
    "Run",
    "Slider",
    "Spec",
    "check_scale",
    "claims_table",
    "clear_cache",
    "describe_device",
    "dry_run",
    "evaluate",
    "execute",
    "explore",
    "fit",
    "get_device",
    "is_interactive",
    "load_dataset",
    "load_results",
    "pick",
    "progress",
    "record",
    "resolve_scale",
    "run_all",
    "seed_everything",
    "setup",
    "show_code",
    "train",
    "use_style",
]


def setup(seed: int = 0, device: str | None = None) -> torch.device:
    """What a chapter's first cell does: seed everything, pick the device, set the plot style.

    Prints one line naming the device, the thread count and OpenMP's wait policy, and returns the device.
    """
    seed_everything(seed)
    chosen = get_device(device)
    use_style()
    policy = os.environ.get("OMP_WAIT_POLICY", "default")
    dry = (
        " | DRY RUN: random data where real data are absent, two steps per loop"
        if dry_run()
        else ""
    )
    print(
        f"nnstudies {__version__} | seed {seed} | {describe_device(chosen)} | OpenMP wait policy {policy}{dry}"
    )
    return chosen
