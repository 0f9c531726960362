"""Chapter 4's experiments on the copy task: the run spec (:class:`CopySpec`), the studies of
sections 1, 3 and 4 (fixed length against TBPTT's horizon, the noise of the estimates, the
curriculum), and RTRL checked against BPTT.

Each training run is a :class:`CopySpec` executed by the engine (:func:`nnstudies.runs.execute`,
:func:`nnstudies.runs.run_all`), cached by its fields; a study sends all its runs as one sweep.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...device import get_device, threads
from ...rtrl import ExactRTRL, OnlineLearner, RecurrentModel
from ...runs import Run, Spec, execute, run_all
from ...scales import dry_run
from ...tasks.sequences import CopyTask, SequenceStep
from ...training import DRY_RUN_STEPS, History, Optimizer, OptimizerSpec, fit
from .learners import Algorithm, Learner, build_model, generator, online_step
from .presets import HorizonSetting, Network, Preset

__all__ = [
    "CopyResult",
    "CopyRun",
    "CopySpec",
    "CurriculumStudy",
    "HorizonStudy",
    "VarianceStudy",
    "copied_bit_loss",
    "copy_run",
    "copy_runs",
    "copy_spec",
    "curriculum_specs",
    "curriculum_study",
    "exact_vs_bptt",
    "horizon_specs",
    "horizon_study",
    "length_profile",
    "network_model",
    "smooth",
    "variance_study",
]


# ============================================================================ the copy task


@dataclass(frozen=True)
class CopyResult:
    """What a copy-task run keeps: the training loss per step (``history``, nats per character),
    the curriculum's length T₊ after each step, and the loss on the copied bits at each step in
    bits (NaN at steps where no stream is due to write a bit)."""

    history: History
    lengths: list[int]
    bit_loss: list[float]


def network_model(network: Network, vocab: int, *, seed: int, device: str) -> RecurrentModel:
    """The preset's network for ``vocab`` symbols in and out, seeded with ``seed``, on ``device``."""
    return build_model(
        network.hidden,
        vocab,
        vocab,
        init_std=network.init_std,
        seed=seed,
        device=torch.device(device),
    )


@dataclass(frozen=True)
class CopySpec(Spec):
    """One online run on the copy task with one learner.

    ``length=None``: the paper's curriculum from T = 1; an int: that fixed length T.
    """

    learner: Learner
    network: Network
    steps: int
    ema: float
    length: int | None
    seed: int
    device: str

    @property
    def label(self) -> str:
        what = "curriculum" if self.length is None else f"T={self.length}"
        return (
            f"copy task ({what}), {self.learner.label}, n={self.network.hidden}, seed {self.seed}"
        )

    def build(self) -> RecurrentModel:
        return network_model(self.network, CopyTask.vocab, seed=self.seed, device=self.device)

    def train(self, model: torch.nn.Module) -> CopyResult:
        assert isinstance(model, RecurrentModel)
        net, seed, device = self.network, self.seed, torch.device(self.device)
        task = CopyTask(
            net.batch,
            T_start=self.length or 1,
            ema=self.ema,
            curriculum=self.length is None,
            device=device,
            generator=torch.Generator().manual_seed(1000 + seed),
        )
        learner = self.learner.build(model, generator(device, 2000 + seed))
        learner.reset(net.batch)
        lengths: list[int] = []
        bit_loss: list[float] = []

        def curriculum(s: SequenceStep, loss: float) -> None:
            task.observe(loss)  # the moving average; T₊ grows when it falls below 0.15 bits/char
            lengths.append(task.T)
            assert learner.h is not None
            bit_loss.append(copied_bit_loss(model, learner.h, s.y))

        step = online_step(
            model,
            learner,
            task,
            OptimizerSpec(Optimizer.ADAM, lr=net.lr).make(model.parameters()),
            clip=net.clip,
            observe=curriculum,
        )
        with threads(1, device):
            history = fit(
                step,
                steps=self.steps,
                desc=self.label,
                hint=f" ({self.learner.label}, lr={net.lr:g}); try a smaller learning rate",
            )
        return CopyResult(history, lengths, bit_loss)


@dataclass(frozen=True)
class CopyRun:
    """One online run on the copy task, as a study shows it: the learner, the seed and the
    :class:`CopyResult`'s curves."""

    spec: Learner
    seed: int
    history: History
    lengths: list[int]
    bit_loss: list[float]

    @classmethod
    def of(cls, run: Run[CopyResult]) -> CopyRun:
        spec = run.spec
        assert isinstance(spec, CopySpec)
        result = run.result
        return cls(spec.learner, spec.seed, result.history, result.lengths, result.bit_loss)

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def final_length(self) -> int:
        return self.lengths[-1]

    @property
    def loss_bits(self) -> np.ndarray:
        return np.asarray(self.history.train_loss) / math.log(2)

    def final_bit_loss(self, tail: int) -> float:
        """Mean loss on the copied bits over the last ``tail`` steps, bits (1 bit: guessing)."""
        values = np.asarray(self.bit_loss[-tail:], dtype=float)
        return float(np.nanmean(values)) if np.isfinite(values).any() else 1.0


