"""Chapter 3's experiments: continual-learning benchmarks per scale, tuned strengths, correlations, figures, widget.

The algorithms live in :mod:`nnstudies.continual`; this module sizes and runs the
chapter's experiments at each scale and draws its figures. Every training run is
cached by its configuration (:func:`nnstudies.cached`), so re-running a cell or
moving a widget back to a value seen before does not train again.

Strength tuning: for every method, c is chosen from a small grid of
``PRESETS[scale]["grid"][benchmark][method]`` (c0/3, c0 and 3·c0 at the cpu scale; c0 alone at
smoke; the paper's chosen c alone at the paper scale)
by the average accuracy on a *validation* split held out from the training data
(20% at the cpu scale); the test accuracy of that run is what the chapter reports.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator
from torch import nn

from . import continual as cl
from .cache import cached
from .data import load_dataset
from .device import get_device
from .models import CNN, MLP
from .plotting import PALETTE, color_for, new_figure
from .scales import pick

__all__ = [
    "BENCHMARKS",
    "LABELS",
    "PRESETS",
    "REGULARISED",
    "best_method",
    "bias_summary",
    "bias_vs_batch_size",
    "correlation_importances",
    "explore_continual",
    "forgetting",
    "load_tasks",
    "plot_bias",
    "plot_correlations",
    "plot_forgetting",
    "plot_matrix",
    "plot_methods",
    "plot_tuning",
    "train_run",
    "tune",
]

BENCHMARKS = ("permuted", "split")
REGULARISED = ("EWC", "MAS", "AF", "sqrtFisher", "SI", "SIU", "SIB", "SOS")
LABELS = {"none": "none", "EWC": "EWC", "MAS": "MAS", "AF": "AF", "sqrtFisher": "√Fisher", "SI": "SI",
          "SIU": "SIU", "SIB": "SIB", "SOS": "SOS", "OnAF": "OnAF"}

# Strength grids, per benchmark: c0/3, c0 and 3·c0 around a centre c0 per measure, calibrated once
# for these small MLPs on the validation splits (a sweep a decade apart), never on test data.
_CENTRE = {
    "permuted": {"EWC": 3.0, "MAS": 3.0, "AF": 0.5, "sqrtFisher": 0.15, "SI": 3.0, "SIU": 20.0, "SIB": 5.0, "SOS": 1.0},
    "split": {"EWC": 10.0, "MAS": 5.0, "AF": 2.0, "sqrtFisher": 0.5, "SI": 10.0, "SIU": 30.0, "SIB": 10.0, "SOS": 2.0},
}
_CPU_GRID = {b: {m: [round(c / 3, 4), c, round(3 * c, 4)] for m, c in centres.items()}
             for b, centres in _CENTRE.items()}

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "dataset": "mnist1d", "n_train": None, "n_test": 500, "validation": 0.2,
        "permuted": {"n_tasks": 3, "max_tasks": 4, "hidden": [128, 128], "epochs": 1, "batch_size": 64, "lr": 3e-3},
        "split": {"classes_per_task": 2, "hidden": [128, 128], "epochs": 1, "batch_size": 64, "lr": 2e-3},
        "n_importance": 200, "damping": 0.1,
        "grid": {b: {m: [c] for m, c in centres.items()} for b, centres in _CENTRE.items()},
        "bias_batch_sizes": [16, 128], "bias_epochs": 1,
        "scatter_points": 600,
    },
    "cpu": {
        "dataset": "mnist1d", "n_train": None, "n_test": None, "validation": 0.2,
        "permuted": {"n_tasks": 4, "max_tasks": 8, "hidden": [256, 256], "epochs": 5, "batch_size": 128, "lr": 2e-3},
        "split": {"classes_per_task": 2, "hidden": [256, 256], "epochs": 5, "batch_size": 64, "lr": 1e-3},
        "n_importance": 500, "damping": 0.1,
        "grid": _CPU_GRID,
        "bias_batch_sizes": [16, 64, 256], "bias_epochs": 3,
        "scatter_points": 4000,
    },
    "paper": {
        # Paper: 10 tasks, 20 epochs per task, batch 256, Adam 1e-3, MLP 784-2000-2000-10. Cut to 2 epochs,
        # and the paper's chosen strengths only (no grid), to fit about an hour of one GPU.
        "dataset": "mnist", "n_train": None, "n_test": None, "validation": 0.1,
        "permuted": {"n_tasks": 10, "max_tasks": 10, "hidden": [2000, 2000], "epochs": 2, "batch_size": 256, "lr": 1e-3},
        # Split CIFAR-10 (5 two-class tasks, multi-head) with the library's CNN; the paper's Split CIFAR-10/100
        # uses 6 tasks and a 4-conv CNN with dropout for 60 epochs per task.
        "split": {"dataset": "cifar10", "classes_per_task": 2, "channels": [32, 32, 64, 64], "epochs": 5,
                  "batch_size": 256, "lr": 1e-3},
        "n_importance": 1000, "damping": 0.1,
        # The paper's chosen strengths: all on Permuted MNIST; SI 5 and MAS 200 on Split CIFAR (the others,
        # not reported for CIFAR, keep their P-MNIST values there).
        "grid": {"permuted": {"EWC": [1e3], "MAS": [500.0], "AF": [200.0], "sqrtFisher": [2.0], "SI": [0.2],
                              "SIU": [2.0], "SIB": [0.5], "SOS": [1.0]},
                 "split": {"EWC": [1e3], "MAS": [200.0], "AF": [200.0], "sqrtFisher": [2.0], "SI": [5.0],
                           "SIU": [2.0], "SIB": [0.5], "SOS": [1.0]}},
        "bias_batch_sizes": [64, 256, 1024], "bias_epochs": 2,
        "scatter_points": 4000,
    },
}


@lru_cache(maxsize=8)
def load_tasks(benchmark: str, scale: str) -> tuple[cl.Task, ...]:
    """All tasks of ``benchmark`` (``"permuted"``: ``max_tasks`` of them; ``"split"``) at ``scale``, on the device."""
    p = pick(PRESETS, scale)
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose one of {BENCHMARKS}")
    setting = p[benchmark]
    data = load_dataset(setting.get("dataset", p["dataset"]), n_train=p["n_train"], n_test=p["n_test"])
    if benchmark == "permuted":
        tasks = cl.permuted_tasks(data, setting["max_tasks"], seed=0, validation=p["validation"])
    else:
        tasks = cl.split_tasks(data, setting["classes_per_task"], validation=p["validation"], seed=0)
    device = get_device()
    return tuple(t.to(device) for t in tasks)


def _model_fn(benchmark: str, scale: str) -> tuple[Any, dict[str, Any]]:
    p = pick(PRESETS, scale)
    setting = p[benchmark]
    task = load_tasks(benchmark, scale)[0]
    n_out = 10
    if "channels" in setting:
        shape = tuple(task.x_train.shape[1:])
        dim = len(shape) - 1 if len(shape) > 1 else 1
        return (lambda: CNN(shape[0] if len(shape) > 1 else 1, n_out, setting["channels"], dim=dim).to(get_device())), setting
    features = int(np.prod(task.x_train.shape[1:]))
    return (lambda: MLP(features, setting["hidden"], n_out).to(get_device())), setting


def train_run(benchmark: str, method: str, strength: float, *, scale: str, n_tasks: int | None = None,
              damping: float | None = None, batch_size: int | None = None, epochs: int | None = None,
              track: tuple[str, ...] = (), keep_importances: bool = False, seed: int = 0) -> cl.ContinualResult:
    """One continual run (cached): ``method`` at strength ``strength`` on the scale's ``benchmark``.

    ``None`` arguments take the preset's values. Importances are kept in the result only
    when ``keep_importances`` or ``track`` asks for them (they are large at the paper scale).
    Below the paper scale on a CPU, training runs on one thread: these MLPs are too small
    to gain from more, and on a busy machine extra threads cost far more than they give.
    """
    p = pick(PRESETS, scale)
    make, setting = _model_fn(benchmark, scale)
    tasks = load_tasks(benchmark, scale)
    n_tasks = n_tasks or setting.get("n_tasks", len(tasks))
    if not 1 <= n_tasks <= len(tasks):
        raise ValueError(f"n_tasks must be in 1..{len(tasks)} for {benchmark} at {scale}, got {n_tasks}")
    damping = float(damping if damping is not None else p["damping"])
    batch_size = int(batch_size or setting["batch_size"])
    epochs = int(epochs or setting["epochs"])
    config = {"chapter": "03", "benchmark": benchmark, "scale": scale, "method": method, "strength": float(strength),
              "n_tasks": n_tasks, "damping": damping, "batch_size": batch_size, "epochs": epochs, "lr": setting["lr"],
              "setting": setting, "n_importance": p["n_importance"], "track": list(track), "keep": keep_importances,
              "seed": seed, "device": get_device().type, "n_train": len(tasks[0].y_train)}

    def fit(_: nn.Module) -> dict[str, Any]:
        result = cl.run_continual(make, list(tasks[:n_tasks]), method, float(strength), epochs=epochs,
                                  batch_size=batch_size, lr=setting["lr"], damping=damping,
                                  n_importance=p["n_importance"], track=track, seed=seed,
                                  desc=f"{benchmark} {LABELS.get(method, method)} c={strength:g}",
                                  threads=1 if scale != "paper" and get_device().type == "cpu" else None)
        if not (keep_importances or track):
            result.importances = {}
        return result.to_dict()

    _, stored = cached(config, build=lambda: nn.Linear(1, 1), fit=fit)
    return cl.ContinualResult.from_dict(stored)


def tune(benchmark: str, *, scale: str, methods: tuple[str, ...] = REGULARISED) -> dict[str, dict[str, Any]]:
    """For each method, every strength of the grid and the one chosen on validation accuracy.

    Returns ``{method: {"grid": [(c, val, test), ...], "c": chosen, "val": ..., "test": ...,
    "result": ContinualResult}}``, with ``"none"`` (no penalty) included.
    """
    grid = pick(PRESETS, scale)["grid"][benchmark]
    out: dict[str, dict[str, Any]] = {}
    none = train_run(benchmark, "none", 0.0, scale=scale)
    out["none"] = {"grid": [(0.0, none.average_val_accuracy, none.average_accuracy)], "c": 0.0,
                   "val": none.average_val_accuracy, "test": none.average_accuracy, "result": none}
    for method in methods:
        runs = [(c, train_run(benchmark, method, c, scale=scale)) for c in grid[method]]
        rows = [(c, r.average_val_accuracy, r.average_accuracy) for c, r in runs]
        best = max(range(len(rows)), key=lambda i: rows[i][1])
        out[method] = {"grid": rows, "c": rows[best][0], "val": rows[best][1], "test": rows[best][2],
                       "result": runs[best][1]}
    return out


def best_method(tuned: dict[str, dict[str, Any]]) -> str:
    """The regularised method with the highest validation accuracy at its chosen strength."""
    return max((m for m in tuned if m != "none"), key=lambda m: tuned[m]["val"])


def correlation_importances(benchmark: str, *, scale: str) -> dict[str, list[torch.Tensor]]:
    """Every measure's Ω for the first task of ``benchmark``, all on one training trajectory (no penalty)."""
    track = ("EWC", "sqrtFisher", "AF", "MAS", "SI", "SIU", "SIB", "SOS", "OnAF")
    result = train_run(benchmark, "none", 0.0, scale=scale, n_tasks=1, track=track)
    return {m: result.importances[m][0] for m in track}


