"""Chapter 3's runs: one continual run as a spec (:class:`ContinualRun`), and the studies built from them.

The algorithms live in :mod:`nnstudies.continual` and the task streams in
:mod:`nnstudies.tasks.continual`; here a run is sized from a :class:`~.presets.Preset` and executed
by the engine (:func:`nnstudies.runs.execute`, :func:`nnstudies.runs.run_all`): cached on disk by
its fields, so asking again, or moving an explorer back to a value seen before, trains nothing and
builds no model.

How the accuracy claims are judged, so that no verdict rests on one lucky seed:

1. **Tuning** (:func:`tune`): every method's strength c is chosen from a grid
   ``c0 × strength_factors``, extended past an end that wins, by the average *validation*
   accuracy after all tasks, on the tuning seed(s) only; the best regularised method is the
   one with the highest validation accuracy at its chosen c.
2. **Comparison** (:func:`compare`): every method, at its chosen c, and no regularisation
   are trained again on *fresh* seeds, never used for tuning; the claims are judged on these
   per-seed test accuracies (paired by seed) with a printed :class:`~nnstudies.results.Rule`.

The importance studies (:func:`correlations`, :func:`bias_study`) are in :mod:`.studies`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from ... import continual as cl
from ...continual import Regulariser
from ...data import load_dataset
from ...device import get_device
from ...models import CNN, MLP
from ...runs import Spec, execute, run_all
from ...scales import dry_run, pick
from ...tasks.continual import Task, permuted_tasks, split_tasks
from .presets import PRESETS, Benchmark, Preset

__all__ = [
    "Comparison",
    "ContinualRun",
    "TaskData",
    "Tuning",
    "compare",
    "label",
    "load_tasks",
    "run_spec",
    "settings",
    "steps_per_task",
    "strength",
    "swap_strengths",
    "task_grid",
    "train_run",
    "train_runs",
    "trained_model",
    "tune",
]

R = Regulariser

# A dry run checks every code path in minutes: two steps per task (``fit``), and here at most two tasks per
# run, a few hundred examples, 32 inputs per importance, and one seed where the claims take three (so their
# verdicts read "not tested at this scale"): the comparison's one seed is the tuning seed, whose runs it reuses.
_DRY_TASKS, _DRY_TRAIN, _DRY_TEST, _DRY_IMPORTANCE = 2, 500, 100, 32


def settings(scale: str) -> Preset:
    """The chapter's preset at ``scale``; in a dry run, cut to check the code paths in minutes (see above)."""
    p = pick(PRESETS, scale)
    if not dry_run():
        return p
    return replace(
        p,
        permuted=replace(p.permuted, n_tasks=min(p.permuted.n_tasks, _DRY_TASKS)),
        split=replace(p.split, n_tasks=min(p.split.n_tasks, _DRY_TASKS)),
        seeds=(p.tuning_seed,),
        correlation_seeds=p.correlation_seeds[:1],
        n_train=min(p.n_train or _DRY_TRAIN, _DRY_TRAIN),
        n_test=min(p.n_test or _DRY_TEST, _DRY_TEST),
        n_importance=min(p.n_importance, _DRY_IMPORTANCE),
    )


def label(method: Regulariser | str) -> str:
    """How the book names a method (√Fisher for sqrtFisher)."""
    return cl.METHODS[Regulariser(method)].label


def strength(
    preset: Preset, benchmark: Benchmark | str, method: Regulariser | str, factor: float = 1.0
) -> float:
    """The strength c = factor × c0 of ``method`` on ``benchmark`` (0 for no regularisation)."""
    if method == R.NONE:
        return 0.0
    return factor * preset.benchmark(benchmark).strengths[Regulariser(method)]


def steps_per_task(preset: Preset, benchmark: Benchmark | str) -> int:
    """Adam steps each task of ``benchmark`` trains: the preset's ``steps``, else ``epochs`` passes
    over the first task's training set."""
    setting = preset.benchmark(benchmark)
    if setting.steps is not None:
        return setting.steps
    n = len(load_tasks(preset, benchmark, 1)[0].y_train)
    return setting.epochs * math.ceil(n / setting.batch_size)


