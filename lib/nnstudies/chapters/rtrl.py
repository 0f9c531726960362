"""Chapter 4's experiments: truncation horizons, RTRL's cost, estimator noise, online copy task, characters, widget.

The algorithms live in :mod:`nnstudies.rtrl`; this module sizes the chapter's
experiments per scale, runs them (trained runs are cached by configuration),
and draws the figures. Every run uses an online loop: one learner step per time
step, then one Adam update of all parameters (the cell weight's gradient clipped
to norm 1, as in the authors' code).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from .cache import cached
from .device import get_device
from .plotting import color_for, new_figure
from .progress import progress
from .rtrl import (
    CharStream,
    CopyTask,
    ExactRTRL,
    OnlineLearner,
    RecurrentModel,
    RHNCell,
    TanhCell,
    encode_text,
    make_learner,
    pydoc_text,
    ptb_text,
)
from .scales import pick
from .training import DivergenceError, History

__all__ = [
    "PRESETS",
    "build_model",
    "char_run",
    "bits_per_char",
    "claims_rows",
    "color",
    "copy_run",
    "cost_table",
    "exact_vs_bptt",
    "explore_copy",
    "fit_exponent",
    "label",
    "measure_step",
    "plot_char",
    "plot_cost",
    "plot_curriculum",
    "plot_horizon",
    "plot_variance_rank",
    "plot_variance_steps",
    "smooth",
    "state_mib",
    "text_data",
    "unigram_bits",
    "variance_study",
]

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {
        "copy": {"n": 8, "batch": 4, "lr": 1e-2, "init_std": 0.2, "ema": 0.95, "clip": 1.0},
        "horizon": {"T": 2, "horizons": [1, 4], "rank": 2, "steps": 80},
        "variance": {"ranks": [1, 2, 4], "draws": 64, "steps": 16},
        "curriculum": {"steps": 100, "rank": 2, "horizon": 2, "methods": ["ok", "kf", "uoro", "tbptt"]},
        "char": {"n": 8, "batch": 4, "rank": 2, "horizon": 4, "steps": 40, "lr": 1e-2, "eval_every": 20,
                 "eval_streams": 2, "eval_steps": 60, "reset_every": 100, "text": "pydoc"},
        "cost": {"ns": [4, 8, 16], "batch": 4, "steps": 2, "rank": 2, "horizon": 4},
    },
    "cpu": {
        "copy": {"n": 32, "batch": 16, "lr": 1e-2, "init_std": 0.2, "ema": 0.99, "clip": 1.0},
        "horizon": {"T": 4, "horizons": [2, 8], "rank": 4, "steps": 1500},
        "variance": {"ranks": [1, 2, 4, 8, 16], "draws": 128, "steps": 40},
        "curriculum": {"steps": 2000, "rank": 4, "horizon": 3, "methods": ["ok", "kf", "uoro", "tbptt"]},
        "char": {"n": 32, "batch": 16, "rank": 4, "horizon": 5, "steps": 1500, "lr": 3e-3, "eval_every": 250,
                 "eval_streams": 8, "eval_steps": 500, "reset_every": 100, "text": "pydoc"},
        "cost": {"ns": [16, 32, 64, 128], "batch": 16, "steps": 3, "rank": 8, "horizon": 10},
    },
    "paper": {
        # The paper: RHN n=128, batch 16, r=16, Adam 10^-3.5, clip 1, 2M steps (here cut to fit about an hour).
        "copy": {"n": 128, "batch": 16, "lr": 10 ** -3.5, "init_std": 0.01, "ema": 0.999, "clip": 1.0},
        "horizon": {"T": 10, "horizons": [5, 25], "rank": 16, "steps": 20000},
        "variance": {"ranks": [1, 2, 4, 8, 16, 32], "draws": 256, "steps": 200},
        "curriculum": {"steps": 100000, "rank": 16, "horizon": 5, "methods": ["ok", "kf", "uoro", "tbptt"]},
        # Penn Treebank characters: n=256, batch 32, r=8, 10^-3.5, state reset every 100 characters (paper: 1M steps).
        "char": {"n": 256, "batch": 32, "rank": 8, "horizon": 25, "steps": 50000, "lr": 10 ** -3.5, "eval_every": 5000,
                 "eval_streams": 32, "eval_steps": 2000, "reset_every": 100, "text": "ptb"},
        "cost": {"ns": [16, 32, 64, 128, 256], "batch": 16, "steps": 5, "rank": 8, "horizon": 10},
    },
}

NAMES = {"exact": "exact RTRL", "uoro": "UORO", "kf": "KF-RTRL", "ok": "OK", "tbptt": "TBPTT"}
_FIXED_COLORS = {"exact RTRL": "#000000", "UORO": "#E69F00", "KF-RTRL": "#D55E00", "OK": "#009E73"}


def color(name: str) -> str | tuple[float, ...]:
    """The chapter's colours: OK(r) in shades of green-blue by rank, TBPTT(k) in purples by horizon, fixed others."""
    import matplotlib

    if name.startswith("OK (r="):
        r = int(name.split("=")[1].split(")")[0])
        return matplotlib.colormaps["viridis"](0.72 - 0.6 * min(math.log2(r), 5) / 5)
    if name.startswith("TBPTT (k="):
        k = int(name.split("=")[1].split(")")[0])
        return matplotlib.colormaps["RdPu"](0.35 + 0.6 * min(math.log2(k), 5) / 5)
    return _FIXED_COLORS.get(name) or color_for(name)


