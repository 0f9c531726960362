"""Chapter 1's studies: the matching methods (:data:`METHODS`), the measures of one trained pair
(:func:`analyse_pair` → :class:`PairResult`), the studies built on them, and the values the
chapter records (:func:`record_values`).

Each study trains all its networks first, in one sweep (:func:`~.experiment.train_all`), then
measures them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ...data import Dataset
from ...models import CNN
from ...permutations import (
    Barrier,
    Curve,
    barrier,
    interpolate,
    interpolation_curve,
    match_activations,
    match_weights,
    permute,
    preactivation_stats,
    repair,
    scramble,
    variance_ratio,
)
from ...scales import dry_run
from ...training import evaluate
from .experiment import (
    Trained,
    load_data,
    matching_inputs,
    network_spec,
    train_all,
    train_eval,
    train_pairs,
)
from .presets import Preset, Setup

__all__ = [
    "CONV_METHODS",
    "FRACTIONS",
    "FRACTION_ALPHAS",
    "METHODS",
    "FractionStudy",
    "LearningRateStudy",
    "Method",
    "PairResult",
    "WidthStudy",
    "aligned",
    "along_line",
    "analyse_pair",
    "conv_preset",
    "conv_values",
    "fraction_study",
    "init_accuracy_by_update",
    "learning_rate_study",
    "record_values",
    "study_pairs",
    "width_study",
]

Permutations = list[torch.Tensor] | None


@dataclass(frozen=True)
class Method:
    """A way to align network B to network A before interpolating: how it matches, and its
    label."""

    label: str
    short: str  #: for axis ticks
    match: Callable[[nn.Module, nn.Module, torch.Tensor], Permutations]
    repair: bool = False  #: REPAIR each interpolated network (after the matching)


def _batch(model: nn.Module, default: int) -> int:
    """Conv nets pass their inputs in batches of 256 (on a CPU 2-3× faster than batches of
    thousands: a conv layer's activations then stay in cache); MLPs in ``default`` batches."""
    return 256 if isinstance(model, CNN) else default


def _no_matching(model_a: nn.Module, model_b: nn.Module, inputs: torch.Tensor) -> Permutations:
    return None


def _by_activations(model_a: nn.Module, model_b: nn.Module, inputs: torch.Tensor) -> Permutations:
    return match_activations(model_a, model_b, inputs, batch_size=_batch(model_a, 2048))


def _by_weights(model_a: nn.Module, model_b: nn.Module, inputs: torch.Tensor) -> Permutations:
    return match_weights(model_a, model_b)


METHODS: dict[str, Method] = {
    "naive": Method("no matching (naive)", "naive", _no_matching),
    "activations": Method("activation matching", "activations", _by_activations),
    "weights": Method("weight matching", "weights", _by_weights),
    "repair": Method(
        "activation matching + REPAIR", "activations + REPAIR", _by_activations, repair=True
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
    #: method → test accuracy of ½·(init A + π(init B)), π found on the trained pair
    init_accuracy: dict[str, float]
    #: of A and B, mean minibatch loss of their last 50 updates
    final_train_loss: tuple[float, float]
    updates: tuple[int, int] = (0, 0)  #: of A and B, the number of updates they were trained for
    seeds: tuple[int, int] = (0, 0)  #: of A and B (a reserve seed where one was set aside)
    set_aside: tuple[int, ...] = ()  #: seeds set aside for never reaching the target loss
    #: method → per hidden layer, the matched midpoint's pre-activation std ÷ the endpoints' mean std
    #: (:func:`~nnstudies.permutations.variance_ratio`; below 1: variance collapse)
    variance_ratio: dict[str, list[float]] = dataclasses.field(default_factory=dict)

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
        x, size = inputs.to(next(a.parameters()).device), _batch(a, 2048)
        ends = preactivation_stats(a, x, size), preactivation_stats(b, x, size)
        return [repair(a, b, alpha, x, endpoint_stats=ends, batch_size=size) for alpha in alphas]
    return [interpolate(a, b, alpha) for alpha in alphas]


def analyse_pair(
    a: Trained, b: Trained, data: Dataset, p: Preset, methods: Sequence[str] = tuple(METHODS)
) -> PairResult:
    """Match B to A by each method, interpolate on test and training data, measure the variance
    collapse at the midpoint, and average the initialisations.

    Methods that match alike (activation matching, with and without REPAIR) share one matching.
    """
    inputs = matching_inputs(p, data)
    splits = {"test": (data.x_test, data.y_test), "train": train_eval(p, data)}
    curves: dict[str, dict[str, Curve]] = {split: {} for split in splits}
    init_accuracy, ratios = {}, {}
    found: dict[Callable[..., Permutations], Permutations] = {}
    batch = _batch(a.model, 4096)  # evaluate's default for MLPs
    for name in methods:
        method = METHODS[name]
        if method.match not in found:
            found[method.match] = method.match(a.model, b.model, inputs)
        perms = found[method.match]
        line = along_line(a.model, aligned(b.model, perms), method, inputs, p.alphas)
        for split, (x, y) in splits.items():
            loss, accuracy = zip(*(evaluate(model, x, y, batch_size=batch) for model in line))
            curves[split][name] = Curve(list(p.alphas), list(loss), list(accuracy))
        if not method.repair:
            b_aligned = aligned(b.model, perms)
            ratios[name] = variance_ratio(a.model, b_aligned, 0.5, inputs, _batch(a.model, 2048))
            midpoint = interpolate(a.init, aligned(b.init, perms), 0.5)
            init_accuracy[name] = evaluate(midpoint, data.x_test, data.y_test, batch_size=batch)[1]
    return PairResult(
        curves,
        init_accuracy,
        (a.final_train_loss, b.final_train_loss),
        (a.updates, b.updates),
        (a.seed, b.seed),
        a.set_aside + b.set_aside,
        ratios,
    )


def _snapshot_at(setup: Setup, p: Preset) -> tuple[int, ...]:
    """The main MLP's networks keep their snapshots at ``p.match_at``; the others none."""
    return p.match_at if setup == p.mlp else ()


def _studies(
    setups: Sequence[Setup], p: Preset, pairs: int, methods: Sequence[str]
) -> list[list[PairResult]]:
    """:func:`analyse_pair` on ``pairs`` pairs of each of ``setups``, all trained in one sweep."""
    specs = [network_spec(s, seed, _snapshot_at(s, p)) for s in setups for seed in range(2 * pairs)]
    nets = iter(train_all(specs))
    return [
        [analyse_pair(next(nets), next(nets), load_data(s), p, methods) for _ in range(pairs)]
        for s in setups
    ]


def study_pairs(
    setup: Setup, p: Preset, pairs: int, methods: Sequence[str] = tuple(METHODS)
) -> list[PairResult]:
    """:func:`analyse_pair` on ``pairs`` independent pairs of ``setup`` (the main MLP's keep their
    snapshots).
    """
    return _studies([setup], p, pairs, methods)[0]


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
    for a, b in train_pairs(setup, pairs, snapshot_at=p.match_at):
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
    setups = {w: p.mlp.with_width(w) for w in p.widths}
    reused = {w for w, s in setups.items() if s == p.mlp and len(main) >= p.width_pairs}
    todo = [w for w in p.widths if w not in reused]
    found = _studies([setups[w] for w in todo], p, p.width_pairs, ("naive", "activations"))
    studied = dict(zip(todo, found))
    results = {w: list(main[: p.width_pairs]) if w in reused else studied[w] for w in p.widths}
    return WidthStudy(p.widths, results)


CONV_METHODS: tuple[str, ...] = ("naive", "activations", "repair")
"""The conv study's methods: no matching, activation matching, and activation matching + REPAIR
(which tells a barrier of collapsed variance from one between distinct modes)."""


@dataclass(frozen=True)
class LearningRateStudy:
    """The conv-net pairs at the small and the large learning rate (:data:`CONV_METHODS`)."""

    setups: dict[str, Setup]  #: "small", "large"
    results: dict[str, list[PairResult]]

    def barriers(self, which: str, method: str = "activations", split: str = "test") -> list[float]:
        """The loss barrier of each pair at the ``which`` learning rate."""
        return [r.barrier(method, split).loss for r in self.results[which]]


def conv_preset(p: Preset) -> Preset:
    """``p`` as the conv study uses it: its own matching inputs and training curves where set."""
    c = p.conv
    return dataclasses.replace(
        p,
        n_eval_train=p.n_eval_train if c.n_eval_train is None else c.n_eval_train,
        n_match=p.n_match if c.n_match is None else c.n_match,
    )


def learning_rate_study(p: Preset) -> LearningRateStudy:
    """Train and analyse :attr:`Preset.conv`'s pairs at both learning rates (one sweep)."""
    setups = {"small": p.conv.small, "large": p.conv.large}
    found = _studies(list(setups.values()), conv_preset(p), p.conv.pairs, CONV_METHODS)
    return LearningRateStudy(setups, dict(zip(setups, found)))


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
    alphas = [a for a in FRACTION_ALPHAS if a in p.alphas] if dry_run() else FRACTION_ALPHAS
    curves: dict[float, list[Curve]] = {f: [] for f in fractions}
    init_accuracy: dict[float, list[float]] = {f: [] for f in fractions}
    for k, (a, b) in enumerate(train_pairs(setup, pairs, snapshot_at=_snapshot_at(setup, p))):
        perms = match_activations(a.model, b.model, inputs)
        for i, f in enumerate(fractions):
            generator = torch.Generator().manual_seed(1000 * k + i)
            q = scramble(perms, f, generator)
            curves[f].append(interpolation_curve(a.model, permute(b.model, q), data, alphas))
            midpoint = interpolate(a.init, permute(b.init, q), 0.5)
            init_accuracy[f].append(evaluate(midpoint, data.x_test, data.y_test)[1])
    return FractionStudy(tuple(fractions), curves, init_accuracy)


# ----------------------------------------------------------------------------- recorded values


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values))


def _ends(values: Sequence[float]) -> tuple[float, float]:
    return values[0], values[-1]


_CONV_NAMES = {"naive": "naive", "activations": "matched", "repair": "repair"}
"""How the recorded conv values name :data:`CONV_METHODS`."""


def conv_values(conv: LearningRateStudy) -> dict[str, Any]:
    """What the conv study records: per learning rate, the barriers of each pair by method on both
    splits (``conv_barrier_{naive,matched,repair}_{small,large}_lr``, test;
    ``conv_train_barrier_*``, training data), the variance collapse, the training and its
    reserves; and the means the chapter's earlier editions recorded (``cnn_barrier_*``).
    """
    values: dict[str, Any] = {"conv_channels": list(conv.setups["small"].network.widths)}
    for which in ("small", "large"):
        results = conv.results[which]
        for method, name in _CONV_NAMES.items():
            if method in results[0].curves["test"]:
                values[f"conv_barrier_{name}_{which}_lr"] = conv.barriers(which, method)
                values[f"conv_train_barrier_{name}_{which}_lr"] = conv.barriers(
                    which, method, "train"
                )
        # per pair, per hidden layer: the matched midpoint's std ÷ the endpoints' (1: no collapse)
        values[f"conv_variance_ratio_{which}_lr"] = [
            r.variance_ratio["activations"] for r in results
        ]
        values[f"cnn_lr_{which}"] = conv.setups[which].training.lr
        values[f"cnn_barrier_{which}_lr"] = _mean(conv.barriers(which))
        values[f"cnn_barrier_naive_{which}_lr"] = _mean(conv.barriers(which, "naive"))
        values[f"cnn_train_loss_{which}_lr"] = _mean(
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
        values[f"cnn_end_test_accuracy_{which}_lr"] = [
            x for r in results for x in r.endpoint_accuracy
        ]
        values[f"cnn_target_loss_{which}_lr"] = conv.setups[which].training.until_loss
    return values


def _per_pair(mlp: Sequence[PairResult]) -> dict[str, Any]:
    """The main MLP's barrier of each pair by method, on test (``mlp_barrier_*``) and training data
    (``mlp_train_barrier_*``), and its variance collapse per hidden layer."""
    values: dict[str, Any] = {}
    for name in METHODS:
        values[f"mlp_barrier_{name}"] = [r.barrier(name).loss for r in mlp]
        values[f"mlp_train_barrier_{name}"] = [r.barrier(name, "train").loss for r in mlp]
    values["mlp_variance_ratio"] = [r.variance_ratio.get("activations", []) for r in mlp]
    return values


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
    mean = _mean
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
    values.update(_per_pair(mlp))
    values.update(conv_values(conv))
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
