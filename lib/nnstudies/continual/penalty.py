"""The quadratic penalty that every importance-based method adds to the next tasks' loss."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .importances import _check_finite, check_like_model

__all__ = ["QuadraticPenalty"]


class QuadraticPenalty:
    """c · Σ_i Ω_i (θ_i − θ_i^old)², with Ω the importances summed over the tasks so far.

    ``importances`` and ``anchor`` are lists of tensors shaped like ``model.parameters()``;
    importances must be finite and non-negative. Its gradient is 2c Ω ⊙ (θ − θ^old).
    """

    def __init__(
        self, importances: Sequence[torch.Tensor], anchor: Sequence[torch.Tensor], strength: float
    ) -> None:
        if not (isinstance(strength, (int, float)) and strength >= 0 and math.isfinite(strength)):
            raise ValueError(f"strength must be a finite number >= 0, got {strength!r}")
        importances, anchor = list(importances), list(anchor)
        if len(importances) != len(anchor):
            raise ValueError(f"{len(importances)} importances but {len(anchor)} anchor tensors")
        for i, (o, a) in enumerate(zip(importances, anchor)):
            if o.shape != a.shape:
                raise ValueError(
                    f"importance {i} has shape {tuple(o.shape)}, its anchor {tuple(a.shape)}"
                )
        _check_finite(importances, "QuadraticPenalty")
        if any((o < 0).any() for o in importances):
            raise ValueError("importances must be non-negative")
        self.importances = [o.detach() for o in importances]
        self.anchor = [a.detach().clone() for a in anchor]
        self.strength = float(strength)

    def add_task(
        self, importances: Sequence[torch.Tensor], anchor: Sequence[torch.Tensor]
    ) -> QuadraticPenalty:
        """A penalty with Ω + ``importances`` and the new ``anchor`` (θ at the end of the new task)."""
        if len(importances) != len(self.importances):
            raise ValueError(
                f"{len(importances)} new importances for {len(self.importances)} parameters"
            )
        summed = [o + n.detach() for o, n in zip(self.importances, importances)]
        return QuadraticPenalty(summed, anchor, self.strength)

    def __call__(self, model: nn.Module) -> torch.Tensor:
        params = list(model.parameters())
        check_like_model(self.importances, model, "QuadraticPenalty")
        terms = [
            (o * (p - a).square()).sum() for o, p, a in zip(self.importances, params, self.anchor)
        ]
        return self.strength * torch.stack(terms).sum()
