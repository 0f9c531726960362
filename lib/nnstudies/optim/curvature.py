"""The curvature, in one place: the factors Ā and Ḡ, the damping, and each layer's damped inverse."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# ---------------------------------------------------------------------- the curvature, in one place


def input_factor(a: torch.Tensor) -> torch.Tensor:
    """Ā = mean of a aᵀ over examples and positions, from layer inputs ``a`` shaped (B, P, m̃)."""
    flat = a.reshape(-1, a.shape[-1])
    return flat.T @ flat / flat.shape[0]


def output_factor(e: torch.Tensor) -> torch.Tensor:
    """Ḡ = (1/B) Σ_i Σ_p e eᵀ, from per-example output gradients ``e`` shaped (B, P, n)."""
    flat = e.reshape(-1, e.shape[-1])
    return flat.T @ flat / e.shape[0]


def heuristic_damping(
    a_bar: torch.Tensor, g_bar: torch.Tensor, damping: float
) -> tuple[float, float]:
    """Martens and Grosse's split of λ: (λ_A, λ_G) = (π√λ, √λ/π), π² = (tr Ā/dim Ā)/(tr Ḡ/dim Ḡ)."""
    ta, tg = a_bar.trace().item() / a_bar.shape[0], g_bar.trace().item() / g_bar.shape[0]
    if not (ta > 0 and tg > 0 and math.isfinite(ta) and math.isfinite(tg)):
        raise FloatingPointError(f"cannot balance the damping: tr Ā/dim = {ta}, tr Ḡ/dim = {tg}")
    pi = math.sqrt(ta / tg)
    return pi * math.sqrt(damping), math.sqrt(damping) / pi


def _spd_inverse(matrix: torch.Tensor, what: str) -> torch.Tensor:
    """Inverse of a symmetric positive-definite matrix; a non-finite or singular one is an error."""
    if not torch.isfinite(matrix).all():
        raise FloatingPointError(f"{what} has non-finite entries")
    chol, info = torch.linalg.cholesky_ex(matrix)
    if info.item() != 0:
        raise FloatingPointError(
            f"{what} is singular or not positive definite; increase the damping"
        )
    return torch.cholesky_inverse(chol)


def _check_damping(damping: float) -> None:
    if not (damping > 0 and math.isfinite(damping)):
        raise ValueError(f"damping must be positive and finite, got {damping}")


def _eye(n: int, like: torch.Tensor) -> torch.Tensor:
    return torch.eye(n, dtype=like.dtype, device=like.device)


_DAMPING_KINDS = ("heuristic", "standard")
_ORDERS = ("auto", "factored", "dense")


@dataclass(frozen=True)
class DampedInverse:
    """One layer's damped inverse curvature, ready to turn a gradient ∇W̃ into a direction Δ.

    FOOF (no output side):  Δ = ∇W̃ (Ā + λI)⁻¹
    KFAC, heuristic:        Δ = (Ḡ + λ_G I)⁻¹ ∇W̃ (Ā + λ_A I)⁻¹
    KFAC, standard:         Δ = Q_G [(Q_Gᵀ ∇W̃ Q_A) ⊘ (s_G s_Aᵀ + λ)] Q_Aᵀ
                            with Ā = Q_A diag(s_A) Q_Aᵀ and Ḡ likewise;
                            this is vec Δ = (Ā ⊗ Ḡ + λI)⁻¹ vec ∇W̃
    """

    input_side: torch.Tensor  # (Ā + λ_A I)⁻¹, or Q_A (standard damping)
    output_side: torch.Tensor | None = None  # (Ḡ + λ_G I)⁻¹, Q_G (standard), or None (FOOF)
    eigenvalues: torch.Tensor | None = None  # s_G s_Aᵀ + λ (standard damping only)
    input_damped: torch.Tensor | None = None  # Ā + λ_A I (FOOF and heuristic damping)
    output_damped: torch.Tensor | None = None  # Ḡ + λ_G I (heuristic damping)

    def apply(self, grad: torch.Tensor) -> torch.Tensor:
        if self.eigenvalues is not None:  # standard damping, in the factors' eigenbases
            assert self.output_side is not None
            q_a, q_g = self.input_side, self.output_side
            return q_g @ ((q_g.T @ grad @ q_a) / self.eigenvalues) @ q_a.T
        direction = grad @ self.input_side
        return direction if self.output_side is None else self.output_side @ direction

    def apply_factored(self, e: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """:meth:`apply` of ∇W̃ = Eᵀ A without forming it: E (rows, n) output gradients, A (rows,
        m̃) inputs. FOOF: Eᵀ (A P_A); KFAC: (E P_G)ᵀ (A P_A); standard damping: the same inside
        the eigenbases.
        """
        if self.eigenvalues is not None:
            assert self.output_side is not None
            q_a, q_g = self.input_side, self.output_side
            return q_g @ (((e @ q_g).T @ (a @ q_a)) / self.eigenvalues) @ q_a.T
        right = a @ self.input_side
        return (e if self.output_side is None else e @ self.output_side).T @ right

    def unapply(self, direction: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`apply`: the ∇W̃ whose direction is ``direction`` (multiplies by
        the damped factors instead of their inverses). The optimizers use it once per inversion to
        carry heavy-ball momentum from one preconditioner to the next without keeping ∇W̃.
        """
        if self.eigenvalues is not None:
            assert self.output_side is not None
            q_a, q_g = self.input_side, self.output_side
            return q_g @ ((q_g.T @ direction @ q_a) * self.eigenvalues) @ q_a.T
        assert self.input_damped is not None
        grad = direction @ self.input_damped
        if self.output_side is None:
            return grad
        assert self.output_damped is not None
        return self.output_damped @ grad


def damped_inverse(
    a_bar: torch.Tensor,
    g_bar: torch.Tensor | None,
    damping: float,
    damping_kind: str = "heuristic",
    where: str = "",
) -> DampedInverse:
    """The damped inverse of Ā alone (FOOF, ``g_bar=None``) or of Ā ⊗ Ḡ (KFAC), used by directions
    and optimizers.
    """
    if g_bar is None:
        damped = a_bar + damping * _eye(a_bar.shape[0], a_bar)
        return DampedInverse(
            _spd_inverse(damped, f"FOOF factor Ā + λI{where}"), input_damped=damped
        )
    if damping_kind == "heuristic":
        lam_a, lam_g = heuristic_damping(a_bar, g_bar, damping)
        damped_a = a_bar + lam_a * _eye(a_bar.shape[0], a_bar)
        damped_g = g_bar + lam_g * _eye(g_bar.shape[0], g_bar)
        return DampedInverse(
            _spd_inverse(damped_a, f"KFAC factor Ā + λ_A I{where}"),
            _spd_inverse(damped_g, f"KFAC factor Ḡ + λ_G I{where}"),
            input_damped=damped_a,
            output_damped=damped_g,
        )
    if damping_kind == "standard":
        if not (torch.isfinite(a_bar).all() and torch.isfinite(g_bar).all()):
            raise FloatingPointError(f"KFAC factors{where} are not finite")
        try:
            s_a, q_a = torch.linalg.eigh(a_bar)
            s_g, q_g = torch.linalg.eigh(g_bar)
        except torch.linalg.LinAlgError as error:
            raise FloatingPointError(
                f"KFAC factors{where} have no eigendecomposition: {error}"
            ) from None
        return DampedInverse(
            q_a, q_g, s_g[:, None].clamp_min(0) * s_a[None, :].clamp_min(0) + damping
        )
    raise ValueError(f"unknown damping_kind {damping_kind!r}; choose one of {_DAMPING_KINDS}")
