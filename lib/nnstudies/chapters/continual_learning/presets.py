"""Chapter 3's settings, data only: one :class:`Preset` per scale in :data:`PRESETS`, each derived
from another with ``dataclasses.replace`` so that every value is written once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from ...continual import Regulariser
from ...pretty import Pretty

__all__ = ["BENCHMARKS", "PMNIST_PART_SEEDS", "PRESETS", "Benchmark", "BenchmarkSettings", "Preset"]

R = Regulariser


class Benchmark(enum.StrEnum):
    """The chapter's two task streams (a ``str``: ``Benchmark.PERMUTED == "permuted"``)."""

    PERMUTED = "permuted"  #: the data set's inputs in a fixed random order per task, one head shared by all
    SPLIT = "split"  #: two classes per task, each task a head of its own


BENCHMARKS = tuple(Benchmark)


@dataclass(frozen=True)
class BenchmarkSettings:
    """One benchmark's settings at one scale: the network, its training per task, and the strength centres c0."""

    n_tasks: int
    hidden: tuple[int, ...]  #: the MLP's hidden widths
    epochs: int  #: passes over a task's training set
    batch_size: int
    lr: float  #: Adam's learning rate (its state is reset at every task)
    strengths: dict[
        Regulariser, float
    ]  #: c0 per regularised method: the centre of its strength grid
    dataset: str | None = None  #: another data set than the preset's (the paper's Split CIFAR-10)
    channels: tuple[int, ...] | None = None  #: a CNN with these conv widths instead of the MLP
    steps: int | None = None  #: Adam steps per task, replacing ``epochs`` when set


@dataclass(frozen=True)
class Preset(Pretty):
    """Chapter 3's settings at one scale."""

    dataset: str
    permuted: BenchmarkSettings  #: Permuted tasks, one head shared by all
    split: BenchmarkSettings  #: Split tasks, two classes and a head of their own each
    methods: tuple[Regulariser, ...]  #: the regularised methods compared
    strength_factors: tuple[float, ...]  #: the strength grid is c0 × these factors
    tuning_seed: (
        int  #: the seed the strengths (and the best method) are chosen on, by validation accuracy
    )
    seeds: tuple[int, ...]  #: fresh seeds the claims are judged on
    correlation_seeds: tuple[
        int, ...
    ]  #: seeds of the importance correlations (one trajectory each)
    bias_batch_sizes: tuple[int, ...]  #: batch sizes of the SI-bias study
    bias_steps: int  #: steps of each run of the SI-bias study (the same for every batch size)
    n_train: int | None = None  #: the first n training examples of the data set (all when None)
    n_test: int | None = None
    validation: float = 0.2  #: the fraction of the training examples held out for tuning
    n_importance: int = 500  #: training inputs the measures after a task are averaged over
    damping: float = 0.1  #: SI's ξ
    threads: int | None = 1  #: torch threads while training (None: torch's default)
    #: more seeds whose validation accuracy is averaged with the tuning seed's
    extra_tuning_seeds: tuple[int, ...] = ()
    #: grid steps a strength grid grows past its edge while the edge wins (see ``experiment.tune``)
    max_extend: int = 2
    #: the paper's own setting: its P-MNIST accuracy (claim ``si_pmnist``) is judged
    pmnist_claim: bool = False

    def benchmark(self, name: Benchmark | str) -> BenchmarkSettings:
        """The settings of benchmark ``name``."""
        try:
            which = Benchmark(name)
        except ValueError:
            raise ValueError(
                f"unknown benchmark {name!r}; choose one of {[b.value for b in Benchmark]}"
            ) from None
        return self.permuted if which is Benchmark.PERMUTED else self.split


