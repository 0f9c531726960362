"""Chapter 2's figures and explorer: every method's label and colour (:data:`METHODS`), training
curves, final losses, the KFAC-vs-FOOF cosines, and the explorer of learning rates and dampings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ...plotting import PALETTE, log_line_chart, new_figure, scale_title
from .experiment import MethodRun
from .methods import Method
from .presets import Preset, Setting
from .studies import Comparison, train_run

__all__ = [
    "METHODS",
    "MethodStyle",
    "explorer_chart",
    "explorer_figure",
    "explorer_rows",
    "plot_cosines",
    "plot_final_losses",
    "plot_runs",
    "plot_stored",
]


@dataclass(frozen=True)
class MethodStyle:
    """How a method appears in every figure and table: its label, a short one, its colour."""

    label: str
    short: str  #: for tick labels and legends with little room
    colour: str


METHODS: dict[Method, MethodStyle] = {
    Method.SGD: MethodStyle("SGD (momentum 0.9)", "SGD", PALETTE[0]),
    Method.ADAM: MethodStyle("Adam", "Adam", PALETTE[5]),
    Method.NATURAL: MethodStyle("exact natural gradient", "NG", PALETTE[1]),
    Method.NATURAL_SAME: MethodStyle(
        "exact natural gradient, identical data", "NG, same data", PALETTE[4]
    ),
    Method.KFAC: MethodStyle("KFAC (heuristic damping)", "KFAC heuristic", PALETTE[2]),
    Method.KFAC_STANDARD: MethodStyle("KFAC (standard damping)", "KFAC standard", PALETTE[3]),
    Method.FOOF: MethodStyle("FOOF", "FOOF", PALETTE[6]),
}


def _label(method: Method) -> str:
    return METHODS[method].label


def plot_runs(
    comparison: Comparison,
    methods: Sequence[Method] | None = None,
    *,
    title: str = "",
    ylabel: str = "training loss (training set)",
) -> Figure:
    """Training loss against updates (median over seeds, band from the best to the worst seed) and
    against seconds.
    """
    fig, (ax_steps, ax_time) = new_figure(2, width=9.5, height=3.6)
    for method in methods or list(comparison.runs):
        runs = comparison.runs[method]
        colour = METHODS[method].colour
        finished = [r for r in runs if r.diverged_at is None]
        if not finished:
            continue
        steps = finished[0].history.eval_step
        curves = np.array([r.history.metrics["train_loss"] for r in finished])
        ax_steps.plot(
            steps,
            np.median(curves, axis=0),
            color=colour,
            marker="o",
            markersize=2.5,
            label=_label(method),
        )
        ax_steps.fill_between(
            steps, curves.min(axis=0), curves.max(axis=0), color=colour, alpha=0.15, lw=0
        )
        first = finished[0].history
        ax_time.plot(
            first.metrics["seconds"],
            first.metrics["train_loss"],
            color=colour,
            marker="o",
            markersize=2.5,
        )
    ax_steps.set(
        xlabel="updates",
        ylabel=ylabel,
        yscale="log",
        title=f"per update ({len(comparison.seeds)} seeds)",
    )
    ax_time.set(
        xlabel="training seconds, first seed (this machine)", yscale="log", title="per second"
    )
    ax_steps.legend(loc="lower left", fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_final_losses(
    comparison: Comparison, methods: Sequence[Method] | None = None, *, title: str = ""
) -> Figure:
    """Each seed's final training loss per method (dots) and their geometric mean (bar), on a log
    scale.
    """
    names = list(methods or comparison.runs)
    fig, axes = new_figure(1, width=8.0, height=3.2)
    ax = axes[0]
    for i, method in enumerate(names):
        losses = comparison.final_losses(method)
        ax.scatter([i] * len(losses), losses, color=METHODS[method].colour, s=22, zorder=3)
        ax.hlines(
            float(np.exp(np.mean(np.log(losses)))),
            i - 0.3,
            i + 0.3,
            color=METHODS[method].colour,
            lw=2,
        )
    ax.set_xticks(
        range(len(names)),
        [METHODS[m].short.replace(" ", "\n", 1) for m in names],
        fontsize=8,
    )
    ax.set(
        yscale="log",
        ylabel="final training loss",
        title=title or f"every seed's final loss ({len(comparison.seeds)} seeds)",
    )
    return fig


def plot_cosines(
    comparison: Comparison,
    by_damping: Mapping[str, Sequence[float]],
    dampings: Sequence[float],
    *,
    damping: float,
    after: int,
) -> Figure:
    """KFAC-vs-FOOF cosines: along the KFAC runs (left, one line per seed) and across dampings
    (right)."""
    fig, (ax1, ax2) = new_figure(2, width=9.5, height=3.4)
    for kind, method in (("heuristic", Method.KFAC), ("standard", Method.KFAC_STANDARD)):
        colour = METHODS[method].colour
        for i, run in enumerate(comparison.runs[Method.KFAC]):
            h = run.history
            ax1.plot(
                h.eval_step,
                h.metrics[f"cosine_{kind}"],
                color=colour,
                marker="o",
                markersize=2.5,
                alpha=0.8,
                label=_label(method) if i == 0 else None,
            )
        ax2.plot(dampings, by_damping[kind], color=colour, marker="o", label=_label(method))
    ax1.set(
        xlabel="update of the KFAC (heuristic) run",
        ylabel="cosine to FOOF (Ā inner product)",
        ylim=(-0.05, 1.05),
        title=f"along training, λ = {damping:g}",
    )
    ax2.set(
        xscale="log",
        xlabel="damping λ",
        ylim=(-0.05, 1.05),
        title=f"after {after} KFAC updates, across dampings",
    )
    ax2.legend(loc="lower right", fontsize=8)
    return fig


def plot_stored(values: Mapping[str, Any], *, scale: str = "full") -> Figure:
    """The claims' figures from a stored run (``results/02_neuron_descent/<scale>.json``): the first
    seed's training loss per method (left), every seed's final loss (middle), and the KFAC-vs-FOOF
    cosine across dampings (right)."""
    fig, (ax_curve, ax_final, ax_cos) = new_figure(3, width=11.0, height=3.6)
    steps = values["curve_steps"]
    names = [m for m in Method if f"curve.{m.value}" in values]
    for method in names:
        curve = values[f"curve.{method.value}"]
        ax_curve.plot(
            steps[: len(curve)], curve, color=METHODS[method].colour, label=_label(method)
        )
    ax_curve.set(xlabel="updates", ylabel="training loss (training set)", yscale="log")
    scale_title(ax_curve, scale, f"seed {values['seeds'][0]}")
    ax_curve.legend(loc="lower left", fontsize=7)
    finals = [m for m in Method if f"final_loss.{m.value}" in values]
    for i, method in enumerate(finals):
        losses = values[f"final_loss.{method.value}"]
        colour = METHODS[method].colour
        ax_final.scatter([i] * len(losses), losses, color=colour, s=22, zorder=3)
        mean = float(np.exp(np.mean(np.log(losses))))
        ax_final.hlines(mean, i - 0.3, i + 0.3, color=colour, lw=2)
    ax_final.set_xticks(
        range(len(finals)), [METHODS[m].short.replace(" ", "\n", 1) for m in finals], fontsize=7
    )
    ax_final.set(yscale="log", ylabel="final training loss")
    scale_title(ax_final, scale, f"every seed ({len(values['seeds'])})")
    by_damping = values["cosine_by_damping"]
    for kind, method in (("heuristic", Method.KFAC), ("standard", Method.KFAC_STANDARD)):
        if kind in by_damping:
            ax_cos.plot(
                values["cosine_dampings"],
                by_damping[kind],
                color=METHODS[method].colour,
                marker="o",
                label=_label(method),
            )
    ax_cos.set(
        xscale="log",
        xlabel="damping λ",
        ylabel="cosine to FOOF (Ā inner product)",
        ylim=(-0.05, 1.05),
    )
    scale_title(ax_cos, scale, "KFAC vs FOOF, early in training")
    ax_cos.legend(loc="lower right", fontsize=7)
    return fig


# ----------------------------------------------------------------------------- the explorer


def _explorer_setting(
    p: Preset, method: Method, lr_factor: float, damping_factor: float
) -> Setting:
    base = p.mlp.settings[method]
    damping = None if base.damping is None else base.damping * damping_factor
    return replace(base, lr=base.lr * lr_factor, damping=damping)


def explorer_rows(
    method: Method, lr_factor: float, damping_factor: float, *, preset: Preset, seed: int = 0
) -> list[dict[str, Any]]:
    """Tidy rows of the curves the explorer draws: the chosen run beside SGD and FOOF at their
    tuned settings.
    """
    method = Method(method)
    rows: list[dict[str, Any]] = []
    factor = 1.0 if method is Method.SGD else damping_factor
    chosen = _explorer_setting(preset, method, lr_factor, factor)
    steps = preset.explorer_steps

    def run(name: Method, setting: Setting | None) -> MethodRun:
        return train_run(preset, name, seed=seed, setting=setting, steps=steps)

    runs = {"yours": run(method, chosen)}
    for name in (Method.SGD, Method.FOOF):
        runs[f"{METHODS[name].short}, tuned"] = run(name, None)
    for label, run_ in runs.items():
        title = f"{METHODS[method].short}, {run_.setting}" if label == "yours" else label
        if run_.diverged_at is not None:
            title += f" — diverged at update {run_.diverged_at}"
        h = run_.history
        for step, value in zip(h.eval_step, h.metrics.get("train_loss", [])):
            rows.append({"run": title, "update": step, "training loss": value})
    return rows


def explorer_chart(rows: Any) -> Any:
    """How the book's explorer draws :func:`explorer_rows`: training loss against updates, log
    scale."""
    import altair as alt

    return log_line_chart(
        rows,
        x=alt.X("update:Q", title="update"),
        y=alt.Y("training loss:Q", title="training loss (training set)"),
        color=alt.Color("run:N", title=None, legend=alt.Legend(orient="bottom", columns=1)),
    )


def explorer_figure(
    method: Method, lr_factor: float, damping_factor: float, *, preset: Preset, seed: int = 0
) -> Figure:
    """The live explorer's figure (and the book's PNG): the same curves as :func:`explorer_rows`."""
    rows = explorer_rows(method, lr_factor, damping_factor, preset=preset, seed=seed)
    fig, axes = new_figure(1, width=7.5, height=3.6)
    ax = axes[0]
    for name in dict.fromkeys(r["run"] for r in rows):
        mine = [r for r in rows if r["run"] == name]
        ax.plot(
            [r["update"] for r in mine],
            [r["training loss"] for r in mine],
            marker="o",
            markersize=2.5,
            label=name,
        )
    ax.set(
        yscale="log",
        xlabel="update",
        ylabel="training loss (training set)",
        title=f"MLP on {preset.dataset}, seed {seed}",
    )
    ax.legend(fontsize=8)
    return fig
