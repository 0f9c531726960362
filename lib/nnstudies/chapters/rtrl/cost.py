"""Chapter 4, section 2: the cost per step of exact RTRL and OK(r) across n (timed, never cached),
and the memory each learner holds."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...device import get_device, threads
from ...progress import progress
from ...rtrl import OnlineLearner
from ...scales import dry_run
from .learners import Algorithm, Learner, build_model, generator
from .presets import Preset

__all__ = [
    "CostStudy",
    "cost_study",
    "exponent_interval",
    "fit_exponent",
    "measure_step",
    "state_mib",
]


def state_mib(learner: OnlineLearner) -> float:
    """MiB held by the learner's persistent tensors (state, influence or window), counted
    exactly."""
    total = 0
    for value in vars(learner).values():
        items = (
            value
            if isinstance(value, (list, tuple)) or type(value).__name__ == "deque"
            else [value]
        )
        for item in items:
            for t in item if isinstance(item, tuple) else (item,):
                if isinstance(t, torch.Tensor):
                    total += t.numel() * t.element_size()
    return total / 2**20


def _rss_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def measure_step(
    spec: Learner,
    n: int,
    *,
    batch: int = 16,
    steps: int = 3,
    inputs: int = 4,
    device: torch.device | None = None,
) -> tuple[float, float | None, float]:
    """Seconds per learner step (the median of ``steps`` after one warm-up; one thread on a CPU),
    peak extra memory in MiB, and the MiB of the learner's persistent state (:func:`state_mib`).

    Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` above what was allocated before; on
    Linux CPUs, the process's peak resident set (VmHWM, reset through ``/proc/self/clear_refs``)
    above its resident set before — memory the allocator kept from earlier work is reused without
    showing up, so small values read low; else ``None``.
    """
    device = device or get_device()
    model = build_model(n, inputs, inputs, device=device)
    learner = spec.build(model, generator(device, 0))
    g = torch.Generator().manual_seed(0)
    xs = F.one_hot(torch.randint(0, inputs, (steps + 1, batch), generator=g), inputs).to(
        device, torch.float32
    )
    ys = torch.randint(0, inputs, (steps + 1, batch), generator=g).to(device)
    cuda = device.type == "cuda"
    base: float | None
    if cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            base = _rss_kib("VmRSS")
        except OSError:
            base = None
    learner.reset(batch)
    times = []
    with threads(1, device):
        for t in range(steps + 1):
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            learner.step(xs[t], ys[t])
            if cuda:
                torch.cuda.synchronize()
            if t > 0:
                times.append(time.perf_counter() - start)
    if cuda:
        peak: float | None = (torch.cuda.max_memory_allocated() - (base or 0)) / 2**20
    else:
        hwm = _rss_kib("VmHWM")
        peak = (hwm - base) / 1024 if base is not None and hwm is not None else None
    state = state_mib(learner)
    del learner, model
    return statistics.median(times), peak, state


def fit_exponent(ns: Sequence[float], seconds: Sequence[float]) -> float:
    """Slope of log(time) against log(n), least squares."""
    return float(np.polyfit(np.log(ns), np.log(seconds), 1)[0])


def exponent_interval(
    ns: Sequence[float], seconds_by_repeat: Sequence[Sequence[float]], level: float = 0.95
) -> tuple[float, float, float]:
    """The slope of log(time) against log(n) over all repeats pooled, and its ``level`` confidence
    interval (t-interval of OLS)."""
    from scipy import stats

    x = np.log(np.tile(np.asarray(ns, dtype=float), len(seconds_by_repeat)))
    y = np.log(np.asarray(seconds_by_repeat, dtype=float).ravel())
    if len(x) < 3:
        slope = fit_exponent(np.exp(x), np.exp(y))
        return slope, math.nan, math.nan
    fit_result = stats.linregress(x, y)
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 2)) * fit_result.stderr
    return float(fit_result.slope), float(fit_result.slope - half), float(fit_result.slope + half)


@dataclass(frozen=True)
class CostStudy:
    """Section 2: median seconds per step, ``seconds[spec][repeat][i]`` at ``hidden_sizes[i]``,
    timed interleaved.

    ``judged``: the run is a stored, quiet benchmark whose verdict counts (``full``, ``paper``);
    elsewhere the numbers illustrate and the claims table leaves the timing claims untested.
    """

    hidden_sizes: tuple[int, ...]
    batch: int
    seconds: dict[Learner, list[list[float]]]
    exact: Learner
    ok: Learner
    judged: bool

    @property
    def fit_sizes(self) -> tuple[int, ...]:
        """The sizes the exponents are fitted on: the three largest."""
        return self.hidden_sizes[-3:]

    def median(self, spec: Learner) -> list[float]:
        return [float(np.median(column)) for column in zip(*self.seconds[spec])]

    def exponents(self, spec: Learner) -> list[float]:
        """The fitted exponent of each repeat, over :attr:`fit_sizes`."""
        k = len(self.fit_sizes)
        return [fit_exponent(self.fit_sizes, row[-k:]) for row in self.seconds[spec]]

    def interval(self, spec: Learner) -> tuple[float, float, float]:
        """The exponent over all repeats pooled, with its 95% confidence interval."""
        k = len(self.fit_sizes)
        return exponent_interval(self.fit_sizes, [row[-k:] for row in self.seconds[spec]])

    def ratios(self) -> list[float]:
        """Per repeat: exact RTRL's time over OK's at the largest size."""
        return [e[-1] / o[-1] for e, o in zip(self.seconds[self.exact], self.seconds[self.ok])]


def cost_study(preset: Preset) -> CostStudy:
    """Seconds per step of exact RTRL and OK(r) at the preset's sizes: every repeat times every size
    and both learners in turn (interleaved, so a busy moment hits both alike), the median of a few
    steps each. Never cached. A dry run times the two smallest sizes once."""
    c = preset.cost
    sizes, repeats, steps = (
        (c.hidden_sizes[:2], 1, 1) if dry_run() else (c.hidden_sizes, c.repeats, c.steps)
    )
    exact, ok = Learner(Algorithm.EXACT), Learner(Algorithm.OK, rank=c.rank)
    seconds: dict[Learner, list[list[float]]] = {exact: [], ok: []}
    for _ in progress(range(repeats), desc="timing exact RTRL and OK, interleaved"):
        for spec in (exact, ok):
            seconds[spec].append([])
        for n in sizes:
            for spec in (exact, ok):
                seconds[spec][-1].append(measure_step(spec, n, batch=c.batch, steps=steps)[0])
    return CostStudy(tuple(sizes), c.batch, seconds, exact, ok, c.judged)
