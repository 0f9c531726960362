"""Chapter 0: train an MLP with SGD and see what the learning rate does, on several seeds.

The experiment is one step function (:func:`nnstudies.training.classification_step`)
run by the book's one loop (:func:`nnstudies.training.fit`). Its settings are a typed
:class:`Preset` per scale; its claims are :class:`nnstudies.results.Claim` objects.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import torch
from matplotlib.figure import Figure

from ..cache import cached
from ..data import Dataset, load_dataset
from ..device import get_device
from ..models import MLP
from ..plotting import PALETTE, new_figure, plot_histories
from ..results import Claim, Rule
from ..scales import pick
from ..training import DivergenceError, History, classification_step, fit, minibatches, test_metrics

__all__ = [
    "CLAIMS",
    "PRESETS",
    "LearningRateStudy",
    "Preset",
    "best_learning_rate",
    "claim_values",
    "explorer_chart",
    "explorer_rows",
    "learning_rate_study",
    "load_data",
    "plot_examples",
    "plot_learning_rates",
    "plot_study",
    "train_mlp",
]


@dataclass(frozen=True)
class Preset:
    """Chapter 0's settings at one scale."""

    dataset: str
    hidden: tuple[int, ...]
    epochs: int
    batch_size: int
    learning_rates: tuple[float, ...]  #: the learning-rate study's grid (and the explorer's)
    seeds: tuple[int, ...]  #: independent runs per learning rate
    momentum: float = 0.9
    n_train: int | None = None  #: the first n training examples (all when None)
    n_test: int | None = None


_LRS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        "mnist1d",
        (64, 64),
        epochs=3,
        batch_size=64,
        learning_rates=(0.003, 0.03, 3.0),
        seeds=(0, 1, 2),
        n_train=500,
        n_test=200,
    ),
    "cpu": Preset(
        "mnist1d", (256, 256), epochs=20, batch_size=128, learning_rates=_LRS, seeds=(0, 1, 2)
    ),
    "full": Preset(
        "fashion_mnist", (1000,), epochs=5, batch_size=100, learning_rates=_LRS, seeds=(0, 1, 2)
    ),
    "paper": Preset(
        "fashion_mnist",
        (1000, 1000),
        epochs=10,
        batch_size=100,
        learning_rates=_LRS,
        seeds=(0, 1, 2, 3, 4),
    ),
}


@lru_cache(maxsize=4)
def load_data(scale: str) -> Dataset:
    """The chapter's data at ``scale``: MNIST-1D for smoke and cpu, Fashion-MNIST for full and
    paper.
    """
    p = pick(PRESETS, scale)
    return load_dataset(p.dataset, n_train=p.n_train, n_test=p.n_test)


def train_mlp(
    lr: float, *, scale: str, seed: int = 0, device: torch.device | None = None
) -> tuple[MLP, History]:
    """An MLP trained with SGD (momentum 0.9) at learning rate ``lr`` through :func:`fit`; cached by
    its configuration.

    A diverging run raises :class:`DivergenceError` (which keeps the history so far).
    """
    p = pick(PRESETS, scale)
    device = device or get_device()
    data = load_data(scale).to(device)
    config = {
        "chapter": "00",
        "scale": scale,
        "lr": float(lr),
        "seed": seed,
        "device": device.type,
        **asdict(p),
    }

    def build() -> MLP:
        torch.manual_seed(seed)
        return MLP(data.in_features, list(p.hidden), data.num_classes).to(device)

    def train(model: torch.nn.Module) -> History:
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=p.momentum)
        step = classification_step(model, optimizer, minibatches(data, p.batch_size, seed=seed))
        per_epoch = math.ceil(len(data.y_train) / p.batch_size)
        return fit(
            step,
            steps=p.epochs * per_epoch,
            evaluate=lambda: test_metrics(model, data),
            eval_every=per_epoch,
            desc=f"lr={lr:.3g} seed {seed}",
            hint=f" (lr={lr:g}); try a smaller learning rate",
        )

    return cached(config, build=build, fit=train)  # type: ignore[return-value]


@dataclass(frozen=True)
class LearningRateStudy:
    """Final test accuracy and training loss for every (learning rate, seed); None where training
    diverged.
    """

    learning_rates: tuple[float, ...]
    seeds: tuple[int, ...]
    accuracy: dict[float, list[float | None]]
    train_loss: dict[float, list[float | None]]
    diverged_at: dict[float, list[int | None]]

    def as_record(self) -> dict[str, object]:
        """Plain values for the results store."""
        key = lambda lr: f"{lr:g}"
        return {
            "lr_study.learning_rates": list(self.learning_rates),
            "lr_study.seeds": list(self.seeds),
            "lr_study.accuracy": {key(lr): v for lr, v in self.accuracy.items()},
            "lr_study.train_loss": {key(lr): v for lr, v in self.train_loss.items()},
            "lr_study.diverged_at": {key(lr): v for lr, v in self.diverged_at.items()},
        }

    @classmethod
    def from_record(cls, values: dict[str, Any]) -> LearningRateStudy:
        """The study back from recorded values (e.g. ``load_results(...).values``)."""
        lrs = tuple(float(v) for v in values["lr_study.learning_rates"])
        get = lambda name: {lr: list(values[f"lr_study.{name}"][f"{lr:g}"]) for lr in lrs}
        return cls(
            lrs,
            tuple(values["lr_study.seeds"]),
            get("accuracy"),
            get("train_loss"),
            get("diverged_at"),
        )


