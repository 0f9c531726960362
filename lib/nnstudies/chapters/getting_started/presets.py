"""Chapter 0's settings: one :class:`Preset` per scale, each derived from another."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ...pretty import Pretty

__all__ = ["PRESETS", "Preset"]


@dataclass(frozen=True)
class Preset(Pretty):
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


_CPU = Preset(
    "mnist1d",
    (256, 256),
    epochs=20,
    batch_size=128,
    learning_rates=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0),
    seeds=(0, 1, 2),
)
_FULL = replace(_CPU, dataset="fashion_mnist", hidden=(1000,), epochs=5, batch_size=100)
PRESETS: dict[str, Preset] = {
    "smoke": replace(
        _CPU,
        hidden=(64, 64),
        epochs=3,
        batch_size=64,
        learning_rates=(0.003, 0.03, 3.0),
        n_train=500,
        n_test=200,
    ),
    "cpu": _CPU,
    "full": _FULL,
    "paper": replace(_FULL, hidden=(1000, 1000), epochs=10, seeds=(0, 1, 2, 3, 4)),
}
