"""Kronecker-factored RTRL: KF-RTRL (:cite:`mujika2018kfrtrl`, one Kronecker product) and OK
(:cite:`benzing2019optimal`, the optimal sum of r Kronecker products)."""

from __future__ import annotations

import torch
from torch import Tensor

from .cells import CellStep, RecurrentModel
from .learner import _EPS, OnlineLearner, _norm, random_signs
from .reduction import _gram, _reduction

__all__ = ["KFRTRL", "OK"]


class KFRTRL(OnlineLearner):
    """KF-RTRL: ``G ≈ uᵀ ⊗ A`` (u ∈ R^m, A ∈ R^{n×gn}).

    ``u' = ν₀ p₀ u + ν₁ p₁ â``,  ``A' = (ν₀/p₀) H A + (ν₁/p₁) D``, ν independent ±1,
    ``p₀ = sqrt(‖HA‖/‖u‖)``, ``p₁ = sqrt(‖D‖/‖â‖)``; unbiased. O(n³) per step.
    """

    name = "KF-RTRL"

    def __init__(self, model: RecurrentModel, *, generator: torch.Generator | None = None) -> None:
        super().__init__(model)
        self.generator = generator

    def _reset_influence(self, batch_size: int) -> None:
        c = self.cell
        self.u = self._like.new_zeros(batch_size, c.augmented_size)
        self.A = self._like.new_zeros(batch_size, c.hidden_size, c.gates * c.hidden_size)

    def _scale_influence(self, keep: Tensor) -> None:
        self.u = self.u * keep[:, None]
        self.A = self.A * keep[:, None, None]

    def _advance(self, cs: CellStep) -> None:
        B = self.u.shape[0]
        nu = random_signs((B, 2), generator=self.generator, like=self.u)
        HA = torch.bmm(cs.H, self.A)
        p0 = ((_norm(HA) + _EPS) / (_norm(self.u) + _EPS)).sqrt()
        p1 = ((_norm(cs.D) + _EPS) / (_norm(cs.a) + _EPS)).sqrt()
        self.u = (nu[:, 0] * p0)[:, None] * self.u + (nu[:, 1] * p1)[:, None] * cs.a
        self.A = (nu[:, 0] / p0)[:, None, None] * HA + (nu[:, 1] / p1)[:, None, None] * cs.D

    def cell_gradients(self, c: Tensor) -> Tensor:
        return self.u[:, :, None] * torch.bmm(c[:, None, :], self.A)


class OK(OnlineLearner):
    """OK(r): ``G ≈ Σ_{k≤r} u_kᵀ ⊗ A_k``, reduced optimally every step (:func:`ok_reduce`).

    One step gives r+1 terms ``{u_kᵀ ⊗ H A_k} ∪ {âᵀ ⊗ D}``, reduced back to r:
    ``unbiased=True`` (default) by minimum-variance random-sign mixing of the smallest
    singular components, ``unbiased=False`` by dropping the smallest. O(r n³) time,
    O(r n²) memory per step and example. ``OK(model, 1)`` is the optimal KF-RTRL.
    State: ``u`` (B, m, r) and ``A`` (B, n, g·n, r), the term index last.

    ``last_info`` keeps the last reduction's diagnostics (see :func:`ok_reduce`); ``stats``
    sums the batch means of ``mixed_mass`` and ``variance`` over the steps since ``reset``.
    """

    name = "OK"

    def __init__(
        self,
        model: RecurrentModel,
        rank: int,
        *,
        unbiased: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(model)
        if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
            raise ValueError(f"rank must be an int >= 1, got {rank!r}")
        self.rank, self.unbiased, self.generator = rank, bool(unbiased), generator
        self.last_info: dict[str, Tensor] = {}
        self.stats: dict[str, Tensor] = {}

    def _reset_influence(self, batch_size: int) -> None:
        c = self.cell
        self.u = self._like.new_zeros(batch_size, c.augmented_size, self.rank)
        self.A = self._like.new_zeros(batch_size, c.hidden_size, c.gates * c.hidden_size, self.rank)
        self._HA = torch.empty_like(self.A)  # H A_k, written in place every step
        self.stats = {
            k: self._like.new_zeros((), dtype=torch.float64)
            for k in ("steps", "mixed_mass", "variance")
        }

    def _scale_influence(self, keep: Tensor) -> None:
        self.u.mul_(keep[:, None, None])
        self.A.mul_(keep[:, None, None, None])

    def _advance(self, cs: CellStep) -> None:
        B, n, gn, r = self.A.shape
        g, N = gn // n, n * gn
        torch.bmm(cs.H, self.A.view(B, n, gn * r), out=self._HA.view(B, n, gn * r))  # H A_k, all k
        HA = self._HA.view(B, N, r)
        # D = [diag(dz_1), …, diag(dz_g)] is sparse: its Gram entries come from the diagonals
        dz = cs.D.view(B, n, g, n).diagonal(dim1=1, dim2=3)  # (B, g, n)
        diag_HA = self._HA.view(B, n, g, n, r).diagonal(dim1=1, dim2=3)  # (B, g, r, n)
        Ga = self.A.new_empty(B, r + 1, r + 1, dtype=torch.float64)
        Ga[:, :r, :r] = _gram(HA)
        Ga[:, :r, r] = Ga[:, r, :r] = torch.einsum("bgkn,bgn->bk", diag_HA, dz).double()
        Ga[:, r, r] = (dz * dz).sum((1, 2)).double()
        u = torch.cat([self.u, cs.a[:, :, None]], 2)
        Mu, Ma, info = _reduction(
            _gram(u),
            Ga,
            unbiased=self.unbiased,
            generator=self.generator,
            signs=None,
            dtype=self.A.dtype,
        )
        self.u = u @ Mu
        torch.bmm(HA, Ma[:, :r], out=self.A.view(B, N, r))  # Σ_k (H A_k) M_kl ...
        self.A.view(B, n, g, n, r).diagonal(dim1=1, dim2=3).add_(
            dz[:, :, None, :] * Ma[:, r, None, :, None]
        )  # ... + D M_rl, on D's diagonals only
        self.last_info = info
        self.stats["steps"] += 1
        self.stats["mixed_mass"] += info["mixed_mass"].mean()  # tensors: no host sync
        self.stats["variance"] += info["variance"].mean()

    def cell_gradients(self, c: Tensor) -> Tensor:
        B, n, gn, r = self.A.shape
        cA = torch.bmm(c[:, None, :], self.A.view(B, n, gn * r)).view(B, gn, r)  # A_kᵀ c as columns
        return torch.bmm(self.u, cA.transpose(1, 2))  # Σ_k u_k (A_kᵀ c)ᵀ