def task_grid(preset: Preset) -> tuple[int, ...]:
    """Numbers of permuted tasks the explorer offers: 2, the middle and all of them."""
    n = preset.permuted.n_tasks
    return tuple(sorted({min(2, n), (n + 2) // 2, n}))


# ----------------------------------------------------------------------------- data and runs


@dataclass(frozen=True)
class TaskData:
    """The tasks a run learns: ``n_tasks`` of ``benchmark`` made from a data set (its first
    ``n_train`` and ``n_test`` examples), ``validation`` of the training examples held out."""

    benchmark: Benchmark
    dataset: str
    n_tasks: int
    n_train: int | None
    n_test: int | None
    validation: float

    def load(self, device: str) -> tuple[Task, ...]:
        """The tasks, on ``device`` (loaded once per process)."""
        return _tasks(self, device)


@lru_cache(maxsize=8)
def _tasks(data: TaskData, device: str) -> tuple[Task, ...]:
    loaded = load_dataset(data.dataset, n_train=data.n_train, n_test=data.n_test)
    if data.benchmark is Benchmark.PERMUTED:  # the first k permutations are the same for any k
        tasks = permuted_tasks(loaded, data.n_tasks, seed=0, validation=data.validation)
    else:
        tasks = split_tasks(loaded, 2, validation=data.validation, seed=0)[: data.n_tasks]
    return tuple(t.to(device) for t in tasks)


def task_data(preset: Preset, benchmark: Benchmark | str, n_tasks: int | None = None) -> TaskData:
    """The tasks of ``benchmark`` at ``preset`` (the preset's number of them by default)."""
    which = Benchmark(benchmark)
    setting = preset.benchmark(which)
    n = n_tasks or setting.n_tasks
    if which is Benchmark.SPLIT and n > 5:
        raise ValueError(f"split tasks are 5 pairs of classes; asked for {n}")
    dataset = setting.dataset or preset.dataset
    return TaskData(which, dataset, n, preset.n_train, preset.n_test, preset.validation)


def load_tasks(
    preset: Preset, benchmark: Benchmark | str, n_tasks: int | None = None
) -> tuple[Task, ...]:
    """The tasks of ``benchmark`` (``"permuted"`` or ``"split"``) at ``preset``, on the device."""
    return task_data(preset, benchmark, n_tasks).load(get_device().type)


@dataclass(frozen=True)
class ContinualRun(Spec):
    """One continual run: ``method`` at strength ``strength`` on the tasks ``data``, from ``seed``.

    The network is an MLP with ``hidden`` widths (a CNN when ``channels`` is set); each task trains
    ``steps`` Adam updates (default: ``epochs`` passes) with minibatches of ``batch_size``. ``track``
    names more measures computed on the same trajectory; importances are kept in the result only
    when ``track`` or ``keep_importances`` asks for them.
    """

    data: TaskData
    method: Regulariser
    strength: float
    seed: int
    hidden: tuple[int, ...]
    channels: tuple[int, ...] | None
    epochs: int
    steps: int | None
    batch_size: int
    lr: float
    damping: float
    n_importance: int
    track: tuple[Regulariser, ...] = ()
    keep_importances: bool = False
    threads: int | None = 1  #: torch threads while training on the CPU (None: as they are)
    device: str = "cpu"

    @property
    def label(self) -> str:
        return f"{self.data.benchmark} {self.method} c={self.strength:.3g} seed {self.seed}"

    def build(self) -> nn.Module:
        task = self.data.load(self.device)[0]
        torch.manual_seed(self.seed)
        if self.channels:
            model: nn.Module = CNN(task.x_train.shape[1], 10, self.channels)
        else:
            model = MLP(int(np.prod(task.x_train.shape[1:])), self.hidden, 10)
        return model.to(self.device)

    def train(self, model: nn.Module) -> cl.ContinualResult:
        result = cl.run_continual(
            model,
            self.data.load(self.device),
            self.method,
            self.strength,
            epochs=self.epochs,
            steps=self.steps,
            batch_size=self.batch_size,
            lr=self.lr,
            damping=self.damping,
            n_importance=self.n_importance,
            track=self.track,
            seed=self.seed,
            show_progress=False,
            threads=self.threads if self.device == "cpu" else None,
        )
        if not (self.keep_importances or self.track):
            result.importances = {}
        return result


def run_spec(
    preset: Preset,
    benchmark: Benchmark | str,
    method: Regulariser | str,
    c: float | None = None,
    *,
    seed: int = 0,
    n_tasks: int | None = None,
    batch_size: int | None = None,
    steps: int | None = None,
    damping: float | None = None,
    track: Sequence[Regulariser | str] = (),
    keep_importances: bool = False,
) -> ContinualRun:
    """The spec of one run of ``method`` at strength ``c`` (default: its centre c0) on ``benchmark``.

    ``None`` takes the preset's value; ``steps`` (per task) replaces the preset's epochs (or steps).
    """
    setting = preset.benchmark(benchmark)
    return ContinualRun(
        data=task_data(preset, benchmark, n_tasks),
        method=Regulariser(method),
        strength=strength(preset, benchmark, method) if c is None else float(c),
        seed=seed,
        hidden=setting.hidden,
        channels=setting.channels,
        epochs=setting.epochs,
        steps=setting.steps if steps is None else steps,
        batch_size=int(batch_size or setting.batch_size),
        lr=setting.lr,
        damping=float(preset.damping if damping is None else damping),
        n_importance=preset.n_importance,
        track=tuple(Regulariser(m) for m in track),
        keep_importances=keep_importances,
        threads=preset.threads,
        device=get_device().type,
    )


def train_run(
    preset: Preset,
    benchmark: Benchmark | str,
    method: Regulariser | str,
    c: float | None = None,
    **options: Any,
) -> cl.ContinualResult:
    """The result of one run (:func:`run_spec` takes the same arguments), from the cache when it ran before."""
    result: cl.ContinualResult = execute(run_spec(preset, benchmark, method, c, **options)).result
    return result


def trained_model(
    preset: Preset,
    benchmark: Benchmark | str,
    method: Regulariser | str,
    c: float | None = None,
    **options: Any,
) -> nn.Module:
    """The network after :func:`train_run` with the same arguments (built only now, from the cache when it ran before)."""
    return execute(run_spec(preset, benchmark, method, c, **options)).model()


def train_runs(specs: Sequence[ContinualRun], desc: str = "runs") -> list[cl.ContinualResult]:
    """The results of ``specs``, in their order: one sweep over every core (cached runs load at once)."""
    return [run.result for run in run_all(specs, desc=desc)]


# ----------------------------------------------------------------------------- tuning and the comparison


@dataclass(frozen=True)
class Tuning:
    """Average accuracy after all tasks for every method and strength of the grid, on the tuning seed(s)."""

    benchmark: Benchmark
    seed: int
    strengths: dict[
        Regulariser, tuple[float, ...]
    ]  #: the grid, per method ("none": (0,)), as extended
    val: dict[
        Regulariser, tuple[float, ...]
    ]  #: validation accuracy per grid point (mean over the tuning seeds)
    test: dict[
        Regulariser, tuple[float, ...]
    ]  #: test accuracy per grid point (shown, never used to choose)
    seeds: tuple[
        int, ...
    ] = ()  #: every tuning seed (the first is ``seed``); empty means ``(seed,)``

    @property
    def chosen(self) -> dict[Regulariser, float]:
        """Each method's strength with the highest validation accuracy (the smallest one on a tie)."""
        return {m: cs[_argbest(self.val[m])] for m, cs in self.strengths.items()}

    @property
    def edges(self) -> dict[Regulariser, float]:
        """Methods whose chosen strength is still the smallest or largest of its (extended) grid: the best c may lie beyond."""
        return {
            m: cs[i]
            for m, cs in self.strengths.items()
            if len(cs) > 1 and (i := _argbest(self.val[m])) in (0, len(cs) - 1)
        }

    def best_val(self, method: Regulariser) -> float:
        return max(self.val[method])

    @property
    def best(self) -> Regulariser:
        """The regularised method with the highest validation accuracy at its chosen strength."""
        return max((m for m in self.strengths if m != R.NONE), key=self.best_val)


def _argbest(values: Sequence[float]) -> int:
    """The index of the highest value (the first on a tie)."""
    return max(range(len(values)), key=lambda i: (values[i], -i))


def tune(preset: Preset, benchmark: Benchmark | str) -> Tuning:
    """Train every method of the preset at every strength of its grid, and no regularisation, on the tuning seed(s).

    The grid is c0 × ``strength_factors``. When a method's best strength is at an end of its grid, the
    grid grows by one more step (the ratio of the last two factors) beyond that end, at most
    ``max_extend`` times: at a scale with few steps per task the useful strengths can lie decades away
    from the paper's. A choice that is still at an end is reported by :attr:`Tuning.edges`. Every
    round (the grids, then each extension) is one sweep over all methods and tuning seeds.
    """
    which = Benchmark(benchmark)
    seeds = (preset.tuning_seed, *preset.extra_tuning_seeds)
    factors = preset.strength_factors
    ratio = factors[-1] / factors[-2] if len(factors) > 1 else 1.0
    start = {
        R.NONE: (0.0,),
        **{m: tuple(strength(preset, which, m, f) for f in factors) for m in preset.methods},
    }
    extensions = {m: preset.max_extend if len(cs) > 1 else 0 for m, cs in start.items()}
    points: dict[Regulariser, dict[float, tuple[float, float]]] = {m: {} for m in start}
    asked: dict[Regulariser, tuple[float, ...]] = start
    named = f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
    while asked:
        pairs = [(m, c) for m, cs in asked.items() for c in cs]
        specs = [run_spec(preset, which, m, c, seed=s) for m, c in pairs for s in seeds]
        results = train_runs(specs, desc=f"{which}: tuning c on {named}")
        for i, (m, c) in enumerate(pairs):
            runs = results[i * len(seeds) : (i + 1) * len(seeds)]
            points[m][c] = (
                statistics.fmean(r.average_accuracy(split="val") for r in runs),
                statistics.fmean(r.average_accuracy() for r in runs),
            )
        asked = {}
        for m in start:  # a grid whose best point is an end grows one step beyond it
            if extensions[m] == 0:
                continue
            ordered = sorted(points[m])
            i = _argbest([points[m][c][0] for c in ordered])
            if 0 < i < len(ordered) - 1:
                extensions[m] = 0
                continue
            extensions[m] -= 1
            asked[m] = (ordered[0] / ratio if i == 0 else ordered[-1] * ratio,)
    grid = {m: tuple(sorted(points[m])) for m in start}
    val = {m: tuple(points[m][c][0] for c in cs) for m, cs in grid.items()}
    test = {m: tuple(points[m][c][1] for c in cs) for m, cs in grid.items()}
    return Tuning(which, seeds[0], grid, val, test, seeds)


@dataclass(frozen=True)
class Comparison:
    """Every method at its tuned strength and no regularisation, on fresh seeds: per-seed results."""

    benchmark: Benchmark
    seeds: tuple[int, ...]
    strengths: dict[Regulariser, float]  #: the strength each method ran at (tuned on another seed)
    best: Regulariser  #: the regularised method chosen on validation data of the tuning seed
    test: dict[Regulariser, tuple[float, ...]]  #: average test accuracy after all tasks, per seed
    forgetting: dict[
        Regulariser, tuple[float, ...]
    ]  #: mean drop of earlier tasks' test accuracy, per seed
    results: dict[Regulariser, tuple[cl.ContinualResult, ...]] = field(
        repr=False, default_factory=dict
    )

    def gap(self, a: Regulariser | str, b: Regulariser | str) -> list[float]:
        """Per seed: test accuracy of ``a`` − that of ``b`` (paired: the same seed's runs)."""
        return [x - y for x, y in zip(self.test[Regulariser(a)], self.test[Regulariser(b)])]

    def as_record(self) -> dict[str, Any]:
        """Plain values for the results store."""
        key = f"{self.benchmark}."
        return {
            key + "seeds": list(self.seeds),
            key + "strengths": {str(m): c for m, c in self.strengths.items()},
            key + "best": str(self.best),
            key + "test": {str(m): list(v) for m, v in self.test.items()},
            key + "forgetting": {str(m): list(v) for m, v in self.forgetting.items()},
        }


def compare(preset: Preset, benchmark: Benchmark | str, tuning: Tuning) -> Comparison:
    """Train no regularisation and every tuned method on the preset's fresh seeds (one sweep)."""
    which = Benchmark(benchmark)
    chosen = tuning.chosen
    specs = [run_spec(preset, which, m, c, seed=s) for m, c in chosen.items() for s in preset.seeds]
    runs = train_runs(specs, desc=f"{which}: {len(chosen)} methods on fresh seeds {preset.seeds}")
    n = len(preset.seeds)
    results = {m: tuple(runs[i * n : (i + 1) * n]) for i, m in enumerate(chosen)}
    test = {m: tuple(r.average_accuracy() for r in rs) for m, rs in results.items()}
    forgetting = {m: tuple(r.forgetting() for r in rs) for m, rs in results.items()}
    return Comparison(which, preset.seeds, chosen, tuning.best, test, forgetting, results)


def swap_strengths(preset: Preset, tuning: Tuning) -> Comparison:
    """The control that separates SI's bias from its strength: SI at SIU's tuned c, and SIU at SI's,
    on the preset's fresh seeds (one sweep). With :func:`compare`'s runs at their own c, SI and SIU
    are then compared at each of the two strengths."""
    chosen = tuning.chosen
    if R.SI not in chosen or R.SIU not in chosen:
        raise ValueError("the swapped-strength control needs SI and SIU among the preset's methods")
    swapped = {R.SI: chosen[R.SIU], R.SIU: chosen[R.SI]}
    specs = [
        run_spec(preset, tuning.benchmark, m, c, seed=s)
        for m, c in swapped.items()
        for s in preset.seeds
    ]
    runs = train_runs(specs, desc=f"SI at SIU's c and SIU at SI's, seeds {preset.seeds}")
    n = len(preset.seeds)
    results = {m: tuple(runs[i * n : (i + 1) * n]) for i, m in enumerate(swapped)}
    test = {m: tuple(r.average_accuracy() for r in rs) for m, rs in results.items()}
    forgetting = {m: tuple(r.forgetting() for r in rs) for m, rs in results.items()}
    return Comparison(
        tuning.benchmark, preset.seeds, swapped, tuning.best, test, forgetting, results
    )
