"""Exact RTRL: the full influence matrix carried forward (:cite:`williams1989rtrl`)."""

from __future__ import annotations

import torch
from torch import Tensor

from .cells import CellStep
from .learner import OnlineLearner

__all__ = ["ExactRTRL"]


class ExactRTRL(OnlineLearner):
    """Exact RTRL: ``G_t = H_t G_{t-1} + â_tᵀ ⊗ D_t`` with the full influence (B, n, m, g·n).

    O(n · n · m · gn) ≈ O(g n⁴) time and O(g n³) memory per step and example.
    """

    name = "exact RTRL"

    def _reset_influence(self, batch_size: int) -> None:
        c = self.cell
        self.G = self._like.new_zeros(
            batch_size, c.hidden_size, c.augmented_size, c.gates * c.hidden_size
        )

    def _scale_influence(self, keep: Tensor) -> None:
        self.G = self.G * keep[:, None, None, None]

    def _advance(self, cs: CellStep) -> None:
        B, n, m, gn = self.G.shape
        G = torch.bmm(cs.H, self.G.view(B, n, m * gn)).view(B, n, m, gn)
        self.G = G.add_(cs.a[:, None, :, None] * cs.D[:, :, None, :])

    def cell_gradients(self, c: Tensor) -> Tensor:
        B, n, m, gn = self.G.shape
        return torch.bmm(c[:, None, :], self.G.view(B, n, m * gn)).view(B, m, gn)