def _clean_log_axis(ax: Any, ticks: Sequence[float] | None = None, axis: str = "x") -> None:
    """Major ticks at ``ticks`` labelled plainly, and no labels on the minor ticks of a log axis."""
    from matplotlib.ticker import NullFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    if ticks is not None:
        (ax.set_xticks if axis == "x" else ax.set_yticks)(list(ticks), [f"{t:g}" for t in ticks])
    target.set_minor_formatter(NullFormatter())


def label(kind: str, *, rank: int | None = None, horizon: int | None = None, unbiased: bool = True) -> str:
    """A method's display name, e.g. ``OK (r=4)`` or ``TBPTT (k=3)``."""
    if kind == "ok":
        return f"OK (r={rank})" + ("" if unbiased else ", biased")
    if kind == "tbptt":
        return f"TBPTT (k={horizon})"
    return NAMES[kind]


@contextlib.contextmanager
def _small_op_threads(device: torch.device) -> Iterator[None]:
    """One CPU thread while training: the per-step matrices are small, and a second thread only adds overhead."""
    before = torch.get_num_threads()
    if device.type == "cpu" and not os.environ.get("NNSTUDIES_KEEP_THREADS"):
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def build_model(n: int, inputs: int, outputs: int, *, cell: str = "rhn", init_std: float | None = None,
                seed: int = 0, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> RecurrentModel:
    """A :class:`RecurrentModel` with an RHN (default) or tanh cell of ``n`` units and a linear readout."""
    torch.manual_seed(seed)
    if cell == "rhn":
        core: RHNCell | TanhCell = RHNCell(inputs, n, init_std=init_std)
    elif cell == "tanh":
        core = TanhCell(inputs, n, init_std=init_std)
    else:
        raise ValueError(f"unknown cell {cell!r}; choose 'rhn' or 'tanh'")
    return RecurrentModel(core, nn.Linear(n, outputs)).to(device=device or get_device(), dtype=dtype)


def _online(model: RecurrentModel, learner: OnlineLearner, stream: Any, *, steps: int, lr: float, clip: float,
            desc: str, task: CopyTask | None = None, evaluate: Any = None, eval_every: int = 0) -> dict[str, Any]:
    """The online loop: learner step, clip the cell weight's gradient, Adam step; per-step losses in bits."""
    device = model.cell.weight.device
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    learner.reset(stream.batch_size)
    loss_bits, bit_loss, lengths, evals = [], [], [], []
    history = History()
    started = time.perf_counter()
    with _small_op_threads(device), progress(total=steps, desc=desc) as bar:
        for step in range(1, steps + 1):
            s = stream.next()
            learner.reset_where(s.reset)
            opt.zero_grad(set_to_none=True)
            loss = float(learner.step(s.x, s.y))
            if not math.isfinite(loss):
                history.seconds = time.perf_counter() - started
                raise DivergenceError(step, loss, history, f" ({desc}, lr={lr}); try a smaller learning rate")
            torch.nn.utils.clip_grad_norm_([model.cell.weight], clip)
            opt.step()
            history.step.append(step)
            history.train_loss.append(loss)
            loss_bits.append(loss / math.log(2))
            if task is not None:
                with torch.no_grad():  # loss on the copied bits alone (targets 0/1), for the figures
                    is_bit = s.y < 2
                    ce = F.cross_entropy(model.readout(learner.h), s.y, reduction="none")
                    bit_loss.append(float(ce[is_bit].mean()) / math.log(2) if bool(is_bit.any()) else float("nan"))
                task.observe(loss)
                lengths.append(task.T)
            if evaluate is not None and (step % eval_every == 0 or step == steps):
                evals.append((step, evaluate(model)))
            bar.update(1)
    return {"loss_bits": loss_bits, "bit_loss": bit_loss, "T": lengths, "evals": evals,
            "seconds": time.perf_counter() - started}


# ============================================================================ copy task


def copy_run(kind: str, *, scale: str, rank: int | None = None, horizon: int | None = None, n: int | None = None,
             T: int | None = None, lr: float | None = None, steps: int | None = None, curriculum: bool = True,
             seed: int = 0) -> tuple[RecurrentModel, dict[str, Any]]:
    """Train on the copy task online with one learner (cached); returns ``(model, result)``.

    ``curriculum=True``: the paper's curriculum from T = 1 for the ``curriculum`` preset's
    steps. ``curriculum=False``: a fixed length ``T`` (default: the ``horizon`` preset's) for
    the ``horizon`` preset's steps. ``rank``/``horizon`` default to the preset's.
    Result: per-step ``loss_bits`` (all characters), ``bit_loss`` (copied bits only), ``T``
    (the curriculum's T₊ after each step), ``seconds``.
    """
    p = pick(PRESETS, scale)
    c = p["copy"]
    section = p["curriculum"] if curriculum else p["horizon"]
    rank = int(rank if rank is not None else section["rank"])
    horizon = int(horizon if horizon is not None else (section["horizon"] if curriculum else section["horizons"][0]))
    n, lr = int(n or c["n"]), float(lr or c["lr"])
    steps = int(steps or section["steps"])
    T = int(T or (1 if curriculum else p["horizon"]["T"]))
    device = get_device()
    config = {"chapter": "04", "task": "copy", "kind": kind, "rank": rank if kind == "ok" else None,
              "horizon": horizon if kind == "tbptt" else None, "n": n, "T": T, "lr": lr, "steps": steps,
              "curriculum": curriculum, "seed": seed, "batch": c["batch"], "init_std": c["init_std"], "ema": c["ema"],
              "clip": c["clip"], "device": device.type}
    name = label(kind, rank=rank, horizon=horizon)

    def build() -> nn.Module:
        return build_model(n, CopyTask.vocab, CopyTask.vocab, init_std=c["init_std"], seed=seed, device=device)

    def fit(model: nn.Module) -> dict[str, Any]:
        task = CopyTask(c["batch"], T_start=T, ema=c["ema"], curriculum=curriculum, device=device,
                        generator=torch.Generator().manual_seed(1000 + seed))
        learner = make_learner(kind, model, rank=rank, horizon=horizon, generator=_generator(device, 2000 + seed))
        what = "curriculum" if curriculum else f"T={T}"
        return _online(model, learner, task, steps=steps, lr=lr, clip=c["clip"], task=task,
                       desc=f"copy task ({what}), {name}, n={n}")

    model, result = cached(config, build=build, fit=fit)
    return model, result  # type: ignore[return-value]


def _generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Moving average over ``window`` steps, ignoring NaNs (steps with no copied bit)."""
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    kernel = np.ones(window)
    num = np.convolve(np.where(ok, v, 0.0), kernel, "full")[: len(v)]
    den = np.convolve(ok.astype(float), kernel, "full")[: len(v)]
    return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def plot_horizon(runs: dict[str, dict[str, Any]], *, T: int, window: int = 100) -> Figure:
    """Loss on the copied bits (bits per bit, smoothed) against steps, one line per method, at fixed T."""
    fig, (ax,) = new_figure(1, width=7.0, height=3.6)
    for name, r in runs.items():
        y = smooth(r["bit_loss"], window)
        start = min(window, len(y) - 1) // 2  # the first points average only a few bits
        ax.plot(np.arange(start + 1, len(y) + 1), y[start:], color=color(name), label=name)
    ax.axhline(1.0, color="0.4", lw=1, ls="--", label="guessing (1 bit)")
    top = max([1.3] + [float(np.nanmax(line.get_ydata())) * 1.05 for line in ax.get_lines()[:-1] if len(line.get_ydata())])
    ax.set(xlabel="step", ylabel="loss on the copied bits (bits)", ylim=(0, min(top, 3.0)),
           title=f"copy task, fixed length T = {T}: each bit must be kept for T + 1 = {T + 1} steps")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def plot_curriculum(runs: dict[str, dict[str, Any]], *, window: int = 100) -> Figure:
    """Curriculum length T₊ against steps (left) and the smoothed loss in bits per character (right)."""
    fig, (ax_T, ax_loss) = new_figure(2, width=10.0, height=3.6)
    for name, r in runs.items():
        steps = np.arange(1, len(r["T"]) + 1)
        ax_T.plot(steps, r["T"], color=color(name), label=name, drawstyle="steps-post")
        ax_loss.plot(steps, smooth(r["loss_bits"], window), color=color(name), label=name)
    ax_T.set(xlabel="step", ylabel="sequence length T₊ reached", title="copy task with the curriculum, online updates")
    from matplotlib.ticker import MaxNLocator

    ax_T.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_loss.axhline(0.15, color="0.4", lw=1, ls="--", label="curriculum threshold")
    ax_loss.set(xlabel="step", ylabel="loss (bits per character)", title="training loss", yscale="log")
    ax_loss.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def explore_copy(k: int, r: int, n: int, T: int, lr: float, *, scale: str) -> Figure:
    """The widget: TBPTT(k) and OK(r) trained online on the copy task of fixed length T (n units, Adam lr)."""
    runs = {}
    for kind in ("tbptt", "ok"):
        _, res = copy_run(kind, scale=scale, rank=int(r), horizon=int(k), n=int(n), T=int(T), lr=float(lr), curriculum=False)
        runs[label(kind, rank=int(r), horizon=int(k))] = res
    fig = plot_horizon(runs, T=int(T), window=max(10, len(next(iter(runs.values()))["bit_loss"]) // 15))
    needs = "≥" if k >= T + 2 else "<"
    fig.axes[0].set_title(f"T = {T}, n = {n}, lr = {lr:.2g}: TBPTT needs k ≥ T + 2 = {T + 2} (here k = {k} {needs} {T + 2})")
    return fig


# ============================================================================ estimator noise


def variance_study(*, scale: str, seed: int = 0) -> dict[str, Any]:
    """Noise of the gradient estimates on one trained network and one input stream.

    The network is the one OK trained with the curriculum (:func:`copy_run`); the
    inputs a stream of copy sequences at the length it reached, without state resets.
    Every approximate learner runs ``draws`` independent copies side by side (the batch),
    so at each step we have ``draws`` estimates ``ĝ_t`` of the per-step gradient ``g_t``
    that exact RTRL gives. Reported: the relative variance ``E‖ĝ_t − g_t‖² / ‖g_t‖²`` per
    step, the same for the gradient summed over the stream, and, for OK, the mixed
    singular-value mass ``Σ_mixed σ / Σ σ`` of each reduction.
    """
    p = pick(PRESETS, scale)
    v = p["variance"]
    model, trained = copy_run("ok", scale=scale)
    device = model.cell.weight.device
    T = max(1, int(trained["T"][-1]))
    task = CopyTask(1, T_start=T, curriculum=False, device=device, dtype=model.cell.weight.dtype,
                    generator=torch.Generator().manual_seed(3000 + seed))
    stream = [task.next() for _ in range(v["steps"])]
    draws = v["draws"]
    with _small_op_threads(device):
        exact = _per_step_grads(ExactRTRL(model), stream, 1)[0][:, 0]  # (steps, m, gn)
        methods = [("uoro", None), ("kf", None)] + [("ok", r) for r in v["ranks"]]
        per_step: dict[str, list[float]] = {}
        sequence: dict[str, float] = {}
        mixed: dict[str, list[float]] = {}
        for kind, r in methods:
            name = label(kind, rank=r)
            learner = make_learner(kind, model, rank=r or 1, generator=_generator(device, 4000 + seed))
            grads, masses = _per_step_grads(learner, stream, draws)
            err = ((grads - exact[:, None]) ** 2).flatten(2).sum(2).mean(1)
            per_step[name] = (err / (exact**2).flatten(1).sum(1).clamp_min(1e-30)).tolist()
            total, total_exact = grads.sum(0), exact.sum(0)
            sequence[name] = float(((total - total_exact) ** 2).flatten(1).sum(1).mean() / (total_exact**2).sum())
            if kind == "ok":
                mixed[name] = masses
    model.zero_grad(set_to_none=True)
    return {"T": T, "steps": v["steps"], "draws": draws, "ranks": list(v["ranks"]), "per_step": per_step,
            "sequence": sequence, "mixed_mass": mixed}


@torch.no_grad()
def _per_step_grads(learner: OnlineLearner, stream: list[Any], copies: int) -> tuple[torch.Tensor, list[float]]:
    """Per-step, per-copy estimates (steps, copies, m, gn) of each copy's own cell gradient; OK's mixed mass per step."""
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


def plot_variance_steps(study: dict[str, Any], *, show: Sequence[str] | None = None) -> Figure:
    """Relative variance of the per-step gradient estimate against the step, log scale."""
    fig, (ax,) = new_figure(1, width=7.4, height=3.8)
    for name, values in study["per_step"].items():
        if show is not None and name not in show:
            continue
        ax.plot(np.arange(1, len(values) + 1), np.maximum(values, 1e-6), color=color(name), label=name)
    ax.axhspan(1e-7, 1.5e-6, color="0.9", zorder=0)
    ax.text(0.99, 0.02, "exact up to round-off (floored at 10⁻⁶)", transform=ax.transAxes, ha="right", va="bottom",
            fontsize=8, color="0.35")
    ax.set(xlabel="step of the input stream", ylabel="E‖ĝ − g‖² / ‖g‖²", yscale="log", ylim=(3e-7, None),
           title=f"noise of the gradient estimates ({study['draws']} draws, copy stream with T = {study['T']})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def plot_variance_rank(study: dict[str, Any]) -> Figure:
    """Mean relative variance against OK's rank (KF-RTRL and UORO as lines), and the mixed singular-value mass."""
    fig, (ax, ax_m) = new_figure(2, width=10.0, height=3.6)
    ranks = study["ranks"]
    ok = [float(np.mean(study["per_step"][label("ok", rank=r)])) for r in ranks]
    ax.plot(ranks, np.maximum(ok, 1e-12), marker="o", color=color("OK"), label="OK (r)")
    for name in ("KF-RTRL", "UORO"):
        ax.axhline(float(np.mean(study["per_step"][name])), color=color(name), ls="--", label=name)
    ax.set(xscale="log", yscale="log", xlabel="rank r", ylabel="mean over steps of E‖ĝ − g‖² / ‖g‖²",
           title="noise against rank")
    _clean_log_axis(ax, ranks)
    ax.legend(loc="best")
    mass = [float(np.mean(study["mixed_mass"][label("ok", rank=r)])) for r in ranks]
    ax_m.plot(ranks, mass, marker="o", color=color("OK"))
    ax_m.set(xscale="log", ylim=(0, 1.05), xlabel="rank r", ylabel="Σ mixed σ / Σ σ (mean over steps)",
             title="share of the singular values mixed per step")
    _clean_log_axis(ax_m, ranks)
    return fig


# ============================================================================ cost


def _rss_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def state_mib(learner: OnlineLearner) -> float:
    """MiB held by the learner's persistent tensors (state, influence or window), counted exactly."""
    total = 0
    for value in vars(learner).values():
        items = value if isinstance(value, (list, tuple)) or type(value).__name__ == "deque" else [value]
        for item in items:
            for t in (item if isinstance(item, tuple) else (item,)):
                if isinstance(t, torch.Tensor):
                    total += t.numel() * t.element_size()
    return total / 2**20


def measure_step(kind: str, n: int, *, batch: int = 16, steps: int = 3, rank: int = 8, horizon: int = 10,
                 inputs: int = 4, device: torch.device | None = None) -> tuple[float, float | None, float]:
    """Seconds per learner step (the best of ``steps`` after one warm-up; one thread on a CPU), peak extra memory
    in MiB, and the MiB of the learner's persistent state (:func:`state_mib`).

    Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` above what was allocated
    before; on Linux CPUs, the process's peak resident set (VmHWM, reset through
    ``/proc/self/clear_refs``) above its resident set before — memory the allocator
    kept from earlier work is reused without showing up, so small values read low; else ``None``.
    """
    device = device or get_device()
    model = build_model(n, inputs, inputs, device=device)
    learner = make_learner(kind, model, rank=rank, horizon=horizon, generator=_generator(device, 0))
    g = torch.Generator().manual_seed(0)
    xs = F.one_hot(torch.randint(0, inputs, (steps + 1, batch), generator=g), inputs).to(device, torch.float32)
    ys = torch.randint(0, inputs, (steps + 1, batch), generator=g).to(device)
    cuda = device.type == "cuda"
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
    best = float("inf")
    with _small_op_threads(device):
        for t in range(steps + 1):
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            learner.step(xs[t], ys[t])
            if cuda:
                torch.cuda.synchronize()
            if t > 0:
                best = min(best, time.perf_counter() - start)
    if cuda:
        peak: float | None = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        hwm = _rss_kib("VmHWM")
        peak = (hwm - base) / 1024 if base is not None and hwm is not None else None
    state = state_mib(learner)
    del learner, model
    return best, peak, state


def exact_vs_bptt(*, T: int = 12, batch: int = 3, n: int = 6, seed: int = 0) -> dict[str, float]:
    """Relative error of exact RTRL's accumulated gradient against autograd through the unrolled sequence (float64).

    Also the same for TBPTT with a short horizon (k = T/4), which should be far off.
    """
    model = build_model(n, 3, 4, init_std=0.5, seed=seed, device=torch.device("cpu"), dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(T, batch, 3, generator=g, dtype=torch.float64)
    ys = torch.randint(0, 4, (T, batch), generator=g)
    params = list(model.parameters())
    reference = torch.autograd.grad(model.sequence_loss(xs, ys), params)
    out = {}
    for name, learner in (("exact RTRL", ExactRTRL(model)), (label("tbptt", horizon=T // 4), make_learner("tbptt", model, horizon=T // 4))):
        model.zero_grad(set_to_none=True)
        learner.reset(batch)
        for t in range(T):
            learner.step(xs[t], ys[t])
        out[name] = max(float((p.grad - r).norm() / r.norm()) for p, r in zip(params, reference))
    model.zero_grad(set_to_none=True)
    return out


def fit_exponent(ns: Sequence[int], seconds: Sequence[float]) -> float:
    """Slope of log(time) against log(n), least squares."""
    return float(np.polyfit(np.log(ns), np.log(seconds), 1)[0])


def cost_table(*, scale: str, kinds: Sequence[str] = ("exact", "ok")) -> dict[str, Any]:
    """Per-step time of exact RTRL and OK(r) at the preset's hidden sizes (not cached: timings are of this machine)."""
    c = pick(PRESETS, scale)["cost"]
    times: dict[str, list[float]] = {}
    for kind in kinds:
        name = label(kind, rank=c["rank"], horizon=c["horizon"])
        times[name] = [measure_step(kind, n, batch=c["batch"], steps=c["steps"], rank=c["rank"], horizon=c["horizon"])[0]
                       for n in progress(c["ns"], desc=f"timing {name}")]
    return {"ns": list(c["ns"]), "batch": c["batch"], "seconds": times,
            "exponent": {k: fit_exponent(c["ns"][-3:], v[-3:]) for k, v in times.items()}}


def plot_cost(table: dict[str, Any]) -> Figure:
    """Seconds per step against n, log-log, with n³ and n⁴ guides through the largest n."""
    fig, (ax,) = new_figure(1, width=6.4, height=3.8)
    ns = np.asarray(table["ns"], dtype=float)
    for name, secs in table["seconds"].items():
        ax.plot(ns, secs, marker="o", color=color(name), label=f"{name}: slope {table['exponent'][name]:.1f}")
    top = max(max(v) for v in table["seconds"].values())
    for power, ls in ((3, ":"), (4, "--")):
        ax.plot(ns, top * (ns / ns[-1]) ** power, color="0.5", ls=ls, lw=1, label=f"$\\propto n^{power}$")
    ax.set(xscale="log", yscale="log", xlabel="hidden units n", ylabel="seconds per step",
           title=f"cost per step (batch {table['batch']}; slopes fitted on the three largest n)")
    _clean_log_axis(ax, [int(n) for n in ns])
    ax.legend(loc="upper left")
    return fig


# ============================================================================ characters


@lru_cache(maxsize=2)
def text_data(source: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    """``(train codes, held-out codes, symbols)``: pydoc text split 90/10, or Penn Treebank train/valid."""
    if source == "pydoc":
        codes, symbols = encode_text(pydoc_text())
        cut = int(0.9 * len(codes))
        return codes[:cut], codes[cut:], symbols
    if source == "ptb":
        train, valid = ptb_text("train"), ptb_text("valid")
        symbols = "".join(sorted(set(train) | set(valid)))
        codes_train, _ = encode_text(train, symbols)
        codes_valid, _ = encode_text(valid, symbols)
        return codes_train, codes_valid, symbols + "\N{REPLACEMENT CHARACTER}"
    raise ValueError(f"unknown text {source!r}; choose 'pydoc' or 'ptb'")


@torch.no_grad()
def bits_per_char(model: RecurrentModel, codes: torch.Tensor, vocab: int, *, streams: int, steps: int,
                  reset_every: int) -> float:
    """Mean next-character loss in bits on ``streams`` contiguous pieces of ``codes``, state reset every ``reset_every``."""
    device = model.cell.weight.device
    stream = CharStream(codes, vocab, streams, reset_every=reset_every, device=device, dtype=model.cell.weight.dtype)
    h, total = None, 0.0
    for _ in range(steps):
        s = stream.next()
        if h is not None:
            h = h * (~s.reset)[:, None].to(h.dtype)
        h = model.cell(s.x, h)
        total += float(F.cross_entropy(model.readout(h), s.y))
    return total / steps / math.log(2)


def char_run(kind: str, *, scale: str, seed: int = 0) -> tuple[RecurrentModel, dict[str, Any]]:
    """Character-level model trained online by OK (the preset's r) or TBPTT (its k); cached.

    Result: per-step training loss (bits/char) and held-out bits per character at checkpoints.
    """
    p = pick(PRESETS, scale)
    c = p["char"]
    device = get_device()
    train_codes, test_codes, symbols = text_data(c["text"])
    vocab = len(symbols)
    config = {"chapter": "04", "task": "char", "kind": kind, "scale_setting": c, "seed": seed, "vocab": vocab,
              "chars": len(train_codes), "init_std": p["copy"]["init_std"], "device": device.type}
    name = label(kind, rank=c["rank"], horizon=c["horizon"])

    def build() -> nn.Module:
        return build_model(c["n"], vocab, vocab, init_std=p["copy"]["init_std"], seed=seed, device=device)

    def fit(model: nn.Module) -> dict[str, Any]:
        stream = CharStream(train_codes, vocab, c["batch"], reset_every=c["reset_every"], device=device)
        learner = make_learner(kind, model, rank=c["rank"], horizon=c["horizon"], generator=_generator(device, 5000 + seed))
        evaluate = lambda m: bits_per_char(m, test_codes, vocab, streams=c["eval_streams"], steps=c["eval_steps"],  # noqa: E731
                                           reset_every=c["reset_every"])
        return _online(model, learner, stream, steps=c["steps"], lr=c["lr"], clip=p["copy"]["clip"],
                       evaluate=evaluate, eval_every=c["eval_every"], desc=f"characters, {name}, n={c['n']}")

    model, result = cached(config, build=build, fit=fit)
    return model, result  # type: ignore[return-value]


def plot_char(runs: dict[str, dict[str, Any]], *, unigram: float | None = None, window: int = 100) -> Figure:
    """Held-out bits per character at checkpoints (markers) and the smoothed training loss (faint), per method."""
    fig, (ax,) = new_figure(1, width=7.4, height=3.8)
    for name, r in runs.items():
        c = color(name)
        y = smooth(r["loss_bits"], window)
        ax.plot(np.arange(1, len(y) + 1), y, color=c, alpha=0.35, lw=1)
        steps, bpc = zip(*r["evals"])
        ax.plot(steps, bpc, marker="o", color=c, label=f"{name}, held-out")
    if unigram is not None:
        ax.axhline(unigram, color="0.4", ls="--", lw=1, label="character frequencies alone")
    ax.set(xlabel="step", ylabel="bits per character", title="next-character prediction (faint: training loss)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def unigram_bits(codes: torch.Tensor, vocab: int) -> float:
    """Entropy in bits of the character frequencies of ``codes``: a model without memory does no better."""
    p = torch.bincount(codes, minlength=vocab).double()
    p = p[p > 0] / p.sum()
    return float(-(p * p.log2()).sum())


# ============================================================================ claims


def claims_rows(*, variance: dict[str, Any], curriculum: dict[str, dict[str, Any]], ok_name: str, tbptt_name: str,
                char: dict[str, float], cost: dict[str, Any], tolerance_bits: float = 0.1) -> list[list[str]]:
    """The table of the paper's claims beside our numbers; the last column is computed, never typed."""
    yes = lambda ok: "yes" if ok else "**no**"  # noqa: E731
    mean = {k: float(np.mean(v)) for k, v in variance["per_step"].items()}
    r_max = max(variance["ranks"])
    ok1, okmax = mean[label("ok", rank=1)], mean[label("ok", rank=r_max)]
    kf, uoro = mean["KF-RTRL"], mean["UORO"]
    noise_ok = okmax < 0.1 * min(kf, uoro) and ok1 < kf
    T_ok, T_tb = curriculum[ok_name]["T"][-1], curriculum[tbptt_name]["T"][-1]
    others = {k: r["T"][-1] for k, r in curriculum.items()}
    names = list(cost["seconds"])
    exact_name, ok_cost_name = names[0], names[1]
    ratio = cost["seconds"][exact_name][-1] / cost["seconds"][ok_cost_name][-1]
    e_exact, e_ok = cost["exponent"][exact_name], cost["exponent"][ok_cost_name]
    return [
        ["OK's noise is far below UORO's and KF-RTRL's", "orders of magnitude lower; OK(1) ≤ KF-RTRL",
         f"relative variance per step: UORO {uoro:.3g}, KF-RTRL {kf:.3g}, OK(1) {ok1:.3g}, OK({r_max}) {okmax:.3g}",
         yes(noise_ok)],
        ["Copy task, online: OK learns longer sequences than TBPTT with a short horizon",
         "OK (n=128, r=16): T = 38–45 (mean 41.8, 5 runs) after 2M steps",
         "T reached: " + ", ".join(f"{k} {v}" for k, v in others.items()), yes(T_ok > T_tb)],
        ["Characters: OK reaches about TBPTT's bits per character", "PTB: OK 1.747–1.750 bits/char (validation)",
         f"held-out: {ok_name_char(char)}", yes(abs(char["ok"] - char["tbptt"]) <= tolerance_bits)],
        ["Cost: OK per step ≪ exact RTRL and grows as n³, not n⁴", "O(r n³) vs O(n⁴)",
         f"at n = {cost['ns'][-1]}: exact {cost['seconds'][exact_name][-1] * 1e3:.0f} ms, {ok_cost_name} "
         f"{cost['seconds'][ok_cost_name][-1] * 1e3:.0f} ms ({ratio:.1f}×); fitted slopes {e_exact:.1f} and {e_ok:.1f}",
         yes(ratio >= 10 and e_ok < e_exact)],
    ]


def ok_name_char(char: dict[str, float]) -> str:
    return f"{char['ok_name']} {char['ok']:.3f}, {char['tbptt_name']} {char['tbptt']:.3f} bits/char"
