"""Chapter 2's experiments: SGD, Adam, the exact natural gradient, KFAC and FOOF side by side, on
several seeds.

The algorithms live in :mod:`nnstudies.optim`. This module holds what the chapter does
with them: a typed :class:`Preset` per scale, one registry of methods (:data:`METHODS`),
the step function every run uses (:func:`neuron_step`, run by :func:`nnstudies.fit`),
the comparison on several seeds, the KFAC-vs-FOOF cosines, interleaved timings, the
claims and their per-seed values, the tuning that chose the learning rates, and figures.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from .. import optim
from ..cache import cached
from ..data import Dataset, load_dataset
from ..device import get_device
from ..models import MLP
from ..plotting import PALETTE, new_figure
from ..results import Claim, Rule
from ..scales import dry_run, pick
from ..training import DivergenceError, History, fit, minibatches

__all__ = [
    "CLAIMS",
    "CONTROL_METHODS",
    "FULL_GRIDS",
    "GRIDS",
    "METHODS",
    "MLP_METHODS",
    "PRESETS",
    "Comparison",
    "Experiment",
    "Method",
    "Preset",
    "Run",
    "Setting",
    "Timing",
    "TimingResult",
    "TuningResult",
    "autoencoder",
    "batch_stream",
    "chosen_setting",
    "claim_values",
    "compare",
    "cosine_to_foof",
    "cosine_vs_damping",
    "explorer_chart",
    "explorer_figure",
    "explorer_rows",
    "load_data",
    "make_model",
    "neuron_step",
    "plot_cosines",
    "plot_final_losses",
    "plot_runs",
    "time_per_update",
    "train_run",
    "trained_model",
    "tune",
]


# ------------------------------------------------------------------------ the methods: one registry


@dataclass(frozen=True)
class Setting:
    """A method's learning rate and, for the curvature methods, its damping λ."""

    lr: float
    damping: float | None = None

    def __str__(self) -> str:
        return f"lr {self.lr:g}" + ("" if self.damping is None else f", λ {self.damping:g}")


Builder = Callable[..., torch.optim.Optimizer]


@dataclass(frozen=True)
class Method:
    """One optimizer of the chapter: how to build it, its label and colour in every figure."""

    name: str
    label: str
    short: str  #: for tick labels and legends with little room
    colour: str
    build: Builder  #: build(model, setting, *, loss, inv_period, generator) -> optimizer
    curvature: bool = False  #: takes a damping λ (and, for KFAC and FOOF, an inversion period)
    identical_data: bool = False  #: the natural gradient's Fisher on the gradient's own batch


def _sgd(model: nn.Module, s: Setting, **_: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=s.lr, momentum=0.9)


def _adam(model: nn.Module, s: Setting, **_: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=s.lr)


def _natural(
    model: nn.Module, s: Setting, *, loss: str, generator: torch.Generator, **_: Any
) -> torch.optim.Optimizer:
    assert s.damping is not None
    return optim.NaturalGradient(
        model, s.lr, s.damping, fisher="mc", loss=loss, generator=generator
    )


def _kfac(kind: str) -> Builder:
    def build(
        model: nn.Module, s: Setting, *, loss: str, inv_period: int, generator: torch.Generator
    ) -> torch.optim.Optimizer:
        assert s.damping is not None
        return optim.KFAC(
            model,
            s.lr,
            s.damping,
            damping_kind=kind,
            fisher="mc",
            loss=loss,
            inv_period=inv_period,
            generator=generator,
        )

    return build


def _foof(model: nn.Module, s: Setting, *, inv_period: int, **_: Any) -> torch.optim.Optimizer:
    assert s.damping is not None
    return optim.FOOF(model, s.lr, s.damping, inv_period=inv_period)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("sgd", "SGD (momentum 0.9)", "SGD", PALETTE[0], _sgd),
        Method("adam", "Adam", "Adam", PALETTE[5], _adam),
        Method("natural", "exact natural gradient", "NG", PALETTE[1], _natural, curvature=True),
        Method(
            "natural-same",
            "exact natural gradient, identical data",
            "NG, same data",
            PALETTE[4],
            _natural,
            curvature=True,
            identical_data=True,
        ),
        Method(
            "kfac",
            "KFAC (heuristic damping)",
            "KFAC heuristic",
            PALETTE[2],
            _kfac("heuristic"),
            curvature=True,
        ),
        Method(
            "kfac-standard",
            "KFAC (standard damping)",
            "KFAC standard",
            PALETTE[3],
            _kfac("standard"),
            curvature=True,
        ),
        Method("foof", "FOOF", "FOOF", PALETTE[6], _foof, curvature=True),
    )
}
AUTOENCODER_METHODS = ("sgd", "kfac", "foof")


def _method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {list(METHODS)}") from None


# ----------------------------------------------------------------------------- typed presets


@dataclass(frozen=True)
class Experiment:
    """One training comparison: the network's hidden widths, the run length and each method's
    setting."""

    hidden: tuple[int, ...]  #: hidden widths; input and output widths come from the data
    steps: int
    batch_size: int
    eval_every: int
    settings: Mapping[str, Setting]  #: per method name (used where ``grids`` is None)
    inv_period: int = 1  #: KFAC's and FOOF's inversion period T
    methods: tuple[str, ...] = ()  #: the methods compared (default: every method of METHODS)
    #: when set, each method's setting is tuned in the run: the best stable point of its grid,
    #: scored by the final training loss of the full-length run on ``tune_seeds`` (see :func:`tune`)
    grids: Mapping[str, Sequence[Setting]] | None = None
    tune_seeds: tuple[int, ...] = (0,)
    #: with ``grids``: a grid grows past an end whose learning rate scores best, one 3× step at a
    #: time and at most ``extend`` steps per end (see :func:`tune`)
    extend: int = 0
    n_examples: int | None = None  #: train on the first n training examples only (the control)


@dataclass(frozen=True)
class Timing:
    """The interleaved timing: the MLP timed (widths, input to output), batch, updates per repeat,
    repeats.
    """

    sizes: tuple[int, ...]
    batch_size: int
    updates: int
    repeats: int
    period: int  #: the inversion period T amortised in the claims


