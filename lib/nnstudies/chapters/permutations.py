"""Chapter 1's experiments: pairs of networks, matched, interpolated and judged, at every scale.

The algorithms live in :mod:`nnstudies.permutations`. This module holds the chapter's
typed settings (:class:`Preset`, one per scale), the registry of matching methods
(:data:`METHODS`), the training of a network through the book's one loop
(:func:`train_network`, cached by configuration, with snapshots taken by **update count**),
the measures of a pair (:func:`analyse_pair` → :class:`PairResult`), the studies built on
them, the claims (:data:`CLAIMS`) and the figures.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from ..cache import cached
from ..data import Dataset, load_dataset
from ..device import get_device
from ..models import CNN, MLP
from ..permutations import (
    ALPHAS,
    Barrier,
    Curve,
    activation_similarity,
    barrier,
    interpolate,
    interpolation_curve,
    match_activations,
    match_weights,
    permute,
    preactivation_stats,
    repair,
    scramble,
)
from ..plotting import PALETTE, new_figure
from ..results import Claim, Rule
from ..scales import dry_run, pick
from ..training import (
    DivergenceError,
    History,
    classification_step,
    evaluate,
    fit,
    make_optimizer,
    minibatches,
    test_metrics,
)

__all__ = [
    "CLAIMS",
    "FRACTIONS",
    "METHODS",
    "PRESETS",
    "ConvStudy",
    "FractionStudy",
    "LearningRateStudy",
    "Method",
    "Network",
    "PairResult",
    "Preset",
    "Setup",
    "Trained",
    "Training",
    "WidthStudy",
    "aligned",
    "along_line",
    "analyse_pair",
    "claim_values",
    "explorer_chart",
    "explorer_curves",
    "explorer_figure",
    "explorer_rows",
    "explorer_setup",
    "fit_network",
    "fraction_chart",
    "fraction_figure",
    "fraction_rows",
    "fraction_study",
    "gpu_estimate",
    "init_accuracy_by_update",
    "learning_rate_study",
    "load_data",
    "matching_inputs",
    "mean_sd",
    "plot_barriers",
    "plot_curves",
    "plot_init_by_update",
    "plot_learning_rate_study",
    "plot_similarity",
    "plot_width_study",
    "preset",
    "record_values",
    "study_pairs",
    "train_network",
    "train_pair",
    "width_study",
]


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Training:
    """How one network is trained: the optimizer, its learning rate, the number of updates and the
    batch size.
    """

    optimizer: Literal["sgd", "adamw"]
    lr: float
    steps: int  #: number of updates (not epochs: the paper's 500 updates are less than one epoch)
    batch_size: int
    momentum: float = 0.9  #: SGD only
    weight_decay: float = 0.0
    warmup: int = 0  #: updates over which the learning rate rises linearly from lr/warmup to lr
    #: train until the mean minibatch loss of the last 50 updates is at most this (checked every
    #: ``check_every`` updates); ``steps`` is then the most updates allowed. None: ``steps`` updates
    until_loss: float | None = None
    check_every: int = 25
    #: with ``until_loss``: a net that has not reached it after ``steps`` updates is set aside and
    #: replaced by the net from seed + RESERVE_OFFSET·j, j = 1 … ``reserves`` (the first that
    #: reaches it; the last tried if none does). The seeds set aside are recorded.
    reserves: int = 0

    def optimizer_for(self, model: nn.Module) -> torch.optim.Optimizer:
        return make_optimizer(
            self.optimizer,
            model.parameters(),
            self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
        )


@dataclass(frozen=True)
class Network:
    """An architecture: an MLP (hidden ``widths``) or a conv net (channel ``widths``), ReLU,
    Kaiming-normal init.
    """

    kind: Literal["mlp", "cnn"]
    widths: tuple[int, ...]
    bias: bool = True
    pool_after: tuple[int, ...] = (1,)  #: CNN only: the convs followed by 2× average pooling

    def build(self, data: Dataset) -> nn.Module:
        if self.kind == "mlp":
            return MLP(data.in_features, list(self.widths), data.num_classes, bias=self.bias)
        one_d = len(data.input_shape) == 1
        in_channels = 1 if one_d else data.input_shape[0]
        return CNN(
            in_channels,
            data.num_classes,
            self.widths,
            dim=1 if one_d else 2,
            pool_after=self.pool_after,
            bias=self.bias,
        )

    def describe(self) -> str:
        if self.kind == "mlp":
            return f"MLP {'-'.join(map(str, self.widths))}" + ("" if self.bias else ", no biases")
        convs = [
            str(c) + ("-pool" if i in self.pool_after else "") for i, c in enumerate(self.widths)
        ]
        return f"CNN {'-'.join(convs)}" + ("" if self.bias else ", no biases")


@dataclass(frozen=True)
class Setup:
    """One kind of network pair: the data, the architecture and the training."""

    dataset: str
    network: Network
    training: Training
    n_train: int | None = None  #: the first n training examples (all when None)
    n_test: int | None = None

    def with_lr(self, lr: float) -> Setup:
        return dataclasses.replace(self, training=dataclasses.replace(self.training, lr=float(lr)))

    def with_width(self, width: int) -> Setup:
        network = dataclasses.replace(self.network, widths=(width,) * len(self.network.widths))
        return dataclasses.replace(self, network=network)

    def describe(self) -> str:
        t = self.training
        opt = f"SGD (momentum {t.momentum:g})" if t.optimizer == "sgd" else "AdamW"
        wd = f", weight decay {t.weight_decay:g}" if t.weight_decay else ""
        training = f"{opt}, lr {t.lr:g}{wd}, batch {t.batch_size}, {t.steps} updates"
        return f"{self.network.describe()} on {self.dataset}; {training}"


@dataclass(frozen=True)
class ConvStudy:
    """The conv-net claim: the same conv net trained by SGD at a small and a large learning rate.

    Each learning rate has its own number of updates, chosen so that both reach a comparable
    training loss: only then is a larger barrier a property of the learning rate, not of
    a less trained network.
    """

    small: Setup
    large: Setup
    pairs: int
    #: training examples for the curves on training data (None: the preset's ``n_eval_train``)
    n_eval_train: int | None = None


@dataclass(frozen=True)
class Preset:
    """Chapter 1's settings at one scale."""

    mlp: Setup  #: the main MLP pairs: every measure, and the claims
    pairs: int  #: independent pairs of the main MLP
    widths: tuple[int, ...]  #: width study: hidden widths of the main MLP's shape
    width_pairs: int
    match_at: tuple[
        int, ...
    ]  #: update counts at which the permutation for the averaged inits is computed
    conv: ConvStudy
    n_match: int  #: training inputs on which activations are compared (matching, REPAIR)
    n_eval_train: int | None = (
        None  #: training examples on which curves on training data are measured (None: all)
    )
    deep: Setup | None = None  #: a deeper MLP with the same measures (None: not run at this scale)
    deep_pairs: int = 0
    alphas: tuple[float, ...] = ALPHAS
    fraction_pairs: int = 3  #: pairs of the main MLP in :func:`fraction_study`
    mlp_large_lr: float | None = (
        None  #: the explorer's large learning rate for the MLP (None: twice the preset's)
    )
    mlp_is_papers: bool = (
        False  #: the main MLP is the paper's exact setting (records the paper_mlp_* numbers)
    )


