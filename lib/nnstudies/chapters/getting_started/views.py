"""Chapter 0's views: the learning-rate study's figure, training curves, the explorer's rows and
chart, example inputs."""

from __future__ import annotations

import math
from typing import Any

import torch
from matplotlib.figure import Figure

from ...data import Dataset
from ...plotting import PALETTE, new_figure, plot_histories
from ...training import History
from .experiment import LearningRateStudy, train_mlp
from .presets import Preset

__all__ = ["explorer_chart", "explorer_rows", "plot_examples", "plot_learning_rates", "plot_study"]


def plot_study(study: LearningRateStudy, *, title: str, chance: float) -> Figure:
    """Final test accuracy against the learning rate: one dot per seed, the mean as a line;
    divergence marked.
    """
    fig, axes = new_figure(1, width=7.0, height=3.4)
    ax = axes[0]
    colour = PALETTE[0]
    means = []
    for lr in study.learning_rates:
        values = [a for a in study.accuracy[lr] if a is not None]
        ax.scatter([lr] * len(values), values, color=colour, s=18, alpha=0.7, zorder=3)
        n_div = sum(d is not None for d in study.diverged_at[lr])
        if n_div:
            ax.scatter([lr], [0.0], marker="x", color=PALETTE[1], s=50, zorder=3)
            ax.annotate(
                f"{n_div}/{len(study.seeds)} diverged",
                (lr, 0.0),
                textcoords="offset points",
                xytext=(0, 8),
                ha="center",
                fontsize=8,
            )
        means.append(sum(values) / len(values) if values else math.nan)
    ax.plot(
        study.learning_rates, means, color=colour, lw=1.5, label=f"mean of {len(study.seeds)} seeds"
    )
    ax.axhline(chance, color="grey", ls=":", lw=1, label="chance")
    ax.set(
        xscale="log",
        ylim=(0, 1),
        xlabel="learning rate η (SGD, momentum 0.9)",
        ylabel="final test accuracy",
        title=title,
    )
    ax.legend(loc="upper left", fontsize=8)
    return fig


def _curves(p: Preset, lr: float, seed: int) -> tuple[History, int | None]:
    history = train_mlp(p, lr, seed=seed).history
    return history, history.diverged_at


def explorer_rows(p: Preset, lr: float, *, seed: int = 0, points: int = 60) -> list[dict[str, Any]]:
    """Tidy rows of the training curves the explorer draws at ``lr`` (and the preset's smallest and
    largest lr).
    """
    rows: list[dict[str, Any]] = []
    for rate in sorted({float(lr), p.learning_rates[0], p.learning_rates[-1]}):
        history, diverged = _curves(p, rate, seed)
        label = (
            f"lr = {rate:.3g}"
            + ("  (yours)" if rate == float(lr) else "")
            + (f", diverged at step {diverged}" if diverged else "")
        )
        losses = history.train_loss
        every = max(1, len(losses) // points)
        for start in range(0, len(losses), every):
            window = losses[start : start + every]
            rows.append(
                {"run": label, "step": history.step[start], "train loss": sum(window) / len(window)}
            )
    return rows


def explorer_chart(rows: Any) -> Any:
    """How the book's explorer draws :func:`explorer_rows`: training loss against step, one line per
    run, log scale.
    """
    import altair as alt

    return (
        rows.mark_line()
        .encode(
            x=alt.X("step:Q", title="step"),
            y=alt.Y("train loss:Q", title="training loss (smoothed)").scale(
                type="log", domain=[1e-3, 10], clamp=True
            ),
            color=alt.Color("run:N", title=None).legend(orient="bottom", labelLimit=400),
        )
        .properties(width=520, height=260)
    )


def plot_learning_rates(
    p: Preset, lr: float, *, compare: tuple[float, ...] | None = None, seed: int = 0
) -> Figure:
    """Training curves at ``lr`` beside the learning rates in ``compare`` (default: the preset's
    smallest and largest)."""
    compare = (p.learning_rates[0], p.learning_rates[-1]) if compare is None else compare
    histories: dict[str, History] = {}
    notes = []
    for rate in sorted({float(lr), *map(float, compare)}):
        label = f"lr = {rate:.3g}" + ("  (yours)" if rate == float(lr) else "")
        history, diverged = _curves(p, rate, seed)
        if diverged is not None:
            label += f", diverged at step {diverged}"
            notes.append(f"lr={rate:.3g} diverged at step {diverged}")
        histories[label] = history
    title = "SGD with momentum 0.9 on " + p.dataset
    return plot_histories(histories, title=title + (" — " + "; ".join(notes) if notes else ""))


def plot_examples(data: Dataset, per_class: int = 1) -> Figure:
    """A few training inputs, one per class: curves for a 1-D data set, images for a 2-D one."""
    if len(data.input_shape) == 3:
        fig, axes = new_figure(data.num_classes, width=10.0, height=1.6)
        for label, ax in enumerate(axes):
            first = int((data.y_train == label).nonzero()[0])
            ax.imshow(data.x_train[first, 0].cpu(), cmap="gray_r")
            ax.set(xticks=[], yticks=[], title=str(label))
            ax.grid(False)
        fig.suptitle(f"{data.name}: one training input per class")
        return fig
    fig, axes = new_figure(1, width=9.0, height=2.6)
    ax = axes[0]
    for label in range(data.num_classes):
        index = (data.y_train == label).nonzero().flatten()[:per_class]
        for i in index.tolist():
            signal = data.x_train[i].flatten().cpu()
            ax.plot(
                torch.arange(len(signal)) + label * (len(signal) + 8),
                signal,
                color=PALETTE[0],
                lw=1.2,
            )
        ax.text(label * (data.in_features + 8) + data.in_features / 2, 3.2, str(label), ha="center")
    ax.set(
        xticks=[],
        yticks=[],
        ylim=(-3.5, 3.8),
        title=f"{data.name}: one training input per class (label above)",
    )
    ax.grid(False)
    return fig