# Centres c0 of the strength grids for the MNIST-1D MLPs, calibrated on the tuning seeds' validation data
# (never on test data) with sweeps a decade apart, so that the chosen c lies inside its grid at `cpu`; the
# measures differ in scale by orders of magnitude. MAS, AF, √Fisher and SOS (not compared at `cpu`) keep
# the centres of an earlier, shorter training: re-centre them before comparing them. On Permuted, the
# third edition's 3 tasks of 400 steps: EWC 3, SI 1, SIU 3, SIB 3 won on the tuning seeds (0 and 4).
_MNIST1D_PERMUTED = {
    R.EWC: 3.0,
    R.MAS: 3.0,
    R.AF: 0.5,
    R.SQRT_FISHER: 0.15,
    R.SI: 1.5,
    R.SIU: 4.0,
    R.SIB: 3.0,
    R.SOS: 1.0,
}
_MNIST1D_SPLIT = {
    R.EWC: 100.0,
    R.MAS: 5.0,
    R.AF: 2.0,
    R.SQRT_FISHER: 0.5,
    R.SI: 100.0,
    R.SIU: 100.0,
    R.SIB: 100.0,
    R.SOS: 2.0,
}
# The paper's chosen strengths on Permuted MNIST (784-2000-2000-10, Adam, 20 epochs per task) ...
_PAPER_PMNIST = {
    R.EWC: 1e3,
    R.MAS: 500.0,
    R.AF: 200.0,
    R.SQRT_FISHER: 2.0,
    R.SI: 0.2,
    R.SIU: 2.0,
    R.SIB: 0.5,
    R.SOS: 1.0,
}
# ... and on Split CIFAR (SI 5, MAS 200; the others, not reported there, keep their P-MNIST values).
_PAPER_SPLIT = {**_PAPER_PMNIST, R.SI: 5.0, R.MAS: 200.0}
# Centres c0 of the strength grids at `full` (Fashion-MNIST, 36 Adam steps per permuted task, 16 per split task).
# A first full run on grids c = paper × {0.1, 1, 10} chose an end of the grid for 6 of 8 methods on Permuted and
# 7 of 8 on Split (validation accuracy of the tuning seed, never test data): SI's importance is a sum over the
# steps of a task, and with 36 steps instead of the paper's ~4700 it is two orders of magnitude smaller, so SI,
# SIU and SIB need c about 100× the paper's; the Fisher-based measures wanted less on Permuted (the tasks are
# learned less well, and a strong penalty costs the next task more) and far more on Split (each task has its
# own head, so freezing the shared layers costs little). The centres below move each grid to where that run's
# validation accuracy was rising, and `tune` extends a grid past any end that still wins.
_FULL_PERMUTED = {
    R.EWC: 30.0,
    R.MAS: 10.0,
    R.AF: 5.0,
    R.SQRT_FISHER: 1.0,
    R.SI: 20.0,
    R.SIU: 200.0,
    R.SIB: 5.0,
    R.SOS: 10.0,
}
_FULL_SPLIT = {
    R.EWC: 1e5,
    R.MAS: 2e4,
    R.AF: 2e4,
    R.SQRT_FISHER: 200.0,
    R.SI: 500.0,
    R.SIU: 500.0,
    R.SIB: 500.0,
    R.SOS: 100.0,
}
_ALL = (R.EWC, R.MAS, R.AF, R.SQRT_FISHER, R.SI, R.SIU, R.SIB, R.SOS)

