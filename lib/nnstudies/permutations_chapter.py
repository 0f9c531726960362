"""Chapter 1's experiments: trained pairs, matching methods, averaged initialisations, CNNs, widgets.

The algorithms live in :mod:`nnstudies.permutations`; this module sizes and runs
the chapter's experiments at each scale and draws its figures. Trained networks
are cached by configuration, so re-running a cell or moving a widget back does
not retrain.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from .cache import cached
from .data import Dataset, load_dataset
from .device import get_device
from .models import CNN, MLP
from .permutations import (
    Curve,
    activation_similarity,
    barrier,
    interpolate,
    interpolation_curve,
    match_activations,
    match_weights,
    permute,
    repair,
)
from .plotting import color_for, new_figure
from .scales import pick
from .training import History, evaluate, train

__all__ = [
    "METHODS",
    "PRESETS",
    "Trained",
    "align",
    "explore_interpolation",
    "init_midpoint",
    "load_data",
    "method_curves",
    "plot_barriers_vs_width",
    "plot_cnn_curves",
    "plot_curves",
    "plot_init_midpoints",
    "plot_similarity",
    "train_network",
    "train_pair",
]

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "dataset": "mnist1d", "n_train": 1000, "n_test": 500, "n_match": 1000,
        "mlp": {"hidden": [64, 64], "optimizer": "sgd", "lr": 0.05, "epochs": 4, "batch_size": 64, "bias": True},
        "widths": [32, 128], "match_epochs": [0, 1, 4], "pairs": 1,
        "cnn": {"channels": [8, 8, 16, 16], "optimizer": "sgd", "lrs": [0.01, 0.1], "epochs": 2, "batch_size": 64},
    },
    "cpu": {
        "dataset": "mnist1d", "n_train": None, "n_test": None, "n_match": 4000,
        "mlp": {"hidden": [512, 512], "optimizer": "sgd", "lr": 0.05, "epochs": 15, "batch_size": 128, "bias": True},
        "widths": [64, 128, 256, 512, 1024], "match_epochs": [0, 1, 2, 4, 8, 15], "pairs": 3,
        "cnn": {"channels": [32, 32, 64, 64], "optimizer": "sgd", "lrs": [0.01, 0.1], "epochs": 20, "batch_size": 128},
    },
    "paper": {
        # The paper's MLP: one hidden layer of 1000, no bias, AdamW lr 1e-3, batch 100, 500 updates.
        "dataset": "fashion_mnist", "n_train": None, "n_test": None, "n_match": 10000,
        "mlp": {"hidden": [1000], "optimizer": "adamw", "lr": 1e-3, "epochs": 1, "max_steps": 500, "batch_size": 100, "bias": False},
        "widths": [128, 256, 512, 1000, 2000, 4000], "match_epochs": [0, 1], "pairs": 3,
        # The paper's CNN (64-64-pool-128-128, no bias) on CIFAR-10, SGD at a small and a large learning rate.
        "cnn": {"dataset": "cifar10", "channels": [64, 64, 128, 128], "optimizer": "sgd", "lrs": [0.01, 0.1], "epochs": 20, "batch_size": 128},
    },
}
METHODS = ("naive", "activations", "weights")


@lru_cache(maxsize=8)
def load_data(scale: str, arch: str = "mlp") -> Dataset:
    """The data for ``arch`` at ``scale``: MNIST-1D at smoke and cpu; Fashion-MNIST (MLP) or CIFAR-10 (CNN) at paper."""
    p = pick(PRESETS, scale)
    name = p["cnn"].get("dataset", p["dataset"]) if arch == "cnn" else p["dataset"]
    return load_dataset(name, n_train=p["n_train"], n_test=p["n_test"]).to(get_device())


@dataclass
class Trained:
    """A trained network with its initialisation, its history and snapshots after some epochs."""

    model: nn.Module
    init: nn.Module
    history: History
    snapshots: dict[int, nn.Module]


def _build(arch: str, data: Dataset, width: int | None, p: dict[str, Any]) -> nn.Module:
    if arch == "mlp":
        hidden = p["mlp"]["hidden"] if width is None else [width] * len(p["mlp"]["hidden"])
        return MLP(data.in_features, hidden, data.num_classes, bias=p["mlp"]["bias"])
    if arch == "cnn":
        dim = len(data.input_shape) - (0 if len(data.input_shape) == 1 else 1)
        in_channels = 1 if dim == 1 else data.input_shape[0]
        return CNN(in_channels, data.num_classes, p["cnn"]["channels"], dim=dim)
    raise ValueError(f"unknown architecture {arch!r}; choose 'mlp' or 'cnn'")


def train_network(arch: str, *, scale: str, seed: int, lr: float | None = None, width: int | None = None) -> Trained:
    """Train one network of the chapter (cached); ``lr`` and ``width`` default to the scale's preset."""
    p = pick(PRESETS, scale)
    if arch not in ("mlp", "cnn"):
        raise ValueError(f"unknown architecture {arch!r}; choose 'mlp' or 'cnn'")
    setting = dict(p[arch])
    lr = float(lr if lr is not None else (setting["lr"] if arch == "mlp" else setting["lrs"][0]))
    data = load_data(scale, arch)
    device = get_device()
    snapshot_epochs = [e for e in p["match_epochs"] if e > 0] if arch == "mlp" else []
    config = {"chapter": "01", "arch": arch, "scale": scale, "seed": seed, "lr": lr, "width": width,
              "data": [data.name, len(data.y_train)], "setting": setting, "snapshots": snapshot_epochs, "device": device.type}

    def build() -> nn.Module:
        torch.manual_seed(seed)
        return _build(arch, data, width, p).to(device)

    def fit(model: nn.Module) -> dict[str, Any]:
        init = {k: v.detach().clone() for k, v in model.state_dict().items()}
        snaps: dict[str, dict[str, torch.Tensor]] = {}

        def keep(epoch: int, m: nn.Module) -> None:
            if epoch in snapshot_epochs:
                snaps[str(epoch)] = {k: v.detach().clone() for k, v in m.state_dict().items()}

        history = train(model, data, lr=lr, epochs=setting["epochs"], batch_size=setting["batch_size"],
                        optimizer=setting["optimizer"], max_steps=setting.get("max_steps"), seed=seed,
                        desc=f"{arch} seed {seed} lr {lr:g}" + (f" width {width}" if width else ""), on_epoch_end=keep)
        return {"history": history.to_dict(), "init": init, "snapshots": snaps}

    model, result = cached(config, build=build, fit=fit)

    def load(state: dict[str, torch.Tensor]) -> nn.Module:
        m = copy.deepcopy(model)
        m.load_state_dict(state)
        return m

    return Trained(model, load(result["init"]), History.from_dict(result["history"]),
                   {int(e): load(s) for e, s in result["snapshots"].items()})


