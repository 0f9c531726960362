"""Chapter 2's experiments: SGD, Adam, exact natural gradient, KFAC and FOOF side by side.

The algorithms live in :mod:`nnstudies.optim`; this module sizes the runs per
scale, trains (cached by configuration), measures wall-clock time, compares
update directions, and draws the chapter's figures.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from .cache import cached
from .data import Dataset, load_dataset
from .device import get_device
from .models import CNN, MLP
from .optim import (
    FOOF,
    KFAC,
    NaturalGradient,
    a_inner_cosine,
    foof_direction,
    kfac_direction,
    layer_statistics,
    training_step,
)
from .optim import _heuristic  # the damping split, to compare KFAC with FOOF at KFAC's own λ_A
from .plotting import color_for, new_figure
from .progress import progress
from .scales import pick
from .training import DivergenceError, History

__all__ = ["GRIDS", "GRIDS_AUTOENCODER", "METHODS", "PRESETS", "Run", "tune", "autoencoder", "cosine_along_training", "cosine_vs_damping", "explore_optimizers",
           "load_data", "make_model", "plot_cosines", "plot_runs", "time_per_update", "train_run", "trained_model"]

# (lr, damping) per method; damping is None for SGD and Adam. At the smoke and cpu scales: the best point of
# GRIDS / GRIDS_AUTOENCODER (below) by the training loss after 300 updates at the cpu scale, found with
# ``tune(method, scale="cpu", steps=300)``. At the paper scale: the paper's values (MNIST, MLP
# 784-1000-1000-1000-10): KFAC (0.3, 1), exact natural gradient (1e-5, 1e-4), SGD+momentum 0.01, Adam 1e-4,
# FOOF (30, 100); damping values depend on how the factors are scaled, so the paper scale may need retuning.
CPU_CHOICES: dict[str, tuple[float, float | None]] = {
    "sgd": (0.1, None), "adam": (3e-3, None), "natural": (0.3, 0.3), "natural-same": (0.3, 0.3),
    "kfac": (0.01, 1e-3), "kfac-standard": (0.003, 1e-3),
    # FOOF's best grid point, (0.1, 0.01), became unstable (a singular factor) in the full-length run; the
    # runner-up (0.1, 0.1) reached nearly the same loss after 300 updates.
    "foof": (0.1, 0.1),
}
CPU_CHOICES_AUTOENCODER: dict[str, tuple[float, float | None]] = {"sgd": (0.01, None), "kfac": (0.3, 1.0), "foof": (0.03, 1.0)}
PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "dataset": "mnist1d", "n_train": 1000, "n_test": 500, "hidden": [64, 64], "steps": 100, "batch_size": 100,
        "eval_every": 50, "autoencoder": [40, 32, 16, 32, 40], "ae_steps": 60, "cnn": None,
        "hp": CPU_CHOICES, "ae_hp": CPU_CHOICES_AUTOENCODER,
        "dampings": [1e-2, 1.0, 100.0],
        "periods": [1, 10], "timing_updates": 5, "timing_mlp": [784, 256, 256, 10],
    },
    "cpu": {
        "dataset": "mnist1d", "n_train": None, "n_test": None, "hidden": [256, 256], "steps": 1000, "batch_size": 100,
        "eval_every": 100, "autoencoder": [40, 256, 128, 16, 128, 256, 40], "ae_steps": 1000, "cnn": None,
        "hp": CPU_CHOICES, "ae_hp": CPU_CHOICES_AUTOENCODER,
        "dampings": [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3],
        "periods": [1, 10, 100], "timing_updates": 20, "timing_mlp": [784, 1000, 1000, 1000, 10],
    },
    "paper": {
        "dataset": "mnist", "n_train": None, "n_test": None, "hidden": [1000, 1000, 1000], "steps": 6000, "batch_size": 100,
        "eval_every": 300, "autoencoder": [784, 1000, 500, 250, 30, 250, 500, 1000, 784], "ae_steps": 3000,
        "cnn": {"dataset": "cifar10", "channels": [64, 64, 128, 128], "steps": 3000},
        "hp": {"sgd": (0.01, None), "adam": (1e-4, None), "natural": (1e-5, 1e-4), "natural-same": (1e-5, 1e-4),
               "kfac": (0.3, 1.0), "kfac-standard": (0.3, 1.0), "foof": (30.0, 100.0)},
        "ae_hp": {"sgd": (0.01, None), "kfac": (0.3, 1.0), "foof": (30.0, 100.0)},
        "dampings": [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3],
        "periods": [1, 10, 100], "timing_updates": 50, "timing_mlp": [784, 1000, 1000, 1000, 10],
    },
}
METHODS = ("sgd", "adam", "natural", "natural-same", "kfac", "kfac-standard", "foof")
LABELS = {"sgd": "SGD (momentum 0.9)", "adam": "Adam", "natural": "exact natural gradient",
          "natural-same": "exact natural gradient, identical data", "kfac": "KFAC (heuristic damping)",
          "kfac-standard": "KFAC (standard damping)", "foof": "FOOF"}


@lru_cache(maxsize=4)
def load_data(scale: str) -> Dataset:
    p = pick(PRESETS, scale)
    return load_dataset(p["dataset"], n_train=p["n_train"], n_test=p["n_test"]).to(get_device())


def make_model(scale: str, *, kind: str = "mlp") -> nn.Module:
    """The chapter's MLP (ReLU, no bias, as in the paper) or its autoencoder (tanh) at ``scale``."""
    p = pick(PRESETS, scale)
    data = load_data(scale)
    if kind == "mlp":
        return MLP(data.in_features, p["hidden"], data.num_classes, bias=False)
    if kind == "autoencoder":
        return autoencoder(p["autoencoder"])
    if kind == "cnn":
        return CNN(3, 10, p["cnn"]["channels"], dim=2)
    raise ValueError(f"unknown model kind {kind!r}")