def bias_vs_batch_size(*, scale: str) -> dict[int, dict[str, list[torch.Tensor]]]:
    """SI, SIU, SIB and SOS on the first permuted task, trained with each of the preset's batch sizes."""
    p = pick(PRESETS, scale)
    out = {}
    for b in p["bias_batch_sizes"]:
        r = train_run("permuted", "none", 0.0, scale=scale, n_tasks=1, batch_size=b, epochs=p["bias_epochs"],
                      track=("SI", "SIU", "SIB", "SOS"))
        out[b] = {m: r.importances[m][0] for m in ("SI", "SIU", "SIB", "SOS")}
    return out


def _flat(values: list[torch.Tensor]) -> np.ndarray:
    return torch.cat([v.reshape(-1) for v in values]).double().numpy()


# ----------------------------------------------------------------------------- figures


def plot_forgetting(results: dict[str, cl.ContinualResult], *, title: str = "") -> Figure:
    """Test accuracy on each task (one line per task) against the number of tasks trained, one panel per run."""
    fig, axes = new_figure(len(results), width=4.6 * len(results), height=3.4)
    for ax, (name, r) in zip(axes, results.items()):
        acc = r.accuracy.numpy()
        n = acc.shape[0]
        for j in range(n):
            ax.plot(range(j + 1, n + 1), acc[j:, j], marker="o", markersize=3, label=f"task {j + 1}")
        ax.plot(range(1, n + 1), [acc[i, : i + 1].mean() for i in range(n)], color="0.2", lw=2.5, ls="--",
                label="average of tasks so far")
        ax.set(xlabel="tasks trained", ylabel="test accuracy", title=name, xticks=list(range(1, n + 1)))
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if title:
        fig.suptitle(title)
    return fig


