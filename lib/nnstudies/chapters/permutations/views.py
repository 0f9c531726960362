"""Chapter 1's views: figures, tables, the explorers, and the GPU estimate of a scale.

Nothing here computes a recorded number: the explorer trains its pairs through
:mod:`~nnstudies.chapters.permutations.experiment` (cached), and draws them.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from ...permutations import Curve, activation_similarity, interpolation_curve, permute
from ...plotting import PALETTE, new_figure, scale_title
from ...runs import SweepError
from ...training import DivergenceError
from .experiment import load_data, matching_inputs, train_pair, training_flop
from .presets import Preset, Setup
from .studies import (
    CONV_METHODS,
    METHODS,
    FractionStudy,
    LearningRateStudy,
    PairResult,
    WidthStudy,
    aligned,
    conv_preset,
)

__all__ = [
    "COLOURS",
    "CONV_LABELS",
    "Cost",
    "explorer_chart",
    "explorer_curves",
    "explorer_figure",
    "explorer_rows",
    "explorer_setup",
    "fraction_chart",
    "fraction_figure",
    "fraction_rows",
    "gpu_estimate",
    "mean_sd",
    "plot_barriers",
    "plot_curves",
    "plot_init_by_update",
    "plot_learning_rate_study",
    "plot_similarity",
    "plot_stored",
    "plot_width_study",
]

COLOURS: dict[str, str] = {
    "naive": PALETTE[1],
    "activations": PALETTE[0],
    "weights": PALETTE[2],
    "repair": PALETTE[3],
}
"""The colour of each matching method (keys of :data:`~.studies.METHODS`)."""


def mean_sd(values: Sequence[float], fmt: str = ".3f", scale: float = 1.0) -> str:
    """'mean ± sd' of ``values`` (times ``scale``); the sd only with two or more values."""
    xs = [v * scale for v in values]
    if not xs:
        return "—"
    text = f"{statistics.fmean(xs):{fmt}}"
    return text + (f" ± {statistics.stdev(xs):{fmt}}" if len(xs) > 1 else "")


# ----------------------------------------------------------------------------- figures


def plot_curves(
    curves: dict[str, Curve], *, title: str = "", chance: float | None = None
) -> Figure:
    """Loss and accuracy along α, one line per method (keys of :data:`METHODS`)."""
    fig, (ax_loss, ax_acc) = new_figure(2, width=9.0, height=3.4)
    for name, c in curves.items():
        style: dict[str, Any] = {
            "color": COLOURS[name],
            "marker": "o",
            "markersize": 3,
            "label": METHODS[name].label,
        }
        ax_loss.plot(c.alphas, c.loss, **style)
        ax_acc.plot(c.alphas, c.accuracy, **style)
    if chance is not None:
        ax_acc.axhline(chance, color="0.4", lw=1, ls="--", label="chance")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("α  (0: network A, 1: network B)")
    ax_loss.set(ylabel="loss", ylim=(0, None), title="loss along the line")
    ax_acc.set(ylabel="accuracy", ylim=(0, 1), title="accuracy along the line")
    ax_acc.legend(loc="lower center", fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_similarity(
    a: nn.Module, b: nn.Module, perms: list[torch.Tensor], inputs: torch.Tensor, *, units: int = 64
) -> Figure:
    """First hidden layer's cosine-similarity matrix (first ``units`` units of A) before and after
    permuting B.
    """
    before = activation_similarity(a, b, inputs)[0]
    after = activation_similarity(a, permute(b, perms), inputs)[0]
    fig, axes = new_figure(2, width=8.0, height=3.8)
    image = None
    for ax, sim, title in (
        (axes[0], before, "before matching"),
        (axes[1], after, "after matching B to A"),
    ):
        image = ax.imshow(sim[:units, :units].numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set(title=title, xlabel="unit of B", ylabel="unit of A")
        ax.grid(False)
    assert image is not None
    fig.colorbar(image, ax=axes, shrink=0.8, label="cosine similarity")
    return fig


def plot_barriers(
    results: dict[str, list[PairResult]], methods: Sequence[str], *, title: str
) -> Figure:
    """Bar chart (from zero) of the loss barrier per method, on test and training data: mean over
    pairs, a dot per pair.
    """
    fig, axes = new_figure(2, width=9.0, height=3.2)
    for ax, split in zip(axes, ("test", "train")):
        for i, name in enumerate(methods):
            values = [r.barrier(name, split).loss for rs in results.values() for r in rs]
            ax.bar(i, float(np.mean(values)), color=COLOURS[name], alpha=0.8)
            ax.scatter([i] * len(values), values, color="0.2", s=12, zorder=3)
        ax.set_xticks(
            range(len(methods)),
            [METHODS[m].short.replace(" + ", "\n+ ") for m in methods],
            fontsize=8,
        )
        ax.set(ylabel="loss barrier", title=f"{split} data", ylim=(0, None))
    fig.suptitle(title)
    return fig


def plot_width_study(study: WidthStudy, *, chance: float) -> Figure:
    """Loss barrier (naive and matched, test and train) and averaged-init accuracy against the
    hidden width.
    """
    fig, (ax_bar, ax_init) = new_figure(2, width=10.0, height=4.2)
    widths = list(study.widths)
    for name in ("naive", "activations"):
        for split, ls in (("test", "-"), ("train", "--")):
            values = [
                float(np.mean([r.barrier(name, split).loss for r in study.results[w]]))
                for w in widths
            ]
            ax_bar.plot(
                widths,
                values,
                ls,
                marker="o",
                color=COLOURS[name],
                label=f"{METHODS[name].label}, {split}",
            )
        means = [float(np.mean([r.init_accuracy[name] for r in study.results[w]])) for w in widths]
        ax_init.plot(
            widths,
            means,
            marker="o",
            color=COLOURS[name],
            label=f"inits averaged, {METHODS[name].label}",
        )
    ax_init.axhline(chance, color="0.4", lw=1, ls=":", label="chance")
    for ax in (ax_bar, ax_init):
        ax.set_xscale("log", base=2)
        ax.set_xticks(widths, [str(w) for w in widths])
        ax.set_xlabel("hidden width")
    ax_bar.set(ylabel="loss barrier", ylim=(0, None), title="barrier against width")
    ax_init.set(
        ylabel="test accuracy at α = ½",
        ylim=(0, None),
        title="averaged initialisations against width",
    )
    for ax in (ax_bar, ax_init):
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.2), ncol=2)
    return fig


def plot_init_by_update(
    by_update: dict[int, list[float]], naive: list[float], *, chance: float
) -> Figure:
    """Averaged-init accuracy against the update count at which the permutation was computed (one
    dot per pair).
    """
    fig, (ax,) = new_figure(1, width=6.0, height=3.4)
    updates = sorted(by_update)
    positions = range(len(updates))
    ax.plot(
        positions,
        [float(np.mean(by_update[u])) for u in updates],
        marker="o",
        color=COLOURS["activations"],
        label="permuted by activation matching after that many updates",
    )
    for i, u in zip(positions, updates):
        ax.scatter([i] * len(by_update[u]), by_update[u], color="0.3", s=10, zorder=3)
    ax.axhline(
        float(np.mean(naive)),
        color=COLOURS["naive"],
        ls="--",
        label="plain average (no permutation)",
    )
    ax.axhline(chance, color="0.4", lw=1, ls=":", label="chance")
    ax.set_xticks(list(positions), [str(u) for u in updates])
    ax.set(
        xlabel="updates before the permutation is computed",
        ylabel="test accuracy of ½(init A + π init B)",
        ylim=(0, None),
    )
    ax.legend(fontsize=8)
    return fig


def plot_stored(values: Mapping[str, Any], *, scale: str = "full") -> Figure:
    """The claims' figures from a stored run (``results/01_permutations/<scale>.json``): the test loss
    along the line from A to the permuted B per matching method (mean over pairs), the accuracy of
    the averaged initialisations against the update at which the permutation was found (one dot
    per pair), and the conv nets' barriers at the small and the large learning rate."""
    fig, (ax_line, ax_init, ax_cnn) = new_figure(3, width=11.0, height=3.6)
    for name in METHODS:
        curve = values.get(f"curve_test_loss_{name}")
        if curve is not None:
            ax_line.plot(
                values["alphas"],
                curve,
                color=COLOURS[name],
                marker="o",
                markersize=3,
                label=METHODS[name].label,
            )
    ax_line.set(xlabel="α (0: network A, 1: permuted B)", ylabel="test loss")
    scale_title(ax_line, scale, f"MLP, mean over {values['pairs']} pairs")
    ax_line.legend(fontsize=7)
    by_update = {int(u): v for u, v in values["init_by_update"].items()}
    updates = sorted(by_update)
    ax_init.plot(
        range(len(updates)),
        [float(np.mean(by_update[u])) for u in updates],
        marker="o",
        color=COLOURS["activations"],
        label="permuted (activation matching)",
    )
    for i, u in enumerate(updates):
        ax_init.scatter([i] * len(by_update[u]), by_update[u], color="0.3", s=10, zorder=3)
    ax_init.axhline(
        values["init_midpoint_naive"], color=COLOURS["naive"], ls="--", label="plain average"
    )
    ax_init.axhline(values["chance"], color="0.4", lw=1, ls=":", label="chance")
    ax_init.set_xticks(range(len(updates)), [str(u) for u in updates])
    ax_init.set(
        xlabel="updates before the permutation is found",
        ylabel="test accuracy of ½(init A + π init B)",
        ylim=(0, None),
    )
    scale_title(ax_init, scale, "averaged initialisations")
    ax_init.legend(fontsize=7)
    rates = [r for r in ("small", "large") if f"cnn_barrier_{r}_lr" in values]
    bars = [
        ("cnn_barrier_naive_{}_lr", "no matching", "naive"),
        ("cnn_barrier_{}_lr", "activation matching", "activations"),
        ("conv_barrier_repair_{}_lr", "matched + REPAIR", "repair"),
    ]
    bars = [b for b in bars if all(b[0].format(r) in values for r in rates)]
    width = 0.8 / len(bars)
    heights = {
        key.format(r): float(np.mean(values[key.format(r)])) for key, _, _ in bars for r in rates
    }  # a mean, or the mean of a list over pairs
    for offset, (key, label, name) in enumerate(bars):
        ax_cnn.bar(
            [i + width * offset for i in range(len(rates))],
            [heights[key.format(r)] for r in rates],
            width=width * 0.95,
            color=COLOURS[name],
            label=label,
        )
    ax_cnn.set_xticks(
        [i + width * (len(bars) - 1) / 2 for i in range(len(rates))],
        [f"{r} lr ({values[f'cnn_lr_{r}']:g})" for r in rates],
    )
    top = max(heights.values())
    ax_cnn.set(ylabel="test loss barrier (mean over pairs)", ylim=(0, 1.3 * top))
    scale_title(ax_cnn, scale, "conv nets")
    ax_cnn.legend(fontsize=7, loc="upper left", ncol=2)
    return fig


