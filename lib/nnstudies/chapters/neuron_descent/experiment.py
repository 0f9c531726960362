"""Chapter 2's runs: the data and models, the step function every run uses, one training run as a
spec (:class:`NeuronRun`), the KFAC-vs-FOOF cosines and the interleaved timing.

The algorithms live in :mod:`nnstudies.optim`; the tuning and the comparisons built from these runs
in :mod:`.studies`.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from ...data import Dataset, load_dataset
from ...device import get_device, threads
from ...models import MLP
from ...optim.curvature import damped_inverse, heuristic_damping
from ...optim.directions import woodbury_solve
from ...optim.layers import layer_statistics
from ...optim.optimizers import FOOF, KFAC, NaturalGradient, training_step
from ...runs import Run, Spec
from ...scales import dry_run
from ...training import History, Optimizer, OptimizerSpec, fit, minibatches
from .methods import Kind, Method
from .presets import Experiment, Preset, Setting, Timing

__all__ = [
    "MethodRun",
    "NeuronRun",
    "TimingResult",
    "autoencoder",
    "batch_stream",
    "conv_net",
    "cosine_to_foof",
    "cosine_vs_damping",
    "direction_cosines",
    "experiment_of",
    "load_data",
    "make_model",
    "make_optimizer",
    "neuron_step",
    "run_spec",
    "time_per_update",
]


def experiment_of(p: Preset, kind: Kind) -> Experiment:
    """The preset's experiment of ``kind``."""
    return {Kind.MLP: p.mlp, Kind.AUTOENCODER: p.autoencoder, Kind.CONTROL: p.control}[Kind(kind)]


@lru_cache(maxsize=4)
def _dataset(name: str, n_train: int | None, n_test: int | None, device: str) -> Dataset:
    return load_dataset(name, n_train=n_train, n_test=n_test).to(torch.device(device))


def load_data(p: Preset) -> Dataset:
    """The chapter's data at preset ``p``: MNIST-1D at smoke and cpu, Fashion-MNIST at full, MNIST
    at paper.
    """
    return _dataset(p.dataset, p.n_train, p.n_test, get_device().type)