@torch.no_grad()
def copied_bit_loss(model: RecurrentModel, h: torch.Tensor, y: torch.Tensor) -> float:
    """Mean cross-entropy in bits of the readout at state ``h`` on the streams whose target is a bit
    (0 or 1); NaN if none."""
    is_bit = y < 2
    if not bool(is_bit.any()):
        return math.nan
    return float(F.cross_entropy(model.readout(h[is_bit]), y[is_bit])) / math.log(2)


def copy_spec(
    learner: Learner, preset: Preset, *, seed: int = 0, length: int | None = None
) -> CopySpec:
    """The run of ``learner`` on the copy task at ``preset``: ``length=None`` the curriculum for the
    ``curriculum`` setting's steps, an int that fixed length T for the ``horizon`` setting's steps."""
    steps = preset.curriculum.steps if length is None else preset.horizon.steps
    return CopySpec(
        learner,
        preset.copy,
        steps,
        preset.curriculum.ema,
        length,
        seed,
        get_device().type,
    )


def copy_runs(specs: Sequence[CopySpec]) -> list[CopyRun]:
    """Execute the runs as one sweep (cached); their :class:`CopyRun` in the order given."""
    return [CopyRun.of(run) for run in run_all(list(specs), desc="copy-task runs")]


def copy_run(
    learner: Learner, preset: Preset, *, seed: int = 0, length: int | None = None
) -> tuple[RecurrentModel, CopyRun]:
    """Train on the copy task online with one learner (cached; see :func:`copy_spec`); return the
    trained model and its :class:`CopyRun`."""
    run = execute(copy_spec(learner, preset, seed=seed, length=length))
    model = run.model()
    assert isinstance(model, RecurrentModel)
    return model, CopyRun.of(run)


def smooth(values: Sequence[float] | np.ndarray, window: int) -> np.ndarray:
    """Moving average over ``window`` steps, ignoring NaNs (steps with no copied bit)."""
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    kernel = np.ones(window)
    num = np.convolve(np.where(ok, v, 0.0), kernel, "full")[: len(v)]
    den = np.convolve(ok.astype(float), kernel, "full")[: len(v)]
    return np.where(den > 0, num / np.maximum(den, 1), np.nan)


@dataclass(frozen=True)
class HorizonStudy:
    """Section 1: runs at one fixed length T, by learner, one per seed (OK: the first seed only)."""

    length: int
    short: Learner  #: TBPTT(T + 1), one step short of the dependency
    enough: Learner  #: TBPTT(T + 2), just enough
    runs: dict[Learner, list[CopyRun]]
    tail: int  #: steps at the end over which the final loss on the copied bits is averaged

    def final_bit_loss(self, learner: Learner) -> list[float]:
        return [run.final_bit_loss(self.tail) for run in self.runs[learner]]


def horizon_specs(preset: Preset) -> list[CopySpec]:
    """Every run of :func:`horizon_study`."""
    h = preset.horizon
    return [
        copy_spec(learner, preset, seed=s, length=h.length)
        for learner, seeds in _horizon_plan(h)
        for s in seeds
    ]


def _horizon_plan(h: HorizonSetting) -> list[tuple[Learner, tuple[int, ...]]]:
    short, enough = (Learner(Algorithm.TBPTT, horizon=k) for k in h.horizons)
    return [(short, h.seeds), (enough, h.seeds), (Learner(Algorithm.OK, rank=h.rank), h.seeds[:1])]


