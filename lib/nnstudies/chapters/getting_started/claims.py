"""Chapter 0's claims: what the textbooks say about SGD's learning rate, and the rules that judge
them on several seeds."""

from __future__ import annotations

from ...results import Claim, Rule
from .experiment import LearningRateStudy

__all__ = ["CLAIMS", "best_learning_rate", "claim_values"]

CLAIMS = (
    Claim(
        "beats_chance",
        "an MLP trained with SGD classifies far above chance",
        paper="MNIST-1D MLP 68% (Greydanus 2020); Fashion-MNIST MLP ≈ 87% (Xiao et al. 2017); chance 10%",
        quantity="test accuracy − chance at the best learning rate of the grid",
        rule=Rule.above(0.0, margin=0.2),
    ),
    Claim(
        "lr_matters",
        "a good learning rate beats a too small one within the same budget",
        paper="textbook (e.g. Goodfellow et al. 2016, §8.1.3)",
        quantity="accuracy(best lr) − accuracy(smallest lr), per seed; the best lr is the grid's best"
        " mean, chosen on the same seeds (a small bias in its favour)",
        rule=Rule.above(0.0, margin=0.01),
    ),
    Claim(
        "too_large_fails",
        "too large a learning rate fails: training diverges or ends at chance",
        paper="textbook: on a quadratic, heavy-ball SGD diverges for η > 2(1+β)/λ",
        quantity="test accuracy − chance at the largest lr (a diverged run counts 0)",
        rule=Rule.below(0.05),
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