@dataclass(frozen=True)
class Preset:
    """Chapter 2's settings at one scale.

    ``seeds``: independent runs (initialisation, batch order, sampled labels) per method. ``mlp``:
    the classifier (ReLU, no biases, as in the paper); ``autoencoder``: tanh, squared error,
    reconstructing its input; ``control``: the MLP on a fixed set of images, full batch, where
    the natural gradient's Fisher sees exactly the gradient's data (the paper's Fig. 1B). ``cosine_dampings``: the λ grid of the cosine-vs-damping figure. The
    explorer trains the first seed of each of ``explorer_methods`` for ``explorer_steps`` updates at
    the tuned setting times each of ``explorer_lr_factors`` (learning rate) and
    ``explorer_damping_factors`` (λ). ``eval_examples``:
    the training examples the training loss is measured on (None: all).
    """

    dataset: str
    seeds: tuple[int, ...]
    mlp: Experiment
    autoencoder: Experiment
    control: Experiment  #: identical data: a fixed set of n_examples images, full batch
    cosine_dampings: tuple[float, ...]
    timing: Timing
    explorer_steps: int = 200
    explorer_methods: tuple[str, ...] = ("sgd", "kfac", "kfac-standard", "foof")
    explorer_lr_factors: tuple[float, ...] = (1 / 3, 1.0, 3.0)
    explorer_damping_factors: tuple[float, ...] = (0.1, 1.0, 10.0)
    n_train: int | None = None
    n_test: int | None = None
    eval_examples: int | None = None
    explorer_scale: str | None = None  #: the scale whose model the explorer trains (default: own)


# Learning rates and dampings at `smoke` and `cpu`: chosen by `tune(method, scale="cpu")` on GRIDS
# (below), scored
# by the final training loss of the full 500-update `cpu` run on seeds 0 and 1, among the grid
# points at least one
# grid step (3×) away from the edge of stability (see `TuningResult.choice`); the identical-data
# natural gradient
# uses the natural gradient's. At `full` and `paper`: the paper's values (Benzing 2022, MNIST MLP);
# damping
# values depend on how the factors are scaled, so those scales may need retuning.
CPU_SETTINGS: dict[str, Setting] = {
    "sgd": Setting(0.03),
    "adam": Setting(0.01),
    "natural": Setting(0.1, 0.3),
    "natural-same": Setting(0.1, 0.3),
    "kfac": Setting(0.01, 0.003),
    "kfac-standard": Setting(0.01, 0.01),
    "foof": Setting(0.1, 0.03),
}
CPU_SETTINGS_AUTOENCODER: dict[str, Setting] = {
    "sgd": Setting(0.003),
    "kfac": Setting(0.1, 1.0),
    "foof": Setting(0.01, 0.3),
}
PAPER_SETTINGS: dict[str, Setting] = {
    "sgd": Setting(0.01),
    "adam": Setting(1e-4),
    "natural": Setting(1e-5, 1e-4),
    "natural-same": Setting(1e-5, 1e-4),
    "kfac": Setting(0.3, 1.0),
    "kfac-standard": Setting(0.3, 1.0),
    "foof": Setting(30.0, 100.0),
}
PAPER_SETTINGS_AUTOENCODER: dict[str, Setting] = {
    "sgd": Setting(0.01),
    "kfac": Setting(0.3, 1.0),
    "foof": Setting(30.0, 100.0),
}


def _grid(lrs: Sequence[float], dampings: Sequence[float] | None = None) -> list[Setting]:
    if dampings is None:
        return [Setting(lr) for lr in lrs]
    return [Setting(lr, lam) for lr in lrs for lam in dampings]


_DAMPINGS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3)
_PAPER_MLP = (784, 1000, 1000, 1000, 10)

MLP_METHODS = ("sgd", "adam", "natural", "kfac", "kfac-standard", "foof")
CONTROL_METHODS = ("kfac", "natural-same")

# `full`: the paper's MLP (784-1000-1000-1000-10, ReLU, no biases, batch 100) on Fashion-MNIST, 2000
# updates per run (the paper: 6000), every method tuned in the run on a grid of learning rates at
# one damping (scored by the final training loss of the full-length run on seed 0, the best stable
# point; that run is also seed 0 of the comparison), then seeds 1 and 2. A grid grows past an end
# that scores best, by up to two 3× steps (`Experiment.extend`). Centres and dampings: the best
# points of the previous 300-update run (its KFAC optima sat on the grids' upper ends, so those
# grids start one step higher). T = 50. Measured per update (1 thread): SGD 38 ms, Adam 55, exact
# natural gradient 128, KFAC (heuristic) about 105, KFAC (standard) about 260 (its direction needs
# two dense products per layer in the factors' eigenbases, 4n³ flops, at every update), FOOF 60: about
# 110 CPU-minutes for the MLP's 30-odd runs, run as two processes sharing one model cache. The
# control (30 full-batch updates) and the autoencoder (40 updates at batch 1000) are as before.
FULL_GRIDS: dict[str, list[Setting]] = {
    "sgd": _grid((0.01, 0.03, 0.1)),
    "adam": _grid((1e-4, 3e-4, 1e-3)),
    "natural": _grid((3e-5, 1e-4, 3e-4), (1e-3,)),
    "kfac": _grid((0.1, 0.3, 1.0), (1.0,)),
    "kfac-standard": _grid((0.003, 0.01, 0.03), (0.1,)),
    "foof": _grid((0.1, 0.3, 1.0), (10.0,)),
}
FULL_GRIDS_AUTOENCODER: dict[str, list[Setting]] = {
    "kfac": _grid((0.01, 0.03, 0.1), (10.0,)),
    "foof": _grid((0.001, 0.003, 0.01), (1.0,)),
}
# `smoke` tunes in the run too, on two-point grids, so that the tests run the code `full` runs.
SMOKE_GRIDS: dict[str, list[Setting]] = {
    name: [s, replace(s, lr=3 * s.lr)] for name, s in CPU_SETTINGS.items() if name in MLP_METHODS
}

PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        "mnist1d",
        seeds=(0, 1, 2),
        n_train=1000,
        n_test=500,
        mlp=Experiment(
            (64, 64),
            steps=100,
            batch_size=100,
            eval_every=50,
            settings=CPU_SETTINGS,
            methods=MLP_METHODS,
            grids=SMOKE_GRIDS,
            extend=1,
        ),
        autoencoder=Experiment(
            (32, 16, 32),
            steps=60,
            batch_size=100,
            eval_every=30,
            settings=CPU_SETTINGS_AUTOENCODER,
            methods=AUTOENCODER_METHODS,
        ),
        control=Experiment(
            (64, 64),
            steps=30,
            batch_size=500,
            eval_every=15,
            settings=CPU_SETTINGS,
            methods=CONTROL_METHODS,
            n_examples=500,
        ),
        cosine_dampings=(1e-2, 1.0, 100.0),
        timing=Timing((784, 256, 256, 10), batch_size=100, updates=2, repeats=3, period=100),
        explorer_steps=50,
    ),
    "cpu": Preset(
        "mnist1d",
        seeds=(0, 1, 2),
        mlp=Experiment(
            (128, 128),
            steps=500,
            batch_size=100,
            eval_every=50,
            settings=CPU_SETTINGS,
            methods=MLP_METHODS,
        ),
        autoencoder=Experiment(
            (128, 64, 16, 64, 128),
            steps=500,
            batch_size=100,
            eval_every=50,
            settings=CPU_SETTINGS_AUTOENCODER,
            methods=AUTOENCODER_METHODS,
        ),
        control=Experiment(
            (128, 128),
            steps=200,
            batch_size=1000,
            eval_every=50,
            settings=CPU_SETTINGS,
            methods=CONTROL_METHODS,
            n_examples=1000,
        ),
        cosine_dampings=_DAMPINGS,
        timing=Timing(_PAPER_MLP, batch_size=100, updates=5, repeats=3, period=100),
        explorer_steps=150,
    ),
    "full": Preset(
        "fashion_mnist",
        seeds=(0, 1, 2),
        eval_examples=2000,
        n_test=2000,
        mlp=Experiment(
            (1000, 1000, 1000),
            steps=2000,
            batch_size=100,
            eval_every=100,
            settings=PAPER_SETTINGS,
            inv_period=50,
            methods=MLP_METHODS,
            grids=FULL_GRIDS,
            extend=2,
        ),
        autoencoder=Experiment(
            (1000, 500, 250, 30, 250, 500, 1000),
            steps=40,
            batch_size=1000,
            eval_every=10,
            settings=PAPER_SETTINGS_AUTOENCODER,
            inv_period=20,
            methods=("kfac", "foof"),
            grids=FULL_GRIDS_AUTOENCODER,
            extend=2,
        ),
        control=Experiment(
            (1000, 1000, 1000),
            steps=30,
            batch_size=1000,
            eval_every=10,
            settings=PAPER_SETTINGS,
            inv_period=20,
            methods=CONTROL_METHODS,
            n_examples=1000,
        ),
        cosine_dampings=(1e-3, 1e-2, 1e-1, 1.0, 10.0),
        timing=Timing(_PAPER_MLP, batch_size=100, updates=10, repeats=3, period=100),
        explorer_steps=150,
        explorer_scale="cpu",
    ),
    "paper": Preset(
        "mnist",
        seeds=(0, 1, 2),
        eval_examples=10_000,
        mlp=Experiment(
            (1000, 1000, 1000),
            steps=6000,
            batch_size=100,
            eval_every=300,
            settings=PAPER_SETTINGS,
            inv_period=1,
            methods=MLP_METHODS,
        ),
        autoencoder=Experiment(
            (1000, 500, 250, 30, 250, 500, 1000),
            steps=3000,
            batch_size=1000,
            eval_every=300,
            settings=PAPER_SETTINGS_AUTOENCODER,
            inv_period=1,
            methods=AUTOENCODER_METHODS,
        ),
        control=Experiment(
            (1000, 1000, 1000),
            steps=1000,
            batch_size=1000,
            eval_every=100,
            settings=PAPER_SETTINGS,
            inv_period=1,
            methods=CONTROL_METHODS,
            n_examples=1000,
        ),
        cosine_dampings=(1e-2, 1e-1, 1.0, 10.0),  # eigendecompositions of 1000 × 1000 factors
        timing=Timing(_PAPER_MLP, batch_size=100, updates=50, repeats=5, period=100),
        explorer_steps=600,
        explorer_methods=("sgd", "kfac", "foof"),  # standard damping at T = 1: too slow here
    ),
}


_KINDS = ("mlp", "autoencoder", "control")


def _experiment(p: Preset, kind: str) -> Experiment:
    if kind not in _KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {_KINDS}")
    return {"mlp": p.mlp, "autoencoder": p.autoencoder, "control": p.control}[kind]


@lru_cache(maxsize=4)
def load_data(scale: str) -> Dataset:
    """The chapter's data at ``scale``: MNIST-1D at smoke and cpu, Fashion-MNIST at full, MNIST at
    paper.
    """
    p = pick(PRESETS, scale)
    return load_dataset(p.dataset, n_train=p.n_train, n_test=p.n_test).to(get_device())