def plot_tuning(tuned: dict[str, dict[str, dict[str, Any]]]) -> Figure:
    """Validation accuracy after all tasks against the strength c, per method; one panel per benchmark."""
    fig, axes = new_figure(len(tuned), width=4.8 * len(tuned), height=3.6)
    for ax, (bench, by_method) in zip(axes, tuned.items()):
        for method, t in by_method.items():
            if method == "none":
                ax.axhline(t["val"], color="0.3", ls="--", lw=1.2, label="none")
                continue
            cs, vals = [g[0] for g in t["grid"]], [g[1] for g in t["grid"]]
            ax.plot(cs, vals, marker="o", markersize=3, color=color_for(method), label=LABELS[method])
        ax.set(xscale="log", xlabel="strength c", ylabel="average validation accuracy", title=bench)
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def plot_methods(tuned: dict[str, dict[str, dict[str, Any]]]) -> Figure:
    """Average test accuracy after all tasks per method at its tuned c; one panel per benchmark."""
    fig, axes = new_figure(len(tuned), width=4.8 * len(tuned), height=3.4)
    for ax, (bench, by_method) in zip(axes, tuned.items()):
        names = list(by_method)
        values = [by_method[m]["test"] for m in names]
        ax.bar(range(len(names)), values, color=["0.6" if m == "none" else color_for(m) for m in names])
        ax.axhline(by_method["none"]["test"], color="0.3", ls="--", lw=1)
        low, high = min(values), max(values)
        ax.set_ylim(max(0.0, low - 0.5 * (high - low) - 0.02), min(1.0, high + 0.3 * (high - low) + 0.02))
        ax.set_xticks(range(len(names)), [LABELS[m] for m in names], rotation=45, ha="right")
        ax.set(ylabel="average test accuracy, all tasks", title=bench)
    return fig