def _final_train_loss(history: History, window: int = 50) -> float:
    tail = history.train_loss[-window:]
    return sum(tail) / len(tail)


def learning_rate_study(scale: str) -> LearningRateStudy:
    """Train one MLP per (learning rate, seed) of the preset; keep final accuracy, training loss and
    divergence.
    """
    p = pick(PRESETS, scale)
    accuracy: dict[float, list[float | None]] = {}
    loss: dict[float, list[float | None]] = {}
    diverged: dict[float, list[int | None]] = {}
    for lr in p.learning_rates:
        accuracy[lr], loss[lr], diverged[lr] = [], [], []
        for seed in p.seeds:
            try:
                history = train_mlp(lr, scale=scale, seed=seed)[1]
            except DivergenceError as error:
                accuracy[lr].append(None)
                loss[lr].append(None)
                diverged[lr].append(error.step)
                continue
            accuracy[lr].append(history.final_test_accuracy)
            loss[lr].append(_final_train_loss(history))
            diverged[lr].append(None)
    return LearningRateStudy(p.learning_rates, p.seeds, accuracy, loss, diverged)


CLAIMS = (
    Claim(
        "beats_chance",
        "an MLP trained with SGD classifies far above chance",
        paper="MNIST-1D MLP 68% (Greydanus 2020); Fashion-MNIST MLP ≈ 87% (Xiao et al. 2017); chance 10%",
        quantity="test accuracy − chance at the best learning rate of the grid",
        rule=Rule.above(0.0, margin=0.2),
        fmt=".3f",
    ),
    Claim(
        "lr_matters",
        "a good learning rate beats a too small one within the same budget",
        paper="textbook (e.g. Goodfellow et al. 2016, §8.1.3)",
        quantity="accuracy(best lr) − accuracy(smallest lr), per seed; the best lr is the grid's best"
        " mean, chosen on the same seeds (a small bias in its favour)",
        rule=Rule.above(0.0, margin=0.01),
        fmt=".3f",
    ),
    Claim(
        "too_large_fails",
        "too large a learning rate fails: training diverges or ends at chance",
        paper="textbook: on a quadratic, heavy-ball SGD diverges for η > 2(1+β)/λ",
        quantity="test accuracy − chance at the largest lr (a diverged run counts 0)",
        rule=Rule.below(0.05),
        fmt=".3f",
    ),
)


def best_learning_rate(study: LearningRateStudy) -> float:
    """The learning rate of the grid with the highest mean final accuracy, among those never diverging."""
    means = {
        lr: sum(acc) / len(acc)  # type: ignore[arg-type]
        for lr, acc in study.accuracy.items()
        if all(a is not None for a in acc)
    }
    return max(means, key=means.__getitem__)


def claim_values(study: LearningRateStudy, chance: float) -> dict[str, list[float]]:
    """Per-seed values of each of :data:`CLAIMS` from a learning-rate study."""
    small, best, top = study.learning_rates[0], best_learning_rate(study), study.learning_rates[-1]
    pairs = zip(study.accuracy[best], study.accuracy[small])
    return {
        "beats_chance": [a - chance for a in study.accuracy[best] if a is not None],
        "lr_matters": [g - s for g, s in pairs if g is not None and s is not None],
        "too_large_fails": [0.0 if a is None else a - chance for a in study.accuracy[top]],
    }


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


def _curves(lr: float, scale: str, seed: int) -> tuple[History, int | None]:
    try:
        return train_mlp(lr, scale=scale, seed=seed)[1], None
    except DivergenceError as error:
        return error.history, error.step


def explorer_rows(
    lr: float, *, scale: str, seed: int = 0, points: int = 60
) -> list[dict[str, Any]]:
    """Tidy rows of the training curves the explorer draws at ``lr`` (and the preset's smallest and
    largest lr).
    """
    p = pick(PRESETS, scale)
    rows: list[dict[str, Any]] = []
    for rate in sorted({float(lr), p.learning_rates[0], p.learning_rates[-1]}):
        history, diverged = _curves(rate, scale, seed)
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
    lr: float, *, scale: str, compare: tuple[float, ...] | None = None, seed: int = 0
) -> Figure:
    """Training curves at ``lr`` beside the learning rates in ``compare`` (default: the preset's
    smallest and largest).
    """
    p = pick(PRESETS, scale)
    compare = (p.learning_rates[0], p.learning_rates[-1]) if compare is None else compare
    histories: dict[str, History] = {}
    notes = []
    for rate in sorted({float(lr), *map(float, compare)}):
        label = f"lr = {rate:.3g}" + ("  (yours)" if rate == float(lr) else "")
        try:
            histories[label] = train_mlp(rate, scale=scale, seed=seed)[1]
        except DivergenceError as error:
            histories[label + f", diverged at step {error.step}"] = error.history
            notes.append(f"lr={rate:.3g} diverged at step {error.step}")
    title = "SGD with momentum 0.9 on " + pick(PRESETS, scale).dataset
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
