"""What the importances measure: their correlations on one trajectory, and SI's bias against batch size.

Both studies train no penalty on the first permuted task and compute every measure on the same
trajectory (``track``); each is one sweep of :class:`~.experiment.ContinualRun` specs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ... import continual as cl
from ...continual import Regulariser
from ...runs import execute
from .experiment import ContinualRun, run_spec, train_runs
from .presets import Benchmark, Preset

__all__ = [
    "PAIRS",
    "SQRT_EMPIRICAL",
    "BiasStudy",
    "Correlations",
    "bias_study",
    "correlations",
    "flat",
    "pair_key",
    "sqrt_empirical_fisher",
]

R = Regulariser

SQRT_EMPIRICAL = "sqrtFemp"
"""How the results name √F_emp, the square root of the empirical Fisher after the task."""

PAIRS: tuple[tuple[str, str], ...] = (
    (R.SI, R.SOS),
    (R.SI, R.ONAF),
    (R.MAS, R.AF),
    (R.MAS, R.SQRT_FISHER),
    (R.AF, R.SQRT_FISHER),
    (R.SI, R.SIB),
    (R.SI, R.SIU),
    (R.EWC, R.SQRT_FISHER),
    (R.SI, SQRT_EMPIRICAL),
    (R.SIU, SQRT_EMPIRICAL),
    (R.SIB, SQRT_EMPIRICAL),
    (R.SOS, SQRT_EMPIRICAL),
    (R.GRADSUM, SQRT_EMPIRICAL),
)
"""The pairs of importances whose Pearson correlation the chapter reports (Σ|g|, ``gradsum``, is
the plain-gradient baseline of SI's correlation with √F_emp)."""
_TRACKED = (
    R.EWC,
    R.SQRT_FISHER,
    R.AF,
    R.MAS,
    R.SI,
    R.SIU,
    R.SIB,
    R.SOS,
    R.ONAF,
    R.GRADSUM,
)
_BIAS = (R.SI, R.SIU, R.SIB, R.SOS)


def pair_key(a: str, b: str) -> str:
    """How a pair of measures is named in the results: ``"SI-SOS"``."""
    return f"{a}-{b}"


def flat(values: Sequence[torch.Tensor]) -> np.ndarray:
    """One importance (a tensor per parameter) as one flat float64 array."""
    return torch.cat([v.reshape(-1) for v in values]).double().numpy()


@dataclass(frozen=True)
class Correlations:
    """Pearson correlations of importances on the first permuted task, one training trajectory per seed."""

    seeds: tuple[int, ...]
    r: dict[str, tuple[float, ...]]  #: per pair "A-B", per seed
    #: every measure, first seed
    importances: dict[str, list[torch.Tensor]] = field(repr=False, default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        return {
            "correlations.seeds": list(self.seeds),
            **{f"correlations.{k}": list(v) for k, v in self.r.items()},
        }


def _first_task(preset: Preset, seed: int) -> ContinualRun:
    """One trajectory of the first permuted task, no penalty, every measure tracked."""
    return run_spec(preset, Benchmark.PERMUTED, R.NONE, seed=seed, n_tasks=1, track=_TRACKED)


def sqrt_empirical_fisher(spec: ContinualRun, n: int) -> list[torch.Tensor]:
    """√F_emp of the network ``spec`` trained (from the cache when it ran), on the first ``n``
    training examples of its first task, with their true labels (:func:`~nnstudies.continual.fisher`,
    ``kind="empirical"``)."""
    model = execute(spec).model()
    task = spec.data.load(spec.device)[0]
    x, y = task.x_train[:n], task.y_train[:n]
    return [
        f.sqrt() for f in cl.fisher(model, x, kind="empirical", targets=y, classes=task.classes)
    ]


def correlations(preset: Preset) -> Correlations:
    """Every measure on one trajectory (no penalty) of the first permuted task, for each correlation
    seed, and √F_emp of the network at the task's end."""
    r: dict[str, list[float]] = {pair_key(a, b): [] for a, b in PAIRS}
    first: dict[str, list[torch.Tensor]] = {}
    specs = [_first_task(preset, seed) for seed in preset.correlation_seeds]
    runs = train_runs(specs, desc="importances of every measure on one trajectory per seed")
    for spec, run in zip(specs, runs):
        omega = {str(m): run.importances[m][0] for m in _TRACKED}
        omega[SQRT_EMPIRICAL] = sqrt_empirical_fisher(spec, preset.n_importance)
        first = first or omega
        for a, b in PAIRS:
            r[pair_key(a, b)].append(cl.pearson(omega[a], omega[b]))
    return Correlations(preset.correlation_seeds, {k: tuple(v) for k, v in r.items()}, first)


@dataclass(frozen=True)
class BiasStudy:
    """SI, SIU, SIB and SOS on the first permuted task at several batch sizes, per seed.

    ``share[b]``: mean Ω of SIB / mean Ω of SI (how much of SI is its bias); ``r[b][pair]``: Pearson r.
    """

    batch_sizes: tuple[int, ...]
    seeds: tuple[int, ...]
    share: dict[int, tuple[float, ...]]
    r: dict[int, dict[str, tuple[float, ...]]]
    mean: dict[int, dict[str, tuple[float, ...]]]
    #: first seed
    importances: dict[int, dict[str, list[torch.Tensor]]] = field(repr=False, default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        return {
            "bias.batch_sizes": list(self.batch_sizes),
            "bias.seeds": list(self.seeds),
            "bias.share": {str(b): list(v) for b, v in self.share.items()},
            "bias.r": {str(b): {k: list(v) for k, v in rs.items()} for b, rs in self.r.items()},
        }


def _bias_spec(preset: Preset, batch_size: int, seed: int) -> ContinualRun:
    """The bias study's run at ``batch_size``: :func:`correlations`' own run (trained once, cached)
    where it has that batch size and number of steps."""
    shared = _first_task(preset, seed)
    if shared.batch_size == batch_size and shared.steps == preset.bias_steps:
        return shared
    return run_spec(
        preset,
        Benchmark.PERMUTED,
        R.NONE,
        seed=seed,
        n_tasks=1,
        batch_size=batch_size,
        steps=preset.bias_steps,
        track=_BIAS,
    )


def bias_study(preset: Preset) -> BiasStudy:
    """SI and its parts with every batch size of the preset, the same number of steps each, on every correlation seed."""
    share: dict[int, list[float]] = {}
    r: dict[int, dict[str, list[float]]] = {}
    mean: dict[int, dict[str, list[float]]] = {}
    first: dict[int, dict[str, list[torch.Tensor]]] = {}
    points = [(b, s) for b in preset.bias_batch_sizes for s in preset.correlation_seeds]
    specs = [_bias_spec(preset, b, seed) for b, seed in points]
    runs = train_runs(specs, desc=f"SI's bias at batch sizes {preset.bias_batch_sizes}")
    for (b, _), run in zip(points, runs):
        omega = {str(m): run.importances[m][0] for m in _BIAS}
        first.setdefault(b, omega)
        means = {m: float(flat(omega[m]).mean()) for m in omega}
        share.setdefault(b, []).append(means[R.SIB] / means[R.SI])
        for m in omega:
            mean.setdefault(b, {}).setdefault(m, []).append(means[m])
        for other in (R.SOS, R.SIB, R.SIU):
            r.setdefault(b, {}).setdefault(pair_key(R.SI, other), []).append(
                cl.pearson(omega[R.SI], omega[other])
            )
    return BiasStudy(
        preset.bias_batch_sizes,
        preset.correlation_seeds,
        {b: tuple(v) for b, v in share.items()},
        {b: {k: tuple(v) for k, v in rs.items()} for b, rs in r.items()},
        {b: {k: tuple(v) for k, v in ms.items()} for b, ms in mean.items()},
        first,
    )