CONV_LABELS = {"naive": "no matching", "activations": "matched", "repair": "matched + REPAIR"}
"""How the conv figures name :data:`~.studies.CONV_METHODS`."""


def plot_learning_rate_study(study: LearningRateStudy, *, chance: float) -> Figure:
    """Conv nets at each learning rate: mean test loss along the line (no matching dashed, matched
    solid, matched + REPAIR dotted); the test barrier per method (bar: mean; dots: pairs); and the
    variance collapse, the matched midpoint's pre-activation std ÷ the endpoints' per conv layer
    (1: no collapse). A barrier that REPAIR removes was collapsed variance; one it leaves is
    a barrier between distinct modes (or a matching that failed).
    """
    fig, (ax_loss, ax_bar, ax_ratio) = new_figure(3, width=13.0, height=3.4)
    colours = {"small": PALETTE[0], "large": PALETTE[1]}
    methods = [m for m in CONV_METHODS if m in study.results["small"][0].curves["test"]]
    for which, results in study.results.items():
        lr = study.setups[which].training.lr
        for name, ls in zip(methods, ("--", "-", ":")):
            alphas = results[0].curves["test"][name].alphas
            mean = np.mean([r.curves["test"][name].loss for r in results], axis=0)
            ax_loss.plot(
                alphas,
                mean,
                ls,
                marker="o",
                markersize=3,
                color=colours[which],
                label=f"lr {lr:g}, {CONV_LABELS[name]}",
            )
        ratios = np.mean([r.variance_ratio["activations"] for r in results], axis=0)
        ax_ratio.plot(
            range(1, len(ratios) + 1), ratios, marker="o", color=colours[which], label=f"lr {lr:g}"
        )
    for i, name in enumerate(methods):
        for j, which in enumerate(("small", "large")):
            x = i + 0.38 * j
            values = study.barriers(which, name)
            name_lr = f"lr {study.setups[which].training.lr:g}"
            ax_bar.bar(
                x,
                float(np.mean(values)),
                width=0.36,
                color=colours[which],
                alpha=0.8,
                label=name_lr if i == 0 else None,
            )
            ax_bar.scatter([x] * len(values), values, color="0.2", s=10, zorder=3)
    ax_bar.set_xticks([i + 0.19 for i in range(len(methods))], [CONV_LABELS[m] for m in methods])
    ax_loss.set(
        xlabel="α", ylabel="test loss", ylim=(0, None), title="mean test loss along the line"
    )
    ax_bar.set(ylabel="test loss barrier", ylim=(0, None), title="barrier per pair (dots) and mean")
    ax_ratio.axhline(1.0, color="0.4", lw=1, ls=":")
    ax_ratio.set(
        xlabel="conv layer",
        ylabel="std at α = ½ ÷ endpoints' std",
        ylim=(0, 1.1),
        title="variance collapse after matching",
    )
    ax_ratio.set_xticks(range(1, len(ratios) + 1))
    ax_loss.legend(fontsize=6)
    ax_bar.legend(fontsize=7)
    ax_ratio.legend(fontsize=7)
    return fig


