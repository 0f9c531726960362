"""Chapter 3's views: figures, explorers and tables of the experiments' results (no training here
beyond what the explorer asks of the cache).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, NullLocator
from torch import nn

from ... import continual as cl
from ...continual import Regulariser
from ...models import CNN, MLP
from ...plotting import errorbar_over_seeds, new_figure, scale_title
from ...results import markdown_table
from .experiment import Comparison, Tuning, label, strength, train_run
from .presets import BENCHMARKS, PMNIST_PART_SEEDS, Benchmark, BenchmarkSettings, Preset
from .studies import SQRT_EMPIRICAL, BiasStudy, Correlations, flat, pair_key

__all__ = [
    "bias_explorer_chart",
    "bias_explorer_figure",
    "bias_explorer_rows",
    "bias_table",
    "comparison_table",
    "comparison_table_from_record",
    "correlation_table",
    "cost_table",
    "explorer_chart",
    "explorer_figure",
    "explorer_rows",
    "plot_bias",
    "plot_correlations",
    "plot_forgetting",
    "plot_gaps",
    "plot_matrix",
    "plot_methods",
    "plot_stored",
    "plot_tuning",
    "stored_summary",
    "swapped_table",
]

R = Regulariser


def _name(measure: str) -> str:
    """How the page names a measure: a method's label, or √F_emp."""
    return "√F_emp" if measure == SQRT_EMPIRICAL else label(measure)


def _colour(measure: str) -> str:
    return cl.METHODS[measure].colour if measure in cl.METHODS else "#332288"


# ----------------------------------------------------------------------------- figures


def plot_forgetting(results: dict[str, cl.ContinualResult], *, title: str = "") -> Figure:
    """Test accuracy on each task (one line per task) against the number of tasks trained, one panel per run."""
    fig, axes = new_figure(len(results), width=4.6 * len(results), height=3.4)
    for ax, (name, r) in zip(axes, results.items()):
        acc = r.accuracy.numpy()
        n = acc.shape[0]
        for j in range(n):
            ax.plot(
                range(j + 1, n + 1), acc[j:, j], marker="o", markersize=3, label=f"task {j + 1}"
            )
        ax.plot(
            range(1, n + 1),
            [acc[i, : i + 1].mean() for i in range(n)],
            color="0.2",
            lw=2.5,
            ls="--",
            label="average of tasks so far",
        )
        ax.set(
            xlabel="tasks trained",
            ylabel="test accuracy",
            title=name,
            xticks=list(range(1, n + 1)),
            ylim=(0, 1),
        )
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if title:
        fig.suptitle(title)
    return fig


def plot_tuning(tunings: dict[str, Tuning]) -> Figure:
    """Validation accuracy after all tasks against the strength c, per method, on the tuning seed; one panel per benchmark."""
    fig, axes = new_figure(len(tunings), width=4.8 * len(tunings), height=3.6)
    for ax, (name, t) in zip(axes, tunings.items()):
        for method, cs in t.strengths.items():
            if method == R.NONE:
                ax.axhline(
                    t.val[R.NONE][0], color=cl.METHODS[R.NONE].colour, ls="--", lw=1.2, label="none"
                )
                continue
            ax.plot(
                cs,
                t.val[method],
                marker="o",
                markersize=3,
                color=cl.METHODS[method].colour,
                label=label(method),
            )
        ax.set(
            xscale="log",
            xlabel="strength c",
            ylabel="average validation accuracy",
            title=f"{name}, seed{'s' if len(t.seeds) > 1 else ''} {', '.join(map(str, t.seeds or (t.seed,)))}",
        )
        ax.xaxis.set_minor_formatter(NullFormatter())
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def plot_methods(comparisons: dict[str, Comparison]) -> Figure:
    """Average test accuracy after all tasks per method (bars from zero: the mean; dots: the seeds)."""
    fig, axes = new_figure(len(comparisons), width=4.8 * len(comparisons), height=3.4)
    for ax, (name, comp) in zip(axes, comparisons.items()):
        names = list(comp.test)
        for i, m in enumerate(names):
            values = comp.test[m]
            ax.bar(i, statistics.fmean(values), color=cl.METHODS[m].colour, alpha=0.85)
            ax.scatter([i] * len(values), values, color="black", s=8, zorder=3)
        ax.set_xticks(
            range(len(names)),
            [label(m) + (" *" if m == comp.best else "") for m in names],
            rotation=45,
            ha="right",
        )
        ax.set(
            ylim=(0, 1),
            ylabel="average test accuracy, all tasks",
            title=f"{name}, seeds {comp.seeds}",
        )
    fig.text(0.01, 0.0, "* chosen on validation data of the tuning seed", fontsize=8)
    return fig