def plot_correlations(importances: dict[str, list[torch.Tensor]], pairs: list[tuple[str, str]], *,
                      title: str = "", max_points: int = 4000) -> Figure:
    """Scatter plots of Ω pairs (log-log, positive entries; a random subset of ``max_points``) with Pearson's r."""
    fig, axes = new_figure(len(pairs), width=3.4 * len(pairs), height=3.3)
    rng = np.random.default_rng(0)
    for ax, (a, b) in zip(axes, pairs):
        x, y = _flat(importances[a]), _flat(importances[b])
        r = cl.pearson(importances[a], importances[b])
        keep = np.flatnonzero((x > 0) & (y > 0))
        keep = rng.choice(keep, size=min(max_points, len(keep)), replace=False)
        ax.scatter(x[keep], y[keep], s=3, alpha=0.35, color=PALETTE[0], rasterized=True)
        ax.set(xscale="log", yscale="log", xlabel=LABELS[a], ylabel=LABELS[b], title=f"Pearson r = {r:.2f}")
    if title:
        fig.suptitle(title)
    return fig


def bias_summary(bias: dict[int, dict[str, list[torch.Tensor]]]) -> dict[int, dict[str, float]]:
    """Per batch size: r(SI, SOS), r(SI, SIU), r(SI, SIB), the mean Ω of SI, SIU, SIB and the mean √v (SOS)."""
    out = {}
    for b, imp in bias.items():
        means = {m: float(_flat(imp[m]).mean()) for m in ("SI", "SIU", "SIB", "SOS")}
        out[b] = {"r_SOS": cl.pearson(imp["SI"], imp["SOS"]), "r_SIU": cl.pearson(imp["SI"], imp["SIU"]),
                  "r_SIB": cl.pearson(imp["SI"], imp["SIB"]), **{f"mean_{m}": v for m, v in means.items()}}
    return out