# ----------------------------------------------------------------------------- explorer


def explorer_setup(arch: str, lr: str, p: Preset) -> Setup:
    """The setup the explorer trains for ``arch`` ("MLP", "CNN") at the ``lr`` ("small", "large")
    learning rate.

    The CNN's are the learning-rate study's own; the MLP's large learning rate is
    ``p.mlp_large_lr``.
    """
    if arch == "CNN":
        return p.conv.small if lr == "small" else p.conv.large
    if lr == "small":
        return p.mlp
    return p.mlp.with_lr(p.mlp_large_lr or 2 * p.mlp.training.lr)


@lru_cache(maxsize=64)
def _explorer_pair(arch: str, lr: str, method: str, p: Preset) -> tuple[Any, ...] | None:
    """(A, B, B's permutations by ``method``) of the explorer's pair 0; None: it diverged."""
    setup = explorer_setup(arch, lr, p)
    try:
        a, b = train_pair(setup, pair=0, snapshot_at=p.match_at if setup == p.mlp else ())
    except (DivergenceError, SweepError):
        return None
    q = conv_preset(p) if arch == "CNN" else p  # the conv study's own matching inputs
    return a, b, METHODS[method].match(a.model, b.model, matching_inputs(q, load_data(setup)))


@lru_cache(maxsize=256)
def _explorer_curve(arch: str, lr: str, method: str, pair: str, p: Preset) -> Curve | None:
    found = _explorer_pair(arch, lr, method, p)
    if found is None:
        return None
    a, b, perms = found
    ends = (a.model, b.model) if pair == "trained" else (a.init, b.init)
    data = load_data(explorer_setup(arch, lr, p))
    return interpolation_curve(ends[0], aligned(ends[1], perms), data, p.alphas)