_PAPER_MLP = Setup(
    "fashion_mnist",
    Network("mlp", (1000,), bias=False),
    # The authors' code: torch.optim.AdamW(lr=1e-3) (its default weight decay, 0.01), batch 100,
    # 500 updates.
    Training("adamw", 1e-3, steps=500, batch_size=100, weight_decay=0.01),
)
_MATCH_AT = (0, 10, 50, 100, 500)

PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        mlp=Setup(
            "mnist1d",
            Network("mlp", (64, 64)),
            Training("sgd", 0.05, steps=60, batch_size=64),
            n_train=1000,
            n_test=500,
        ),
        pairs=3,
        widths=(32, 128),
        width_pairs=1,
        match_at=(0, 10, 60),
        conv=ConvStudy(
            small=Setup(
                "mnist1d",
                Network("cnn", (8, 8, 16, 16), bias=False),
                Training("sgd", 0.02, 60, 64),
                1000,
                500,
            ),
            large=Setup(
                "mnist1d",
                Network("cnn", (8, 8, 16, 16), bias=False),
                Training("sgd", 0.1, 30, 64),
                1000,
                500,
            ),
            pairs=3,
        ),
        n_match=1000,
        alphas=(0.0, 0.25, 0.5, 0.75, 1.0),
        mlp_large_lr=0.1,
    ),
    "cpu": Preset(
        mlp=Setup(
            "mnist1d", Network("mlp", (512, 512)), Training("sgd", 0.03, steps=500, batch_size=128)
        ),
        pairs=3,
        widths=(64, 128, 256, 512),
        width_pairs=2,
        match_at=_MATCH_AT,
        # A 1-D conv net (3-wide convs 16-16-pool-32-32, global average pool, no biases). 1000
        # updates at lr 0.02 and 400 at lr 0.1 reach comparable training losses (0.15-0.2); lr 0.3
        # is at the edge of stability (its loss jumps early on), so 0.1 stays three times below it.
        conv=ConvStudy(
            small=Setup(
                "mnist1d",
                Network("cnn", (16, 16, 32, 32), bias=False),
                Training("sgd", 0.02, 1000, 128),
            ),
            large=Setup(
                "mnist1d",
                Network("cnn", (16, 16, 32, 32), bias=False),
                Training("sgd", 0.1, 400, 128),
            ),
            pairs=3,
        ),
        n_match=4000,
        mlp_large_lr=0.1,
    ),
    "full": Preset(
        # The paper's MLP exactly, on Fashion-MNIST, five pairs.
        mlp=_PAPER_MLP,
        pairs=5,
        deep=dataclasses.replace(
            _PAPER_MLP, network=Network("mlp", (1000, 1000, 1000), bias=False)
        ),
        deep_pairs=2,  # no claims rest on it; three pairs did not fit the budget
        widths=(64, 128, 256, 512, 1000),
        width_pairs=2,
        match_at=_MATCH_AT,
        # The paper's CNN shape (3x3 convs, pool after the second, global average pool, linear head,
        # no biases) at an eighth of its width (8-8-pool-16-16 instead of 64-64-pool-128-128), to
        # fit the budget: 0.06 CPU-s per update at one thread. Both learning rates train until the
        # mean minibatch loss of the last 50 updates is at most 0.85 (checked every 25 updates; at
        # most 700 updates), so that both are compared at the same training loss. Measured before
        # choosing: lr 0.02 reaches 0.85 after 300-450 updates (seeds 0, 1); lr 0.1 (half the edge
        # of stability: lr 0.2 diverges) after 300-450 (seeds 1-4), but a net can stall near 1.6-2
        # for hundreds of updates (seed 0 with a 50-update warm-up, to 650 updates; one of six
        # nets of the previous full run without warm-up). The rule, fixed before the run that
        # stores these results: a net that has not reached the target by 700 updates is set aside
        # (its seed recorded as `cnn_set_aside_*`) and replaced by the net from seed + 1000, then
        # + 2000 (`Training.reserves`); if neither reaches it, the last is kept and reported. The
        # same rule at both learning rates. Curves on 2000 test and 1000 training images.
        conv=ConvStudy(
            small=Setup(
                "fashion_mnist",
                Network("cnn", (8, 8, 16, 16), bias=False),
                Training("sgd", 0.02, 700, 100, until_loss=0.85, reserves=2),
                n_test=2000,
            ),
            large=Setup(
                "fashion_mnist",
                Network("cnn", (8, 8, 16, 16), bias=False),
                Training("sgd", 0.1, 700, 100, until_loss=0.85, reserves=2),
                n_test=2000,
            ),
            pairs=3,
            n_eval_train=1000,  # a conv net's forward pass costs many times the MLP's on a CPU
        ),
        n_match=10_000,
        n_eval_train=5_000,  # curves on training data: the first 5000 images (budget)
        mlp_large_lr=3e-3,
        mlp_is_papers=True,
    ),
    "paper": Preset(
        mlp=_PAPER_MLP,
        pairs=10,
        deep=dataclasses.replace(
            _PAPER_MLP, network=Network("mlp", (1000, 1000, 1000), bias=False)
        ),
        deep_pairs=5,
        widths=(128, 256, 512, 1000, 2000, 4000),
        width_pairs=3,
        match_at=_MATCH_AT,
        # The paper's CNN on CIFAR-10, SGD (momentum 0.9, weight decay 1e-4 as the authors' code):
        # 30 epochs at the small learning rate, 10 at the large one.
        conv=ConvStudy(
            small=Setup(
                "cifar10",
                Network("cnn", (64, 64, 128, 128), bias=False),
                Training("sgd", 0.02, 15_000, 100, 0.9, 1e-4),
            ),
            large=Setup(
                "cifar10",
                Network("cnn", (64, 64, 128, 128), bias=False),
                Training("sgd", 0.1, 5_000, 100, 0.9, 1e-4),
            ),
            pairs=3,
        ),
        n_match=10_000,
        mlp_large_lr=3e-3,
        mlp_is_papers=True,
    ),
}


def preset(scale: str) -> Preset:
    """The preset of ``scale``; in a dry run, with fewer pairs, widths and interpolation points and
    small evaluation sets.

    A dry run checks that the chapter runs top to bottom on data of the real shapes; its
    numbers mean nothing, so it measures on a few hundred examples, not on tens of thousands.
    """
    p = pick(PRESETS, scale)
    if not dry_run():
        return p
    return dataclasses.replace(
        p,
        pairs=min(p.pairs, 2),
        widths=p.widths[:2],
        width_pairs=1,
        deep_pairs=min(p.deep_pairs, 1),
        fraction_pairs=min(p.fraction_pairs, 1),
        conv=dataclasses.replace(p.conv, pairs=1),
        n_match=min(p.n_match, 100),
        n_eval_train=100,
        alphas=(0.0, 0.5, 1.0),
    )


@lru_cache(maxsize=8)
def _load(name: str, n_train: int | None, n_test: int | None) -> Dataset:
    return load_dataset(name, n_train=n_train, n_test=n_test).to(get_device())


def load_data(setup: Setup) -> Dataset:
    """The data of ``setup``, on the device (loaded once per process); in a dry run at most 100 test
    examples.
    """
    data = _load(setup.dataset, setup.n_train, setup.n_test)
    return data.subset(n_test=min(len(data.y_test), 100)) if dry_run() else data


def matching_inputs(p: Preset, data: Dataset) -> torch.Tensor:
    """The training inputs on which activations are compared: the first ``p.n_match``."""
    return data.x_train[: p.n_match]


