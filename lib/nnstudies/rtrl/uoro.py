"""UORO: a rank-one unbiased estimate of the influence over all of θ (:cite:`tallec2018uoro`)."""

from __future__ import annotations

import torch
from torch import Tensor

from .cells import CellStep, RecurrentModel
from .learner import _EPS, OnlineLearner, _norm, random_signs

__all__ = ["UORO"]


class UORO(OnlineLearner):
    """UORO: ``G ≈ ũ ṽᵀ`` (ũ ∈ R^n, ṽ ∈ R^{|θ|}) with random signs ν ∈ {±1}^n.

    ``ũ' = ρ₀ H ũ + ρ₁ ν``,  ``ṽ' = ṽ/ρ₀ + (νᵀ F)/ρ₁`` with ``νᵀF = â ⊗ (Dᵀν)``,
    ``ρ₀ = sqrt(‖ṽ‖/‖Hũ‖)``, ``ρ₁ = sqrt(‖νᵀF‖/‖ν‖)``; unbiased since ``E[ννᵀ] = I``.
    O(n²) per step.
    """

    name = "UORO"

    def __init__(self, model: RecurrentModel, *, generator: torch.Generator | None = None) -> None:
        super().__init__(model)
        self.generator = generator

    def _reset_influence(self, batch_size: int) -> None:
        c = self.cell
        self.u = self._like.new_zeros(batch_size, c.hidden_size)
        self.v = self._like.new_zeros(batch_size, c.augmented_size, c.gates * c.hidden_size)

    def _scale_influence(self, keep: Tensor) -> None:
        self.u = self.u * keep[:, None]
        self.v = self.v * keep[:, None, None]

    def _advance(self, cs: CellStep) -> None:
        B = self.u.shape[0]
        nu = random_signs((B, self.cell.hidden_size), generator=self.generator, like=self.u)
        Hu = torch.bmm(cs.H, self.u[:, :, None])[:, :, 0]
        nuF = cs.a[:, :, None] * torch.bmm(nu[:, None, :], cs.D)  # (B, m, gn)
        rho0 = ((_norm(self.v) + _EPS) / (_norm(Hu) + _EPS)).sqrt()
        rho1 = ((_norm(nuF) + _EPS) / (_norm(nu) + _EPS)).sqrt()
        self.u = rho0[:, None] * Hu + rho1[:, None] * nu
        self.v = self.v / rho0[:, None, None] + nuF / rho1[:, None, None]

    def cell_gradients(self, c: Tensor) -> Tensor:
        return (c * self.u).sum(1)[:, None, None] * self.v