def explorer_curves(
    arch: str, lr: str, method: str, pair: str, *, p: Preset
) -> tuple[Setup, dict[str, Curve]]:
    """Pair 0 of :func:`explorer_setup` under preset ``p``: test curves along α, naive and by
    ``method``, of the ``pair`` ("trained", "inits"); computed once per process.

    The initialisations are permuted by the matching found on the trained pair. Empty when training
    diverged.
    """
    curves = {name: _explorer_curve(arch, lr, name, pair, p) for name in {"naive", method}}
    setup = explorer_setup(arch, lr, p)
    return setup, {name: c for name, c in sorted(curves.items()) if c is not None}


def explorer_rows(arch: str, lr: str, method: str, pair: str, *, p: Preset) -> list[dict[str, Any]]:
    """Tidy rows of the explorer at one grid point: test loss and accuracy along α, the chosen
    method beside naive.
    """
    setup, curves = explorer_curves(arch, lr, method, pair, p=p)
    rows = []
    for name, c in curves.items():
        for alpha, loss, acc in zip(c.alphas, c.loss, c.accuracy):
            for quantity, value in (("test loss", loss), ("test accuracy", acc)):
                rows.append(
                    {
                        "curve": METHODS[name].label,
                        "alpha": alpha,
                        "quantity": quantity,
                        "value": value,
                        "learning rate": setup.training.lr,
                    }
                )
    return rows