def _train_eval(p: Preset, data: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    n = p.n_eval_train
    return (data.x_train, data.y_train) if n is None else (data.x_train[:n], data.y_train[:n])


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class Trained:
    """A trained network, its history, and its weights after chosen numbers of updates (0: the
    initialisation).
    """

    model: nn.Module
    history: History
    snapshots: dict[int, nn.Module]
    seed: int = 0
    set_aside: tuple[int, ...] = ()  #: seeds tried first that never reached the target loss

    @property
    def init(self) -> nn.Module:
        return self.snapshots[0]

    @property
    def final_train_loss(self) -> float:
        """The mean minibatch loss of the last 50 updates."""
        tail = self.history.train_loss[-50:]
        return sum(tail) / len(tail)

    @property
    def updates(self) -> int:
        """The number of updates this network was trained for."""
        return self.history.step[-1] if self.history.step else 0


def _running_loss(history: History, update: int, window: int = 50) -> float:
    """The mean minibatch loss of the ``window`` updates up to ``update``."""
    tail = [
        loss for s, loss in zip(history.step, history.train_loss) if update - window < s <= update
    ]
    return sum(tail) / len(tail) if tail else math.inf


def _stopped(trained: Trained, until_loss: float) -> Trained:
    """``trained`` as it was at the first snapshot whose running loss is at most ``until_loss`` (the
    last snapshot when none is): weights, history and snapshots up to that update.
    """
    h = trained.history
    marks = sorted(u for u in trained.snapshots if u > 0)
    stop = next((u for u in marks if _running_loss(h, u) <= until_loss), marks[-1])
    keep = [i for i, s in enumerate(h.eval_step) if s <= stop]
    history = History(
        step=[s for s in h.step if s <= stop],
        train_loss=[x for s, x in zip(h.step, h.train_loss) if s <= stop],
        eval_step=[h.eval_step[i] for i in keep],
        test_loss=[h.test_loss[i] for i in keep],
        test_accuracy=[h.test_accuracy[i] for i in keep],
        metrics={k: [v[i] for i in keep] for k, v in h.metrics.items()},
        seconds=h.seconds,
    )
    snapshots = {u: m for u, m in trained.snapshots.items() if u <= stop}
    return Trained(trained.snapshots[stop], history, snapshots)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def fit_network(
    model: nn.Module, setup: Setup, data: Dataset, *, seed: int, snapshot_at: Sequence[int]
) -> tuple[History, dict[int, dict[str, torch.Tensor]]]:
    """Train ``model`` in place by ``setup.training`` through :func:`~nnstudies.training.fit`.

    Returns the history and the weights after each update count in ``snapshot_at`` and at
    the end (also in a dry run, where only two updates run). With ``until_loss``, training
    ends after the first update in ``snapshot_at`` at which the mean loss of the last 50
    updates is at most ``until_loss``.
    """
    t = setup.training
    batches = minibatches(data, t.batch_size, seed=seed)
    optimizer = t.optimizer_for(model)
    update = classification_step(model, optimizer, batches)
    losses: list[float] = []
    reached = False

    def step(k: int) -> float:
        nonlocal reached
        if t.until_loss is not None and k - 1 in snapshot_at and k > 1:
            tail = losses[-50:]
            if sum(tail) / len(tail) <= t.until_loss:
                reached = True  # fit stops at a non-finite loss, keeping updates 1 … k − 1
                return math.nan
        if t.warmup:  # linear warm-up: lr·k/warmup for the first updates
            for group in optimizer.param_groups:
                group["lr"] = t.lr * min(1.0, k / t.warmup)
        losses.append(update(k))
        return losses[-1]

    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    try:
        history = fit(
            step,
            steps=t.steps,
            evaluate=lambda: test_metrics(model, data),
            eval_every=max(1, t.steps // 10),
            snapshot_at=snapshot_at,
            on_snapshot=lambda update: snapshots.update({update: _state(model)}),
            desc=f"{setup.network.kind} lr {t.lr:g} seed {seed}",
            hint=f" (lr={t.lr:g}); try a smaller learning rate",
        )
    except DivergenceError as stop:
        if not reached:
            raise
        history = stop.history
        if not history.eval_step or history.eval_step[-1] != history.step[-1]:
            history.add_evaluation(history.step[-1], test_metrics(model, data))
    snapshots[history.step[-1]] = _state(model)
    return history, snapshots


def train_network(setup: Setup, *, seed: int, snapshot_at: Sequence[int] = ()) -> Trained:
    """One network of ``setup`` from seed ``seed``, trained by :func:`fit_network`; cached.

    Keeps the initialisation (update 0), the weights after each update count in
    ``snapshot_at``, and the final weights. With ``setup.training.until_loss``, the network is
    trained for ``steps`` updates with a snapshot every ``check_every``, and returned as it was at
    the first snapshot where the mean minibatch loss of the last 50 updates is at most
    ``until_loss`` (the last snapshot if it never is; :attr:`Trained.updates` says where).
    """
    data = load_data(setup)
    device = get_device()
    t = setup.training
    checks = range(t.check_every, t.steps + 1, t.check_every) if t.until_loss is not None else ()
    marks = sorted({0, *(s for s in (*snapshot_at, *checks) if s <= t.steps)})
    config = {
        "chapter": "01",
        "setup": dataclasses.asdict(setup),
        "data": [data.name, len(data.y_train), len(data.y_test)],
        "seed": seed,
        "snapshots": marks,
        "device": device.type,
    }

    def build() -> nn.Module:
        torch.manual_seed(seed)
        return setup.network.build(data).to(device)

    def train(model: nn.Module) -> dict[str, Any]:
        history, snapshots = fit_network(model, setup, data, seed=seed, snapshot_at=marks)
        return {
            "history": history.to_dict(),
            "snapshots": {str(k): v for k, v in snapshots.items()},
        }

    model, result = cached(config, build=build, fit=train)

    def load(state: dict[str, torch.Tensor]) -> nn.Module:
        copy = setup.network.build(data).to(device)
        copy.load_state_dict(state)
        return copy

    snapshots = {int(k): load(v) for k, v in result["snapshots"].items()}
    trained = Trained(model, History.from_dict(result["history"]), snapshots)
    return trained if t.until_loss is None else _stopped(trained, t.until_loss)


def train_pair(
    setup: Setup, *, pair: int, snapshot_at: Sequence[int] = ()
) -> tuple[Trained, Trained]:
    """Networks A and B of pair ``pair``: the same recipe from the seeds 2·pair and 2·pair + 1
    (or their reserves, see :attr:`Training.reserves`).
    """
    return (
        _reaching_target(setup, 2 * pair, snapshot_at),
        _reaching_target(setup, 2 * pair + 1, snapshot_at),
    )


RESERVE_OFFSET = 1000
"""Seed ``s``'s reserves are the seeds s + 1000, s + 2000, …: never the seed of another pair."""


def _reaching_target(setup: Setup, seed: int, snapshot_at: Sequence[int]) -> Trained:
    """The network from ``seed``; with ``until_loss`` and ``reserves``, a network that never reached
    the target is set aside for the next reserve seed (recorded in :attr:`Trained.set_aside`).
    """
    t = setup.training
    set_aside: list[int] = []
    for j in range(t.reserves + 1 if t.until_loss is not None else 1):
        s = seed + RESERVE_OFFSET * j
        trained = train_network(setup, seed=s, snapshot_at=snapshot_at)
        if t.until_loss is None or trained.final_train_loss <= t.until_loss or j == t.reserves:
            break
        set_aside.append(s)
    return dataclasses.replace(trained, seed=s, set_aside=tuple(set_aside))


# ----------------------------------------------------------------------------- matching methods


Permutations = list[torch.Tensor] | None


@dataclass(frozen=True)
class Method:
    """A way to align network B to network A before interpolating: how it matches, its label and
    colour.
    """

    label: str
    short: str  #: for axis ticks
    colour: str
    match: Callable[[nn.Module, nn.Module, torch.Tensor], Permutations]
    repair: bool = False  #: REPAIR each interpolated network (after the matching)


def _no_matching(model_a: nn.Module, model_b: nn.Module, inputs: torch.Tensor) -> Permutations:
    return None


def _by_activations(model_a: nn.Module, model_b: nn.Module, inputs: torch.Tensor) -> Permutations:
    return match_activations(model_a, model_b, inputs)


def _by_weights(model_a: nn.Module, model_b: nn.Module, inputs: torch.Tensor) -> Permutations:
    return match_weights(model_a, model_b)


METHODS: dict[str, Method] = {
    "naive": Method("no matching (naive)", "naive", PALETTE[1], _no_matching),
    "activations": Method("activation matching", "activations", PALETTE[0], _by_activations),
    "weights": Method("weight matching", "weights", PALETTE[2], _by_weights),
    "repair": Method(
        "activation matching + REPAIR",
        "activations + REPAIR",
        PALETTE[3],
        _by_activations,
        repair=True,
    ),
}


def aligned(model: nn.Module, perms: Permutations) -> nn.Module:
    """``model`` with its hidden units permuted by ``perms`` (None: as it is)."""
    return model if perms is None else permute(model, perms)


# ----------------------------------------------------------------------------- one pair


@dataclass(frozen=True)
class PairResult:
    """What one trained pair shows: the interpolation curves per split and method, and the averaged
    initialisations.
    """

    curves: dict[str, dict[str, Curve]]  #: split ("test", "train") → method → curve along α
    init_accuracy: dict[
        str, float
    ]  #: method → test accuracy of ½·(init A + π(init B)), π found on the trained pair
    final_train_loss: tuple[
        float, float
    ]  #: of A and B, mean minibatch loss of their last 50 updates
    updates: tuple[int, int] = (0, 0)  #: of A and B, the number of updates they were trained for
    seeds: tuple[int, int] = (0, 0)  #: of A and B (a reserve seed where one was set aside)
    set_aside: tuple[int, ...] = ()  #: seeds set aside for never reaching the target loss

    def barrier(self, method: str, split: str = "test") -> Barrier:
        return barrier(self.curves[split][method])

    def midpoint_accuracy(self, method: str, split: str = "test") -> float:
        return self.curves[split][method].at(0.5)[1]

    @property
    def endpoint_accuracy(self) -> tuple[float, float]:
        """Test accuracy of A and of B."""
        c = self.curves["test"]["naive"]
        return c.accuracy[0], c.accuracy[-1]


def along_line(
    a: nn.Module, b: nn.Module, method: Method, inputs: torch.Tensor, alphas: Sequence[float]
) -> list[nn.Module]:
    """The networks θ(α) = (1 − α)·θ_A + α·θ_B at each α, REPAIRed on ``inputs`` when ``method``
    says so.
    """
    if method.repair:
        ends = (
            preactivation_stats(a, inputs.to(next(a.parameters()).device)),
            preactivation_stats(b, inputs.to(next(b.parameters()).device)),
        )
        return [repair(a, b, alpha, inputs, endpoint_stats=ends) for alpha in alphas]
    return [interpolate(a, b, alpha) for alpha in alphas]


def analyse_pair(
    a: Trained, b: Trained, data: Dataset, p: Preset, methods: Sequence[str] = tuple(METHODS)
) -> PairResult:
    """Match B to A by each method, interpolate on test and training data, and average the
    initialisations.
    """
    inputs = matching_inputs(p, data)
    splits = {"test": (data.x_test, data.y_test), "train": _train_eval(p, data)}
    curves: dict[str, dict[str, Curve]] = {split: {} for split in splits}
    init_accuracy = {}
    for name in methods:
        method = METHODS[name]
        perms = method.match(a.model, b.model, inputs)
        line = along_line(a.model, aligned(b.model, perms), method, inputs, p.alphas)
        for split, (x, y) in splits.items():
            loss, accuracy = zip(*(evaluate(model, x, y) for model in line))
            curves[split][name] = Curve(list(p.alphas), list(loss), list(accuracy))
        if not method.repair:
            midpoint = interpolate(a.init, aligned(b.init, perms), 0.5)
            init_accuracy[name] = evaluate(midpoint, data.x_test, data.y_test)[1]
    return PairResult(
        curves,
        init_accuracy,
        (a.final_train_loss, b.final_train_loss),
        (a.updates, b.updates),
        (a.seed, b.seed),
        a.set_aside + b.set_aside,
    )


def study_pairs(
    setup: Setup, p: Preset, pairs: int, methods: Sequence[str] = tuple(METHODS)
) -> list[PairResult]:
    """:func:`analyse_pair` on ``pairs`` independent pairs of ``setup`` (the main MLP's keep their
    snapshots).
    """
    data = load_data(setup)
    snapshot_at = p.match_at if setup == p.mlp else ()
    return [
        analyse_pair(*train_pair(setup, pair=k, snapshot_at=snapshot_at), data, p, methods)
        for k in range(pairs)
    ]


def init_accuracy_by_update(
    setup: Setup, p: Preset, pairs: int, method: str = "activations"
) -> dict[int, list[float]]:
    """Test accuracy of ½·(init A + π(init B)), with π found on the pair after each snapshot's
    update count, per pair.

    Update 0 matches the two initialisations on their own activations.
    """
    data = load_data(setup)
    inputs = matching_inputs(p, data)
    out: dict[int, list[float]] = {}
    for k in range(pairs):
        a, b = train_pair(setup, pair=k, snapshot_at=p.match_at)
        for update in sorted(a.snapshots):
            perms = METHODS[method].match(a.snapshots[update], b.snapshots[update], inputs)
            midpoint = interpolate(a.init, aligned(b.init, perms), 0.5)
            out.setdefault(update, []).append(evaluate(midpoint, data.x_test, data.y_test)[1])
    return out


@dataclass(frozen=True)
class WidthStudy:
    """Barriers and averaged initialisations against the hidden width; one :class:`PairResult` per
    pair and width.
    """

    widths: tuple[int, ...]
    results: dict[int, list[PairResult]]


def width_study(p: Preset, main: Sequence[PairResult] = ()) -> WidthStudy:
    """Pairs of the main MLP at each width of the preset (naive and activation matching only).

    ``main``: the main MLP's results (:func:`study_pairs` on ``p.mlp``), reused at the width that
    is the main MLP's own instead of analysing the same pairs again.
    """
    results = {}
    for w in p.widths:
        setup = p.mlp.with_width(w)
        if setup == p.mlp and len(main) >= p.width_pairs:
            results[w] = list(main[: p.width_pairs])
        else:
            results[w] = study_pairs(setup, p, p.width_pairs, ("naive", "activations"))
    return WidthStudy(p.widths, results)


@dataclass(frozen=True)
class LearningRateStudy:
    """The conv-net pairs at the small and the large learning rate (naive, activation matching)."""

    setups: dict[str, Setup]  #: "small", "large"
    results: dict[str, list[PairResult]]

    def barriers(self, which: str, method: str = "activations", split: str = "test") -> list[float]:
        return [r.barrier(method, split).loss for r in self.results[which]]


def learning_rate_study(p: Preset) -> LearningRateStudy:
    """Train and analyse :attr:`Preset.conv`'s pairs at both learning rates."""
    setups = {"small": p.conv.small, "large": p.conv.large}
    if p.conv.n_eval_train is not None:
        p = dataclasses.replace(p, n_eval_train=p.conv.n_eval_train)
    results = {
        which: study_pairs(s, p, p.conv.pairs, ("naive", "activations"))
        for which, s in setups.items()
    }
    return LearningRateStudy(setups, results)


FRACTIONS: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
"""Fractions of the matched permutation replaced by random assignments in :func:`fraction_study`."""
FRACTION_ALPHAS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
"""The interpolation points of :func:`fraction_study` (the barrier sits near α = ½)."""


@dataclass(frozen=True)
class FractionStudy:
    """How much of the permutation must be right: per fraction of scrambled assignments, each
    pair's test curve after the partly random permutation, and its averaged-init accuracy.
    """

    fractions: tuple[float, ...]
    curves: dict[float, list[Curve]]  #: fraction → one test curve per pair
    init_accuracy: dict[float, list[float]]  #: fraction → ½(init A + π init B) per pair

    def barriers(self, fraction: float) -> list[float]:
        return [barrier(c).loss for c in self.curves[fraction]]


def fraction_study(
    setup: Setup, p: Preset, pairs: int, fractions: Sequence[float] = FRACTIONS
) -> FractionStudy:
    """Match each pair of ``setup`` by activations, :func:`~nnstudies.permutations.scramble` a
    fraction of the permutation (seeded by pair and fraction), and measure the trained pair's
    test curve and the averaged initialisations.
    """
    data = load_data(setup)
    inputs = matching_inputs(p, data)
    snapshot_at = p.match_at if setup == p.mlp else ()
    alphas = [a for a in FRACTION_ALPHAS if a in p.alphas] if dry_run() else FRACTION_ALPHAS
    curves: dict[float, list[Curve]] = {f: [] for f in fractions}
    init_accuracy: dict[float, list[float]] = {f: [] for f in fractions}
    for k in range(pairs):
        a, b = train_pair(setup, pair=k, snapshot_at=snapshot_at)
        perms = match_activations(a.model, b.model, inputs)
        for i, f in enumerate(fractions):
            generator = torch.Generator().manual_seed(1000 * k + i)
            q = scramble(perms, f, generator)
            curves[f].append(interpolation_curve(a.model, permute(b.model, q), data, alphas))
            midpoint = interpolate(a.init, permute(b.init, q), 0.5)
            init_accuracy[f].append(evaluate(midpoint, data.x_test, data.y_test)[1])
    return FractionStudy(tuple(fractions), curves, init_accuracy)


# ----------------------------------------------------------------------------- claims


CLAIMS = (
    Claim(
        "matching_lowers_barrier",
        "matching the units removes most of the loss barrier between two trained MLPs",
        paper="barrier near zero after matching (its Fig. 1); authors' demo, CIFAR-10 MLP: "
        "midpoint accuracy 40.7% naive → 44.6% permuted",
        quantity="test loss barrier, naive − after activation matching",
        rule=Rule.above(0.0, margin=0.1),
        fmt=".3f",
    ),
    Claim(
        "mlp_barrier_small",
        "after matching, MLPs have (nearly) no loss barrier",
        paper="near-zero barrier for permuted MLPs (its Fig. 1)",
        quantity="test loss barrier after activation matching ÷ the naive one",
        rule=Rule.below(0.25, margin=0.05),
        fmt=".3f",
    ),
    Claim(
        "init_above_chance",
        "averaged initialisations, B's permuted by the trained pair's matching, beat chance",
        paper="significantly above chance (its Figs. 2–3; chance 10%)",
        quantity="test accuracy of ½(init A + π init B) − chance",
        rule=Rule.above(0.0, margin=0.03),
        fmt=".3f",
    ),
    Claim(
        "init_naive_at_chance",
        "the plain average of two initialisations sits at chance",
        paper="at chance (its Figs. 2–3)",
        quantity="test accuracy of ½(init A + init B) − chance",
        rule=Rule.within(0.0, tolerance=0.05),
        fmt=".3f",
    ),
    Claim(
        "repair_helps",
        "(Jordan et al., beyond the paper) REPAIR lowers the barrier that remains after matching",
        paper="MNIST MLP, 6 hidden layers of 128: midpoint 71.7% → 83.0% with REPAIR "
        "(endpoints 96.5/96.6%)",
        quantity="loss barrier on training data, activation matching alone − with REPAIR",
        rule=Rule.above(0.0, margin=0.02),
        fmt=".3f",
    ),
    Claim(
        "cnn_barrier_remains",
        "conv nets keep a loss barrier after matching",
        paper="a clear barrier remains for CNNs (its Fig. 4)",
        quantity="log10 of the conv nets' test loss barrier after matching, per pair the mean over "
        "the two learning rates (−1: a barrier of 0.1)",
        rule=Rule.above(-1.0, margin=0.3),
        fmt=".2f",
    ),
    Claim(
        "cnn_larger_barrier_at_large_lr",
        "conv nets' barrier after matching is larger at a large learning rate",
        paper="larger with a large learning rate (its Fig. 4)",
        quantity="log10(barrier at the large lr ÷ barrier at the small lr), pair k with pair k",
        rule=Rule.above(0.0, margin=0.1),
        fmt=".2f",
    ),
)


def _log10(barrier: float) -> float:
    return math.log10(max(barrier, 1e-3))  # a barrier is ≥ 0; below 0.001 counts as 0.001


def claim_values(
    mlp: list[PairResult], conv: LearningRateStudy, chance: float
) -> dict[str, list[float]]:
    """Per-pair values of each of :data:`CLAIMS`."""
    naive = [r.barrier("naive").loss for r in mlp]
    matched = [r.barrier("activations").loss for r in mlp]
    small, large = conv.barriers("small"), conv.barriers("large")
    return {
        "matching_lowers_barrier": [n - m for n, m in zip(naive, matched)],
        # (a dry run's untrained pairs can have no barrier at all: no evidence of a reduction)
        "mlp_barrier_small": [m / n if n > 1e-9 else 1.0 for n, m in zip(naive, matched)],
        "init_above_chance": [r.init_accuracy["activations"] - chance for r in mlp],
        "init_naive_at_chance": [r.init_accuracy["naive"] - chance for r in mlp],
        "repair_helps": [
            r.barrier("activations", "train").loss - r.barrier("repair", "train").loss for r in mlp
        ],
        "cnn_barrier_remains": [(_log10(a) + _log10(b)) / 2 for a, b in zip(small, large)],
        "cnn_larger_barrier_at_large_lr": [_log10(b) - _log10(a) for a, b in zip(small, large)],
    }


def record_values(
    scale: str,
    p: Preset,
    mlp: list[PairResult],
    by_update: dict[int, list[float]],
    widths: WidthStudy,
    conv: LearningRateStudy,
    deep: list[PairResult],
    chance: float,
    fractions: FractionStudy | None = None,
) -> dict[str, Any]:
    """Everything the chapter records (means over pairs, per-pair lists, mean curves), plainly.

    With the paper's MLP (``p.mlp_is_papers``) it adds the ``paper_mlp_*`` names other tools
    read: means over pairs of test accuracy, as fractions; "permuted" is activation matching.
    """
    mean = lambda xs: float(np.mean(xs))
    values: dict[str, Any] = {"scale": scale, "pairs": p.pairs, "chance": chance}
    for name in METHODS:
        values[f"barrier_{name}"] = mean([r.barrier(name).loss for r in mlp])
        values[f"train_barrier_{name}"] = mean([r.barrier(name, "train").loss for r in mlp])
        values[f"error_barrier_{name}"] = mean([r.barrier(name).error for r in mlp])
        values[f"midpoint_accuracy_{name}"] = mean([r.midpoint_accuracy(name) for r in mlp])
        values[f"curve_test_loss_{name}"] = np.mean(
            [r.curves["test"][name].loss for r in mlp], 0
        ).tolist()
    values["alphas"] = list(p.alphas)
    values["endpoint_accuracy"] = mean([x for r in mlp for x in r.endpoint_accuracy])
    values["init_midpoint_naive"] = mean([r.init_accuracy["naive"] for r in mlp])
    values["init_midpoint_permuted"] = mean([r.init_accuracy["activations"] for r in mlp])
    values["init_midpoint_weights"] = mean([r.init_accuracy["weights"] for r in mlp])
    values["init_by_update"] = {str(u): v for u, v in by_update.items()}
    values["width_study"] = {
        str(w): {
            "barrier_naive": [r.barrier("naive").loss for r in rs],
            "barrier_activations": [r.barrier("activations").loss for r in rs],
            "train_barrier_activations": [r.barrier("activations", "train").loss for r in rs],
            "init_permuted": [r.init_accuracy["activations"] for r in rs],
        }
        for w, rs in widths.results.items()
    }
    for which in ("small", "large"):
        results = conv.results[which]
        values[f"cnn_lr_{which}"] = conv.setups[which].training.lr
        values[f"cnn_barrier_{which}_lr"] = mean(conv.barriers(which))
        values[f"cnn_barrier_naive_{which}_lr"] = mean([r.barrier("naive").loss for r in results])
        values[f"cnn_train_loss_{which}_lr"] = mean(
            [x for r in results for x in r.final_train_loss]
        )
        values[f"cnn_train_losses_{which}_lr"] = [x for r in results for x in r.final_train_loss]
        values[f"cnn_updates_{which}_lr"] = [u for r in results for u in r.updates]
        values[f"cnn_seeds_{which}_lr"] = [s for r in results for s in r.seeds]
        values[f"cnn_set_aside_{which}_lr"] = [s for r in results for s in r.set_aside]
        # the loss of the final weights on the training images of the curves (not a running mean)
        values[f"cnn_end_train_loss_{which}_lr"] = [
            loss for r in results for loss in _ends(r.curves["train"]["naive"].loss)
        ]
        values[f"cnn_target_loss_{which}_lr"] = conv.setups[which].training.until_loss
    if deep:
        values["deep_barrier_naive"] = mean([r.barrier("naive").loss for r in deep])
        values["deep_barrier_activations"] = mean([r.barrier("activations").loss for r in deep])
        values["deep_init_midpoint_permuted"] = mean([r.init_accuracy["activations"] for r in deep])
    if fractions is not None:
        values["fraction_study"] = {
            f"{f:g}": {
                "barrier": fractions.barriers(f),
                "init_accuracy": fractions.init_accuracy[f],
            }
            for f in fractions.fractions
        }
    if p.mlp_is_papers:
        values["paper_mlp_endpoint_accuracy"] = values["endpoint_accuracy"]
        values["paper_mlp_midpoint_accuracy_naive"] = values["midpoint_accuracy_naive"]
        values["paper_mlp_midpoint_accuracy_permuted"] = values["midpoint_accuracy_activations"]
        values["paper_mlp_init_accuracy_naive"] = values["init_midpoint_naive"]
        values["paper_mlp_init_accuracy_permuted"] = values["init_midpoint_permuted"]
    return values


def _ends(values: Sequence[float]) -> tuple[float, float]:
    return values[0], values[-1]


def mean_sd(values: Sequence[float], fmt: str = ".3f", scale: float = 1.0) -> str:
    """'mean ± sd' of ``values`` (times ``scale``); the sd only with two or more values."""
    xs = [v * scale for v in values]
    if not xs:
        return "—"
    text = f"{statistics.fmean(xs):{fmt}}"
    return text + (f" ± {statistics.stdev(xs):{fmt}}" if len(xs) > 1 else "")


# ----------------------------------------------------------------------------- figures


def plot_curves(
    curves: dict[str, Curve], *, title: str = "", chance: float | None = None
) -> Figure:
    """Loss and accuracy along α, one line per method (keys of :data:`METHODS`)."""
    fig, (ax_loss, ax_acc) = new_figure(2, width=9.0, height=3.4)
    for name, c in curves.items():
        style: dict[str, Any] = {
            "color": METHODS[name].colour,
            "marker": "o",
            "markersize": 3,
            "label": METHODS[name].label,
        }
        ax_loss.plot(c.alphas, c.loss, **style)
        ax_acc.plot(c.alphas, c.accuracy, **style)
    if chance is not None:
        ax_acc.axhline(chance, color="0.4", lw=1, ls="--", label="chance")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("α  (0: network A, 1: network B)")
    ax_loss.set(ylabel="loss", ylim=(0, None), title="loss along the line")
    ax_acc.set(ylabel="accuracy", ylim=(0, 1), title="accuracy along the line")
    ax_acc.legend(loc="lower center", fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_similarity(
    a: nn.Module, b: nn.Module, perms: list[torch.Tensor], inputs: torch.Tensor, *, units: int = 64
) -> Figure:
    """First hidden layer's cosine-similarity matrix (first ``units`` units of A) before and after
    permuting B.
    """
    before = activation_similarity(a, b, inputs)[0]
    after = activation_similarity(a, permute(b, perms), inputs)[0]
    fig, axes = new_figure(2, width=8.0, height=3.8)
    image = None
    for ax, sim, title in (
        (axes[0], before, "before matching"),
        (axes[1], after, "after matching B to A"),
    ):
        image = ax.imshow(sim[:units, :units].numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set(title=title, xlabel="unit of B", ylabel="unit of A")
        ax.grid(False)
    assert image is not None
    fig.colorbar(image, ax=axes, shrink=0.8, label="cosine similarity")
    return fig


def plot_barriers(
    results: dict[str, list[PairResult]], methods: Sequence[str], *, title: str
) -> Figure:
    """Bar chart (from zero) of the loss barrier per method, on test and training data: mean over
    pairs, a dot per pair.
    """
    fig, axes = new_figure(2, width=9.0, height=3.2)
    for ax, split in zip(axes, ("test", "train")):
        for i, name in enumerate(methods):
            values = [r.barrier(name, split).loss for rs in results.values() for r in rs]
            ax.bar(i, float(np.mean(values)), color=METHODS[name].colour, alpha=0.8)
            ax.scatter([i] * len(values), values, color="0.2", s=12, zorder=3)
        ax.set_xticks(
            range(len(methods)),
            [METHODS[m].short.replace(" + ", "\n+ ") for m in methods],
            fontsize=8,
        )
        ax.set(ylabel="loss barrier", title=f"{split} data", ylim=(0, None))
    fig.suptitle(title)
    return fig


def plot_width_study(study: WidthStudy, *, chance: float) -> Figure:
    """Loss barrier (naive and matched, test and train) and averaged-init accuracy against the
    hidden width.
    """
    fig, (ax_bar, ax_init) = new_figure(2, width=10.0, height=4.2)
    widths = list(study.widths)
    for name in ("naive", "activations"):
        for split, ls in (("test", "-"), ("train", "--")):
            values = [
                float(np.mean([r.barrier(name, split).loss for r in study.results[w]]))
                for w in widths
            ]
            ax_bar.plot(
                widths,
                values,
                ls,
                marker="o",
                color=METHODS[name].colour,
                label=f"{METHODS[name].label}, {split}",
            )
        means = [float(np.mean([r.init_accuracy[name] for r in study.results[w]])) for w in widths]
        ax_init.plot(
            widths,
            means,
            marker="o",
            color=METHODS[name].colour,
            label=f"inits averaged, {METHODS[name].label}",
        )
    ax_init.axhline(chance, color="0.4", lw=1, ls=":", label="chance")
    for ax in (ax_bar, ax_init):
        ax.set_xscale("log", base=2)
        ax.set_xticks(widths, [str(w) for w in widths])
        ax.set_xlabel("hidden width")
    ax_bar.set(ylabel="loss barrier", ylim=(0, None), title="barrier against width")
    ax_init.set(
        ylabel="test accuracy at α = ½",
        ylim=(0, None),
        title="averaged initialisations against width",
    )
    for ax in (ax_bar, ax_init):
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.2), ncol=2)
    return fig


def plot_init_by_update(
    by_update: dict[int, list[float]], naive: list[float], *, chance: float
) -> Figure:
    """Averaged-init accuracy against the update count at which the permutation was computed (one
    dot per pair).
    """
    fig, (ax,) = new_figure(1, width=6.0, height=3.4)
    updates = sorted(by_update)
    positions = range(len(updates))
    ax.plot(
        positions,
        [float(np.mean(by_update[u])) for u in updates],
        marker="o",
        color=METHODS["activations"].colour,
        label="permuted by activation matching after that many updates",
    )
    for i, u in zip(positions, updates):
        ax.scatter([i] * len(by_update[u]), by_update[u], color="0.3", s=10, zorder=3)
    ax.axhline(
        float(np.mean(naive)),
        color=METHODS["naive"].colour,
        ls="--",
        label="plain average (no permutation)",
    )
    ax.axhline(chance, color="0.4", lw=1, ls=":", label="chance")
    ax.set_xticks(list(positions), [str(u) for u in updates])
    ax.set(
        xlabel="updates before the permutation is computed",
        ylabel="test accuracy of ½(init A + π init B)",
        ylim=(0, None),
    )
    ax.legend(fontsize=8)
    return fig


def plot_learning_rate_study(study: LearningRateStudy, *, chance: float) -> Figure:
    """Conv nets: mean interpolation curves (naive dashed, matched solid) at each learning rate, and
    the barriers.
    """
    fig, (ax_loss, ax_bar) = new_figure(2, width=10.0, height=3.4)
    colours = {"small": PALETTE[0], "large": PALETTE[1]}
    for which, results in study.results.items():
        lr = study.setups[which].training.lr
        for name, ls in (("naive", "--"), ("activations", "-")):
            alphas = results[0].curves["test"][name].alphas
            mean = np.mean([r.curves["test"][name].loss for r in results], axis=0)
            ax_loss.plot(
                alphas,
                mean,
                ls,
                marker="o",
                markersize=3,
                color=colours[which],
                label=f"lr {lr:g}, {METHODS[name].label}",
            )
    for i, which in enumerate(("small", "large")):
        values = study.barriers(which)
        ax_bar.bar(i, float(np.mean(values)), color=colours[which], alpha=0.8)
        ax_bar.scatter([i] * len(values), values, color="0.2", s=12, zorder=3)
    ax_bar.set_xticks([0, 1], [f"lr {study.setups[w].training.lr:g}" for w in ("small", "large")])
    ax_loss.set(
        xlabel="α", ylabel="test loss", ylim=(0, None), title="mean test loss along the line"
    )
    ax_bar.set(
        ylabel="test loss barrier after matching",
        ylim=(0, None),
        title="barrier per pair (dots) and mean",
    )
    ax_loss.legend(fontsize=7)
    return fig


# ----------------------------------------------------------------------------- explorer


def explorer_setup(arch: str, lr: str, p: Preset) -> Setup:
    """The setup the explorer trains for ``arch`` ("MLP", "CNN") at the ``lr`` ("small", "large")
    learning rate.

    The CNN's are the learning-rate study's own; the MLP's large learning rate is
    ``p.mlp_large_lr``.
    """
    if arch == "CNN":
        return p.conv.small if lr == "small" else p.conv.large
    if lr == "small":
        return p.mlp
    return p.mlp.with_lr(p.mlp_large_lr or 2 * p.mlp.training.lr)


@lru_cache(maxsize=64)
def _explorer_pair(arch: str, lr: str, method: str, scale: str) -> tuple[Any, ...] | None:
    """(A, B, B's permutations by ``method``) of the explorer's pair 0; None: it diverged."""
    p = preset(scale)
    setup = explorer_setup(arch, lr, p)
    try:
        a, b = train_pair(setup, pair=0, snapshot_at=p.match_at if setup == p.mlp else ())
    except DivergenceError:
        return None
    return a, b, METHODS[method].match(a.model, b.model, matching_inputs(p, load_data(setup)))


@lru_cache(maxsize=256)
def _explorer_curve(arch: str, lr: str, method: str, pair: str, scale: str) -> Curve | None:
    found = _explorer_pair(arch, lr, method, scale)
    if found is None:
        return None
    a, b, perms = found
    p = preset(scale)
    ends = (a.model, b.model) if pair == "trained" else (a.init, b.init)
    data = load_data(explorer_setup(arch, lr, p))
    return interpolation_curve(ends[0], aligned(ends[1], perms), data, p.alphas)


def explorer_curves(
    arch: str, lr: str, method: str, pair: str, *, scale: str
) -> tuple[Setup, dict[str, Curve]]:
    """Pair 0 of :func:`explorer_setup`: test curves along α, naive and by ``method``, of the
    ``pair`` ("trained", "inits"); computed once per process.

    The initialisations are permuted by the matching found on the trained pair. Empty when training
    diverged.
    """
    curves = {name: _explorer_curve(arch, lr, name, pair, scale) for name in {"naive", method}}
    setup = explorer_setup(arch, lr, preset(scale))
    return setup, {name: c for name, c in sorted(curves.items()) if c is not None}


def explorer_rows(
    arch: str, lr: str, method: str, pair: str, *, scale: str
) -> list[dict[str, Any]]:
    """Tidy rows of the explorer at one grid point: test loss and accuracy along α, the chosen
    method beside naive.
    """
    setup, curves = explorer_curves(arch, lr, method, pair, scale=scale)
    rows = []
    for name, c in curves.items():
        for alpha, loss, acc in zip(c.alphas, c.loss, c.accuracy):
            for quantity, value in (("test loss", loss), ("test accuracy", acc)):
                rows.append(
                    {
                        "curve": METHODS[name].label,
                        "alpha": alpha,
                        "quantity": quantity,
                        "value": value,
                        "learning rate": setup.training.lr,
                    }
                )
    return rows


def explorer_chart(rows: Any) -> Any:
    """How the book's explorer draws :func:`explorer_rows`: loss and accuracy along α."""
    import altair as alt

    return (
        rows.mark_line(point=True)
        .encode(
            x=alt.X("alpha:Q", title="α (0: network A, 1: network B)"),
            y=alt.Y("value:Q", title=None),
            color=alt.Color("curve:N", title=None, legend=alt.Legend(orient="bottom")),
            tooltip=["curve:N", "alpha:Q", "value:Q", "learning rate:Q"],
        )
        .properties(width=280, height=200)
        .facet(column=alt.Column("quantity:N", title=None, sort=["test loss", "test accuracy"]))
        .resolve_scale(y="independent")
    )


def explorer_figure(arch: str, lr: str, method: str, pair: str, *, scale: str) -> Figure:
    """The live explorer's figure: the interpolation curves of one grid point."""
    setup, curves = explorer_curves(arch, lr, method, pair, scale=scale)
    lr_value = setup.training.lr
    if not curves:
        fig, (ax,) = new_figure(1)
        ax.text(0.5, 0.5, f"{arch} at lr {lr_value:g} diverged", ha="center")
        return fig
    chance = 1 / load_data(setup).num_classes
    return plot_curves(
        curves,
        chance=chance,
        title=f"{arch}, lr {lr_value:g}, {pair} pair: {METHODS[method].label} vs naive",
    )


def _nearest(study: FractionStudy, fraction: float) -> float:
    return min(study.fractions, key=lambda f: abs(f - fraction))


def fraction_rows(study: FractionStudy, fraction: float) -> list[dict[str, Any]]:
    """Tidy rows of the fraction explorer at ``fraction``: the mean test loss and accuracy along α,
    beside the fully matched (0) and fully random (1) permutations, and the summary.
    """
    rows = []
    shown = sorted({study.fractions[0], _nearest(study, fraction), study.fractions[-1]})
    for f in shown:
        curves = study.curves[f]
        label = f"{f:.0%} scrambled"
        for j, alpha in enumerate(curves[0].alphas):
            for quantity, values in (
                ("test loss", [c.loss[j] for c in curves]),
                ("test accuracy", [c.accuracy[j] for c in curves]),
            ):
                rows.append(
                    {"curve": label, "alpha": alpha, "quantity": quantity, "value": _mean(values)}
                )
    return rows


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values))