def train_pair(arch: str = "mlp", *, scale: str, pair: int = 0, lr: float | None = None, width: int | None = None) -> tuple[Trained, Trained]:
    """Networks A and B of pair number ``pair``: the same recipe from two independent seeds."""
    return (train_network(arch, scale=scale, seed=2 * pair, lr=lr, width=width),
            train_network(arch, scale=scale, seed=2 * pair + 1, lr=lr, width=width))


def align(model_a: nn.Module, model_b: nn.Module, method: str, inputs: torch.Tensor) -> list[torch.Tensor] | None:
    """Permutations for ``model_b`` by ``method`` ("naive" gives None: no permutation)."""
    if method == "naive":
        return None
    if method == "activations":
        return match_activations(model_a, model_b, inputs)
    if method == "weights":
        return match_weights(model_a, model_b)
    raise ValueError(f"unknown matching method {method!r}; choose one of {METHODS}")


def _apply(model: nn.Module, perms: list[torch.Tensor] | None) -> nn.Module:
    return model if perms is None else permute(model, perms)


def method_curves(a: Trained, b: Trained, data: Dataset, inputs: torch.Tensor, *, split: str = "test",
                  alphas: tuple[float, ...] = tuple(i / 10 for i in range(11))) -> dict[str, Curve]:
    """Interpolation curves of the trained pair for each matching method, and REPAIR after activation matching."""
    curves = {}
    perms = {m: align(a.model, b.model, m, inputs) for m in METHODS}
    for method in METHODS:
        curves[method] = interpolation_curve(a.model, _apply(b.model, perms[method]), data, alphas, split=split)
    aligned = _apply(b.model, perms["activations"])
    x, y = (data.x_test, data.y_test) if split == "test" else (data.x_train, data.y_train)
    rows = [evaluate(repair(a.model, aligned, alpha, inputs), x, y) for alpha in alphas]
    curves["activations + REPAIR"] = Curve(list(alphas), [r[0] for r in rows], [r[1] for r in rows])
    return curves


