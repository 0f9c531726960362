"""Chapter 1's claims (:data:`CLAIMS`): what the paper states, the quantity that tests it and the
rule that judges it, and :func:`claim_values`, which turns the studies into per-pair values.
"""

from __future__ import annotations

import math

from ...results import Claim, Rule
from .studies import LearningRateStudy, PairResult

__all__ = ["CLAIMS", "claim_values"]


CLAIMS = (
    Claim(
        "matching_lowers_barrier",
        "matching the units removes most of the loss barrier between two trained MLPs",
        paper="barrier near zero after matching (its Fig. 1); authors' demo, CIFAR-10 MLP: "
        "midpoint accuracy 40.7% naive → 44.6% permuted",
        quantity="test loss barrier, naive − after activation matching",
        rule=Rule.above(0.0, margin=0.1),
    ),
    Claim(
        "mlp_barrier_small",
        "after matching, MLPs have (nearly) no loss barrier",
        paper="near-zero barrier for permuted MLPs (its Fig. 1)",
        quantity="test loss barrier after activation matching ÷ the naive one",
        rule=Rule.below(0.25, margin=0.05),
    ),
    Claim(
        "init_above_chance",
        "averaged initialisations, B's permuted by the trained pair's matching, beat chance",
        paper="significantly above chance (its Figs. 2–3; chance 10%)",
        quantity="test accuracy of ½(init A + π init B) − chance",
        rule=Rule.above(0.0, margin=0.03),
    ),
    Claim(
        "init_naive_at_chance",
        "the plain average of two initialisations sits at chance",
        paper="at chance (its Figs. 2–3)",
        quantity="test accuracy of ½(init A + init B) − chance",
        rule=Rule.within(0.0, tolerance=0.05),
    ),
    Claim(
        "repair_helps",
        "(Jordan et al., beyond the paper) REPAIR lowers the barrier that remains after matching",
        paper="MNIST MLP, 6 hidden layers of 128: midpoint 71.7% → 83.0% with REPAIR "
        "(endpoints 96.5/96.6%)",
        quantity="loss barrier on training data, activation matching alone − with REPAIR",
        rule=Rule.above(0.0, margin=0.02),
    ),
    Claim(
        "cnn_barrier_remains",
        "conv nets keep a loss barrier after matching",
        paper="a clear barrier remains for CNNs (its Fig. 4)",
        quantity="log10 of the conv nets' test loss barrier after matching, per pair the mean over "
        "the two learning rates (−1: a barrier of 0.1)",
        rule=Rule.above(-1.0, margin=0.3),
        fmt=".2f",
    ),
    Claim(
        "cnn_larger_barrier_at_large_lr",
        "conv nets' barrier after matching is larger at a large learning rate",
        paper="larger with a large learning rate (its Fig. 4)",
        quantity="log10(barrier at the large lr ÷ barrier at the small lr), pair k with pair k",
        rule=Rule.above(0.0, margin=0.1),
        fmt=".2f",
    ),
)


def _log10(barrier: float) -> float:
    return math.log10(max(barrier, 1e-3))  # a barrier is ≥ 0; below 0.001 counts as 0.001


def claim_values(
    mlp: list[PairResult], conv: LearningRateStudy, chance: float
) -> dict[str, list[float]]:
    """Per-pair values of each of :data:`CLAIMS`."""
    naive = [r.barrier("naive").loss for r in mlp]
    matched = [r.barrier("activations").loss for r in mlp]
    small, large = conv.barriers("small"), conv.barriers("large")
    return {
        "matching_lowers_barrier": [n - m for n, m in zip(naive, matched)],
        # (a dry run's untrained pairs can have no barrier at all: no evidence of a reduction)
        "mlp_barrier_small": [m / n if n > 1e-9 else 1.0 for n, m in zip(naive, matched)],
        "init_above_chance": [r.init_accuracy["activations"] - chance for r in mlp],
        "init_naive_at_chance": [r.init_accuracy["naive"] - chance for r in mlp],
        "repair_helps": [
            r.barrier("activations", "train").loss - r.barrier("repair", "train").loss for r in mlp
        ],
        "cnn_barrier_remains": [(_log10(a) + _log10(b)) / 2 for a, b in zip(small, large)],
        "cnn_larger_barrier_at_large_lr": [_log10(b) - _log10(a) for a, b in zip(small, large)],
    }