def autoencoder(sizes: list[int]) -> nn.Sequential:
    """Linear layers with tanh between them (none after the last): the paper's autoencoder family."""
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


@dataclass
class Run:
    """One training run: the minibatch loss of every update, the cumulative wall-clock time, and evaluations."""

    method: str
    loss: list[float]
    seconds: list[float]
    eval_step: list[int]
    train_loss: list[float]
    test_accuracy: list[float]

    @property
    def final_train_loss(self) -> float:
        return self.train_loss[-1]


def _optimizer(method: str, model: nn.Module, lr: float, damping: float | None, *, loss: str, inv_period: int | None,
               generator: torch.Generator) -> torch.optim.Optimizer:
    if method == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    if method == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr)
    assert damping is not None
    if method in ("natural", "natural-same"):
        return NaturalGradient(model, lr, damping, fisher="mc", loss=loss, generator=generator)
    if method in ("kfac", "kfac-standard"):
        return KFAC(model, lr, damping, damping_kind="standard" if method == "kfac-standard" else "heuristic",
                    fisher="mc", loss=loss, generator=generator, inv_period=inv_period or 1)
    if method == "foof":
        return FOOF(model, lr, damping, inv_period=inv_period or 1)
    raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")


def _losses(kind: str) -> tuple[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """The loss name for :mod:`nnstudies.optim` and the same loss as a function (batch mean)."""
    if kind == "autoencoder":
        return "mse", lambda out, target: 0.5 * ((out - target) ** 2).sum(1).mean()
    return "cross_entropy", F.cross_entropy


@torch.no_grad()
def _evaluate(model: nn.Module, data: Dataset, kind: str) -> tuple[float, float]:
    """(mean training loss over the whole training set, test accuracy; NaN for the autoencoder)."""
    _, loss_fn = _losses(kind)
    target = data.x_train if kind == "autoencoder" else data.y_train
    train_loss = loss_fn(model(data.x_train), target).item()
    if kind == "autoencoder":
        return train_loss, float("nan")
    return train_loss, (model(data.x_test).argmax(1) == data.y_test).float().mean().item()


def _fit(method: str, model: nn.Module, data: Dataset, *, lr: float, damping: float | None, steps: int, batch_size: int,
         eval_every: int, seed: int, kind: str, inv_period: int | None) -> Run:
    loss_name, loss_fn = _losses(kind)
    generator = torch.Generator().manual_seed(seed)
    opt = _optimizer(method, model, lr, damping, loss=loss_name, inv_period=inv_period, generator=generator)
    n = len(data.y_train)
    order = torch.randperm(n, generator=generator)
    other = torch.randperm(n, generator=generator)
    run = Run(method, [], [], [], [], [])
    spent = 0.0
    position = 0
    with progress(total=steps, desc=f"{method} lr {lr:g}" + (f" λ {damping:g}" if damping else "")) as bar:
        for step in range(1, steps + 1):
            if position + batch_size > n:
                order, other, position = torch.randperm(n, generator=generator), torch.randperm(n, generator=generator), 0
            index = order[position : position + batch_size].to(data.x_train.device)
            fisher_index = other[position : position + batch_size].to(data.x_train.device)
            position += batch_size
            x = data.x_train[index]
            y = x if kind == "autoencoder" else data.y_train[index]
            started = time.perf_counter()
            fisher_x = x if method == "natural-same" else data.x_train[fisher_index]
            value = training_step(opt, model, x, y, loss=loss_name, fisher_inputs=fisher_x).item()
            if not math.isfinite(value):
                history = History(step=list(range(1, step)), train_loss=run.loss)
                raise DivergenceError(step, value, history, f" ({LABELS.get(method, method)}, lr={lr}, damping={damping})")
            if data.x_train.is_cuda:
                torch.cuda.synchronize()
            spent += time.perf_counter() - started
            run.loss.append(value)
            run.seconds.append(spent)
            if step % eval_every == 0 or step == steps:
                train_loss, acc = _evaluate(model, data, kind)
                run.eval_step.append(step)
                run.train_loss.append(train_loss)
                run.test_accuracy.append(acc)
                bar.set_postfix(train_loss=f"{train_loss:.3g}", refresh=False)
            bar.update(1)
    if isinstance(opt, (KFAC, FOOF, NaturalGradient)):
        opt.remove_hooks()
    return run


def _trained(method: str, *, scale: str, lr: float | None, damping: float | None, seed: int, kind: str,
             steps: int | None, inv_period: int | None) -> tuple[nn.Module, Run]:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    p = pick(PRESETS, scale)
    hp = p["ae_hp" if kind == "autoencoder" else "hp"].get(method) or p["hp"][method]
    lr = float(lr if lr is not None else hp[0])
    damping = None if method in ("sgd", "adam") else float(damping if damping is not None else hp[1])
    steps = steps or (p["ae_steps"] if kind == "autoencoder" else p["steps"])
    data = load_data(scale)
    device = get_device()
    config = {"chapter": "02", "scale": scale, "method": method, "lr": lr, "damping": damping, "seed": seed, "kind": kind,
              "steps": steps, "inv_period": inv_period, "batch_size": p["batch_size"], "device": device.type,
              "sizes": p["autoencoder"] if kind == "autoencoder" else p["hidden"]}

    def build() -> nn.Module:
        torch.manual_seed(seed)
        return make_model(scale, kind=kind).to(device)

    def fit(model: nn.Module) -> dict[str, Any]:
        run = _fit(method, model, data, lr=lr, damping=damping, steps=steps, batch_size=p["batch_size"],
                   eval_every=p["eval_every"], seed=seed, kind=kind, inv_period=inv_period)
        return run.__dict__

    model, result = cached(config, build=build, fit=fit)
    return model, Run(**result)


def train_run(method: str, *, scale: str, lr: float | None = None, damping: float | None = None, seed: int = 0,
              kind: str = "mlp", steps: int | None = None, inv_period: int | None = None) -> Run:
    """Train the chapter's model with ``method`` (cached); lr and damping default to the preset's choice."""
    return _trained(method, scale=scale, lr=lr, damping=damping, seed=seed, kind=kind, steps=steps, inv_period=inv_period)[1]


def trained_model(method: str, *, scale: str, lr: float | None = None, damping: float | None = None, seed: int = 0,
                  kind: str = "mlp", steps: int | None = None, inv_period: int | None = None) -> nn.Module:
    """The network at the end of :func:`train_run` with the same arguments (cached)."""
    return _trained(method, scale=scale, lr=lr, damping=damping, seed=seed, kind=kind, steps=steps, inv_period=inv_period)[0]


def plot_runs(runs: dict[str, Run], *, title: str = "", ylabel: str = "training loss (whole training set)") -> Figure:
    """Training loss against updates and against wall-clock seconds, one line per run."""
    fig, (ax_steps, ax_time) = new_figure(2, width=9.5, height=3.6)
    for label, run in runs.items():
        style = {"color": color_for(label), "label": label, "marker": "o", "markersize": 2.5}
        ax_steps.plot(run.eval_step, run.train_loss, **style)
        ax_time.plot([run.seconds[s - 1] for s in run.eval_step], run.train_loss, **style)
    ax_steps.set(xlabel="updates", ylabel=ylabel, yscale="log", title="per update")
    ax_time.set(xlabel="wall-clock seconds (this machine)", yscale="log", title="per second")
    ax_time.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if title:
        fig.suptitle(title)
    return fig


def _kfac_vs_foof(model: nn.Module, x: torch.Tensor, y: torch.Tensor, damping: float, damping_kind: str) -> float:
    """Mean over layers of the Ā-cosine between KFAC's direction and FOOF's at KFAC's own λ_A = π√λ."""
    kfac = kfac_direction(model, x, y, damping, damping_kind=damping_kind, fisher="mc",
                          generator=torch.Generator().manual_seed(0))
    stats = layer_statistics(model, x, y, fisher="mc", generator=torch.Generator().manual_seed(0))
    cosines = []
    for i, s in enumerate(stats):
        lam_a, _ = _heuristic(s.a_factor(), s.g_factor(), damping)
        foof = foof_direction(model, x, y, lam_a)
        cosines.append(a_inner_cosine(model, x, kfac, foof)[i])
    return float(np.mean(cosines))


def cosine_vs_damping(model: nn.Module, x: torch.Tensor, y: torch.Tensor, dampings: list[float]) -> dict[str, list[float]]:
    """KFAC-vs-FOOF cosine (Ā inner product) at each damping λ, for heuristic and standard damping."""
    return {kind: [_kfac_vs_foof(model, x, y, lam, kind) for lam in dampings] for kind in ("heuristic", "standard")}


def cosine_along_training(scale: str, *, damping: float, every: int, steps: int, seed: int = 0) -> dict[str, list[float]]:
    """Train with KFAC (heuristic) and, every ``every`` updates, compare KFAC's and FOOF's directions on the batch."""
    p = pick(PRESETS, scale)
    data = load_data(scale)
    torch.manual_seed(seed)
    model = make_model(scale).to(get_device())
    lr = p["hp"]["kfac"][0]
    opt = KFAC(model, lr, damping, fisher="mc", generator=torch.Generator().manual_seed(seed))
    generator = torch.Generator().manual_seed(seed)
    out: dict[str, list[float]] = {"step": [], "heuristic": [], "standard": []}
    for step in range(steps + 1):
        index = torch.randint(len(data.y_train), (p["batch_size"],), generator=generator).to(data.x_train.device)
        x, y = data.x_train[index], data.y_train[index]
        if step % every == 0:
            out["step"].append(step)
            for kind in ("heuristic", "standard"):
                out[kind].append(_kfac_vs_foof(model, x, y, damping, kind))
        if step == steps:
            break
        training_step(opt, model, x, y)
    opt.remove_hooks()
    return out


def time_per_update(model_fn: Callable[[], nn.Module], data: Dataset, settings: dict[str, dict[str, Any]], *,
                    batch_size: int, updates: int = 30, warmup: int = 2) -> dict[str, float]:
    """Seconds per update for each setting {label: {"method", "lr", "damping", "inv_period"}}, inversions amortised.

    Per update = median time of the updates without an inversion + (time of an update with an inversion − that
    median) / T. Each setting runs ``warmup`` + max(``updates``, T + 1) updates, so that an inversion step after
    the warm-up is measured.
    """
    out = {}
    generator = torch.Generator().manual_seed(0)
    for label, s in settings.items():
        model = model_fn()
        period = s.get("inv_period") or 1
        opt = _optimizer(s["method"], model, s["lr"], s.get("damping"), loss="cross_entropy",
                         inv_period=s.get("inv_period"), generator=generator)
        regular, inverting = [], []
        for step in range(warmup + max(updates, period + 1)):
            index = torch.randint(len(data.y_train), (batch_size,), generator=generator).to(data.x_train.device)
            x, y = data.x_train[index], data.y_train[index]
            started = time.perf_counter()
            training_step(opt, model, x, y)
            if x.is_cuda:
                torch.cuda.synchronize()
            if step >= warmup:
                inverts = isinstance(opt, (KFAC, FOOF)) and step % period == 0
                (inverting if inverts else regular).append(time.perf_counter() - started)
        if isinstance(opt, (KFAC, FOOF, NaturalGradient)):
            opt.remove_hooks()
        base = float(np.median(regular)) if regular else float(np.median(inverting))
        extra = (float(np.mean(inverting)) - base) / period if inverting and regular else 0.0
        out[label] = base + max(extra, 0.0)
    return out


def explore_optimizers(method: str, lr: float, damping: float, inv_period: int, *, scale: str) -> Figure:
    """The widget's figure: the reader's run beside SGD and the preset KFAC and FOOF runs."""
    runs = {LABELS["sgd"]: train_run("sgd", scale=scale), LABELS["kfac"]: train_run("kfac", scale=scale),
            LABELS["foof"]: train_run("foof", scale=scale)}
    mine = f"yours: {method}, lr {lr:.3g}" + ("" if method in ("sgd", "adam") else f", λ {damping:.3g}, T {inv_period}")
    try:
        runs[mine] = train_run(method, scale=scale, lr=lr, damping=damping,
                               inv_period=inv_period if method in ("kfac", "kfac-standard", "foof") else None)
        note = ""
    except (DivergenceError, FloatingPointError) as error:
        note = f" — your run stopped: {error}"
    return plot_runs(runs, title="MLP on " + pick(PRESETS, scale)["dataset"] + note)


# Grids for tuning at the cpu scale (lr, damping); a method's preset is the grid point with the lowest final
# training loss after ``steps`` updates. Rerun with ``tune(method, scale="cpu", steps=300)``.
GRIDS: dict[str, list[tuple[float, float | None]]] = {
    "sgd": [(lr, None) for lr in (0.01, 0.03, 0.1, 0.3)],
    "adam": [(lr, None) for lr in (3e-4, 1e-3, 3e-3, 1e-2)],
    "kfac": [(lr, lam) for lr in (0.003, 0.01, 0.03, 0.1) for lam in (1e-4, 1e-3, 1e-2, 1e-1, 1.0)],
    "kfac-standard": [(lr, lam) for lr in (0.003, 0.01, 0.03, 0.1) for lam in (1e-4, 1e-3, 1e-2, 1e-1, 1.0)],
    "foof": [(lr, lam) for lr in (0.01, 0.03, 0.1, 0.3) for lam in (0.01, 0.03, 0.1, 0.3, 1.0)],
    "natural": [(lr, lam) for lr in (0.01, 0.03, 0.1, 0.3, 1.0) for lam in (0.03, 0.1, 0.3, 1.0)],
}


GRIDS_AUTOENCODER: dict[str, list[tuple[float, float | None]]] = {
    "sgd": [(lr, None) for lr in (0.001, 0.003, 0.01)],
    "kfac": [(lr, lam) for lr in (0.1, 0.3, 1.0) for lam in (0.1, 1.0, 10.0)],
    "foof": [(lr, lam) for lr in (0.03, 0.1, 0.3, 1.0) for lam in (0.1, 1.0, 10.0)],
}


def tune(method: str, *, scale: str, steps: int, kind: str = "mlp") -> list[tuple[float, float | None, float]]:
    """Train every point of the method's grid for ``steps`` updates; return (lr, damping, final training loss), best first.

    The grids are ``GRIDS`` (MLP) and ``GRIDS_AUTOENCODER``. A run that diverges (or whose curvature becomes
    singular) scores infinity.
    """
    grids = GRIDS_AUTOENCODER if kind == "autoencoder" else GRIDS
    grid = grids["natural" if method == "natural-same" else method]
    scores = []
    for lr, damping in grid:
        try:
            loss = train_run(method, scale=scale, lr=lr, damping=damping, steps=steps, kind=kind).final_train_loss
        except (DivergenceError, FloatingPointError):
            loss = math.inf
        scores.append((lr, damping, loss if math.isfinite(loss) else math.inf))
    return sorted(scores, key=lambda s: s[2])


def plot_cosines(along: dict[str, list[float]], by_damping: dict[str, list[float]], dampings: list[float], *,
                 damping: float, after: int) -> Figure:
    """KFAC-vs-FOOF cosines: along a KFAC run (left) and across dampings after ``after`` updates (right)."""
    fig, (ax1, ax2) = new_figure(2, width=9.5, height=3.4)
    for kind in ("heuristic", "standard"):
        label = LABELS["kfac" if kind == "heuristic" else "kfac-standard"]
        style = {"marker": "o", "color": color_for(label), "label": label}
        ax1.plot(along["step"], along[kind], **style)
        ax2.plot(dampings, by_damping[kind], **style)
    ax1.set(xlabel="KFAC update", ylabel="cosine to FOOF (Ā inner product)", ylim=(-0.05, 1.05),
            title=f"along training, λ = {damping:g}")
    ax2.set(xscale="log", xlabel="damping λ", ylim=(-0.05, 1.05), title=f"after {after} KFAC updates, across dampings")
    ax2.legend(loc="lower right")
    return fig
