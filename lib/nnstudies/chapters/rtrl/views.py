"""Chapter 4's figures and explorers: each learner's colour, the studies' plots, and the two
explorers (TBPTT's horizon against OK's rank on the curriculum; the noise of OK(r) per step)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ...plotting import log_line_chart, new_figure, scale_title
from .characters import CharStudy
from .cost import CostStudy
from .experiment import (
    CurriculumStudy,
    HorizonStudy,
    VarianceStudy,
    copy_runs,
    copy_spec,
    smooth,
)
from .learners import Algorithm, Learner
from .presets import TBPTT_VARIANTS, Preset
from .summary import variant_name

__all__ = [
    "COLOURS",
    "colour",
    "curriculum_explorer_chart",
    "curriculum_explorer_rows",
    "curriculum_figure",
    "plot_char",
    "plot_cost",
    "plot_curriculum",
    "plot_horizon",
    "plot_k_sweep",
    "plot_length_profile",
    "plot_stored",
    "plot_stored_k_sweep",
    "plot_variance_rank",
    "plot_variance_steps",
    "variance_explorer_chart",
    "variance_explorer_figure",
    "variance_explorer_rows",
]

Colour = str | tuple[float, ...]

COLOURS: dict[Algorithm, str] = {
    Algorithm.EXACT: "#000000",
    Algorithm.UORO: "#E69F00",
    Algorithm.KF: "#D55E00",
    Algorithm.OK: "#009E73",
    Algorithm.TBPTT: "#CC79A7",
    Algorithm.TBPTT_EVERY_K: "#0072B2",
}
"""Each algorithm's colour (a learner with a knob is shaded by it: :data:`SHADES`)."""

SHADES: dict[Algorithm, tuple[str, float, float]] = {
    Algorithm.OK: ("viridis", 0.72, -0.6),
    Algorithm.TBPTT: ("RdPu", 0.35, 0.6),
    Algorithm.TBPTT_EVERY_K: ("Blues", 0.35, 0.6),
}
"""(colour map, start, span): each value of the algorithm's knob gets its shade, by its log₂."""


def colour(learner: Learner) -> Colour:
    """The learner's colour: its algorithm's, shaded by OK's rank or TBPTT's horizon."""
    algorithm, knob = learner.algorithm, learner.algorithm.knob
    if knob is None or algorithm not in SHADES:
        return COLOURS[algorithm]
    import matplotlib

    name, start, span = SHADES[algorithm]
    return matplotlib.colormaps[name](start + span * min(math.log2(getattr(learner, knob)), 5) / 5)


