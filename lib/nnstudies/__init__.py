"""nnstudies: the library behind the book of four studies on how neural networks train.

Modules: ``scales`` (smoke / cpu / paper), ``device`` (device choice, seeding),
``data`` (MNIST-1D and downloaded data sets), ``models`` (MLP, CNN),
``training`` (training loop, history, divergence stop), ``cache`` (trained
models keyed by configuration), ``plotting`` (the book's style), ``widgets``
(control panels that degrade to static figures), ``results`` (headline numbers
for tests), and one module per chapter.
"""

from __future__ import annotations

import torch

from .cache import cached, clear_cache
from .data import DATASETS, Dataset, DownloadError, load_dataset
from .device import describe_device, get_device, seed_everything
from .models import CNN, MLP
from .plotting import use_style
from .progress import is_interactive, progress
from .results import record
from .scales import SCALES, check_scale, pick, resolve_scale
from .training import DivergenceError, History, evaluate, train
from .widgets import Choice, LogSlider, Slider, explore

__version__ = "0.1.0"

__all__ = [
    "CNN", "DATASETS", "MLP", "SCALES", "Choice", "Dataset", "DivergenceError", "DownloadError", "History",
    "LogSlider", "Slider", "cached", "check_scale", "clear_cache", "describe_device", "evaluate", "explore",
    "get_device", "is_interactive", "load_dataset", "pick", "progress", "record", "resolve_scale",
    "seed_everything", "setup", "train", "use_style",
]


def setup(seed: int = 0, device: str | None = None) -> torch.device:
    """What a chapter's first cell does: seed everything, pick the device, set the plot style.

    Prints one line naming the device and returns it.
    """
    seed_everything(seed)
    chosen = get_device(device)
    use_style()
    print(f"nnstudies {__version__} | seed {seed} | {describe_device(chosen)}")
    return chosen