def autoencoder(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers with tanh between them (none after the last): the paper's autoencoders."""
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def _network(kind: Kind, hidden: Sequence[int], data: Dataset) -> nn.Module:
    if kind is not Kind.AUTOENCODER:
        return MLP(data.in_features, list(hidden), data.num_classes, bias=False)
    return autoencoder([data.in_features, *hidden, data.in_features])


def make_model(p: Preset, kind: Kind = Kind.MLP) -> nn.Module:
    """The chapter's MLP (ReLU, no biases, Kaiming init, as in the paper) or its tanh autoencoder
    at preset ``p`` (on the CPU; move it where it should train).
    """
    return _network(Kind(kind), experiment_of(p, kind).hidden, load_data(p))


def make_optimizer(
    method: Method,
    model: nn.Module,
    setting: Setting,
    *,
    loss: str,
    inv_period: int,
    generator: torch.Generator,
    stat_steps: int | None = None,
) -> torch.optim.Optimizer:
    """``method``'s optimizer over ``model`` at ``setting``; ``generator`` draws the natural
    gradient's and KFAC's sampled labels (Monte-Carlo Fisher); KFAC and FOOF feed their moving
    averages in the ``stat_steps`` updates before each inversion (None: min(T, 10))."""
    method = Method(method)
    if method in (Method.SGD, Method.ADAM):
        kind = Optimizer.SGD if method is Method.SGD else Optimizer.ADAM
        return OptimizerSpec(kind, setting.lr, momentum=0.9).make(model.parameters())
    if setting.damping is None:
        raise ValueError(f"{method} needs a damping")
    if method is Method.FOOF:
        return FOOF(
            model, setting.lr, setting.damping, inv_period=inv_period, stat_steps=stat_steps
        )
    if method in (Method.KFAC, Method.KFAC_STANDARD):
        return KFAC(
            model,
            setting.lr,
            setting.damping,
            damping_kind="heuristic" if method is Method.KFAC else "standard",
            fisher="mc",
            loss=loss,
            inv_period=inv_period,
            stat_steps=stat_steps,
            generator=generator,
        )
    return NaturalGradient(
        model, setting.lr, setting.damping, fisher="mc", loss=loss, generator=generator
    )


def _remove_hooks(optimizer: torch.optim.Optimizer) -> None:
    if isinstance(optimizer, (FOOF, KFAC, NaturalGradient)):
        optimizer.remove_hooks()


# -------------------------------------------------------------------- the step function, run by fit


def batch_stream(
    data: Dataset,
    batch_size: int,
    *,
    seed: int,
    kind: Kind = Kind.MLP,
    identical_data: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Endless (inputs, targets, Fisher inputs): the Fisher's batch is independent of the
    gradient's, or the same one.

    For the autoencoder the targets are the inputs, flattened like its outputs.
    """
    batches = minibatches(data, batch_size, seed=seed)
    others = minibatches(data, batch_size, seed=seed + 10_000)
    for (x, y), (x_other, _) in zip(batches, others):
        target = x.flatten(1) if kind is Kind.AUTOENCODER else y
        yield x, target, x if identical_data else x_other


def neuron_step(
    optimizer: torch.optim.Optimizer,
    model: nn.Module,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    *,
    loss: str = "cross_entropy",
) -> Callable[[int], float]:
    """The chapter's step function: one update with any of its optimizers on the next batch;
    returns the loss.
    """

    def step(t: int) -> float:
        x, y, x_fisher = next(batches)
        return training_step(optimizer, model, x, y, loss=loss, fisher_inputs=x_fisher).item()

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


def _probe_batch(data: Dataset, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    index = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(seed))[
        :batch_size
    ]
    index = index.to(data.x_train.device)
    return data.x_train[index], data.y_train[index]


# ------------------------------------------------------------------------- one run, as a spec


@dataclass(frozen=True)
class NeuronRun(Spec):
    """One training run of the chapter: ``method`` at ``setting`` on ``seed`` (initialisation,
    batch order, sampled labels), for ``steps`` updates of ``batch_size``, through :func:`fit`
    on one CPU thread. A run that diverges ends there (``History.diverged_at``).

    The data: ``dataset`` with ``n_train`` training and ``n_test`` test examples (None: all);
    ``n_examples``: train on the first n only (the control); ``eval_examples``: the training
    examples the training loss is measured on. The history holds the minibatch loss of every
    update and, at each evaluation, the training loss over those examples
    (``metrics["train_loss"]``), the training seconds so far (``metrics["seconds"]``), the test
    accuracy (classifiers) and, with ``probes``, the direction cosines on a fixed probe batch
    (:func:`direction_cosines`): KFAC's to FOOF's (``metrics["cosine_heuristic"]``,
    ``metrics["cosine_standard"]``), the gradient's to FOOF's (``cosine_gradient_foof``) and, with
    ``natural_damping``, KFAC's and the gradient's to the exact natural gradient's
    (``cosine_kfac_natural``, ``cosine_gradient_natural``).
    """

    method: Method
    setting: Setting
    seed: int
    kind: Kind
    hidden: tuple[int, ...]
    steps: int
    batch_size: int
    eval_every: int
    inv_period: int
    dataset: str
    n_train: int | None
    n_test: int | None
    eval_examples: int | None = None
    n_examples: int | None = None
    probes: bool = False
    device: str = "cpu"
    stat_steps: int | None = None  #: KFAC's and FOOF's statistics updates per T (None: min(T, 10))
    natural_damping: float | None = None  #: the exact natural gradient's λ in the probes

    @property
    def label(self) -> str:
        return f"{self.method} ({self.kind}) {self.setting} seed {self.seed}"

    def data(self) -> Dataset:
        """The training data: the named data set, or its first ``n_examples`` (the control)."""
        data = _dataset(self.dataset, self.n_train, self.n_test, self.device)
        return data if self.n_examples is None else data.subset(n_train=self.n_examples)

    def build(self) -> nn.Module:
        data = _dataset(self.dataset, self.n_train, self.n_test, self.device)
        torch.manual_seed(self.seed)
        return _network(self.kind, self.hidden, data).to(torch.device(self.device))

    def train(self, model: nn.Module) -> History:
        data, loss, device = self.data(), self.kind.loss, torch.device(self.device)
        setting = self.setting
        optimizer = make_optimizer(
            self.method,
            model,
            setting,
            loss=loss,
            inv_period=self.inv_period,
            generator=torch.Generator().manual_seed(self.seed),
            stat_steps=self.stat_steps,
        )
        batches = batch_stream(
            data,
            self.batch_size,
            seed=self.seed,
            kind=self.kind,
            identical_data=self.method.identical_data,
        )
        clock = _Clock()
        step = clock.timed(neuron_step(optimizer, model, batches, loss=loss), device.type == "cuda")
        x = data.x_train[: self.eval_examples]
        autoencoding = self.kind is Kind.AUTOENCODER
        target = x.flatten(1) if autoencoding else data.y_train[: self.eval_examples]
        probe = _probe_batch(data, self.batch_size, self.seed) if self.probes else None

        def evaluate() -> dict[str, float]:
            values = {"train_loss": _train_loss(model, x, target, loss), "seconds": clock.seconds}
            if not autoencoding:
                values["test_accuracy"] = _test_accuracy(model, data)
            if probe is not None:
                assert setting.damping is not None
                try:
                    values.update(
                        direction_cosines(
                            model,
                            *probe,
                            setting.damping,
                            natural_damping=self.natural_damping,
                            seed=self.seed,
                        )
                    )
                except FloatingPointError:  # a degenerate network: a gap, never a number
                    values.update(dict.fromkeys(_COSINES, math.nan))
            return values

        try:
            with threads(1, device):
                return fit(
                    step,
                    steps=self.steps,
                    evaluate=evaluate,
                    eval_every=self.eval_every,
                    show_progress=False,
                    on_divergence="stop",
                )
        finally:
            _remove_hooks(optimizer)


def run_spec(
    p: Preset,
    method: Method,
    setting: Setting,
    *,
    seed: int = 0,
    kind: Kind = Kind.MLP,
    inv_period: int | None = None,
    steps: int | None = None,
    probes: bool = False,
    natural_damping: float | None = None,
    stat_steps: int | None = None,
) -> NeuronRun:
    """The spec of one run at preset ``p``: ``inv_period``, ``steps`` and ``stat_steps`` default
    to the preset's (a shorter run, e.g. the explorer's, evaluates at least four times).
    """
    method, kind = Method(method), Kind(kind)
    exp = experiment_of(p, kind)
    if steps is not None:
        exp = replace(exp, steps=steps, eval_every=max(1, min(exp.eval_every, steps // 4)))
    if method.curvature and setting.damping is None:
        raise ValueError(f"{method} needs a damping")
    damping = None if not method.curvature or setting.damping is None else float(setting.damping)
    return NeuronRun(
        method=method,
        setting=Setting(float(setting.lr), damping),
        seed=seed,
        kind=kind,
        hidden=tuple(exp.hidden),
        steps=exp.steps,
        batch_size=exp.batch_size,
        eval_every=exp.eval_every,
        inv_period=exp.inv_period if inv_period is None else inv_period,
        dataset=p.dataset,
        n_train=p.n_train,
        n_test=p.n_test,
        eval_examples=None if exp.n_examples is not None else p.eval_examples,
        n_examples=exp.n_examples,
        probes=probes,
        device=get_device().type,
        stat_steps=exp.stat_steps if stat_steps is None else stat_steps,
        natural_damping=None if natural_damping is None else float(natural_damping),
    )


@dataclass(frozen=True)
class MethodRun:
    """One trained run, as the chapter reads it: its method, setting, seed and history."""

    method: Method
    setting: Setting
    seed: int
    history: History

    @classmethod
    def of(cls, run: Run[History]) -> MethodRun:
        """The executed :class:`NeuronRun` ``run``, as the chapter reads it."""
        spec = run.spec
        if not isinstance(spec, NeuronRun):
            raise TypeError(f"{spec.label} is not a NeuronRun")
        return cls(spec.method, spec.setting, spec.seed, run.history)

    @property
    def diverged_at(self) -> int | None:
        """The update at which the loss became NaN or infinite; None when training finished."""
        return self.history.diverged_at

    @property
    def final_train_loss(self) -> float:
        """The training loss over the training set at the end; a diverged run counts its first
        loss (no progress).
        """
        if self.diverged_at is not None or not self.history.metrics.get("train_loss"):
            return self.history.train_loss[0] if self.history.train_loss else math.inf
        return self.history.metrics["train_loss"][-1]

    @property
    def ms_per_update(self) -> float:
        seconds = self.history.metrics.get("seconds", [])
        return 1e3 * seconds[-1] / self.history.eval_step[-1] if seconds else math.nan


# ------------------------------------------------------------------ KFAC's direction against FOOF's


def cosine_to_foof(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, damping: float, *, seed: int = 0
) -> tuple[float, float]:
    """Mean over layers of the Ā-cosine between KFAC's direction (heuristic, then standard
    damping) and FOOF's.

    All three come from the factors of the batch ``(x, y)`` (labels for Ḡ drawn from the model),
    FOOF at KFAC's own input damping λ_A = π√λ, so that only the output-side factor differs.
    """
    stats = layer_statistics(
        model, x, y, fisher="mc", generator=torch.Generator().manual_seed(seed)
    )
    cosines: dict[str, list[float]] = {"heuristic": [], "standard": []}
    for s in stats:
        a_bar, g_bar, grad = s.a_factor(), s.g_factor(), s.gradient()
        lam_a, _ = heuristic_damping(a_bar, g_bar, damping)
        foof = damped_inverse(a_bar, None, lam_a).apply(grad)
        for kind, values in cosines.items():
            kfac = damped_inverse(a_bar, g_bar, damping, kind).apply(grad)
            values.append(_a_cosine(kfac, foof, a_bar))
    return float(np.mean(cosines["heuristic"])), float(np.mean(cosines["standard"]))


_COSINES = (
    "cosine_heuristic",
    "cosine_standard",
    "cosine_gradient_foof",
    "cosine_kfac_natural",
    "cosine_gradient_natural",
)


def direction_cosines(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    damping: float,
    *,
    natural_damping: float | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """The directions of one batch compared, each a mean over layers of the Ā-cosine (how alike
    the two updates move the layer's outputs on the batch): KFAC's (heuristic damping λ =
    ``damping``) to FOOF's at KFAC's input damping (``cosine_heuristic``; ``cosine_standard`` with
    standard damping), the plain gradient's to FOOF's (``cosine_gradient_foof``, the baseline)
    and, with ``natural_damping``, KFAC's and the gradient's to the exact natural gradient's
    (F + λI)⁻¹ g over all layers jointly (``cosine_kfac_natural``, ``cosine_gradient_natural``).

    Every direction comes from the batch ``(x, y)`` and one draw of labels from the model (the
    Monte-Carlo Fisher of KFAC's Ḡ and of the natural gradient's F).
    """
    stats = layer_statistics(
        model, x, y, fisher="mc", generator=torch.Generator().manual_seed(seed)
    )
    grads = [s.gradient() for s in stats]
    natural = None if natural_damping is None else woodbury_solve(stats, grads, natural_damping)
    cosines: dict[str, list[float]] = {key: [] for key in _COSINES}
    for i, (s, grad) in enumerate(zip(stats, grads)):
        a_bar, g_bar = s.a_factor(), s.g_factor()
        lam_a, _ = heuristic_damping(a_bar, g_bar, damping)
        foof = damped_inverse(a_bar, None, lam_a).apply(grad)
        kfac = damped_inverse(a_bar, g_bar, damping, "heuristic").apply(grad)
        standard = damped_inverse(a_bar, g_bar, damping, "standard").apply(grad)
        cosines["cosine_heuristic"].append(_a_cosine(kfac, foof, a_bar))
        cosines["cosine_standard"].append(_a_cosine(standard, foof, a_bar))
        cosines["cosine_gradient_foof"].append(_a_cosine(grad, foof, a_bar))
        if natural is not None:
            cosines["cosine_kfac_natural"].append(_a_cosine(kfac, natural[i], a_bar))
            cosines["cosine_gradient_natural"].append(_a_cosine(grad, natural[i], a_bar))
    return {key: float(np.mean(values)) for key, values in cosines.items() if values}


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


#: The optimizers timed, by the labels of :attr:`TimingResult.seconds`.
TIMED = {
    "SGD": Method.SGD,
    "FOOF": Method.FOOF,
    "KFAC": Method.KFAC,
    "exact natural gradient": Method.NATURAL,
}


def conv_net(in_channels: int = 1, classes: int = 10) -> nn.Sequential:
    """Three 3×3 convolutions (32, 64, 64 channels; max-pooling after the first two), global
    average pooling and a linear read-out: like the paper's ResNets, its cost is in the
    activations and its factors are small (at most 577 × 577)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, classes),
    )