def plot_gaps(comparisons: dict[str, Comparison]) -> Figure:
    """Each method's test accuracy minus no regularisation's, per seed (dots) and on average (bars)."""
    fig, axes = new_figure(len(comparisons), width=4.8 * len(comparisons), height=3.2)
    for ax, (name, comp) in zip(axes, comparisons.items()):
        names = [m for m in comp.test if m != R.NONE]
        for i, m in enumerate(names):
            gaps = comp.gap(m, R.NONE)
            ax.bar(i, statistics.fmean(gaps), color=cl.METHODS[m].colour, alpha=0.85)
            ax.scatter([i] * len(gaps), gaps, color="black", s=8, zorder=3)
        ax.axhline(0, color="0.3", lw=1)
        ax.set_xticks(range(len(names)), [label(m) for m in names], rotation=45, ha="right")
        ax.set(ylabel="test accuracy − none's (same seed)", title=name)
    return fig


def _sample(index: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` distinct entries of ``index`` at random (all of them when there are fewer), in their order."""
    if len(index) <= size:
        return index
    chosen: set[int] = set()
    while len(chosen) < size:
        chosen.update(rng.integers(0, len(index), size=size - len(chosen)).tolist())
    return index[np.sort(np.fromiter(chosen, dtype=np.int64))]


def plot_correlations(
    importances: dict[str, list[torch.Tensor]],
    pairs: Sequence[tuple[str, str]],
    *,
    title: str = "",
    max_points: int = 4000,
) -> Figure:
    """Scatter plots of Ω pairs (log-log, positive entries; a random subset of ``max_points``) with Pearson's r."""
    fig, axes = new_figure(len(pairs), width=3.4 * len(pairs), height=3.3)
    rng = np.random.default_rng(0)
    for ax, (a, b) in zip(axes, pairs):
        x, y = flat(importances[a]), flat(importances[b])
        r = cl.pearson(importances[a], importances[b])
        keep = _sample(np.flatnonzero((x > 0) & (y > 0)), max_points, rng)
        ax.scatter(x[keep], y[keep], s=3, alpha=0.35, color=_colour(a), rasterized=True)
        ax.set(
            xscale="log",
            yscale="log",
            xlabel=_name(a),
            ylabel=_name(b),
            title=f"Pearson r = {r:.3f}",
        )
    if title:
        fig.suptitle(title)
    return fig


def plot_stored(values: Mapping[str, Any], *, scale: str = "full") -> Figure:
    """The claims' figures from a stored run (``results/03_continual_learning/<scale>.json``): each
    method's average test accuracy minus no regularisation's, seed by seed (dots) and on average
    (bars), on both benchmarks (* the method chosen on the tuning seeds); SI − SIU at each of the two
    tuned strengths (the swapped-strength control, when the run has it); and SIB's share of SI's
    importance against the batch size."""
    swapped = "swapped.permuted.test" in values
    fig, axes = new_figure(4 if swapped else 3, width=14.0 if swapped else 11.0, height=3.6)
    ax_p, ax_s, ax_b = axes[0], axes[1], axes[-1]
    for ax, key, name in ((ax_p, "permuted", "Permuted"), (ax_s, "split", "Split")):
        test = {R(m): accuracies for m, accuracies in values[f"{key}.test"].items()}
        best = values.get(f"{key}.best")
        names = [m for m in test if m != R.NONE]
        for i, m in enumerate(names):
            gaps = [a - b for a, b in zip(test[m], test[R.NONE])]
            ax.bar(i, statistics.fmean(gaps), color=cl.METHODS[m].colour, alpha=0.85)
            ax.scatter([i] * len(gaps), gaps, color="black", s=8, zorder=3)
        ax.axhline(0, color="0.3", lw=1)
        ax.set_xticks(
            range(len(names)),
            [label(m) + (" *" if m == best else "") for m in names],
            rotation=45,
            ha="right",
        )
        ax.set(ylabel="test accuracy − none's (same seed)")
        scale_title(ax, scale, f"{name}, seeds {tuple(values[f'{key}.seeds'])}")
    if swapped:
        ax_w = axes[2]
        test, other = values["permuted.test"], values["swapped.permuted.test"]
        strengths = values["permuted.strengths"]
        pairs = (("SI", test["SI"], other["SIU"]), ("SIU", other["SI"], test["SIU"]))
        for i, (whose, si, siu) in enumerate(pairs):
            gaps = [a - b for a, b in zip(si, siu)]
            ax_w.bar(i, statistics.fmean(gaps), color=cl.METHODS[R.SIU].colour, alpha=0.85)
            ax_w.scatter([i] * len(gaps), gaps, color="black", s=8, zorder=3)
        ax_w.axhline(0, color="0.3", lw=1)
        ax_w.set_xticks(
            [0, 1], [f"at {w}'s c = {strengths[w]:.3g}" for w, _, _ in pairs], rotation=20
        )
        ax_w.set(ylabel="SI − SIU, test accuracy (same seed)")
        scale_title(ax_w, scale, "SI − SIU at the same c")
    sizes = list(values["bias.batch_sizes"])
    shares = [values["bias.share"][str(b)] for b in sizes]
    errorbar_over_seeds(ax_b, sizes, shares, color=cl.METHODS[R.SIB].colour)
    ax_b.set(
        xscale="log",
        ylim=(0, 1.02),
        xlabel="batch size",
        ylabel="mean Ω of SIB / mean Ω of SI",
    )
    ax_b.set_xticks(sizes, [str(b) for b in sizes])
    ax_b.xaxis.set_minor_locator(NullLocator())
    scale_title(ax_b, scale, "how much of SI is its bias")
    return fig


def plot_bias(bias: BiasStudy) -> Figure:
    """Left: correlation of SI with SOS, SIB and SIU against batch size. Right: SIB's share of SI's mean Ω."""
    sizes = list(bias.batch_sizes)
    fig, (ax_r, ax_s) = new_figure(2, width=9.0, height=3.4)
    for other in (R.SOS, R.SIB, R.SIU):
        rs = [bias.r[b][pair_key(R.SI, other)] for b in sizes]
        errorbar_over_seeds(ax_r, sizes, rs, color=cl.METHODS[other].colour, label=f"SI vs {other}")
    ax_r.set(
        xscale="log",
        ylim=(0, 1.02),
        xlabel="batch size",
        ylabel="Pearson r (mean ± sd over seeds)",
        title="what SI's importance resembles",
    )
    shares = [bias.share[b] for b in sizes]
    errorbar_over_seeds(ax_s, sizes, shares, color=cl.METHODS[R.SIB].colour)
    ax_s.set(
        xscale="log",
        ylim=(0, 1.02),
        xlabel="batch size",
        ylabel="mean Ω of SIB / mean Ω of SI",
        title="how much of SI is its bias",
    )
    for ax in (ax_r, ax_s):
        ax.set_xticks(sizes, [str(b) for b in sizes])
        ax.xaxis.set_minor_locator(NullLocator())
    ax_r.legend(loc="best")
    return fig


def _sd(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def plot_matrix(result: cl.ContinualResult, *, title: str = "") -> Figure:
    """The accuracy matrix (task trained × task tested) beside each task's accuracy curve."""
    fig, (ax_m, ax_c) = new_figure(2, width=9.0, height=3.6)
    acc = result.accuracy.numpy()
    n = acc.shape[0]
    image = ax_m.imshow(acc, cmap="viridis", vmin=0, vmax=1)
    for i in range(n):
        for j in range(i + 1):  # tasks not yet trained are not measured (NaN)
            ax_m.text(
                j,
                i,
                f"{acc[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if acc[i, j] < 0.6 else "black",
            )
    ax_m.set(
        xlabel="task tested",
        ylabel="after training task",
        xticks=range(n),
        yticks=range(n),
        xticklabels=range(1, n + 1),
        yticklabels=range(1, n + 1),
        title="test accuracy",
    )
    ax_m.grid(False)
    fig.colorbar(image, ax=ax_m, shrink=0.8)
    for j in range(n):
        ax_c.plot(range(j + 1, n + 1), acc[j:, j], marker="o", markersize=3, label=f"task {j + 1}")
    ax_c.set(
        xlabel="tasks trained",
        ylabel="test accuracy",
        xticks=list(range(1, n + 1)),
        ylim=(0, 1),
        title="each task over time",
    )
    ax_c.legend(loc="best", fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


# ----------------------------------------------------------------------------- explorers


def _explored(preset: Preset, method: str, factor: float, n_tasks: int) -> cl.ContinualResult:
    c = strength(preset, Benchmark.PERMUTED, method, factor)
    run = train_run(preset, Benchmark.PERMUTED, method, c, seed=preset.tuning_seed)
    return run.first(int(n_tasks))


def explorer_figure(method: str, factor: float, n_tasks: int, *, preset: Preset) -> Figure:
    """The live explorer: one Permuted run (the tuning seed) with c = factor × c0, after ``n_tasks`` tasks."""
    r = _explored(preset, method, factor, n_tasks)
    c = strength(preset, Benchmark.PERMUTED, method, factor)
    title = (
        f"Permuted, {label(method)}, c = {c:.3g}: after {int(n_tasks)} tasks, average test accuracy "
        f"{r.average_accuracy():.1%}, forgetting {r.forgetting():.1%}"
    )
    return plot_matrix(r, title=title)


def explorer_rows(
    method: str, factor: float, n_tasks: int, *, preset: Preset
) -> list[dict[str, Any]]:
    """Tidy rows for the book's explorer: each task's test accuracy right after learning it and after ``n_tasks``
    tasks, with this method and with none, plus their averages."""
    n = int(n_tasks)
    run, none = _explored(preset, method, factor, n), _explored(preset, R.NONE, 1.0, n)
    series = {
        "right after learning it": [float(run.accuracy[j, j]) for j in range(n)],
        f"after {n} tasks, {label(method)}": [float(run.accuracy[n - 1, j]) for j in range(n)],
        f"after {n} tasks, none": [float(none.accuracy[n - 1, j]) for j in range(n)],
    }
    rows = []
    for order, (name, values) in enumerate(series.items()):
        key = ("a", "b", "c")[order]  # the legend's order, whatever the labels
        for j, v in enumerate(values):
            rows.append({"task": f"task {j + 1}", "series": f"{key}. {name}", "accuracy": v})
        rows.append(
            {"task": "average", "series": f"{key}. {name}", "accuracy": statistics.fmean(values)}
        )
    return rows


def explorer_chart(rows: Any) -> Any:
    """How the book draws :func:`explorer_rows`: grouped bars per task, on a fixed 0–1 axis."""
    import altair as alt

    return (
        rows.mark_bar()
        .encode(
            x=alt.X("task:N", title=None, sort=None),
            xOffset=alt.XOffset("series:N"),
            y=alt.Y("accuracy:Q", title="test accuracy").scale(domain=[0, 1]),
            color=alt.Color("series:N", title=None, legend=alt.Legend(orient="bottom", columns=1)),
            tooltip=["task:N", "series:N", alt.Tooltip("accuracy:Q", format=".3f")],
        )
        .properties(width=460, height=240)
    )


_BIAS_PAIRS = {f"SI vs {m}": (R.SI, m) for m in (R.SOS, R.SIB, R.SIU)}


def bias_explorer_figure(batch_size: int, pair: str, *, bias: BiasStudy) -> Figure:
    """SI against SOS, SIB or SIU at one batch size of the bias study (first seed), log-log."""
    a, b = _BIAS_PAIRS[pair]
    return plot_correlations(
        bias.importances[int(batch_size)],
        [(a, b)],
        title=f"batch size {int(batch_size)}",
        max_points=2000,
    )


def bias_explorer_rows(
    batch_size: int, pair: str, *, bias: BiasStudy, points: int = 300
) -> list[dict[str, Any]]:
    """A random subset of the parameters where both importances are positive, and the pair's Pearson r."""
    a, b = _BIAS_PAIRS[pair]
    omega = bias.importances[int(batch_size)]
    x, y = flat(omega[a]), flat(omega[b])
    keep = _sample(np.flatnonzero((x > 0) & (y > 0)), points, np.random.default_rng(0))
    r = bias.r[int(batch_size)][pair_key(a, b)][0]  # the first seed's, whose importances these are
    return [{"SI": float(x[i]), "other": float(y[i]), "r": r} for i in keep]


def bias_explorer_chart(rows: Any) -> Any:
    """How the book draws :func:`bias_explorer_rows`: a log-log scatter and Pearson's r."""
    import altair as alt

    points = rows.mark_circle(size=12, opacity=0.5).encode(
        x=alt.X("SI:Q", title="Ω of SI").scale(type="log"),
        y=alt.Y("other:Q", title="Ω of the other measure").scale(type="log"),
    )
    text = (
        rows.transform_aggregate(r="mean(r)")
        .transform_calculate(text='"Pearson r = " + format(datum.r, ".3f")')
        .mark_text(align="left", baseline="top", fontSize=13)
        .encode(text="text:N", x=alt.value(8), y=alt.value(8))
    )
    return (points + text).properties(width=380, height=300)


# ----------------------------------------------------------------------------- tables


def _mean_sd(values: Sequence[float], fmt: str = ".1%") -> str:
    if not values:
        return "—"
    return f"{statistics.fmean(values):{fmt}} ± {_sd(values):{fmt}}"


def comparison_table(comparisons: dict[str, Comparison]) -> Any:
    """Per method: its tuned c, test accuracy and forgetting (mean ± sd over the fresh seeds), per benchmark."""
    return comparison_table_from_record(
        {k: v for comp in comparisons.values() for k, v in comp.as_record().items()}
    )


def comparison_table_from_record(values: Mapping[str, Any]) -> Any:
    """:func:`comparison_table` from recorded values (this run's, or a stored scale's ``load_results(...).values``)."""
    benches = [b for b in BENCHMARKS if f"{b}.test" in values]
    if not benches:
        raise ValueError("these values hold no comparison (keys like 'permuted.test')")
    header = ["method"] + [
        f"{b}: {what}" for b in benches for what in ("c", "test accuracy", "forgetting")
    ]
    rows = []
    for m in values[f"{benches[0]}.test"]:
        cells = [label(m)]
        for b in benches:
            best = " (best on validation)" if values[f"{b}.best"] == m else ""
            c = values[f"{b}.strengths"][m]
            cells += [
                f"{c:.3g}{best}" if m != "none" else "–",
                _mean_sd(values[f"{b}.test"][m]),
                _mean_sd(values[f"{b}.forgetting"][m]),
            ]
        rows.append(cells)
    seeds = values[f"{benches[0]}.seeds"]
    header[0] = f"method (seeds {', '.join(map(str, seeds))})"
    return markdown_table(header, rows)


_PAPER_R = {
    "SI-SOS": "0.99 (P-MNIST), 0.96 (CIFAR)",
    "MAS-AF": "0.963",
    "SI-OnAF": "0.935",
    "MAS-sqrtFisher": "≥ 0.9",
    "AF-sqrtFisher": "≥ 0.9",
    "SI-SIB": "–",
    "SI-SIU": "–",
    "EWC-sqrtFisher": "–",
    "SI-sqrtFemp": "≈ 1 after rescaling (the abstract: SI ≈ √F_emp)",
}


def correlation_table(corr: Correlations) -> Any:
    """Pearson r per pair of measures (mean ± sd over the seeds) beside the paper's."""
    rows = [
        [
            " vs ".join(_name(m) for m in key.split("-")),
            _mean_sd(corr.r[key], ".3f"),
            _PAPER_R.get(key, "–"),
        ]
        for key in corr.r
    ]
    return markdown_table(
        ["measures", f"Pearson r, ours (seeds {', '.join(map(str, corr.seeds))})", "paper"], rows
    )


def swapped_table(compared: Comparison, swapped: Comparison) -> Any:
    """SI and SIU at each of the two tuned strengths (mean ± sd of test accuracy over the fresh seeds),
    and SI − SIU at each: the swapped-strength control separates the bias from the strength."""
    own = compared.strengths
    rows = []
    for whose in (R.SI, R.SIU):
        c = own[whose]
        si = compared.test[R.SI] if whose == R.SI else swapped.test[R.SI]
        siu = compared.test[R.SIU] if whose == R.SIU else swapped.test[R.SIU]
        gap = [a - b for a, b in zip(si, siu)]
        rows.append(
            [
                f"{label(whose)}'s, c = {c:.3g}",
                _mean_sd(si),
                _mean_sd(siu),
                _mean_sd(gap, ".2%"),
            ]
        )
    seeds = ", ".join(map(str, compared.seeds))
    return markdown_table(
        [f"strength (seeds {seeds})", "SI: test accuracy", "SIU: test accuracy", "SI − SIU"], rows
    )


def stored_summary(values: Mapping[str, Any]) -> Any:
    """The bias claims' numbers of a stored run, one row each (mean ± sd over its seeds): SI − SIU at
    each tuned strength (the swapped-strength control), SI's and the baselines' correlation with
    √F_emp, r(SI, SIU), and SIB's share of SI at the paper's batch 256. A stored run made before
    these were measured says so."""
    rows: list[list[str]] = []
    if "swapped.permuted.test" in values:
        test, swapped = values["permuted.test"], values["swapped.permuted.test"]
        strengths = values["permuted.strengths"]
        for whose, si, siu in (
            ("SI", test["SI"], swapped["SIU"]),
            ("SIU", swapped["SI"], test["SIU"]),
        ):
            gap = [a - b for a, b in zip(si, siu)]
            rows.append([f"SI − SIU at {whose}'s c = {strengths[whose]:.3g}", _mean_sd(gap, ".2%")])
    for key in ("SI-sqrtFemp", "SIU-sqrtFemp", "gradsum-sqrtFemp", "SI-SOS", "SI-SIU"):
        if f"correlations.{key}" in values:
            name = " vs ".join(_name(m) for m in key.split("-"))
            rows.append([f"Pearson r, {name}", _mean_sd(values[f"correlations.{key}"], ".3f")])
    if "bias_share_batch_256" in values:
        rows.append(
            ["mean Ω of SIB / of SI, batch 256", _mean_sd(values["bias_share_batch_256"], ".2f")]
        )
    if not rows:
        rows = [["(this stored run predates the swapped control and √F_emp)", "–"]]
    seeds = ", ".join(map(str, values.get("judging_seeds", values.get("seeds", []))))
    return markdown_table([f"quantity (stored, seeds {seeds})", "mean ± sd"], rows)


def bias_table(bias: BiasStudy) -> Any:
    """Per batch size: SIB's share of SI's mean Ω and SI's correlation with SOS, SIB and SIU (mean ± sd over seeds)."""
    rows = [
        [str(b), _mean_sd(bias.share[b], ".2f")]
        + [_mean_sd(bias.r[b][f"SI-{o}"], ".3f") for o in ("SOS", "SIB", "SIU")]
        for b in bias.batch_sizes
    ]
    header = ["batch size", "mean Ω of SIB / of SI", "r(SI, SOS)", "r(SI, SIB)", "r(SI, SIU)"]
    return markdown_table(header, rows)


# ----------------------------------------------------------------------------- what a scale costs

# One input's shape and the training examples of each data set (so that costs need no data).
_DATA = {
    "mnist1d": ((40,), 4000),
    "mnist": ((1, 28, 28), 60_000),
    "fashion_mnist": ((1, 28, 28), 60_000),
    "cifar10": ((3, 32, 32), 50_000),
}


def _step_flops(setting: BenchmarkSettings, shape: tuple[int, ...]) -> float:
    """Floating-point operations of one training step (forward and backward) at the benchmark's batch size, counted."""
    from torch.utils.flop_counter import FlopCounterMode

    model: nn.Module = (
        CNN(shape[0], 10, setting.channels)
        if setting.channels
        else MLP(int(np.prod(shape)), setting.hidden, 10)
    )
    x, y = torch.randn(setting.batch_size, *shape), torch.randint(0, 10, (setting.batch_size,))
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return float(counter.get_total_flops())


def cost_table(p: Preset, *, tflops: float = 4.0, overhead_ms: float = 1.0) -> Any:
    """What the chapter trains with preset ``p`` (e.g. ``PRESETS["paper"]``), and an estimate of its time on a device that sustains ``tflops``.

    Steps: (tuning grid + fresh seeds) × tasks × epochs × steps per epoch, plus the correlation and
    bias runs; SIU and SIB runs count twice (their independent minibatch costs a second forward and
    backward pass). FLOPs per step are counted by ``torch.utils.flop_counter`` on one step. Time =
    FLOPs / ``tflops`` + ``overhead_ms`` per step (Python and kernel launches): an estimate, not a measurement.
    """
    rows, total_hours, part_row = [], 0.0, []
    twice = {R.SIU, R.SIB}
    for name in BENCHMARKS:
        setting = p.benchmark(name)
        shape, n_examples = _DATA[setting.dataset or p.dataset]
        n_train = round((p.n_train or n_examples) * (1 - p.validation)) // (
            5 if name is Benchmark.SPLIT else 1
        )
        per_task = setting.steps or setting.epochs * math.ceil(n_train / setting.batch_size)
        per_run = setting.n_tasks * per_task
        methods = [R.NONE] * (1 + len(p.seeds)) + [
            m for m in p.methods for _ in (*p.strength_factors, *p.seeds)
        ]
        steps = sum(per_run * (2 if m in twice else 1) for m in methods)
        runs = len(methods)
        if (
            name is Benchmark.PERMUTED
        ):  # the importance runs: one task, every measure (two passes per step for SIU/SIB)
            steps += 2 * per_task * len(p.correlation_seeds) + sum(
                2 * p.bias_steps * b // setting.batch_size
                for b in p.bias_batch_sizes
                for _ in p.correlation_seeds
            )
            runs += len(p.correlation_seeds) * (1 + len(p.bias_batch_sizes))
        flops = _step_flops(setting, shape)
        hours = (steps * flops / (tflops * 1e12) + steps * overhead_ms / 1e3) / 3600
        total_hours += hours
        model = (
            f"CNN {setting.channels}"
            if setting.channels
            else f"MLP {'-'.join(map(str, (np.prod(shape), *setting.hidden, 10)))}"
        )
        rows.append(
            [
                name,
                f"{setting.dataset or p.dataset}, {model}",
                str(runs),
                f"{per_run:,}",
                f"{steps:,}",
                f"{flops / 1e9:.1f}",
                f"{steps * flops / 1e12:,.0f}",
                f"{hours:.1f}",
            ]
        )
        if name is Benchmark.PERMUTED and p.pmnist_claim:  # the part: SI alone, on a few seeds
            part = PMNIST_PART_SEEDS * per_run
            part_hours = (part * flops / (tflops * 1e12) + part * overhead_ms / 1e3) / 3600
            part_row = [
                "P-MNIST part: SI only",
                rows[-1][1],
                str(PMNIST_PART_SEEDS),
                f"{per_run:,}",
                f"{part:,}",
                f"{flops / 1e9:.1f}",
                f"{part * flops / 1e12:,.0f}",
                f"{part_hours:.2f} (part of the above)",
            ]
    rows.append(["total", "", "", "", "", "", "", f"{total_hours:.1f}"])
    if p.pmnist_claim:
        rows.append(part_row)
    header = [
        "benchmark",
        "data, network",
        "runs",
        "steps per run",
        "steps (SIU, SIB twice)",
        "GFLOP per step",
        "TFLOP in all",
        f"hours at {tflops:g} TFLOP/s + {overhead_ms:g} ms per step",
    ]
    return markdown_table(header, rows)
