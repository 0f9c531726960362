"""Chapter 1's trained networks: the data, the network of a setting, and its training as a run
spec (:class:`TrainNetwork`), executed by the engine (:func:`~nnstudies.runs.run_all`), with
snapshots taken by **update count** and the reserve rule for nets that miss a target loss.

The studies built on these networks are in :mod:`~nnstudies.chapters.permutations.studies`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from ...data import Dataset, load_dataset
from ...device import get_device
from ...models import CNN, MLP
from ...runs import Run, Spec, run_all
from ...scales import dry_run, pick
from ...training import History, classification_step, fit, minibatches, test_metrics
from .presets import PRESETS, Architecture, Network, Preset, Setup

__all__ = [
    "INPUT_SHAPES",
    "RESERVE_OFFSET",
    "NetworkResult",
    "TrainNetwork",
    "Trained",
    "build_network",
    "fit_network",
    "load_data",
    "matching_inputs",
    "network_spec",
    "preset",
    "train_all",
    "train_eval",
    "train_network",
    "train_pair",
    "train_pairs",
    "training_flop",
]

RESERVE_OFFSET = 1000
"""Seed ``s``'s reserves are the seeds s + 1000, s + 2000, …: never the seed of another pair."""


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
        conv=dataclasses.replace(p.conv, pairs=1, n_eval_train=None, n_match=None),
        n_match=min(p.n_match, 100),
        n_eval_train=100,
        alphas=(0.0, 0.5, 1.0),
    )


# ----------------------------------------------------------------------------- data and networks


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


def train_eval(p: Preset, data: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """The training examples on which curves on training data are measured."""
    n = p.n_eval_train
    return (data.x_train, data.y_train) if n is None else (data.x_train[:n], data.y_train[:n])


def build_network(network: Network, data: Dataset) -> nn.Module:
    """A fresh network of architecture ``network`` for ``data`` (drawn from torch's global seed)."""
    if network.kind is Architecture.MLP:
        return MLP(data.in_features, list(network.widths), data.num_classes, bias=network.bias)
    one_d = len(data.input_shape) == 1
    in_channels = 1 if one_d else data.input_shape[0]
    return CNN(
        in_channels,
        data.num_classes,
        network.widths,
        dim=1 if one_d else 2,
        pool_after=network.pool_after,
        bias=network.bias,
    )


INPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "fashion_mnist": (1, 28, 28),
    "mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "mnist1d": (40,),
}
"""Each data set's input shape (for a cost estimate without loading the data)."""


def training_flop(setup: Setup) -> float:
    """Floating-point operations of one update of ``setup`` (forward 1×, backward 2×), from the
    architecture: 2·fan-in·fan-out per dense layer, 2·9·c_in·c_out per conv position."""
    shape = INPUT_SHAPES.get(setup.dataset, (1, 28, 28))
    n = setup.network
    if n.kind is Architecture.MLP:
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