def _along_alpha(rows: Any, tooltip: Sequence[str]) -> Any:
    """Loss and accuracy along α, a facet each, one line per curve."""
    import altair as alt

    return (
        rows.mark_line(point=True)
        .encode(
            x=alt.X("alpha:Q", title="α (0: network A, 1: network B)"),
            y=alt.Y("value:Q", title=None),
            color=alt.Color("curve:N", title=None, legend=alt.Legend(orient="bottom")),
            tooltip=list(tooltip),
        )
        .properties(width=280, height=200)
        .facet(column=alt.Column("quantity:N", title=None, sort=["test loss", "test accuracy"]))
        .resolve_scale(y="independent")
    )


def explorer_chart(rows: Any) -> Any:
    """How the book's explorer draws :func:`explorer_rows`: loss and accuracy along α."""
    return _along_alpha(rows, ["curve:N", "alpha:Q", "value:Q", "learning rate:Q"])


def explorer_figure(arch: str, lr: str, method: str, pair: str, *, p: Preset) -> Figure:
    """The live explorer's figure: the interpolation curves of one grid point."""
    setup, curves = explorer_curves(arch, lr, method, pair, p=p)
    lr_value = setup.training.lr
    if not curves:
        fig, (ax,) = new_figure(1)
        ax.text(0.5, 0.5, f"{arch} at lr {lr_value:g} diverged", ha="center")
        return fig
    chance = 1 / load_data(setup).num_classes
    return plot_curves(
        curves,
        chance=chance,
        title=f"{arch}, lr {lr_value:g}, {pair} pair: {METHODS[method].label} vs naive",
    )


def _nearest(study: FractionStudy, fraction: float) -> float:
    return min(study.fractions, key=lambda f: abs(f - fraction))


def fraction_rows(study: FractionStudy, fraction: float) -> list[dict[str, Any]]:
    """Tidy rows of the fraction explorer at ``fraction``: the mean test loss and accuracy along α,
    beside the fully matched (0) and fully random (1) permutations, and the summary.
    """
    rows = []
    shown = sorted({study.fractions[0], _nearest(study, fraction), study.fractions[-1]})
    for f in shown:
        curves = study.curves[f]
        label = f"{f:.0%} scrambled"
        for j, alpha in enumerate(curves[0].alphas):
            for quantity, values in (
                ("test loss", [c.loss[j] for c in curves]),
                ("test accuracy", [c.accuracy[j] for c in curves]),
            ):
                rows.append(
                    {"curve": label, "alpha": alpha, "quantity": quantity, "value": _mean(values)}
                )
    return rows


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values))