def plot_bias(summary: dict[int, dict[str, float]]) -> Figure:
    """Left: correlation of SI with SOS, SIB and SIU against batch size. Right: mean importances, rescaled."""
    sizes = sorted(summary)
    fig, (ax_r, ax_m) = new_figure(2, width=9.0, height=3.4)
    for key, label in (("r_SOS", "SI vs SOS"), ("r_SIB", "SI vs SIB"), ("r_SIU", "SI vs SIU")):
        ax_r.plot(sizes, [summary[b][key] for b in sizes], marker="o", color=color_for(key[2:]), label=label)
    ax_r.set(xscale="log", xlabel="batch size", ylabel="Pearson r", title="what SI's importance resembles")
    ax_r.set_xticks(sizes, [str(b) for b in sizes])
    ax_r.minorticks_off()
    ax_r.legend(loc="best")
    for m in ("SI", "SIB", "SIU", "SOS"):
        ax_m.plot(sizes, [summary[b][f"mean_{m}"] for b in sizes], marker="o", color=color_for(m),
                  label=f"mean Ω, {m}" if m != "SOS" else "mean √v (SOS)")
    ax_m.set(xscale="log", yscale="log", xlabel="batch size", ylabel="mean over parameters", title="magnitudes")
    ax_m.set_xticks(sizes, [str(b) for b in sizes], minor=False)
    ax_m.xaxis.set_minor_locator(NullLocator())
    ax_m.legend(loc="best")
    return fig


def plot_matrix(result: cl.ContinualResult, *, title: str = "") -> Figure:
    """The accuracy matrix (task trained × task tested) beside each task's accuracy curve."""
    fig, (ax_m, ax_c) = new_figure(2, width=9.0, height=3.6)
    acc = result.accuracy.numpy()
    n = acc.shape[0]
    image = ax_m.imshow(acc, cmap="viridis", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax_m.text(j, i, f"{acc[i, j]:.2f}", ha="center", va="center", fontsize=7,
                      color="white" if acc[i, j] < 0.6 else "black")
    ax_m.set(xlabel="task tested", ylabel="after training task", xticks=range(n), yticks=range(n),
             xticklabels=range(1, n + 1), yticklabels=range(1, n + 1), title="test accuracy")
    ax_m.grid(False)
    fig.colorbar(image, ax=ax_m, shrink=0.8)
    for j in range(n):
        ax_c.plot(range(j + 1, n + 1), acc[j:, j], marker="o", markersize=3, label=f"task {j + 1}")
    ax_c.set(xlabel="tasks trained", ylabel="test accuracy", xticks=list(range(1, n + 1)), title="each task over time")
    ax_c.legend(loc="best", fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def explore_continual(method: str, strength: float, n_tasks: int, damping: float, batch_size: int, *,
                      scale: str) -> Figure:
    """The widget's figure: one Permuted run with the given method, strength, tasks, SI damping and batch size."""
    r = train_run("permuted", method, strength if method != "none" else 0.0, scale=scale, n_tasks=int(n_tasks),
                  damping=damping, batch_size=int(batch_size))
    title = (f"Permuted, {LABELS[method]}, c={strength:.3g}, ξ={damping:.3g}, batch {int(batch_size)}: "
             f"average test accuracy after {int(n_tasks)} tasks {r.average_accuracy:.1%}")
    return plot_matrix(r, title=title)


def forgetting(result: cl.ContinualResult) -> float:
    """Mean over earlier tasks of (accuracy right after learning it − accuracy after the last task)."""
    acc = result.accuracy
    n = acc.shape[0]
    if n < 2:
        return math.nan
    return float(torch.stack([acc[j, j] - acc[-1, j] for j in range(n - 1)]).mean())
