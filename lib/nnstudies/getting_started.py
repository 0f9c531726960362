"""Chapter 0: train a small MLP on MNIST-1D and see what the learning rate does."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import nn

from .cache import cached
from .data import Dataset, load_dataset
from .device import get_device
from .models import MLP
from .plotting import plot_histories
from .scales import check_scale, pick
from .training import DivergenceError, History, train

__all__ = ["PRESETS", "load_data", "plot_examples", "plot_learning_rates", "train_mlp"]

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"dataset": "mnist1d", "n_train": 500, "n_test": 200, "hidden": [64, 64], "epochs": 3, "batch_size": 64},
    "cpu": {"dataset": "mnist1d", "n_train": None, "n_test": None, "hidden": [256, 256], "epochs": 20, "batch_size": 128},
    "paper": {"dataset": "mnist", "n_train": None, "n_test": None, "hidden": [1000], "epochs": 10, "batch_size": 100},
}


@lru_cache(maxsize=4)
def load_data(scale: str) -> Dataset:
    """The chapter's data at ``scale`` (MNIST-1D for smoke and cpu, MNIST for paper)."""
    p = pick(PRESETS, scale)
    return load_dataset(p["dataset"], n_train=p["n_train"], n_test=p["n_test"])


def train_mlp(lr: float, *, scale: str, seed: int = 0, device: torch.device | None = None) -> tuple[MLP, History]:
    """An MLP trained with SGD (momentum 0.9) at learning rate ``lr``; cached by its configuration."""
    check_scale(scale)
    p = PRESETS[scale]
    device = device or get_device()
    data = load_data(scale)
    config = {"chapter": "00", "scale": scale, "lr": float(lr), "seed": seed, "device": device.type, **p}

    def build() -> MLP:
        torch.manual_seed(seed)
        return MLP(data.in_features, p["hidden"], data.num_classes).to(device)

    def fit(model: nn.Module) -> History:
        return train(model, data, lr=lr, epochs=p["epochs"], batch_size=p["batch_size"], seed=seed, desc=f"lr={lr:.3g}")

    return cached(config, build=build, fit=fit)  # type: ignore[return-value]


def plot_learning_rates(lr: float, *, scale: str, compare: Sequence[float] = (0.003, 0.3), seed: int = 0) -> Figure:
    """Training curves at ``lr`` beside the learning rates in ``compare``; a diverged run is marked."""
    histories: dict[str, History] = {}
    notes = []
    for rate in sorted({float(lr), *map(float, compare)}):
        label = f"lr = {rate:.3g}" + ("  (yours)" if rate == float(lr) else "")
        try:
            histories[label] = train_mlp(rate, scale=scale, seed=seed)[1]
        except DivergenceError as error:
            histories[label + f", diverged at step {error.step}"] = error.history
            notes.append(f"lr={rate:.3g} diverged at step {error.step}")
    title = "SGD with momentum 0.9 on " + pick(PRESETS, scale)["dataset"]
    return plot_histories(histories, title=title + (" — " + "; ".join(notes) if notes else ""))


def plot_examples(data: Dataset, per_class: int = 1) -> Figure:
    """A few training inputs of a 1-D data set, one panel per class."""
    from .plotting import new_figure

    fig, axes = new_figure(1, width=9.0, height=2.6)
    ax = axes[0]
    for label in range(data.num_classes):
        index = (data.y_train == label).nonzero().flatten()[:per_class]
        for i in index.tolist():
            signal = data.x_train[i].flatten().cpu()
            ax.plot(torch.arange(len(signal)) + label * (len(signal) + 8), signal, color="#0072B2", lw=1.2)
        ax.text(label * (data.in_features + 8) + data.in_features / 2, 3.2, str(label), ha="center")
    ax.set(xticks=[], yticks=[], ylim=(-3.5, 3.8), title=f"{data.name}: one training input per class (label above)")
    ax.grid(False)
    return fig