def fraction_chart(rows: Any) -> Any:
    """How the book's fraction explorer draws :func:`fraction_rows`: loss and accuracy along α."""
    return _along_alpha(rows, ["curve:N", "alpha:Q", "value:Q"])


def fraction_figure(study: FractionStudy, fraction: float, *, chance: float) -> Figure:
    """The barrier and the averaged-init accuracy against the scrambled fraction (a dot per pair),
    ``fraction`` marked, and the mean test loss along α there.
    """
    fig, (ax_line, ax_bar, ax_init) = new_figure(3, width=12.0, height=3.4)
    fs = list(study.fractions)
    for f, colour in ((fs[0], COLOURS["activations"]), (fs[-1], COLOURS["naive"])):
        c = study.curves[f]
        ax_line.plot(
            c[0].alphas, np.mean([x.loss for x in c], 0), "--", color=colour, label=f"{f:.0%}"
        )
    fraction = _nearest(study, fraction)
    c = study.curves[fraction]
    ax_line.plot(
        c[0].alphas, np.mean([x.loss for x in c], 0), "o-", color="0.1", label=f"{fraction:.0%}"
    )
    ax_line.set(xlabel="α", ylabel="test loss", ylim=(0, None), title="mean test loss along α")
    ax_line.legend(title="scrambled", fontsize=7)
    for ax, values, ylabel in (
        (ax_bar, [study.barriers(f) for f in fs], "test loss barrier"),
        (ax_init, [study.init_accuracy[f] for f in fs], "test accuracy of ½(init A + π init B)"),
    ):
        ax.plot(fs, [_mean(v) for v in values], "o-", color=COLOURS["activations"])
        for f, v in zip(fs, values):
            ax.scatter([f] * len(v), v, color="0.4", s=8, zorder=3)
        ax.axvline(fraction, color="0.1", lw=1, ls=":")
        ax.set(xlabel="fraction of the permutation scrambled", ylabel=ylabel, ylim=(0, None))
    ax_init.axhline(chance, color="0.4", lw=1, ls="--", label="chance")
    ax_init.legend(fontsize=7)
    return fig


# ----------------------------------------------------------------------------- cost of a scale


@dataclass(frozen=True)
class Cost:
    """Updates and floating-point work of a scale's training, and the GPU time they take at an
    assumed rate.
    """

    updates: int
    tflop: float
    seconds_per_update: float
    gpu_minutes: float


def gpu_estimate(p: Preset, *, tflops: float = 4.0, overhead_ms: float = 1.0) -> Cost:
    """The training cost of preset ``p`` on a GPU: Σ updates × (FLOP per update / ``tflops`` +
    ``overhead_ms``).

    ``tflops``: the float32 rate a GPU sustains on these small layers (a T4's peak is 8);
    ``overhead_ms``: Python and kernel-launch time per update. Matching and evaluation are
    not counted (seconds on a GPU).
    """
    runs: list[tuple[Setup, int]] = [
        (p.mlp, 2 * p.pairs),
        (p.conv.small, 2 * p.conv.pairs),
        (p.conv.large, 2 * p.conv.pairs),
    ]
    runs += [(p.mlp.with_width(w), 2 * p.width_pairs) for w in p.widths]
    if p.deep is not None:
        runs.append((p.deep, 2 * p.deep_pairs))
    runs.append((explorer_setup("MLP", "large", p), 2))
    updates = sum(s.training.steps * n for s, n in runs)
    flop = sum(training_flop(s) * s.training.steps * n for s, n in runs)
    seconds = flop / (tflops * 1e12) + updates * overhead_ms / 1e3
    return Cost(updates, flop / 1e12, seconds / updates, seconds / 60)