def _timed_network(timing: Timing) -> tuple[nn.Module, tuple[int, ...]]:
    """The network ``timing`` times and the shape of one input."""
    if timing.model == "conv":
        side = math.isqrt(timing.sizes[0])
        return conv_net(1, timing.sizes[-1]), (1, side, side)
    if timing.model != "mlp":
        raise ValueError(f"unknown timed model {timing.model!r}; choose 'mlp' or 'conv'")
    sizes = timing.sizes
    return MLP(sizes[0], list(sizes[1:-1]), sizes[-1], bias=False), (sizes[0],)


def time_per_update(
    timing: Timing, *, device: torch.device | None = None, seed: int = 0
) -> TimingResult:
    """Time SGD, FOOF, KFAC and the exact natural gradient on ``timing``'s network (the MLP or
    the conv net) with random inputs, interleaved, as the chapter runs them.

    In each repeat the optimizers take turns, one update each, ``timing.updates`` times, so that
    a change in the machine's load hits all of them alike; each update after two warm-up ones is
    timed. FOOF and KFAC feed their moving averages only in the min(T, 10) updates before each
    inversion (``stat_steps``), so each is timed twice, in a plain update and in one that feeds
    them, and inverts on its own (every layer's :func:`nnstudies.optim.damped_inverse`, with the
    momentum carried over), once per repeat: time(T) = plain + min(T, 10)/T × (feeding − plain)
    + inversion / T. The learning rate is tiny, so no run diverges. A dry run times one update
    per optimizer.
    """
    device = device or get_device()
    period = timing.period
    updates, repeats = (
        (1, min(timing.repeats, 3)) if dry_run() else (timing.updates, timing.repeats)
    )
    generator = torch.Generator().manual_seed(seed)
    _, shape = _timed_network(timing)
    x = torch.randn(timing.batch_size, *shape, generator=generator).to(device)
    y = torch.randint(timing.sizes[-1], (timing.batch_size,), generator=generator).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    runs: dict[tuple[str, bool], tuple[nn.Module, torch.optim.Optimizer]] = {}
    for label, method in TIMED.items():
        for feeding in (False, True) if method in (Method.FOOF, Method.KFAC) else (False,):
            torch.manual_seed(seed)
            model = _timed_network(timing)[0].to(device)
            setting = Setting(1e-6, 1.0 if method.curvature else None)
            opt = make_optimizer(
                method,
                model,
                setting,
                loss="cross_entropy",
                inv_period=10**9,
                generator=generator,
                stat_steps=10**9 if feeding else 1,  # feeding: every update; plain: the first
            )
            for _ in range(2):  # warm-up; the first update inverts
                training_step(opt, model, x, y, fisher_inputs=x)
            runs[label, feeding] = (model, opt)
    seconds: dict[str, list[float]] = {label: [] for label in TIMED}
    share = min(period, 10) / period
    for _ in range(repeats):
        times: dict[tuple[str, bool], list[float]] = {key: [] for key in runs}
        for _ in range(updates):
            for key, (model, opt) in runs.items():
                sync()
                started = time.perf_counter()
                training_step(opt, model, x, y, fisher_inputs=x)
                sync()
                times[key].append(time.perf_counter() - started)
        for label in TIMED:
            plain = statistics.median(times[label, False])
            fed = statistics.median(times[label, True]) if (label, True) in times else plain
            inversion = _inversion_seconds(runs[label, False][1], sync)
            seconds[label].append(plain + share * max(fed - plain, 0.0) + inversion / period)
    for _, opt in runs.values():
        _remove_hooks(opt)
    return TimingResult(tuple(timing.sizes), timing.batch_size, period, seconds)


def _inversion_seconds(opt: torch.optim.Optimizer, sync: Callable[[], None]) -> float:
    """Seconds to recompute every layer's damped inverse from the optimizer's current factors and
    carry its momentum over to them (0 for SGD and NG).
    """
    if not isinstance(opt, (FOOF, KFAC)):
        return 0.0
    sync()
    started = time.perf_counter()
    opt.invert()  # what an inversion step adds, the momentum's carry-over m ← P_new(P_old⁻¹(m)) too
    sync()
    return time.perf_counter() - started