def autoencoder(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers with tanh between them (none after the last): the paper's autoencoders."""
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def make_model(scale: str, *, kind: str = "mlp") -> nn.Module:
    """The chapter's MLP (ReLU, no biases, Kaiming init, as in the paper) or its tanh autoencoder at
    ``scale``.
    """
    p = pick(PRESETS, scale)
    data = load_data(scale)
    hidden = _experiment(p, kind).hidden
    if kind != "autoencoder":
        return MLP(data.in_features, list(hidden), data.num_classes, bias=False)
    return autoencoder([data.in_features, *hidden, data.in_features])


# -------------------------------------------------------------------- the step function, run by fit


def batch_stream(
    data: Dataset, batch_size: int, *, seed: int, kind: str = "mlp", identical_data: bool = False
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Endless (inputs, targets, Fisher inputs): the Fisher's batch is independent of the
    gradient's, or the same one.

    For the autoencoder the targets are the inputs, flattened like its outputs.
    """
    batches = minibatches(data, batch_size, seed=seed)
    others = minibatches(data, batch_size, seed=seed + 10_000)
    for (x, y), (x_other, _) in zip(batches, others):
        target = x.flatten(1) if kind == "autoencoder" else y
        yield x, target, x if identical_data else x_other


def neuron_step(
    optimizer: torch.optim.Optimizer,
    model: nn.Module,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    *,
    loss: str = "cross_entropy",
) -> Callable[[int], float]:
    """The chapter's step function: one update with any of its optimizers on the next batch; returns
    the loss.
    """

    def step(t: int) -> float:
        x, y, x_fisher = next(batches)
        return optim.training_step(optimizer, model, x, y, loss=loss, fisher_inputs=x_fisher).item()

    return step


@torch.no_grad()
def _train_loss(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, loss: str, chunk: int = 10_000
) -> float:
    """The mean loss over ``(x, target)``: cross-entropy, or ½‖f(x) − x‖² for the autoencoder."""
    total = 0.0
    for start in range(0, len(x), chunk):
        out = model(x[start : start + chunk])
        t = target[start : start + chunk]
        if loss == "cross_entropy":
            total += torch.nn.functional.cross_entropy(out, t, reduction="sum").item()
        else:
            total += 0.5 * ((out - t) ** 2).sum().item()
    return total / len(x)


@torch.no_grad()
def _test_accuracy(model: nn.Module, data: Dataset, chunk: int = 10_000) -> float:
    correct = sum(
        (model(data.x_test[s : s + chunk]).argmax(1) == data.y_test[s : s + chunk]).sum().item()
        for s in range(0, len(data.y_test), chunk)
    )
    return correct / len(data.y_test)


@dataclass
class _Clock:
    """Seconds spent inside the step function (training only: evaluations excluded)."""

    seconds: float = 0.0

    def timed(self, step: Callable[[int], float], cuda: bool) -> Callable[[int], float]:
        """``step``, timed; a singular curvature (FloatingPointError) ends the run like a NaN loss
        does.
        """

        def run(t: int) -> float:
            started = time.perf_counter()
            try:
                value = step(t)
            except FloatingPointError:
                return math.nan
            if cuda:
                torch.cuda.synchronize()
            self.seconds += time.perf_counter() - started
            return value

        return run


@dataclass(frozen=True)
class Run:
    """One training run: ``history`` holds the minibatch loss of every update and, at each
    evaluation, the training loss over the training set (``metrics["train_loss"]``), the training
    seconds so far (``metrics["seconds"]``), the test accuracy (classifiers) and, for KFAC runs, the
    cosines to FOOF (``metrics["cosine_heuristic"]``, ...)."""

    method: str
    setting: Setting
    seed: int
    history: History

    @property
    def diverged_at(self) -> int | None:
        """The update at which the loss became NaN or infinite; None when training finished."""
        at = self.history.metrics.get("diverged_at")
        return int(at[0]) if at else None

    @property
    def final_train_loss(self) -> float:
        """The training loss over the training set at the end; a diverged run counts its first loss
        (no progress).
        """
        if self.diverged_at is not None or not self.history.metrics.get("train_loss"):
            return self.history.train_loss[0] if self.history.train_loss else math.inf
        return self.history.metrics["train_loss"][-1]

    @property
    def ms_per_update(self) -> float:
        seconds = self.history.metrics.get("seconds", [])
        return 1e3 * seconds[-1] / self.history.eval_step[-1] if seconds else math.nan


@contextmanager
def _one_thread(device: torch.device) -> Iterator[None]:
    """On the CPU, run on one torch thread: the chapter's small matrices gain nothing from more, and
    one thread makes a run's floating point independent of the machine's core count."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _probe_batch(data: Dataset, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    index = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(seed))[
        :batch_size
    ]
    index = index.to(data.x_train.device)
    return data.x_train[index], data.y_train[index]


def _trained(
    method: str,
    *,
    scale: str,
    seed: int,
    kind: str,
    setting: Setting | None,
    inv_period: int | None,
    steps: int | None,
    probes: bool,
    show_progress: bool,
) -> tuple[nn.Module, Run]:
    m = _method(method)
    p = pick(PRESETS, scale)
    exp = _experiment(p, kind)
    if steps is not None:  # a shorter (or longer) run, e.g. the explorer's
        exp = replace(exp, steps=steps, eval_every=max(1, min(exp.eval_every, steps // 4)))
    setting = setting or chosen_setting(method, scale=scale, kind=kind)
    if m.curvature and setting.damping is None:
        raise ValueError(f"{m.label} needs a damping")
    setting = Setting(
        float(setting.lr),
        None if not m.curvature or setting.damping is None else float(setting.damping),
    )
    period = exp.inv_period if inv_period is None else inv_period
    data = load_data(scale)
    if exp.n_examples is not None:  # the control: a fixed set of images
        data = data.subset(n_train=exp.n_examples)
    eval_examples = None if exp.n_examples is not None else p.eval_examples
    device = get_device()
    loss = "mse" if kind == "autoencoder" else "cross_entropy"
    config = {
        "chapter": "02",
        "scale": scale,
        "kind": kind,
        "method": method,
        "lr": setting.lr,
        "damping": setting.damping,
        "seed": seed,
        "inv_period": period,
        "steps": exp.steps,
        "batch_size": exp.batch_size,
        "hidden": list(exp.hidden),
        "dataset": p.dataset,
        "n_train": p.n_train,
        "eval_every": exp.eval_every,
        "eval_examples": eval_examples,
        "n_examples": exp.n_examples,
        "probes": probes,
        "device": device.type,
    }

    def build() -> nn.Module:
        torch.manual_seed(seed)
        return make_model(scale, kind=kind).to(device)

    def train(model: nn.Module) -> History:
        optimizer = m.build(
            model,
            setting,
            loss=loss,
            inv_period=period,
            generator=torch.Generator().manual_seed(seed),
        )
        batches = batch_stream(
            data, exp.batch_size, seed=seed, kind=kind, identical_data=m.identical_data
        )
        clock = _Clock()
        step = clock.timed(neuron_step(optimizer, model, batches, loss=loss), device.type == "cuda")
        x = data.x_train[:eval_examples]
        target = x.flatten(1) if kind == "autoencoder" else data.y_train[:eval_examples]
        probe = _probe_batch(data, exp.batch_size, seed) if probes else None

        def evaluate() -> dict[str, float]:
            values = {"train_loss": _train_loss(model, x, target, loss), "seconds": clock.seconds}
            if kind != "autoencoder":
                values["test_accuracy"] = _test_accuracy(model, data)
            if probe is not None:
                assert setting.damping is not None
                try:
                    cos_h, cos_s = cosine_to_foof(model, *probe, setting.damping, seed=seed)
                except (
                    FloatingPointError
                ):  # a degenerate network: shown as a gap, never as a number
                    cos_h = cos_s = math.nan
                values.update(cosine_heuristic=cos_h, cosine_standard=cos_s)
            return values

        try:
            with _one_thread(device):
                history = fit(
                    step,
                    steps=exp.steps,
                    evaluate=evaluate,
                    eval_every=exp.eval_every,
                    desc=f"{method} {setting} seed {seed}",
                    show_progress=show_progress,
                    hint=f" ({m.label}, {setting})",
                )
        except DivergenceError as error:  # a diverged run is a result too (kept in the cache)
            history = error.history
            history.metrics["diverged_at"] = [float(error.step)]
        finally:
            if isinstance(optimizer, (optim.FOOF, optim.KFAC, optim.NaturalGradient)):
                optimizer.remove_hooks()
        return history

    model, history = cached(config, build=build, fit=train)
    return model, Run(method, setting, seed, history)


def train_run(
    method: str,
    *,
    scale: str,
    seed: int = 0,
    kind: str = "mlp",
    setting: Setting | None = None,
    inv_period: int | None = None,
    steps: int | None = None,
    probes: bool = False,
    show_progress: bool = True,
) -> Run:
    """Train the chapter's model with ``method`` through :func:`nnstudies.fit` (cached by its
    configuration), on one CPU thread.

    ``setting`` (lr, damping), ``inv_period`` and ``steps`` default to the preset's. A run that
    diverges is returned, with :attr:`Run.diverged_at` set, rather than raised. ``probes=True`` (the
    comparison's KFAC runs) also records the cosines of KFAC's direction to FOOF's at every
    evaluation (:func:`cosine_to_foof`).
    """
    return _trained(
        method,
        scale=scale,
        seed=seed,
        kind=kind,
        setting=setting,
        inv_period=inv_period,
        steps=steps,
        probes=probes,
        show_progress=show_progress,
    )[1]


def trained_model(
    method: str,
    *,
    scale: str,
    seed: int = 0,
    kind: str = "mlp",
    setting: Setting | None = None,
    inv_period: int | None = None,
    steps: int | None = None,
) -> nn.Module:
    """The network at the end of :func:`train_run` with the same arguments (cached)."""
    return _trained(
        method,
        scale=scale,
        seed=seed,
        kind=kind,
        setting=setting,
        inv_period=inv_period,
        steps=steps,
        probes=False,
        show_progress=True,
    )[0]


# ------------------------------------------------------------------ the comparison on several seeds


@dataclass(frozen=True)
class Comparison:
    """Every method's runs, one per seed (same seed: same initialisation and batches for every
    method)."""

    kind: str
    seeds: tuple[int, ...]
    runs: dict[str, list[Run]]

    def final_losses(self, method: str) -> list[float]:
        return [r.final_train_loss for r in self.runs[method]]

    def log_ratio(self, worse: str, better: str) -> list[float]:
        """Per seed, log10(loss of ``worse`` / loss of ``better``): 1 means ``better`` ends 10×
        lower."""
        return [
            math.log10(w / b) for w, b in zip(self.final_losses(worse), self.final_losses(better))
        ]


def compare(scale: str, *, kind: str = "mlp", methods: Sequence[str] | None = None) -> Comparison:
    """Train every method of the preset (or ``methods``) on every seed of the preset (cached).

    The MLP's KFAC runs also record the cosines of KFAC's direction to FOOF's along training.
    """
    p = pick(PRESETS, scale)
    names = list(methods or _experiment(p, kind).methods or METHODS)
    runs = {
        m: [train_run(m, scale=scale, seed=s, kind=kind, probes=_probes(m, kind)) for s in p.seeds]
        for m in names
    }
    return Comparison(kind, p.seeds, runs)


# ------------------------------------------------------------------ KFAC's direction against FOOF's


def cosine_to_foof(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, damping: float, *, seed: int = 0
) -> tuple[float, float]:
    """Mean over layers of the Ā-cosine between KFAC's direction (heuristic, then standard damping)
    and FOOF's.

    All three come from the factors of the batch ``(x, y)`` (labels for Ḡ drawn from the model),
    FOOF at KFAC's own input damping λ_A = π√λ, so that only the output-side factor differs.
    """
    stats = optim.layer_statistics(
        model, x, y, fisher="mc", generator=torch.Generator().manual_seed(seed)
    )
    cosines: dict[str, list[float]] = {"heuristic": [], "standard": []}
    for s in stats:
        a_bar, g_bar, grad = s.a_factor(), s.g_factor(), s.gradient()
        lam_a, _ = optim.heuristic_damping(a_bar, g_bar, damping)
        foof = optim.damped_inverse(a_bar, None, lam_a).apply(grad)
        for kind, values in cosines.items():
            kfac = optim.damped_inverse(a_bar, g_bar, damping, kind).apply(grad)
            values.append(_a_cosine(kfac, foof, a_bar))
    return float(np.mean(cosines["heuristic"])), float(np.mean(cosines["standard"]))


def _a_cosine(u: torch.Tensor, v: torch.Tensor, a_bar: torch.Tensor) -> float:
    """⟨U, V⟩_Ā / (‖U‖_Ā ‖V‖_Ā) with ⟨U, V⟩_Ā = tr(U Ā Vᵀ)."""
    inner = lambda p, q: torch.trace(p @ a_bar @ q.T)
    return (inner(u, v) / torch.sqrt(inner(u, u) * inner(v, v))).item()


def cosine_vs_damping(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, dampings: Sequence[float]
) -> dict[str, list[float]]:
    """The KFAC-vs-FOOF cosine at each damping λ, for heuristic and standard damping."""
    pairs = [cosine_to_foof(model, x, y, lam) for lam in dampings]
    return {"heuristic": [h for h, _ in pairs], "standard": [s for _, s in pairs]}


# --------------------------------------------------------------------- time per update, interleaved


@dataclass(frozen=True)
class TimingResult:
    """Seconds per update, amortised over the inversion period T, per setting and repeat (repeats
    interleaved).
    """

    sizes: tuple[int, ...]
    batch_size: int
    period: int
    seconds: dict[str, list[float]]

    def median(self, label: str) -> float:
        return statistics.median(self.seconds[label])

    def ratio(self, slower: str, faster: str) -> list[float]:
        """Per repeat, time(``slower``) / time(``faster``): measured side by side in the same
        repeat."""
        return [a / b for a, b in zip(self.seconds[slower], self.seconds[faster])]


def time_per_update(
    timing: Timing, *, device: torch.device | None = None, seed: int = 0
) -> TimingResult:
    """Time SGD, FOOF, KFAC and the exact natural gradient on an MLP of ``timing.sizes`` with random
    inputs, interleaved.

    In each repeat the optimizers take turns, one update each, ``timing.updates`` times (no
    inversion: ``inv_period`` is huge), so that a change in the machine's load hits all of them
    alike; each update after two warm-up ones is timed. The inversion (every layer's
    :func:`nnstudies.optim.damped_inverse`) is timed on its own, once per repeat, and divided by T:
    time(T) = median update + inversion / T. The learning rate is tiny, so no run diverges. A dry
    run times one update per optimizer.
    """
    device = device or get_device()
    sizes, period = timing.sizes, timing.period
    updates, repeats = (
        (1, min(timing.repeats, 3)) if dry_run() else (timing.updates, timing.repeats)
    )
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(timing.batch_size, sizes[0], generator=generator).to(device)
    y = torch.randint(sizes[-1], (timing.batch_size,), generator=generator).to(device)
    names = {"SGD": "sgd", "FOOF": "foof", "KFAC": "kfac", "exact natural gradient": "natural"}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    runs = {}
    for label, name in names.items():
        torch.manual_seed(seed)
        model = MLP(sizes[0], list(sizes[1:-1]), sizes[-1], bias=False).to(device)
        setting = Setting(1e-6, 1.0 if METHODS[name].curvature else None)
        opt = METHODS[name].build(
            model, setting, loss="cross_entropy", inv_period=10**9, generator=generator
        )
        for _ in range(2):  # warm-up; the first update inverts
            optim.training_step(opt, model, x, y, fisher_inputs=x)
        runs[label] = (model, opt)
    seconds: dict[str, list[float]] = {label: [] for label in names}
    for _ in range(repeats):
        times: dict[str, list[float]] = {label: [] for label in names}
        for _ in range(updates):
            for label, (model, opt) in runs.items():
                sync()
                started = time.perf_counter()
                optim.training_step(opt, model, x, y, fisher_inputs=x)
                sync()
                times[label].append(time.perf_counter() - started)
        for label, (_, opt) in runs.items():
            inversion = _inversion_seconds(opt, sync)
            seconds[label].append(statistics.median(times[label]) + inversion / period)
    for _, opt in runs.values():
        if isinstance(opt, (optim.FOOF, optim.KFAC, optim.NaturalGradient)):
            opt.remove_hooks()
    return TimingResult(tuple(sizes), timing.batch_size, period, seconds)


def _inversion_seconds(opt: torch.optim.Optimizer, sync: Callable[[], None]) -> float:
    """Seconds to recompute every layer's damped inverse from the optimizer's current factors (0 for
    SGD and NG).
    """
    if not isinstance(opt, (optim.FOOF, optim.KFAC)):
        return 0.0
    sync()
    started = time.perf_counter()
    opt.invert()
    sync()
    return time.perf_counter() - started


# ----------------------------------------------------------------------------- claims


CLAIMS = (
    Claim(
        "kfac_beats_natural",
        "KFAC reaches a 10–20× lower training loss than the exact (subsampled) natural gradient "
        "at equal updates",
        paper="10–20× (Fig. 1A, MNIST MLP)",
        quantity="log10(loss NG / loss KFAC) per seed",
        rule=Rule.above(0.0, margin=1.0),
        fmt=".2f",
    ),
    Claim(
        "kfac_beats_natural_identical",
        "KFAC still beats the exact natural gradient when both see identical data",
        paper="KFAC still wins (Fig. 1B)",
        quantity="log10(loss NG / loss KFAC) per seed, 1000 images, full batch (the Fisher on the "
        "gradient's own data)",
        rule=Rule.above(0.0, margin=0.3),
        fmt=".2f",
    ),
    Claim(
        "heuristic_beats_standard",
        "heuristic damping is what makes KFAC work: with standard damping it trains far worse",
        paper="heuristic ≫ standard (Fig. 3A)",
        quantity="log10(loss KFAC standard / loss KFAC heuristic) per seed",
        rule=Rule.above(0.0, margin=0.3),
        fmt=".2f",
    ),
    Claim(
        "standard_like_sgd",
        "with standard damping KFAC trains like SGD",
        paper="standard-damped KFAC ≈ SGD (Fig. 3A)",
        quantity="log10(loss KFAC standard / loss SGD) per seed (0: equal; ±0.3: a factor 2)",
        rule=Rule.within(0.0, tolerance=0.3),
        fmt=".2f",
    ),
    Claim(
        "cosine_closer_heuristic",
        "KFAC's update is closer to FOOF's with heuristic than with standard damping",
        paper="clearly closer (Fig. 3B)",
        quantity="mean cosine (Ā inner product) along a KFAC run, heuristic − standard, per seed",
        rule=Rule.above(0.0, margin=0.1),
        fmt=".2f",
    ),
    Claim(
        "cosine_high",
        "with heuristic damping KFAC's update is close to FOOF's",
        paper="high cosine (Fig. 3B)",
        quantity="mean cosine (Ā inner product) along a KFAC run, heuristic damping, per seed",
        rule=Rule.above(0.5, margin=0.3),
        fmt=".2f",
    ),
    Claim(
        "foof_faster_than_kfac",
        "FOOF is about 1.5× faster per update than KFAC",
        paper="≈ 1.5× (Fig. 4A, ResNet)",
        quantity="time KFAC / time FOOF per update at T = 100, 784-1000-1000-1000-10 MLP, "
        "batch 100, per repeat",
        rule=Rule.above(1.0, margin=0.3),
        fmt=".2f",
    ),
    Claim(
        "foof_overhead_small",
        "FOOF's amortised overhead over SGD is small (about 10%)",
        paper="≈ 1.1× SGD (Fig. 4A, ResNet)",
        quantity="time FOOF / time SGD per update at T = 100, same MLP, per repeat",
        rule=Rule.below(1.3),
        fmt=".2f",
    ),
    Claim(
        "foof_beats_kfac_mlp",
        "FOOF trains MLPs at least as well as KFAC",
        paper="FOOF better (Fig. 4, MLPs and CNNs)",
        quantity="log10(loss KFAC / loss FOOF) per seed",
        rule=Rule.above(0.0, margin=0.1),
        fmt=".2f",
    ),
    Claim(
        "kfac_beats_foof_autoencoder",
        "KFAC is slightly better than FOOF on autoencoders",
        paper="KFAC slightly better (Fig. 4)",
        quantity="log10(loss FOOF / loss KFAC) on the autoencoder, per seed",
        rule=Rule.above(0.0),
        fmt=".2f",
    ),
)


def _cosine_means(comparison: Comparison) -> tuple[list[float], list[float]]:
    runs = comparison.runs["kfac"]
    return (
        [float(np.mean(r.history.metrics["cosine_heuristic"])) for r in runs],
        [float(np.mean(r.history.metrics["cosine_standard"])) for r in runs],
    )


def claim_values(
    mlp: Comparison, ae: Comparison, timing: TimingResult, control: Comparison
) -> dict[str, list[float]]:
    """Per-seed (or per-repeat) values of each of :data:`CLAIMS`; ``control`` is the identical-data
    comparison (``compare(scale, kind="control")``).
    """
    cos_h, cos_s = _cosine_means(mlp)
    return {
        "kfac_beats_natural": mlp.log_ratio("natural", "kfac"),
        "kfac_beats_natural_identical": control.log_ratio("natural-same", "kfac"),
        "heuristic_beats_standard": mlp.log_ratio("kfac-standard", "kfac"),
        "standard_like_sgd": mlp.log_ratio("kfac-standard", "sgd"),
        "cosine_closer_heuristic": [h - s for h, s in zip(cos_h, cos_s)],
        "cosine_high": cos_h,
        "foof_faster_than_kfac": timing.ratio("KFAC", "FOOF"),
        "foof_overhead_small": timing.ratio("FOOF", "SGD"),
        "foof_beats_kfac_mlp": mlp.log_ratio("kfac", "foof"),
        "kfac_beats_foof_autoencoder": ae.log_ratio("foof", "kfac"),
    }


# ----------------------------------------------------------------------------- tuning


# Grids in steps of about 3× in both the learning rate and the damping, so that "one grid step
# towards the edge
# of stability" means the same for every method (see TuningResult.stable).
_KFAC_DAMPINGS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1)
GRIDS: dict[str, list[Setting]] = {
    "sgd": _grid((0.003, 0.01, 0.03, 0.1, 0.3)),
    "adam": _grid((1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)),
    "natural": _grid((0.01, 0.03, 0.1, 0.3, 1.0), (0.01, 0.03, 0.1, 0.3, 1.0)),
    "kfac": _grid((0.003, 0.01, 0.03, 0.1, 0.3), _KFAC_DAMPINGS),
    "kfac-standard": _grid((0.003, 0.01, 0.03, 0.1, 0.3), _KFAC_DAMPINGS),
    "foof": _grid((0.01, 0.03, 0.1, 0.3), (0.01, 0.03, 0.1, 0.3, 1.0)),
}
GRIDS_AUTOENCODER: dict[str, list[Setting]] = {
    "sgd": _grid((0.001, 0.003, 0.01, 0.03)),
    "kfac": _grid((0.1, 0.3, 1.0), (0.1, 0.3, 1.0, 3.0, 10.0)),
    "foof": _grid((0.01, 0.03, 0.1, 0.3, 1.0), (0.1, 0.3, 1.0, 3.0, 10.0)),
}


def chosen_setting(method: str, *, scale: str, kind: str = "mlp") -> Setting:
    """``method``'s setting at ``scale``: tuned in the run (:func:`tune`) where the experiment has
    grids, else the preset's fixed one. The control uses the MLP's settings (the identical-data
    natural gradient the natural gradient's).
    """
    p = pick(PRESETS, scale)
    if kind == "control":
        kind, method = "mlp", "natural" if method == "natural-same" else method
    exp = _experiment(p, kind)
    if exp.grids is None:
        return exp.settings[method]
    return tune(method, scale=scale, kind=kind).choice


def _finished(run: Run) -> bool:
    """Trained: no divergence, the final loss below half the first one and not climbing (≤ 1.25 ×
    its best).
    """
    losses = run.history.metrics.get("train_loss", [])
    if run.diverged_at is not None or not losses or not math.isfinite(losses[-1]):
        return False
    return losses[-1] <= 0.5 * run.history.train_loss[0] and losses[-1] <= 1.25 * min(losses)


@dataclass(frozen=True)
class TuningResult:
    """Every grid point's runs, one per tuning seed, and the rule that picks a setting from them."""

    method: str
    runs: dict[Setting, list[Run]] = field(default_factory=dict)

    def score(self, setting: Setting) -> float:
        """The mean over tuning seeds of log10(final training loss); inf unless every run finished
        (see ``stable``).
        """
        runs = self.runs[setting]
        return (
            float(np.mean([math.log10(r.final_train_loss) for r in runs]))
            if all(map(_finished, runs))
            else math.inf
        )

    def neighbours(self, setting: Setting) -> list[Setting | None]:
        """The grid points one step closer to the edge of stability: the next larger learning rate
        and, where the grid has several dampings, the next smaller damping (None where the grid
        ends).
        """
        larger = [s for s in self.runs if s.damping == setting.damping and s.lr > setting.lr]
        out: list[Setting | None] = [min(larger, key=lambda s: s.lr) if larger else None]
        if len({s.damping for s in self.runs}) > 1 and setting.damping is not None:
            lam = setting.damping
            smaller = [s for s in self.runs if s.lr == setting.lr and (s.damping or lam) < lam]
            out.append(max(smaller, key=lambda s: s.damping or 0.0) if smaller else None)
        return out

    def stable(self, setting: Setting) -> bool:
        """The point trained on every seed, and so did its neighbours towards the edge, ending less
        than 10× worse.

        A neighbour one grid step away that diverges, fails to halve its loss, climbs at the end
        (final > 1.25 × best) or falls off a cliff (a 10× higher loss) means the point sits near the
        edge of stability, where a seed or another machine's floating point can tip it over. A point
        on the grid's edge (no neighbour to check) is not chosen either: widen the grid.
        """
        score = self.score(setting)
        return math.isfinite(score) and all(
            s is not None and self.score(s) < score + 1.0 for s in self.neighbours(setting)
        )

    @property
    def choice(self) -> Setting:
        """The best-scoring stable grid point; if no point is stable, the best-scoring one that
        finished (else the smallest learning rate), flagged by :attr:`fallback`.
        """
        candidates = [s for s in self.runs if self.stable(s)]
        if candidates:
            return min(candidates, key=self.score)
        finished = [s for s in self.runs if math.isfinite(self.score(s))]
        if finished:
            return min(finished, key=self.score)
        return min(self.runs, key=lambda s: (s.lr, -(s.damping or 0.0)))

    @property
    def fallback(self) -> bool:
        """True when no grid point was stable and :attr:`choice` fell back: widen the grid."""
        return not any(self.stable(s) for s in self.runs)

    def table(self) -> list[tuple[Setting, float, bool]]:
        """(setting, score, stable) for every grid point, best score first."""
        return sorted(
            ((s, self.score(s), self.stable(s)) for s in self.runs), key=lambda row: row[1]
        )


def tune(
    method: str, *, scale: str, kind: str = "mlp", seeds: Sequence[int] | None = None
) -> TuningResult:
    """Train every grid point of ``method`` for the preset's full run length: the experiment's own
    ``grids`` (tuned in the run, on its ``tune_seeds``), else ``GRIDS`` or ``GRIDS_AUTOENCODER`` on
    seeds 0 and 1 (how the fixed settings of `smoke` and `cpu` were chosen).

    ``TuningResult.choice`` then picks the best stable point (cached: each run trains once).
    """
    exp = _experiment(pick(PRESETS, scale), kind)
    grids = exp.grids or (GRIDS_AUTOENCODER if kind == "autoencoder" else GRIDS)
    grid = list(grids["natural" if method == "natural-same" else method])
    result = TuningResult(method)
    if seeds is None:
        seeds = exp.tune_seeds if exp.grids else (0, 1)
    extended = {True: 0, False: 0}  # steps added above and below
    while grid:
        for setting in grid:
            result.runs[setting] = [
                train_run(
                    method,
                    scale=scale,
                    seed=s,
                    kind=kind,
                    setting=setting,
                    probes=_probes(method, kind),
                    show_progress=False,
                )
                for s in seeds
            ]
        grid = []
        if exp.grids is None:
            break
        best = result.table()[0][0]
        row = [s.lr for s in result.runs if s.damping == best.damping]
        for up, at_end in ((True, best.lr == max(row)), (False, best.lr == min(row))):
            if at_end and math.isfinite(result.score(best)) and extended[up] < exp.extend:
                extended[up] += 1
                grid.append(Setting(_lr_step(best.lr, up), best.damping))
    return result


def _lr_step(lr: float, up: bool) -> float:
    """The next learning rate of a 1-3-10 grid above (or below) ``lr``: 0.1 → 0.3 → 1 → 3."""
    exponent = math.floor(math.log10(lr) + 1e-9)
    mantissa = lr / 10**exponent
    if up:
        nxt = 3 * 10**exponent if mantissa < 2 else 10 ** (exponent + 1)
    else:
        nxt = 3 * 10 ** (exponent - 1) if mantissa < 2 else 10**exponent
    return float(f"{nxt:.3g}")


def _probes(method: str, kind: str) -> bool:
    """Whether a run records the KFAC-vs-FOOF cosines along training: the MLP's heuristic KFAC
    (its tuning runs too, so that the chosen grid point's run is also seed 0 of the comparison).
    """
    return method == "kfac" and kind == "mlp"


# ----------------------------------------------------------------------------- figures


def _label(method: str) -> str:
    return METHODS[method].label


def plot_runs(
    comparison: Comparison,
    methods: Sequence[str] | None = None,
    *,
    title: str = "",
    ylabel: str = "training loss (training set)",
) -> Figure:
    """Training loss against updates (median over seeds, band from the best to the worst seed) and
    against seconds.
    """
    fig, (ax_steps, ax_time) = new_figure(2, width=9.5, height=3.6)
    for method in methods or list(comparison.runs):
        runs = comparison.runs[method]
        colour = METHODS[method].colour
        finished = [r for r in runs if r.diverged_at is None]
        if not finished:
            continue
        steps = finished[0].history.eval_step
        curves = np.array([r.history.metrics["train_loss"] for r in finished])
        ax_steps.plot(
            steps,
            np.median(curves, axis=0),
            color=colour,
            marker="o",
            markersize=2.5,
            label=_label(method),
        )
        ax_steps.fill_between(
            steps, curves.min(axis=0), curves.max(axis=0), color=colour, alpha=0.15, lw=0
        )
        first = finished[0].history
        ax_time.plot(
            first.metrics["seconds"],
            first.metrics["train_loss"],
            color=colour,
            marker="o",
            markersize=2.5,
        )
    ax_steps.set(
        xlabel="updates",
        ylabel=ylabel,
        yscale="log",
        title=f"per update ({len(comparison.seeds)} seeds)",
    )
    ax_time.set(
        xlabel="training seconds, first seed (this machine)", yscale="log", title="per second"
    )
    ax_steps.legend(loc="lower left", fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_final_losses(
    comparison: Comparison, methods: Sequence[str] | None = None, *, title: str = ""
) -> Figure:
    """Each seed's final training loss per method (dots) and their geometric mean (bar), on a log
    scale.
    """
    names = list(methods or comparison.runs)
    fig, axes = new_figure(1, width=8.0, height=3.2)
    ax = axes[0]
    for i, method in enumerate(names):
        losses = comparison.final_losses(method)
        ax.scatter([i] * len(losses), losses, color=METHODS[method].colour, s=22, zorder=3)
        ax.hlines(
            float(np.exp(np.mean(np.log(losses)))),
            i - 0.3,
            i + 0.3,
            color=METHODS[method].colour,
            lw=2,
        )
    ax.set_xticks(
        range(len(names)),
        [METHODS[m].short.replace(" ", "\n", 1) for m in names],
        fontsize=8,
    )
    ax.set(
        yscale="log",
        ylabel="final training loss",
        title=title or f"every seed's final loss ({len(comparison.seeds)} seeds)",
    )
    return fig


def plot_cosines(
    comparison: Comparison,
    by_damping: Mapping[str, Sequence[float]],
    dampings: Sequence[float],
    *,
    damping: float,
    after: int,
) -> Figure:
    """KFAC-vs-FOOF cosines: along the KFAC runs (left, one line per seed) and across dampings
    (right)."""
    fig, (ax1, ax2) = new_figure(2, width=9.5, height=3.4)
    for kind, method in (("heuristic", "kfac"), ("standard", "kfac-standard")):
        colour = METHODS[method].colour
        for i, run in enumerate(comparison.runs["kfac"]):
            h = run.history
            ax1.plot(
                h.eval_step,
                h.metrics[f"cosine_{kind}"],
                color=colour,
                marker="o",
                markersize=2.5,
                alpha=0.8,
                label=_label(method) if i == 0 else None,
            )
        ax2.plot(dampings, by_damping[kind], color=colour, marker="o", label=_label(method))
    ax1.set(
        xlabel="update of the KFAC (heuristic) run",
        ylabel="cosine to FOOF (Ā inner product)",
        ylim=(-0.05, 1.05),
        title=f"along training, λ = {damping:g}",
    )
    ax2.set(
        xscale="log",
        xlabel="damping λ",
        ylim=(-0.05, 1.05),
        title=f"after {after} KFAC updates, across dampings",
    )
    ax2.legend(loc="lower right", fontsize=8)
    return fig


# ----------------------------------------------------------------------------- the explorer


def _explorer_setting(method: str, lr_factor: float, damping_factor: float, scale: str) -> Setting:
    base = pick(PRESETS, scale).mlp.settings[method]
    damping = None if base.damping is None else base.damping * damping_factor
    return replace(base, lr=base.lr * lr_factor, damping=damping)


def explorer_rows(
    method: str, lr_factor: float, damping_factor: float, *, scale: str, seed: int = 0
) -> list[dict[str, Any]]:
    """Tidy rows of the curves the explorer draws: the chosen run beside SGD and FOOF at their tuned
    settings.
    """
    rows: list[dict[str, Any]] = []
    chosen = _explorer_setting(method, lr_factor, 1.0 if method == "sgd" else damping_factor, scale)
    steps = pick(PRESETS, scale).explorer_steps

    def run(name: str, setting: Setting | None) -> Run:
        return train_run(
            name, scale=scale, seed=seed, setting=setting, steps=steps, show_progress=False
        )

    runs = {"yours": run(method, chosen)}
    for name in ("sgd", "foof"):
        runs[f"{METHODS[name].short}, tuned"] = run(name, None)
    for label, run_ in runs.items():
        name = f"{METHODS[method].short}, {run_.setting}" if label == "yours" else label
        if run_.diverged_at is not None:
            name += f" — diverged at update {run_.diverged_at}"
        h = run_.history
        for step, value in zip(h.eval_step, h.metrics.get("train_loss", [])):
            rows.append({"run": name, "update": step, "training loss": value})
    return rows


def explorer_chart(rows: Any) -> Any:
    """How the book's explorer draws :func:`explorer_rows`: training loss against updates, log
    scale."""
    import altair as alt

    return (
        rows.mark_line(point=True)
        .encode(
            x=alt.X("update:Q", title="update"),
            y=alt.Y("training loss:Q", title="training loss (training set)").scale(type="log"),
            color=alt.Color("run:N", title=None, legend=alt.Legend(orient="bottom", columns=1)),
        )
        .properties(width=520, height=260)
    )


def explorer_figure(
    method: str, lr_factor: float, damping_factor: float, *, scale: str, seed: int = 0
) -> Figure:
    """The live explorer's figure (and the book's PNG): the same curves as :func:`explorer_rows`."""
    rows = explorer_rows(method, lr_factor, damping_factor, scale=scale, seed=seed)
    fig, axes = new_figure(1, width=7.5, height=3.6)
    ax = axes[0]
    for name in dict.fromkeys(r["run"] for r in rows):
        mine = [r for r in rows if r["run"] == name]
        ax.plot(
            [r["update"] for r in mine],
            [r["training loss"] for r in mine],
            marker="o",
            markersize=2.5,
            label=name,
        )
    ax.set(
        yscale="log",
        xlabel="update",
        ylabel="training loss (training set)",
        title=f"MLP on {pick(PRESETS, scale).dataset}, seed {seed}",
    )
    ax.legend(fontsize=8)
    return fig