def fraction_chart(rows: Any) -> Any:
    """How the book's fraction explorer draws :func:`fraction_rows`: loss and accuracy along α."""
    import altair as alt

    return (
        rows.mark_line(point=True)
        .encode(
            x=alt.X("alpha:Q", title="α (0: network A, 1: network B)"),
            y=alt.Y("value:Q", title=None),
            color=alt.Color("curve:N", title=None, legend=alt.Legend(orient="bottom")),
            tooltip=["curve:N", "alpha:Q", "value:Q"],
        )
        .properties(width=280, height=200)
        .facet(column=alt.Column("quantity:N", title=None, sort=["test loss", "test accuracy"]))
        .resolve_scale(y="independent")
    )


def fraction_figure(study: FractionStudy, fraction: float, *, chance: float) -> Figure:
    """The barrier and the averaged-init accuracy against the scrambled fraction (a dot per pair),
    ``fraction`` marked, and the mean test loss along α there.
    """
    fig, (ax_line, ax_bar, ax_init) = new_figure(3, width=12.0, height=3.4)
    fs = list(study.fractions)
    for f, colour in ((fs[0], METHODS["activations"].colour), (fs[-1], METHODS["naive"].colour)):
        c = study.curves[f]
        ax_line.plot(
            c[0].alphas, np.mean([x.loss for x in c], 0), "--", color=colour, label=f"{f:.0%}"
        )
    fraction = _nearest(study, fraction)
    c = study.curves[fraction]
    ax_line.plot(
        c[0].alphas, np.mean([x.loss for x in c], 0), "o-", color="0.1", label=f"{fraction:.0%}"
    )
    ax_line.set(xlabel="α", ylabel="test loss", ylim=(0, None), title="mean test loss along α")
    ax_line.legend(title="scrambled", fontsize=7)
    for ax, values, ylabel in (
        (ax_bar, [study.barriers(f) for f in fs], "test loss barrier"),
        (ax_init, [study.init_accuracy[f] for f in fs], "test accuracy of ½(init A + π init B)"),
    ):
        ax.plot(fs, [_mean(v) for v in values], "o-", color=METHODS["activations"].colour)
        for f, v in zip(fs, values):
            ax.scatter([f] * len(v), v, color="0.4", s=8, zorder=3)
        ax.axvline(fraction, color="0.1", lw=1, ls=":")
        ax.set(xlabel="fraction of the permutation scrambled", ylabel=ylabel, ylim=(0, None))
    ax_init.axhline(chance, color="0.4", lw=1, ls="--", label="chance")
    ax_init.legend(fontsize=7)
    return fig


