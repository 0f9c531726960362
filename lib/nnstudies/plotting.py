"""One plotting style for the whole book, and the figures chapters share."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .training import History

__all__ = [
    "PALETTE",
    "color_for",
    "draw_stored",
    "errorbar_over_seeds",
    "log_line_chart",
    "new_figure",
    "plot_histories",
    "scale_title",
    "use_style",
]

# Colour-blind-safe (Okabe & Ito), in the order methods are first drawn; the pale yellow comes last.
PALETTE: tuple[str, ...] = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#000000",
    "#F0E442",
)
_ASSIGNED: dict[str, str] = {}


def use_style() -> None:
    """Set the book's matplotlib style: readable sizes, light grid, no top/right spines, crisp PNGs."""
    mpl.rcParams.update(
        {
            "figure.figsize": (6.4, 3.8),
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "figure.constrained_layout.use": True,
            "axes.prop_cycle": cycler(color=PALETTE),
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.titlesize": 11,
            "axes.labelsize": 10,
            "legend.frameon": False,
            "legend.fontsize": 9,
            "lines.linewidth": 1.8,
        }
    )


def color_for(name: str) -> str:
    """A fixed colour per method or label, the same in every figure of a session."""
    if name not in _ASSIGNED:
        _ASSIGNED[name] = PALETTE[len(_ASSIGNED) % len(PALETTE)]
    return _ASSIGNED[name]


def new_figure(
    ncols: int = 1, *, width: float = 6.4, height: float = 3.8
) -> tuple[Figure, list[Axes]]:
    """A figure with ``ncols`` axes side by side (always a list), in the book's style."""
    use_style()
    fig, axes = plt.subplots(1, ncols, figsize=(width, height), squeeze=False)
    plt.close(fig)  # shown by whoever returns it; never twice
    return fig, list(axes[0])


def errorbar_over_seeds(
    ax: Axes, x: Sequence[float], samples: Sequence[Sequence[float]], **style: Any
) -> None:
    """Per x, the mean of its samples (one per seed) with the sample sd as the error bar (0 for a
    single seed), as points with caps."""
    means = [statistics.fmean(v) for v in samples]
    sds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in samples]
    ax.errorbar(x, means, yerr=sds, marker="o", capsize=3, **style)


def log_line_chart(rows: Any, x: Any, y: Any, color: Any) -> Any:
    """An explorer's Altair chart: lines with points, ``y`` on a log scale, one colour per
    ``color``; ``x``, ``y`` and ``color`` are Altair encodings (``alt.X(...)`` and so on)."""
    return (
        rows.mark_line(point=True)
        .encode(x=x, y=y.scale(type="log"), color=color)
        .properties(width=520, height=260)
    )


def _smooth(values: Sequence[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_histories(
    histories: Mapping[str, History], *, smooth: int = 20, title: str | None = None
) -> Figure:
    """Training loss (smoothed over ``smooth`` steps) and test accuracy against steps, one line per
    run.
    """
    fig, (ax_loss, ax_acc) = new_figure(2, width=9.0, height=3.4)
    for label, h in histories.items():
        color = color_for(label)
        ax_loss.plot(h.step, _smooth(h.train_loss, smooth), color=color, label=label)
        ax_acc.plot(
            h.eval_step, h.test_accuracy, color=color, marker="o", markersize=3, label=label
        )
    ax_loss.set(xlabel="step", ylabel="training loss", yscale="log", title="training loss")
    ax_acc.set(xlabel="step", ylabel="test accuracy", ylim=(0, 1), title="test accuracy")
    ax_acc.legend(loc="lower right")
    if title:
        fig.suptitle(title)
    return fig


def draw_stored(
    chapter: str, draw: Callable[[Mapping[str, Any]], Figure], *, scale: str = "full"
) -> Figure | None:
    """The figure ``draw`` makes from the values stored for ``chapter`` at ``scale``
    (``results/<chapter>/<scale>.json``), or, when none are stored here, one line saying so and
    no figure."""
    from .results import load_results  # results reads the claims; plotting stays light to import

    stored = load_results(chapter, scale)
    if stored is None:
        print(f"No stored `{scale}` results here, so no `{scale}` figure.")
        return None
    return draw(stored.values)


def scale_title(ax: Axes, scale: str, what: str) -> None:
    """Title an axis with what it shows and, first, the scale it was run at (``full: ...``)."""
    ax.set_title(f"{scale}: {what}")