def init_midpoint(a: Trained, b: Trained, data: Dataset, inputs: torch.Tensor, *, method: str = "activations",
                  epoch: int | None = None) -> float:
    """Test accuracy of ½(init A + π(init B)), π found by ``method`` on the pair after ``epoch`` epochs (default: the end).

    ``epoch=0`` matches the initialisations themselves.
    """
    if epoch is None:
        ma, mb = a.model, b.model
    elif epoch == 0:
        ma, mb = a.init, b.init
    else:
        ma, mb = a.snapshots[epoch], b.snapshots[epoch]
    perms = align(ma, mb, method, inputs)
    return evaluate(interpolate(a.init, _apply(b.init, perms), 0.5), data.x_test, data.y_test)[1]


def plot_curves(curves: dict[str, Curve], *, title: str = "", alpha: float | None = None, chance: float | None = None) -> Figure:
    """Loss and accuracy along α for each curve; optionally a marker at ``alpha`` and the chance level."""
    fig, (ax_loss, ax_acc) = new_figure(2, width=9.0, height=3.4)
    for label, c in curves.items():
        style = {"color": color_for(label), "marker": "o", "markersize": 3, "label": label}
        ax_loss.plot(c.alphas, c.loss, **style)
        ax_acc.plot(c.alphas, c.accuracy, **style)
    for ax in (ax_loss, ax_acc):
        if alpha is not None:
            ax.axvline(alpha, color="0.5", lw=1, ls=":")
        ax.set_xlabel("α  (0: network A, 1: network B)")
    if chance is not None:
        ax_acc.axhline(chance, color="0.4", lw=1, ls="--", label="chance")
    ax_loss.set(ylabel="loss", title="loss along the line")
    ax_acc.set(ylabel="accuracy", ylim=(0, 1), title="accuracy along the line")
    ax_acc.legend(loc="best")
    if title:
        fig.suptitle(title)
    return fig


def explore_interpolation(lr: float, method: str, pair: str, arch: str, alpha: float, *, scale: str) -> Figure:
    """The widget's figure: the interpolation curve of a trained pair, or of its initialisations, for one method."""
    data = load_data(scale, arch)
    inputs = data.x_train[: pick(PRESETS, scale)["n_match"]]
    a, b = train_pair(arch, scale=scale, lr=lr)
    perms = align(a.model, b.model, method, inputs)
    ends = (a.model, b.model) if pair == "trained" else (a.init, b.init)
    curve = interpolation_curve(ends[0], _apply(ends[1], perms), data)
    loss, acc = curve.at(alpha)
    b_ = barrier(curve)
    title = (f"{arch.upper()}, lr {lr:.3g}, {pair} pair, {method} matching — at α={alpha:.1f}: accuracy {acc:.1%}, "
             f"loss {loss:.2f}; barrier: loss {b_.loss:.2f}, error {b_.error:.1%}")
    return plot_curves({method: curve}, title=title, alpha=alpha, chance=1 / data.num_classes)


def mean_std(values: list[float]) -> str:
    """'m ± s' in percent (s over pairs; '' when there is one value)."""
    v = np.asarray(values) * 100
    return f"{v.mean():.1f}%" + (f" ± {v.std(ddof=1):.1f}" if len(v) > 1 else "")