# ----------------------------------------------------------------------------- training


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
    optimizer = t.optimizer.make(model.parameters())
    step = classification_step(model, optimizer, minibatches(data, t.batch_size, seed=seed))
    marks, until = frozenset(snapshot_at), t.until_loss
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    history = fit(
        step,
        steps=t.steps,
        evaluate=lambda: test_metrics(model, data),
        eval_every=max(1, t.steps // 10),
        snapshot_at=snapshot_at,
        on_snapshot=lambda update: snapshots.update({update: _state(model)}),
        desc=f"{setup.network.kind.value} lr {t.lr:g} seed {seed}",
        hint=f" (lr={t.lr:g}); try a smaller learning rate",
        stop=None if until is None else lambda k, h: k in marks and h.running_loss(k) <= until,
        scheduler=t.optimizer.scheduler(optimizer),
    )
    snapshots[history.step[-1]] = _state(model)
    return history, snapshots


@dataclass
class NetworkResult:
    """What a :class:`TrainNetwork` run keeps besides the final weights."""

    history: History
    snapshots: dict[int, dict[str, torch.Tensor]]  #: update count → weights (0: the init)


@dataclass(frozen=True)
class TrainNetwork(Spec):
    """One network of ``setup`` from ``seed``, trained by :func:`fit_network` with snapshots after
    the update counts ``marks`` (0: the initialisation) and at the end.
    """

    setup: Setup
    seed: int
    marks: tuple[int, ...] = (0,)

    def build(self) -> nn.Module:
        data = load_data(self.setup)
        torch.manual_seed(self.seed)
        return build_network(self.setup.network, data).to(get_device())

    def train(self, model: nn.Module) -> NetworkResult:
        data = load_data(self.setup)
        history, snapshots = fit_network(
            model, self.setup, data, seed=self.seed, snapshot_at=self.marks
        )
        return NetworkResult(history, snapshots)

    @property
    def label(self) -> str:
        return f"{self.setup.network.kind.value} lr {self.setup.training.lr:g} seed {self.seed}"


def network_spec(setup: Setup, seed: int, snapshot_at: Sequence[int] = ()) -> TrainNetwork:
    """The spec of the network of ``setup`` from ``seed``: snapshots at 0, at each update count
    in ``snapshot_at`` within the run, and, with ``until_loss``, every ``check_every`` updates
    (where the target is checked).
    """
    t = setup.training
    checks = range(t.check_every, t.steps + 1, t.check_every) if t.until_loss is not None else ()
    marks = sorted({0, *(s for s in (*snapshot_at, *checks) if s <= t.steps)})
    return TrainNetwork(setup, seed, tuple(marks))


@dataclass(frozen=True)
class Trained:
    """A trained network, its history, and its weights after chosen numbers of updates (0: the
    initialisation).
    """

    model: nn.Module
    history: History
    snapshots: dict[int, nn.Module]
    seed: int  #: the seed that trained this network (a reserve seed where one was set aside)
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


def _trained(run: Run[NetworkResult]) -> Trained:
    spec = run.spec
    assert isinstance(spec, TrainNetwork)
    device = get_device()
    model = run.model(device)
    data = load_data(spec.setup)

    def load(state: dict[str, torch.Tensor]) -> nn.Module:
        copy = build_network(spec.setup.network, data).to(device)
        copy.load_state_dict(state)
        return copy

    snapshots = {int(k): load(v) for k, v in run.result.snapshots.items()}
    return Trained(model, run.result.history, snapshots, spec.seed)


def train_network(setup: Setup, *, seed: int, snapshot_at: Sequence[int] = ()) -> Trained:
    """One network of ``setup`` from seed ``seed`` (:func:`network_spec`), executed by the engine
    (cached). With ``setup.training.until_loss`` it is the network as it was at the first snapshot
    where the mean minibatch loss of the last 50 updates is at most ``until_loss`` (the end if it
    never is; :attr:`Trained.updates` says where). No reserve rule: see :func:`train_all`.
    """
    return _trained(run_all([network_spec(setup, seed, snapshot_at)], desc="networks")[0])


def _done(spec: TrainNetwork, trained: Trained, attempt: int) -> bool:
    t = spec.setup.training
    if t.until_loss is None or attempt >= t.reserves:
        return True
    return trained.final_train_loss <= t.until_loss


def train_all(specs: Sequence[TrainNetwork]) -> list[Trained]:
    """The networks of ``specs``, in one sweep, under the reserve rule.

    A spec whose setup has ``until_loss`` and ``reserves`` and whose net has not reached the target
    is set aside for the same spec at seed + :data:`RESERVE_OFFSET`·j, j = 1 … ``reserves`` (the
    first that reaches it; the last tried if none does), recorded in :attr:`Trained.set_aside`.
    The first tries run as one sweep, then each round of reserves that is needed.
    """
    found: dict[int, Trained] = {}
    set_aside: dict[int, list[int]] = {i: [] for i in range(len(specs))}
    todo = list(range(len(specs)))
    attempt = 0
    while todo:
        tries = [
            dataclasses.replace(specs[i], seed=specs[i].seed + RESERVE_OFFSET * attempt)
            for i in todo
        ]
        runs = run_all(tries, desc="networks" if attempt == 0 else f"reserves ({attempt})")
        left = []
        for i, run in zip(todo, runs):
            trained = _trained(run)
            if _done(specs[i], trained, attempt):
                found[i] = dataclasses.replace(trained, set_aside=tuple(set_aside[i]))
            else:
                set_aside[i].append(trained.seed)
                left.append(i)
        todo, attempt = left, attempt + 1
    return [found[i] for i in range(len(specs))]


def train_pairs(
    setup: Setup, pairs: int | Sequence[int], *, snapshot_at: Sequence[int] = ()
) -> list[tuple[Trained, Trained]]:
    """Networks A and B of each pair (``pairs``: a count, or the pair numbers), in one sweep:
    pair k is the same recipe from the seeds 2k and 2k + 1 (or their reserves, see
    :func:`train_all`).
    """
    numbers = range(pairs) if isinstance(pairs, int) else pairs
    nets = train_all(
        [network_spec(setup, s, snapshot_at) for k in numbers for s in (2 * k, 2 * k + 1)]
    )
    return list(zip(nets[::2], nets[1::2]))


def train_pair(
    setup: Setup, *, pair: int, snapshot_at: Sequence[int] = ()
) -> tuple[Trained, Trained]:
    """Networks A and B of pair ``pair`` (see :func:`train_pairs`)."""
    return train_pairs(setup, [pair], snapshot_at=snapshot_at)[0]
