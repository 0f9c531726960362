"""Chapter 0's claims: what the textbooks say about SGD's learning rate, and the rules that judge
them on several seeds.

The learning rate a claim is judged at is chosen on other seeds than the one it judges
(leave-one-out, :func:`held_out_best`): the grid's best mean over the remaining seeds.
"""

from __future__ import annotations

from ...claims import POINTS, Claim, Rule, RuleChange, SeedRoles
from .experiment import LearningRateStudy
from .presets import Preset

__all__ = ["CLAIMS", "best_learning_rate", "claim_values", "held_out_best", "seed_roles"]

_LEAVE_ONE_OUT = RuleChange(
    "2026-12-06",
    ("cpu", "full"),
    "the best learning rate is chosen on the other seeds (leave-one-out), no longer on the seeds "
    "it is judged on; 'partly' needs the stated minimum effect",
)

CLAIMS = (
    Claim(
        "beats_chance",
        "an MLP trained with SGD classifies far above chance",
        paper="MNIST-1D MLP 68% (Greydanus 2020); Fashion-MNIST MLP ≈ 87% (Xiao et al. 2017); chance 10%",
        quantity="test accuracy − chance, at the grid's best learning rate on the other seeds",
        unit=POINTS,
        point="a trained MLP at a tuned learning rate",
        rule=Rule.above(0.0, margin=0.2, minimum=0.1),
        tuned=True,
        changes=(_LEAVE_ONE_OUT,),
    ),
    Claim(
        "lr_matters",
        "a good learning rate beats a too small one within the same budget",
        paper="textbook (e.g. Goodfellow et al. 2016, §8.1.3)",
        quantity="accuracy at the best learning rate (chosen on the other seeds) − at the smallest",
        unit=POINTS,
        point="the same number of updates for every learning rate",
        rule=Rule.above(0.0, margin=0.01),
        tuned=True,
        changes=(_LEAVE_ONE_OUT,),
    ),
    Claim(
        "too_large_fails",
        "too large a learning rate fails: training diverges or ends at chance",
        paper="textbook: on a quadratic, heavy-ball SGD diverges for η > 2(1+β)/λ",
        quantity="test accuracy − chance at the largest learning rate (a diverged run counts 0)",
        unit=POINTS,
        point="the grid's largest learning rate",
        rule=Rule.below(0.05),
    ),
)


def _best(study: LearningRateStudy, seeds: list[int]) -> float:
    """The learning rate of the grid with the highest mean accuracy over ``seeds`` (indices),
    among those that never diverged on them."""
    means = {}
    for lr, acc in study.accuracy.items():
        picked = [acc[i] for i in seeds]
        if all(a is not None for a in picked):
            means[lr] = sum(a for a in picked if a is not None) / len(picked)
    return max(means, key=means.__getitem__)


def best_learning_rate(study: LearningRateStudy) -> float:
    """The learning rate of the grid with the highest mean final accuracy over every seed, among
    those never diverging (for figures; the claims use :func:`held_out_best`)."""
    return _best(study, list(range(len(study.seeds))))


def held_out_best(study: LearningRateStudy) -> list[float]:
    """Per seed, the best learning rate of the grid on the *other* seeds (leave-one-out)."""
    n = len(study.seeds)
    if n == 1:
        return [best_learning_rate(study)]
    return [_best(study, [j for j in range(n) if j != i]) for i in range(n)]


def seed_roles(p: Preset) -> SeedRoles:
    """Every seed judges; each one's learning rate is tuned on the others."""
    return SeedRoles(
        tuple(p.seeds), how="leave-one-out: each seed's learning rate is the best on the others"
    )


def claim_values(study: LearningRateStudy, chance: float) -> dict[str, list[float]]:
    """Per-seed values of each of :data:`CLAIMS` from a learning-rate study."""
    small, top = study.learning_rates[0], study.learning_rates[-1]
    at_best = [study.accuracy[lr][i] for i, lr in enumerate(held_out_best(study))]
    return {
        "beats_chance": [a - chance for a in at_best if a is not None],
        "lr_matters": [
            g - s for g, s in zip(at_best, study.accuracy[small]) if g is not None and s is not None
        ],
        "too_large_fails": [0.0 if a is None else a - chance for a in study.accuracy[top]],
    }