# Each permuted task: 400 Adam steps (16 epochs of 3200 examples), 3 tasks: fewer tasks learned further
# than the earlier 4 tasks of 200 steps, so that the regularisers' gain over none (about 4.5 points) stands
# clear of the seed spread (about 0.5 point; with 4 x 200 steps the spread was twice that, with 2 x 600
# steps the gain half); each split task 50 steps. Three tuning seeds (0, 4 and 5): with two, SIB's strength was
# chosen by 0.3 point of validation accuracy and came out otherwise on another floating-point path. Four methods
# at cpu (EWC and SI with its two parts), to fit the chapter in a few minutes on a laptop. The strengths are
# chosen on the validation accuracy averaged over the tuning seeds (0, 4 and 5): on one seed, strengths and best
# methods that won by a fraction of a point changed when the chapter ran on another floating-point path.
_CPU = Preset(
    "mnist1d",
    permuted=BenchmarkSettings(
        3, (512, 128), epochs=16, batch_size=128, lr=2e-3, strengths=_MNIST1D_PERMUTED
    ),
    split=BenchmarkSettings(
        5, (512, 128), epochs=5, batch_size=64, lr=1e-3, strengths=_MNIST1D_SPLIT
    ),
    methods=(R.EWC, R.SI, R.SIU, R.SIB),
    strength_factors=(1 / 3, 1.0, 3.0),
    tuning_seed=0,
    seeds=(1, 2, 3),
    correlation_seeds=(0, 1, 2),
    bias_batch_sizes=(16, 64, 256),
    bias_steps=200,
    extra_tuning_seeds=(4, 5),
)
_SMOKE = replace(
    _CPU,
    permuted=replace(_CPU.permuted, n_tasks=2, hidden=(128, 64), epochs=4, batch_size=64),
    split=replace(_CPU.split, hidden=(128, 64), epochs=1, lr=2e-3),
    strength_factors=(1.0,),
    bias_batch_sizes=(16, 128),
    bias_steps=30,
    n_train=1500,
    n_test=300,
    n_importance=100,
    extra_tuning_seeds=(),
)
# Fashion-MNIST, sized to about 15 minutes on 2 cores shared with other work (measured under that load: 180
# steps of a 784-500-500-10 MLP at batch 256 take about 5 s of one thread for SI, 7.5 s for SIU and SIB, which
# compute a second minibatch gradient; the 784-1000-1000-10 MLP of the earlier edition took 3 times as long, and
# would not have fit): the first 20 000 training images (18 000 to train on, 2 000 to tune on) and 2 000 test
# images, Adam 1e-3 reset per task, the paper's batch 256, THREE permuted tasks of 180 steps each (2.6 passes over
# a task; the paper: 20 epochs, about 4 700 steps); SI, SIU and SIB only (the measures the bias claims are about),
# tuned on a ×√10 grid (extended by up to two steps past an end that wins) over two tuning seeds (0 and 6), judged
# on five fresh seeds (1-5). SI's importance is a sum over a task's steps, so its useful c falls as the tasks
# lengthen: the centres scale the paper's chosen c (SI 0.2, SIU 2 at ~4 700 steps) by about 4 700 / 180 ≈ 26
# (SIB, most of SI at this batch, is centred with SI). The bias study trains 180 steps at batch 32, 128, 256 (the
# verdict) and 512. Split tasks keep their short training (one pass, about 14 steps per task): they are the
# sensitivity check of "regularisation beats none", not where the bias claims are made.
_SQRT10 = 10**0.5
_FULL_PERMUTED_SETTINGS = BenchmarkSettings(
    3,
    (500, 500),
    epochs=1,
    batch_size=256,
    lr=1e-3,
    strengths={**_FULL_PERMUTED, R.SI: 5.0, R.SIU: 50.0, R.SIB: 5.0},
    steps=180,
)
_FULL = replace(
    _CPU,
    dataset="fashion_mnist",
    permuted=_FULL_PERMUTED_SETTINGS,
    split=replace(_FULL_PERMUTED_SETTINGS, n_tasks=5, steps=None, strengths=_FULL_SPLIT),
    methods=(R.SI, R.SIU, R.SIB),
    strength_factors=(1 / _SQRT10, 1.0, _SQRT10),
    tuning_seed=0,
    extra_tuning_seeds=(6,),
    seeds=(1, 2, 3, 4, 5),
    correlation_seeds=(1, 2, 3, 4, 5),
    bias_batch_sizes=(32, 128, 256, 512),
    bias_steps=180,
    n_train=20_000,
    n_test=2_000,
    validation=0.1,
    threads=None,
)
# The paper: Permuted MNIST, 10 tasks, 784-2000-2000-10, Adam 1e-3 reset per task, batch 256, 20 epochs per task,
# the paper's chosen strengths. Split: CIFAR-10 as 5 two-class tasks with the library's CNN, 60 epochs per task
# (the paper's Split CIFAR-10/100 has 6 tasks and a 4-conv CNN with dropout).
_PAPER = replace(
    _FULL,
    dataset="mnist",
    permuted=replace(
        _FULL.permuted,
        n_tasks=10,
        hidden=(2000, 2000),
        epochs=20,
        steps=None,
        strengths=_PAPER_PMNIST,
    ),
    split=replace(
        _FULL.split,
        hidden=(),
        epochs=60,
        strengths=_PAPER_SPLIT,
        dataset="cifar10",
        channels=(32, 32, 64, 64),
    ),
    methods=_ALL,
    strength_factors=(1.0,),
    bias_batch_sizes=(64, 256, 1024),
    bias_steps=1000,
    n_train=None,
    n_test=None,
    n_importance=1000,
    pmnist_claim=True,
)

#: judging seeds the P-MNIST part (``python -m nnstudies.chapters.continual_learning pmnist``) runs SI on:
#: three, the fewest a claim is judged on, so that the part fits 15 minutes of one GPU
PMNIST_PART_SEEDS = 3

PRESETS: dict[str, Preset] = {"smoke": _SMOKE, "cpu": _CPU, "full": _FULL, "paper": _PAPER}
"""The chapter's settings per scale."""