# ----------------------------------------------------------------------------- cost of a scale


def _training_flop(setup: Setup) -> float:
    """Floating-point operations of one update (forward 1×, backward 2×), from the architecture."""
    data_shape = {
        "fashion_mnist": (1, 28, 28),
        "mnist": (1, 28, 28),
        "cifar10": (3, 32, 32),
        "mnist1d": (40,),
    }
    shape = data_shape.get(setup.dataset, (1, 28, 28))
    n = setup.network
    if n.kind == "mlp":
        sizes = [math.prod(shape), *n.widths, 10]
        forward = 2 * sum(i * o for i, o in itertools.pairwise(sizes))
    else:
        channels, side = shape[0], shape[-1]
        forward = 0
        for i, c in enumerate(n.widths):
            forward += 2 * 9 * channels * c * side ** (len(shape) - 1)
            channels = c
            side = side // 2 if i in n.pool_after else side
    return 3.0 * forward * setup.training.batch_size


@dataclass(frozen=True)
class Cost:
    """Updates and floating-point work of a scale's training, and the GPU time they take at an
    assumed rate.
    """

    updates: int
    tflop: float
    seconds_per_update: float
    gpu_minutes: float


def gpu_estimate(p: Preset, *, tflops: float = 4.0, overhead_ms: float = 1.0) -> Cost:
    """The training cost of preset ``p`` on a GPU: Σ updates × (FLOP per update / ``tflops`` +
    ``overhead_ms``).

    ``tflops``: the float32 rate a GPU sustains on these small layers (a T4's peak is 8);
    ``overhead_ms``: Python and kernel-launch time per update. Matching and evaluation are
    not counted (seconds on a GPU).
    """
    runs: list[tuple[Setup, int]] = [
        (p.mlp, 2 * p.pairs),
        (p.conv.small, 2 * p.conv.pairs),
        (p.conv.large, 2 * p.conv.pairs),
    ]
    runs += [(p.mlp.with_width(w), 2 * p.width_pairs) for w in p.widths]
    if p.deep is not None:
        runs.append((p.deep, 2 * p.deep_pairs))
    runs.append((explorer_setup("MLP", "large", p), 2))
    updates = sum(s.training.steps * n for s, n in runs)
    flop = sum(_training_flop(s) * s.training.steps * n for s, n in runs)
    seconds = flop / (tflops * 1e12) + updates * overhead_ms / 1e3
    return Cost(updates, flop / 1e12, seconds / updates, seconds / 60)