def horizon_study(preset: Preset) -> HorizonStudy:
    """TBPTT(T+1) and TBPTT(T+2) on the copy task at the preset's fixed length T, on every seed, and
    OK(r) on one (one sweep)."""
    h = preset.horizon
    plan = _horizon_plan(h)
    runs = _sweep(plan, lambda learner, s: copy_spec(learner, preset, seed=s, length=h.length))
    return HorizonStudy(h.length, plan[0][0], plan[1][0], runs, tail=max(10, h.steps // 10))


def _sweep(
    plan: Sequence[tuple[Learner, Sequence[int]]], spec: Callable[[Learner, int], CopySpec]
) -> dict[Learner, list[CopyRun]]:
    """Every (learner, seed) of ``plan`` run as one sweep; the runs by learner, in seed order."""
    done = iter(copy_runs([spec(learner, s) for learner, seeds in plan for s in seeds]))
    return {learner: [next(done) for _ in seeds] for learner, seeds in plan}


@dataclass(frozen=True)
class CurriculumStudy:
    """Section 4: the copy task with the curriculum; runs by learner, one per seed. ``horizons``:
    TBPTT's k sweep, run in both :data:`~.presets.TBPTT_VARIANTS`."""

    runs: dict[Learner, list[CopyRun]]
    ok: Learner  #: the OK the claim compares
    tbptt: Learner  #: with this TBPTT (updating every k steps)
    horizons: tuple[int, ...] = ()

    def lengths(self, learner: Learner) -> list[int]:
        """The length T₊ each seed reached."""
        return [run.final_length for run in self.runs[learner]]

    def seconds(self, learner: Learner) -> list[float]:
        """Each seed's wall-clock seconds of training (one thread)."""
        return [run.history.seconds for run in self.runs[learner]]

    def sweep(self, variant: Algorithm) -> dict[int, Learner]:
        """TBPTT in ``variant`` at each swept horizon k."""
        return {k: Learner(variant, horizon=k) for k in self.horizons}

    def catch_up(self, variant: Algorithm) -> int | None:
        """The smallest swept k at which TBPTT in ``variant`` reaches OK's mean length T₊ (None: no
        k does)."""
        target = float(np.mean(self.lengths(self.ok)))
        for k, learner in self.sweep(variant).items():
            if float(np.mean(self.lengths(learner))) >= target:
                return k
        return None


def curriculum_specs(preset: Preset) -> list[CopySpec]:
    """Every run of :func:`curriculum_study`: OK, TBPTT's k sweep in both variants, the
    companions."""
    return [
        copy_spec(learner, preset, seed=s)
        for learner, seeds in preset.curriculum.runs
        for s in seeds
    ]


def curriculum_study(preset: Preset) -> CurriculumStudy:
    """OK and TBPTT (both variants, every swept k) with the paper's curriculum on every seed, and
    the preset's companions on theirs (one sweep)."""
    c = preset.curriculum
    runs = _sweep(c.runs, lambda learner, s: copy_spec(learner, preset, seed=s))
    return CurriculumStudy(
        runs,
        Learner(Algorithm.OK, rank=c.rank),
        Learner(Algorithm.TBPTT_EVERY_K, horizon=c.horizon),
        tuple(c.horizons),
    )


@torch.no_grad()
def length_profile(
    model: RecurrentModel, lengths: Sequence[int], *, sequences: int = 256, seed: int = 0
) -> list[float]:
    """Loss on the copied bits (bits per bit) of a trained model, parameters fixed, on fresh
    sequences of each length T."""
    task = CopyTask(
        1,
        device=model.cell.weight.device,
        dtype=model.cell.weight.dtype,
        generator=torch.Generator().manual_seed(7000 + seed),
    )
    out = []
    for T in lengths:
        xs, ys = task.batch(int(T), sequences)
        logits, _ = model(xs)
        ce = F.cross_entropy(logits[T + 2 :].flatten(0, 1), ys[T + 2 :].flatten())
        out.append(float(ce) / math.log(2))
    return out


# ============================================================================ RTRL against BPTT


def exact_vs_bptt(*, T: int = 12, batch: int = 3, n: int = 6, seed: int = 0) -> dict[str, float]:
    """Relative error of exact RTRL's accumulated gradient against autograd through the unrolled
    sequence (float64).

    Also the same for TBPTT with a short horizon (k = T/4), which should be far off.
    """
    model = build_model(
        n, 3, 4, init_std=0.5, seed=seed, device=torch.device("cpu"), dtype=torch.float64
    )
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(T, batch, 3, generator=g, dtype=torch.float64)
    ys = torch.randint(0, 4, (T, batch), generator=g)
    params = list(model.parameters())
    reference = torch.autograd.grad(model.sequence_loss(xs, ys), params)
    out = {}
    for spec in (Learner(Algorithm.EXACT), Learner(Algorithm.TBPTT, horizon=T // 4)):
        learner = spec.build(model)
        model.zero_grad(set_to_none=True)
        learner.reset(batch)
        for t in range(T):
            learner.step(xs[t], ys[t])
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        out[spec.label] = max(float((g - r).norm() / r.norm()) for g, r in zip(grads, reference))
    model.zero_grad(set_to_none=True)
    return out


# ============================================================================ estimator noise


@dataclass(frozen=True)
class VarianceStudy:
    """Section 3: relative variance ``E‖ĝ_t − g_t‖² / ‖g_t‖²`` of each learner's per-step gradient
    estimate.

    ``per_step[learner][i]`` holds seed i's values at every step of its stream (``settle`` steps
    and then ``steps`` at steady state); ``sequence`` the same for the gradient summed over the
    stream (one value per seed); ``mixed_mass`` OK's ``Σ_mixed σ / Σ σ`` per step.
    """

    seeds: tuple[int, ...]
    lengths: list[int]  #: the copy length each seed's network reached (its stream's length)
    steps: int  #: steps averaged at steady state
    settle: int  #: steps before them, left out of :meth:`mean` (OK(r) is exact for r steps)
    draws: int
    ranks: tuple[int, ...]
    per_step: dict[Learner, list[list[float]]]
    sequence: dict[Learner, list[float]]
    mixed_mass: dict[Learner, list[list[float]]]

    def mean(self, learner: Learner) -> list[float]:
        """Per seed, the relative variance averaged over the steps at steady state (after
        ``settle``)."""
        return [float(np.mean(values[self.settle :])) for values in self.per_step[learner]]


def variance_study(preset: Preset) -> VarianceStudy:
    """Noise of the gradient estimates, on the network OK trained with the curriculum on each seed.

    Each seed's input is a stream of copy sequences at the length its network reached, without
    state resets. Every approximate learner runs ``draws`` independent copies side by side (the
    batch), so each step gives ``draws`` estimates ``ĝ_t`` of the per-step gradient ``g_t`` that
    exact RTRL gives. The first ``settle`` steps, while OK's rank fills, are run and kept but left
    out of the steady-state mean. In a dry run the stream is two steps long (one to settle) and
    there are four draws.
    """
    v, c = preset.variance, preset.curriculum
    steps, settle, draws = (DRY_RUN_STEPS - 1, 1, 4) if dry_run() else (v.steps, v.settle, v.draws)
    learners = [Learner(Algorithm.UORO), Learner(Algorithm.KF)] + [
        Learner(Algorithm.OK, rank=r) for r in v.ranks
    ]
    per_step: dict[Learner, list[list[float]]] = {s: [] for s in learners}
    sequence: dict[Learner, list[float]] = {s: [] for s in learners}
    mixed: dict[Learner, list[list[float]]] = {
        s: [] for s in learners if s.algorithm is Algorithm.OK
    }
    lengths = []
    ok = Learner(Algorithm.OK, rank=c.rank)
    trained = run_all([copy_spec(ok, preset, seed=seed) for seed in c.seeds], desc="copy-task runs")
    for seed, run in zip(c.seeds, trained):
        model = run.model()
        assert isinstance(model, RecurrentModel)
        device = model.cell.weight.device
        lengths.append(max(1, CopyRun.of(run).final_length))
        task = CopyTask(
            1,
            T_start=lengths[-1],
            curriculum=False,
            device=device,
            dtype=model.cell.weight.dtype,
            generator=torch.Generator().manual_seed(3000 + seed),
        )
        stream = [task.next() for _ in range(settle + steps)]
        with threads(1, device):
            exact = _per_step_grads(ExactRTRL(model), stream, 1)[0][:, 0]  # (steps, m, gn)
            norm = (exact**2).flatten(1).sum(1).clamp_min(1e-30)
            for learner in learners:
                grads, masses = _per_step_grads(
                    learner.build(model, generator(device, 4000 + seed)), stream, draws
                )
                err = ((grads - exact[:, None]) ** 2).flatten(2).sum(2).mean(1)
                per_step[learner].append((err / norm).tolist())
                total, total_exact = grads.sum(0), exact.sum(0)
                sequence[learner].append(
                    float(
                        ((total - total_exact) ** 2).flatten(1).sum(1).mean()
                        / (total_exact**2).sum()
                    )
                )
                if learner in mixed:
                    mixed[learner].append(masses)
        model.zero_grad(set_to_none=True)
    return VarianceStudy(
        tuple(c.seeds), lengths, steps, settle, draws, tuple(v.ranks), per_step, sequence, mixed
    )


@torch.no_grad()
def _per_step_grads(
    learner: OnlineLearner, stream: list[SequenceStep], copies: int
) -> tuple[torch.Tensor, list[float]]:
    """Per-step, per-copy estimates (steps, copies, m, gn) of each copy's own cell gradient; OK's
    mixed mass per step."""
    learner.reset(copies)
    out, masses = [], []
    for s in stream:
        x, y = s.x.expand(copies, -1).contiguous(), s.y.expand(copies).contiguous()
        learner.step(x, y)
        out.append(learner.example_grads.clone())
        info = getattr(learner, "last_info", None)
        if info:
            masses.append(float(info["mixed_mass"].mean()))
    learner.model.zero_grad(set_to_none=True)
    return torch.stack(out), masses