def plot_horizon(study: HorizonStudy, *, window: int = 100) -> Figure:
    """Loss on the copied bits (smoothed) against steps: every seed of every learner, at the fixed
    length T."""
    fig, (ax,) = new_figure(1, width=7.0, height=3.6)
    for spec, runs in study.runs.items():
        for i, run in enumerate(runs):
            y = smooth(run.bit_loss, window)
            start = min(window, len(y) - 1) // 2  # the first points average only a few bits
            ax.plot(
                np.arange(start + 1, len(y) + 1),
                y[start:],
                color=colour(spec),
                lw=1.2,
                alpha=0.9 if i == 0 else 0.5,
                label=f"{spec.label} ({len(runs)} seed{'s' if len(runs) > 1 else ''})"
                if i == 0
                else None,
            )
    ax.axhline(1.0, color="0.4", lw=1, ls="--", label="guessing (1 bit)")
    T = study.length
    ax.set(
        xlabel="step",
        ylabel="loss on the copied bits (bits)",
        ylim=(0, 1.6),
        title=f"copy task, fixed length T = {T}: each bit must be kept for T + 1 = {T + 1} steps",
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def plot_curriculum(
    study: CurriculumStudy, *, window: int = 100, show: Sequence[Learner] | None = None
) -> Figure:
    """Curriculum length T₊ against steps (left, every seed) and the smoothed loss in bits per
    character (right, first seed), for the learners in ``show`` (default: all)."""
    from matplotlib.ticker import MaxNLocator

    fig, (ax_T, ax_loss) = new_figure(2, width=10.0, height=3.6)
    for spec in show if show is not None else study.runs:
        runs = study.runs[spec]
        for i, run in enumerate(runs):
            steps = np.arange(1, len(run.lengths) + 1)
            ax_T.plot(
                steps,
                run.lengths,
                color=colour(spec),
                drawstyle="steps-post",
                lw=1.3 if i == 0 else 0.8,
                alpha=1.0 if i == 0 else 0.55,
                label=spec.label if i == 0 else None,
            )
        ax_loss.plot(
            np.arange(1, len(runs[0].lengths) + 1),
            smooth(runs[0].loss_bits, window),
            color=colour(spec),
            label=spec.label,
        )
    seeds = len(study.runs[study.ok])
    ax_T.set(
        xlabel="step",
        ylabel="sequence length T₊ reached",
        title=f"copy task with the curriculum ({seeds} seeds of OK, TBPTT)",
    )
    ax_T.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_T.set_ylim(bottom=0)
    ax_loss.axhline(0.15, color="0.4", lw=1, ls="--", label="curriculum threshold")
    ax_loss.set(
        xlabel="step",
        ylabel="loss (bits per character)",
        title="training loss (first seed)",
        yscale="log",
    )
    ax_loss.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def plot_length_profile(
    profiles: dict[Learner, list[list[float]]], lengths: Sequence[int], *, horizon: int
) -> Figure:
    """Loss on the copied bits against the length T, per learner (mean and every seed), with TBPTT's
    horizon marked."""
    fig, (ax,) = new_figure(1, width=7.0, height=3.4)
    for spec, per_seed in profiles.items():
        values = np.asarray(per_seed)
        for row in values:
            ax.plot(lengths, row, color=colour(spec), lw=0.8, alpha=0.45)
        ax.plot(
            lengths,
            values.mean(0),
            color=colour(spec),
            marker="o",
            lw=1.8,
            label=f"{spec.label} (mean of {len(values)} seeds)",
        )
    edge = horizon - 2 + 0.5  # lengths T <= k - 2 lie within TBPTT's horizon
    ax.axvspan(min(lengths) - 0.5, edge, color="0.92", zorder=0)
    ax.text(
        edge + 0.1,
        1.45,
        f"← shaded: T ≤ k − 2 = {horizon - 2}, within TBPTT's horizon",
        fontsize=8,
        color="0.35",
        va="top",
    )
    ax.axhline(1.0, color="0.4", lw=1, ls="--", label="guessing (1 bit)")
    ax.set(
        xlabel="sequence length T (fixed, fresh sequences)",
        ylabel="loss on the copied bits (bits)",
        ylim=(0, 1.5),
        xticks=list(lengths),
        title="after the curriculum: which lengths each trained network copies",
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def curriculum_explorer_rows(
    k: int, r: int, *, preset: Preset, points: int = 80
) -> list[dict[str, Any]]:
    """Tidy rows for the explorer: T₊ and the smoothed loss against steps for TBPTT(k) and OK(r),
    seed 0."""
    rows: list[dict[str, Any]] = []
    learners = (
        Learner(Algorithm.TBPTT_EVERY_K, horizon=int(k)),
        Learner(Algorithm.OK, rank=int(r)),
    )
    for spec, run in zip(learners, copy_runs([copy_spec(s, preset) for s in learners])):
        loss = smooth(run.loss_bits, 100)
        every = max(1, len(run.lengths) // points)
        for i in range(0, len(run.lengths), every):
            rows.append(
                {
                    "learner": spec.label,
                    "step": i + 1,
                    "length T₊": run.lengths[i],
                    "loss (bits/char)": float(loss[i]),
                }
            )
    return rows


def curriculum_explorer_chart(rows: Any) -> Any:
    """How the book draws :func:`curriculum_explorer_rows`: T₊ against step, one line per
    learner."""
    import altair as alt

    return (
        rows.mark_line(interpolate="step-after")
        .encode(
            x=alt.X("step:Q", title="step"),
            y=alt.Y("length T₊:Q", title="sequence length T₊ reached"),
            color=alt.Color("learner:N", title=None),
            tooltip=[
                "learner:N",
                "step:Q",
                "length T₊:Q",
                alt.Tooltip("loss (bits/char):Q", format=".3f"),
            ],
        )
        .properties(width=520, height=260)
    )


def curriculum_figure(k: int, r: int, *, preset: Preset) -> Figure:
    """The explorer's figure: TBPTT(k) updating every k steps and OK(r) with the curriculum, seed
    0."""
    tbptt = Learner(Algorithm.TBPTT_EVERY_K, horizon=int(k))
    ok = Learner(Algorithm.OK, rank=int(r))
    runs = {
        spec: [run]
        for spec, run in zip((tbptt, ok), copy_runs([copy_spec(s, preset) for s in (tbptt, ok)]))
    }
    return plot_curriculum(CurriculumStudy(runs, ok, tbptt))


def plot_variance_steps(
    study: VarianceStudy, *, seed_index: int = 0, show: Sequence[Learner] | None = None
) -> Figure:
    """Relative variance of the per-step gradient estimate against the step, log scale (one seed's
    stream)."""
    fig, (ax,) = new_figure(1, width=7.4, height=3.8)
    for spec in show if show is not None else study.per_step:
        row = study.per_step[spec][seed_index]
        ax.plot(
            np.arange(1, len(row) + 1), np.maximum(row, 1e-6), color=colour(spec), label=spec.label
        )
    ax.axhspan(1e-7, 1.5e-6, color="0.9", zorder=0)
    if study.settle:
        ax.axvspan(0.5, study.settle + 0.5, color="0.95", zorder=0)
        ax.text(
            study.settle + 1,
            0.98,
            f"← first {study.settle} steps: the ranks fill (left out of the means)",
            transform=ax.get_xaxis_transform(),
            fontsize=8,
            color="0.35",
            va="top",
        )
    ax.text(
        0.99,
        0.02,
        "exact up to round-off (floored at 10⁻⁶)",
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        fontsize=8,
        color="0.35",
    )
    ax.set(
        xlabel="step of the input stream",
        ylabel="E‖ĝ − g‖² / ‖g‖²",
        yscale="log",
        ylim=(3e-7, None),
        title=f"noise of the gradient estimates ({study.draws} draws, copy stream with "
        f"T = {study.lengths[seed_index]})",
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def plot_variance_rank(study: VarianceStudy) -> Figure:
    """Mean relative variance against OK's rank (mean ± sd over seeds; KF-RTRL and UORO as lines),
    and the mixed mass."""
    fig, (ax, ax_m) = new_figure(2, width=10.0, height=3.6)
    ranks = list(study.ranks)
    ok = np.asarray([study.mean(Learner(Algorithm.OK, rank=r)) for r in ranks])  # (ranks, seeds)
    ax.errorbar(
        ranks,
        ok.mean(1),
        yerr=ok.std(1),
        marker="o",
        color=COLOURS[Algorithm.OK],
        capsize=3,
        label="OK (r)",
    )
    for spec in (Learner(Algorithm.KF), Learner(Algorithm.UORO)):
        ax.axhline(float(np.mean(study.mean(spec))), color=colour(spec), ls="--", label=spec.label)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="rank r",
        ylabel="mean over steps of E‖ĝ − g‖² / ‖g‖²",
        title=f"noise against rank (mean ± sd of {len(study.seeds)} seeds)",
    )
    _clean_log_axis(ax, ranks)
    ax.legend(loc="best")
    mass = np.asarray(
        [[np.mean(m) for m in study.mixed_mass[Learner(Algorithm.OK, rank=r)]] for r in ranks]
    )
    ax_m.errorbar(
        ranks, mass.mean(1), yerr=mass.std(1), marker="o", color=COLOURS[Algorithm.OK], capsize=3
    )
    ax_m.set(
        xscale="log",
        ylim=(0, 1.05),
        xlabel="rank r",
        ylabel="Σ mixed σ / Σ σ (mean over steps)",
        title="share of the singular values mixed per step",
    )
    _clean_log_axis(ax_m, ranks)
    return fig


def _clean_log_axis(ax: Any, ticks: Sequence[float]) -> None:
    """Major ticks at ``ticks`` labelled plainly, and no labels on the minor ticks of a log x
    axis."""
    from matplotlib.ticker import NullFormatter

    ax.set_xticks(list(ticks), [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())


def variance_explorer_rows(r: int, *, study: VarianceStudy) -> list[dict[str, Any]]:
    """Tidy rows for the explorer: per-step relative variance of OK(r), KF-RTRL and UORO (first
    seed)."""
    rows = []
    for spec in _with_kf_and_uoro(r):
        for t, value in enumerate(study.per_step[spec][0], start=1):
            rows.append(
                {"learner": spec.label, "step": t, "relative variance": max(float(value), 1e-6)}
            )
    return rows


def variance_explorer_chart(rows: Any) -> Any:
    """How the book draws :func:`variance_explorer_rows`: relative variance against step, log
    scale."""
    import altair as alt

    return log_line_chart(
        rows,
        x=alt.X("step:Q", title="step of the input stream"),
        y=alt.Y("relative variance:Q", title="E‖ĝ − g‖² / ‖g‖² (floored at 1e-6)"),
        color=alt.Color("learner:N", title=None),
    )


def variance_explorer_figure(r: int, *, study: VarianceStudy) -> Figure:
    """The explorer's figure: OK(r) beside KF-RTRL and UORO, per step (first seed)."""
    return plot_variance_steps(study, show=_with_kf_and_uoro(r))


def plot_char(study: CharStudy, *, window: int = 100) -> Figure:
    """Held-out bits per character at checkpoints (every seed) and the smoothed training loss
    (faint, first seed)."""
    fig, (ax,) = new_figure(1, width=7.4, height=3.8)
    for spec, runs in study.runs.items():
        y = smooth(np.asarray(runs[0].history.train_loss) / math.log(2), window)
        ax.plot(np.arange(1, len(y) + 1), y, color=colour(spec), alpha=0.3, lw=1)
        for i, run in enumerate(runs):
            ax.plot(
                run.checkpoints,
                run.bits_per_char,
                marker="o",
                ms=3,
                color=colour(spec),
                alpha=1.0 if i == 0 else 0.6,
                label=f"{spec.label}, held-out ({len(runs)} seeds)" if i == 0 else None,
            )
    ax.axhline(study.unigram, color="0.4", ls="--", lw=1, label="character frequencies alone")
    ax.axhline(study.bigram, color="0.4", ls=":", lw=1, label="the previous character alone")
    ax.set(
        xlabel="step",
        ylabel="bits per character",
        ylim=(0, None),
        title="next-character prediction (faint: training loss)",
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def plot_cost(study: CostStudy) -> Figure:
    """Seconds per step against n, log-log (median over repeats, every repeat faint), with n³ and n⁴
    guides."""
    fig, (ax,) = new_figure(1, width=6.4, height=3.8)
    ns = np.asarray(study.hidden_sizes, dtype=float)
    for spec, rows in study.seconds.items():
        for row in rows:
            ax.plot(ns, row, color=colour(spec), lw=0.6, alpha=0.4)
        slope, lo, hi = study.interval(spec)
        ci = f" [{lo:.1f}, {hi:.1f}]" if math.isfinite(lo) else ""
        ax.plot(
            ns,
            study.median(spec),
            marker="o",
            color=colour(spec),
            label=f"{spec.label}: slope {slope:.1f}{ci}",
        )
    top = max(study.median(study.exact)[-1], study.median(study.ok)[-1])
    for power, ls in ((3, ":"), (4, "--")):
        ax.plot(
            ns,
            top * (ns / ns[-1]) ** power,
            color="0.5",
            ls=ls,
            lw=1,
            label=f"$\\propto n^{power}$",
        )
    what = "stored benchmark" if study.judged else "this run, an illustration"
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="hidden units n",
        ylabel="seconds per step",
        title=f"cost per step, batch {study.batch} ({what}; slopes on the 3 largest n, 95% CI)",
    )
    _clean_log_axis(ax, [int(n) for n in ns])
    ax.legend(loc="upper left", fontsize=8)
    return fig


def _learner(label: str) -> Learner:
    """The learner a stored label names ("OK (r=8)", "TBPTT (k=5)", "TBPTT (k=5, every k)",
    "KF-RTRL", ...)."""
    knob = re.search(r"\((?:r|k)=(\d+)", label)
    setting = int(knob[1]) if knob else 1
    for algorithm in Algorithm:
        learner = Learner(algorithm, rank=setting, horizon=setting)
        if learner.label == label:
            return learner
    raise ValueError(f"no learner is labelled {label!r}")


def plot_k_sweep(study: CurriculumStudy) -> Figure:
    """TBPTT's horizon k swept in both variants against OK(r): the length T₊ reached (left, mean ±
    sd over seeds, OK as a band) and each run's wall-clock seconds (right)."""
    lengths = {
        v.value: {
            k: [float(x) for x in study.lengths(learner)] for k, learner in study.sweep(v).items()
        }
        for v in TBPTT_VARIANTS
    }
    seconds = {
        v.value: {k: study.seconds(learner) for k, learner in study.sweep(v).items()}
        for v in TBPTT_VARIANTS
    }
    return _k_sweep_figure(
        lengths,
        seconds,
        [float(x) for x in study.lengths(study.ok)],
        study.seconds(study.ok),
        study.ok.label,
        study.tbptt.horizon,
    )


def _k_sweep_figure(
    lengths: Mapping[str, Mapping[int, Sequence[float]]],
    seconds: Mapping[str, Mapping[int, Sequence[float]]],
    ok_lengths: Sequence[float],
    ok_seconds: Sequence[float],
    ok_label: str,
    judged: int,
    *,
    scale: str | None = None,
) -> Figure:
    fig, (ax_T, ax_s) = new_figure(2, width=10.0, height=3.4)
    ok_colour = COLOURS[Algorithm.OK]
    for ax, values, ok in ((ax_T, lengths, ok_lengths), (ax_s, seconds, ok_seconds)):
        m, sd = float(np.mean(ok)), float(np.std(ok))
        ax.axhspan(m - sd, m + sd, color=ok_colour, alpha=0.18, lw=0)
        ax.axhline(m, color=ok_colour, lw=1.6, label=f"{ok_label} (mean ± sd)")
        for name, by_k in values.items():
            variant = Algorithm(name)
            ks = sorted(by_k)
            rows = [np.asarray(by_k[k], dtype=float) for k in ks]
            ax.errorbar(
                ks,
                [r.mean() for r in rows],
                yerr=[r.std() for r in rows],
                marker="o",
                capsize=3,
                color=COLOURS[variant],
                label=variant_name(variant),
            )
        ax.axvline(judged, color="0.5", lw=0.8, ls=":")
        ax.set_xticks(sorted({k for by_k in values.values() for k in by_k}))
    ax_T.set(xlabel="TBPTT's horizon k", ylabel="length T₊ reached", ylim=(0, None))
    ax_s.set(xlabel="TBPTT's horizon k", ylabel="seconds per run (one thread)", ylim=(0, None))
    what = f"{len(ok_lengths)} seeds; dotted: the claim's k"
    if scale is None:
        ax_T.set_title(f"copy task, curriculum: TBPTT's k swept ({what})")
        ax_s.set_title("wall-clock cost of each run")
    else:
        scale_title(ax_T, scale, f"copy task, TBPTT's k swept ({what})")
        scale_title(ax_s, scale, "wall-clock cost of each run")
    ax_T.legend(fontsize=7, loc="lower right")
    return fig


def plot_stored_k_sweep(values: Mapping[str, Any], *, scale: str = "full") -> Figure:
    """:func:`plot_k_sweep` from a stored run's ``copy_k_sweep`` (a run stored before the sweep
    existed: a figure that says so)."""
    if "copy_k_sweep" not in values:
        fig, (ax,) = new_figure(1, width=6.0, height=1.0)
        ax.axis("off")
        ax.text(0.0, 0.5, f"The stored `{scale}` run predates TBPTT's k sweep.", va="center")
        return fig
    sweep = values["copy_k_sweep"]
    variants = [v.value for v in TBPTT_VARIANTS]
    return _k_sweep_figure(
        {v: {int(k): row["lengths"] for k, row in sweep[v].items()} for v in variants},
        {v: {int(k): row["seconds"] for k, row in sweep[v].items()} for v in variants},
        sweep["ok"]["lengths"],
        sweep["ok"]["seconds"],
        sweep["ok"]["label"],
        int(sweep["judged"]),
        scale=scale,
    )


def plot_stored(values: Mapping[str, Any], *, scale: str = "full") -> Figure:
    """The claims' figures from a stored run (``results/04_rtrl/<scale>.json``): the curriculum's
    length T₊ along each learner's run (first seed), the noise of each learner's gradient estimate
    (OK against its rank), and the cost per step of exact RTRL and OK against n."""
    fig, (ax_T, ax_var, ax_cost) = new_figure(3, width=11.0, height=3.6)
    judged = values.get("copy_k_sweep", {}).get("judged")
    for label, lengths in values["copy_length_curves"].items():
        horizon = _learner(label).horizon if _learner(label).algorithm.knob == "horizon" else None
        if judged is not None and horizon not in (None, judged):
            continue  # the k sweep has its own figure
        finals = values["copy_lengths"].get(label, [])
        ax_T.plot(
            np.linspace(0, 1, len(lengths)),
            lengths,
            color=colour(_learner(label)),
            drawstyle="steps-post",
            label=f"{label}: {', '.join(map(str, finals))}",
        )
    ax_T.set(xlabel="share of the run's steps", ylabel="sequence length T₊ reached", ylim=(0, None))
    scale_title(ax_T, scale, "copy task, curriculum (first seed)")
    ax_T.legend(fontsize=7, loc="upper left", title="final T₊ per seed", title_fontsize=7)
    noise = {_learner(label): seeds for label, seeds in values["variance_mean"].items()}
    ok = sorted((spec for spec in noise if spec.algorithm is Algorithm.OK), key=lambda s: s.rank)
    ranks = [spec.rank for spec in ok]
    means = np.asarray([noise[spec] for spec in ok])
    ax_var.errorbar(
        ranks,
        means.mean(1),
        yerr=means.std(1),
        marker="o",
        capsize=3,
        color=COLOURS[Algorithm.OK],
        label="OK (r)",
    )
    for spec, per_seed in noise.items():
        if spec.algorithm is not Algorithm.OK:
            ax_var.axhline(float(np.mean(per_seed)), color=colour(spec), ls="--", label=spec.label)
    ax_var.set(
        xscale="log", yscale="log", xlabel="rank r", ylabel="mean over steps of E‖ĝ − g‖² / ‖g‖²"
    )
    _clean_log_axis(ax_var, ranks)
    scale_title(ax_var, scale, f"noise against rank ({means.shape[1]} seeds)")
    ax_var.legend(fontsize=7)
    ns = np.asarray(values["cost_sizes"], dtype=float)
    for label, rows in values["cost_seconds"].items():
        spec = _learner(label)
        for row in rows:
            ax_cost.plot(ns, row, color=colour(spec), lw=0.6, alpha=0.4)
        ax_cost.plot(
            ns, np.median(np.asarray(rows), 0), marker="o", color=colour(spec), label=label
        )
    ax_cost.set(xscale="log", yscale="log", xlabel="hidden units n", ylabel="seconds per step")
    _clean_log_axis(ax_cost, [int(n) for n in ns])
    scale_title(ax_cost, scale, "cost per step (median, repeats faint)")
    ax_cost.legend(fontsize=7)
    return fig


def _with_kf_and_uoro(rank: int) -> list[Learner]:
    """OK(rank) and the two learners it is compared with in the noise explorer."""
    return [
        Learner(Algorithm.OK, rank=int(rank)),
        Learner(Algorithm.KF),
        Learner(Algorithm.UORO),
    ]