def plot_similarity(a: nn.Module, b: nn.Module, perms: list[torch.Tensor], inputs: torch.Tensor, *, units: int = 64) -> Figure:
    """First hidden layer's cosine-similarity matrix (first ``units`` units of A) before and after permuting B."""
    before = activation_similarity(a, b, inputs)[0]
    after = activation_similarity(a, permute(b, perms), inputs)[0]
    fig, axes = new_figure(2, width=8.0, height=3.8)
    for ax, sim, title in ((axes[0], before, "before matching"), (axes[1], after, "after matching B to A")):
        image = ax.imshow(sim[:units, :units].numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set(title=title, xlabel="unit of B", ylabel="unit of A")
        ax.grid(False)
    fig.colorbar(image, ax=axes, shrink=0.8, label="cosine similarity")
    return fig


def plot_init_midpoints(xs: list[float], naive: list[list[float]], permuted: list[list[float]], *, xlabel: str,
                        chance: float, log: bool = False, title: str = "") -> Figure:
    """Accuracy of averaged initialisations (naive vs permuted) against ``xs``; one list of values per x (pairs)."""
    fig, (ax,) = new_figure(1, width=5.6, height=3.4)
    for method, label, values in (("naive", "naive average of inits", naive), ("activations", "permuted average of inits", permuted)):
        mean = [float(np.mean(v)) for v in values]
        err = [float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for v in values]
        ax.errorbar(xs, mean, yerr=err, marker="o", capsize=3, color=color_for(method), label=label)
    ax.axhline(chance, color="0.4", lw=1, ls="--", label="chance")
    if log:
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [str(int(x)) for x in xs])
    ax.set(xlabel=xlabel, ylabel="test accuracy at α = ½", title=title)
    ax.legend(loc="best")
    return fig


def plot_barriers_vs_width(widths: list[int], pairs: list[tuple[Trained, Trained]], data: Dataset, inputs: torch.Tensor) -> Figure:
    """Loss barrier against hidden width, naive and after activation matching, on test and training data."""
    fig, (ax,) = new_figure(1, width=7.2, height=3.4)
    for method in ("naive", "activations"):
        for split, style in (("test", "-"), ("train", "--")):
            values = []
            for a, b in pairs:
                b_model = _apply(b.model, align(a.model, b.model, method, inputs))
                values.append(barrier(interpolation_curve(a.model, b_model, data, split=split)).loss)
            ax.plot(widths, values, style, marker="o", color=color_for(method), label=f"{method}, {split} data")
    ax.set_xscale("log", base=2)
    ax.set_xticks(widths, [str(w) for w in widths])
    ax.set(xlabel="hidden width (pair 0 at each width)", ylabel="loss barrier", title="barrier vs width")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def plot_cnn_curves(curves: dict[float, dict[str, Curve]], *, chance: float, title: str = "") -> Figure:
    """CNN interpolation curves: one colour per learning rate; dashed naive, solid after activation matching."""
    fig, (ax_loss, ax_acc) = new_figure(2, width=9.0, height=3.4)
    for lr, by_method in curves.items():
        for method, ls in (("naive", "--"), ("activations", "-")):
            c = by_method[method]
            style = {"color": color_for(f"lr {lr:g}"), "ls": ls, "marker": "o", "markersize": 3, "label": f"lr {lr:g}, {method}"}
            ax_loss.plot(c.alphas, c.loss, **style)
            ax_acc.plot(c.alphas, c.accuracy, **style)
    ax_acc.axhline(chance, color="0.4", lw=1, ls=":", label="chance")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("α  (0: network A, 1: network B)")
    ax_loss.set(ylabel="loss", title="loss along the line")
    ax_acc.set(ylabel="accuracy", ylim=(0, 1), title="accuracy along the line")
    ax_acc.legend(loc="lower left")
    if title:
        fig.suptitle(title)
    return fig
