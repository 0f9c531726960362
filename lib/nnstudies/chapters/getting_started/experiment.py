"""Chapter 0's experiment: an MLP trained with SGD, as a run spec, and a learning-rate study that
sweeps it over the preset's grid and seeds through the engine (:func:`nnstudies.runs.run_all`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch
from torch import nn

from ...data import Dataset, load_dataset
from ...device import get_device
from ...models import MLP
from ...runs import Run, Spec, execute, run_all
from ...training import History, OptimizerSpec, classification_step, fit, minibatches, test_metrics
from .presets import Preset

__all__ = ["LearningRateStudy", "MLPRun", "learning_rate_study", "load_data", "train_mlp"]


@lru_cache(maxsize=4)
def load_data(p: Preset) -> Dataset:
    """The chapter's data for preset ``p``: MNIST-1D for smoke and cpu, Fashion-MNIST for full and
    paper."""
    return load_dataset(p.dataset, n_train=p.n_train, n_test=p.n_test)


@dataclass(frozen=True)
class MLPRun(Spec):
    """One MLP of preset ``preset`` trained with SGD from ``seed``: everything that decides its
    numbers. A run whose loss becomes NaN or infinite stops there (``history.diverged_at``)."""

    preset: Preset
    optimizer: OptimizerSpec
    seed: int = 0
    device: str = field(default_factory=lambda: get_device().type)

    @classmethod
    def of(cls, p: Preset, lr: float, seed: int = 0) -> MLPRun:
        return cls(p, OptimizerSpec(lr=float(lr), momentum=p.momentum), seed)

    @property
    def label(self) -> str:
        return f"lr={self.optimizer.lr:.3g} seed {self.seed}"

    def build(self) -> nn.Module:
        data = load_data(self.preset)
        torch.manual_seed(self.seed)
        return MLP(data.in_features, list(self.preset.hidden), data.num_classes).to(self.device)

    def train(self, model: nn.Module) -> History:
        p, data = self.preset, load_data(self.preset).to(self.device)
        optimizer = self.optimizer.make(model.parameters())
        step = classification_step(
            model, optimizer, minibatches(data, p.batch_size, seed=self.seed)
        )
        per_epoch = math.ceil(len(data.y_train) / p.batch_size)
        return fit(
            step,
            steps=p.epochs * per_epoch,
            evaluate=lambda: test_metrics(model, data),
            eval_every=per_epoch,
            desc=self.label,
            on_divergence="stop",
        )


def train_mlp(p: Preset, lr: float, *, seed: int = 0) -> Run[History]:
    """An MLP trained with SGD (momentum 0.9) at learning rate ``lr``: executed once, then from the
    cache. ``run.history`` is its history (``diverged_at`` set where the loss blew up);
    ``run.model()`` the trained network."""
    return execute(MLPRun.of(p, lr, seed))


@dataclass(frozen=True)
class LearningRateStudy:
    """Final test accuracy and training loss for every (learning rate, seed); None where training
    diverged."""

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


def learning_rate_study(p: Preset) -> LearningRateStudy:
    """Train one MLP per (learning rate, seed) of the preset, all through one sweep; keep final
    accuracy, training loss (mean of the last 50 updates) and divergence."""
    specs = [MLPRun.of(p, lr, seed) for lr in p.learning_rates for seed in p.seeds]
    histories = iter(run.history for run in run_all(specs, desc="learning-rate study"))
    accuracy: dict[float, list[float | None]] = {}
    loss: dict[float, list[float | None]] = {}
    diverged: dict[float, list[int | None]] = {}
    for lr in p.learning_rates:
        accuracy[lr], loss[lr], diverged[lr] = [], [], []
        for _ in p.seeds:
            history = next(histories)
            ok = history.diverged_at is None
            accuracy[lr].append(history.final_test_accuracy if ok else None)
            loss[lr].append(history.running_loss() if ok else None)
            diverged[lr].append(history.diverged_at)
    return LearningRateStudy(p.learning_rates, p.seeds, accuracy, loss, diverged)
