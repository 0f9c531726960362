"""OK's reduction of a Kronecker sum of r+1 terms to r (:func:`ok_reduce`, :cite:`benzing2019optimal`):
the Gram-matrix route to the core, and minimum-variance mixing of the smallest singular values."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .learner import _EPS, random_signs

__all__ = ["drop_smallest", "kronecker_core", "minimum_variance_mixing", "ok_reduce"]


def _gram_factor(G: Tensor, tol: float) -> tuple[Tensor, Tensor]:
    """``(R, R⁺)`` from a Gram matrix ``G = XᵀX`` (B, k, k) of k columns, in float64.

    ``R = Λ^{1/2} Vᵀ S`` and ``R⁺ = S⁻¹ V Λ^{-1/2}``, from the eigendecomposition ``V Λ Vᵀ`` of
    the column-scaled Gram ``S⁻¹ G S⁻¹`` (``S`` the column norms, so its diagonal is one and its
    accuracy is relative to each column, not to the largest). ``Q = X R⁺`` has orthonormal
    columns and ``X = Q R``, as a QR decomposition, never formed; directions of the scaled Gram
    with eigenvalue at most ``tol`` (numerically dependent or zero columns) are dropped
    (``R⁺`` zero there).
    """
    norms = G.diagonal(dim1=1, dim2=2).clamp_min(0).sqrt()
    s = torch.where(norms > 0, norms, torch.ones_like(norms))
    lam, V = torch.linalg.eigh(G / (s[:, :, None] * s[:, None, :]))
    lam = lam.clamp_min(0)
    root = lam.sqrt()
    inv_root = torch.where(lam > tol, 1 / root.clamp_min(_EPS), torch.zeros_like(root))
    R = root[:, :, None] * V.transpose(1, 2) * s[:, None, :]
    return R, V / s[:, :, None] * inv_root[:, None, :]


def _gram_tolerance(dtype: torch.dtype) -> float:
    """Eigenvalues of a column-scaled Gram at most this are treated as zero (its round-off
    level)."""
    return 64 * torch.finfo(dtype).eps


def kronecker_core(Gu: Tensor, Ga: Tensor, *, tol: float) -> tuple[Tensor, Tensor, Tensor]:
    """Steps 1–2 of OK from the Gram matrices of the r+1 vectors ``U`` and the r+1 matrices ``A``
    (Frobenius inner product): ``Gu = UᵀU``, ``Ga = AᵀA`` (B, r+1, r+1), float64.

    Factor each as a QR decomposition that is never formed (``U = Q_u R_u``, ``Q_u = U R_u⁺``,
    :func:`_gram_factor`), take the SVD of the small core ``C = R_u R_Aᵀ = P Σ Qᵀ`` and return
    ``(X_u, X_A, σ)`` with σ ascending, ``X_u = R_u⁺ P`` and ``X_A = R_A⁺ Q``: the orthonormal
    singular vectors are ``U X_u`` and ``A X_A``, and ``Σ_k u_k A_kᵀ = Σ_j σ_j (U X_u)_j
    (A X_A)_jᵀ`` exactly.
    """
    Ru, Ru_pinv = _gram_factor(Gu, tol)
    Ra, Ra_pinv = _gram_factor(Ga, tol)
    P, S, Vh = torch.linalg.svd(Ru @ Ra.transpose(1, 2))  # core C = R_u R_Aᵀ = P Σ Qᵀ
    return (Ru_pinv @ P).flip(-1), (Ra_pinv @ Vh.transpose(1, 2)).flip(-1), S.flip(-1)


def drop_smallest(sigma: Tensor, rank: int) -> tuple[Tensor, Tensor]:
    """Biased OK: coefficients (B, r+1, r) keeping the r largest components ``sqrt(σ_j)`` and
    dropping ``σ_(1)``."""
    B, R1 = sigma.shape
    coef = sigma.new_zeros(B, R1, rank)
    idx = torch.arange(rank, device=sigma.device)
    coef[:, idx + 1, idx] = sigma[:, 1:].clamp_min(0).sqrt()
    dropped = torch.zeros_like(sigma, dtype=torch.bool)
    dropped[:, 0] = True
    return coef, dropped


def minimum_variance_mixing(
    sigma: Tensor, rank: int, signs: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Unbiased OK: coefficients (B, r+1, r) turning r+1 components with weights ``sigma``
    (ascending) into r.

    Mix the K smallest — K the largest with ``(K−1) σ_(K) ≤ Σ_{j≤K} σ_(j)`` — into K−1 terms
    ``Σ_i ν_i C_il e_i`` with ``C = sqrt(s/(K−1)) V``, ``s = Σ_mixed σ``: V (K × K−1) has
    orthonormal columns and squared row norms ``p_i = (K−1)σ_i/s``, so that
    ``E[Σ_l c_l c_lᵀ] = diag(σ_mixed)``. V is the Householder reflection taking ``e_K`` to
    ``−z``, ``z_i = sqrt(1 − p_i)``, less its column K. The others are kept exactly,
    ``sqrt(σ_j)``. Returns ``(coef, mixed)``.
    """
    B, R1 = sigma.shape
    K_values = torch.arange(1, R1 + 1, device=sigma.device, dtype=sigma.dtype)
    csum = sigma.cumsum(1)
    tol = 64 * torch.finfo(sigma.dtype).eps * csum[:, -1:].clamp_min(_EPS)
    mixed = ((K_values - 1) * sigma <= csum + tol).to(torch.int64).cumprod(1).bool()
    mixed[:, :2] = True  # always true mathematically; guards round-off
    K = mixed.sum(1)  # (B,), >= 2
    Kf, s = K.to(sigma.dtype), (sigma * mixed).sum(1)
    degenerate = s <= _EPS * sigma.sum(1).clamp_min(_EPS)
    p = torch.where(
        degenerate[:, None],
        ((Kf - 1) / Kf)[:, None].expand(B, R1),
        (Kf - 1)[:, None] * sigma / s.clamp_min(_EPS)[:, None],
    )
    p = torch.where(mixed, p.clamp(0, 1), torch.zeros_like(p))
    z = torch.where(mixed, (1 - p).clamp_min(0).sqrt(), torch.zeros_like(p))
    z = z / z.norm(dim=1, keepdim=True).clamp_min(_EPS)
    m = K - 1  # the largest mixed component; its column is the one dropped
    w = z + F.one_hot(m, R1).to(sigma.dtype)
    R = (
        torch.eye(R1, dtype=sigma.dtype, device=sigma.device)
        - 2 * w[:, :, None] * w[:, None, :] / (w * w).sum(1)[:, None, None]
    )
    scale = torch.where(mixed, (s / (Kf - 1))[:, None].expand(B, R1), sigma).clamp_min(0).sqrt()
    R = R * scale[:, None, :]
    if signs is not None:
        R = R * signs[:, :, None]  # ν_i: a random sign per component
    cols = torch.arange(rank, device=sigma.device)[None, :].expand(B, rank)
    cols = cols + (cols >= m[:, None]).to(cols.dtype)
    return R.gather(2, cols[:, None, :].expand(B, R1, rank)), mixed


def _check_terms(u: Tensor, A: Tensor) -> tuple[int, int, int]:
    """``(B, m, r+1)`` of the terms ``u`` (B, m, r+1) and ``A`` (B, ..., r+1), or a clear error."""
    if u.ndim != 3 or A.ndim < 3 or u.shape[0] != A.shape[0] or u.shape[-1] != A.shape[-1]:
        raise ValueError(
            "u must be (B, m, r+1) and A (B, ..., r+1) with the same B and r+1; "
            f"got {tuple(u.shape)}, {tuple(A.shape)}"
        )
    if u.shape[-1] < 2:
        raise ValueError(f"need at least two terms to reduce, got {u.shape[-1]}")
    B, m, R1 = u.shape
    return B, m, R1


def _reduction(
    Gu: Tensor,
    Ga: Tensor,
    *,
    unbiased: bool,
    generator: torch.Generator | None,
    signs: Tensor | None,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """The whole OK reduction on the Gram matrices (B, r+1, r+1): the new terms are ``U M_u`` and
    ``A M_A``; returns ``(M_u, M_A, info)``, ``M`` (B, r+1, r) in ``dtype``, each new pair
    rebalanced to ``‖u_k‖ = ‖A_k‖_F`` (from the Grams, so the big matrices are touched once)."""
    R1 = Gu.shape[-1]
    Xu, Xa, S = kronecker_core(Gu, Ga, tol=_gram_tolerance(dtype))  # steps 1 and 2
    if unbiased:  # step 3
        if signs is None:
            signs = random_signs((S.shape[0], R1), generator=generator, like=S)
        coef, mixed = minimum_variance_mixing(S, R1 - 1, signs.to(S.dtype))
    else:
        coef, mixed = drop_smallest(S, R1 - 1)
    Mu, Ma = Xu @ coef, Xa @ coef
    nu2 = (Mu * (Gu @ Mu)).sum(1)  # ‖u_new,k‖², from the Gram
    na2 = (Ma * (Ga @ Ma)).sum(1)
    live = (nu2 > _EPS**2) & (na2 > _EPS**2)
    factor = torch.where(live, (na2 / nu2.clamp_min(_EPS**2)) ** 0.25, torch.ones_like(nu2))
    Mu, Ma = Mu * factor[:, None, :], Ma / factor[:, None, :]
    smix, K = (S * mixed).sum(1), mixed.sum(1).to(S.dtype)
    spread = (smix * smix / (K - 1) - (S * S * mixed).sum(1)).clamp_min(0)
    info = {
        "sigma": S,
        "mixed": mixed,
        "mixed_mass": smix / S.sum(1).clamp_min(_EPS),
        "variance": spread if unbiased else S[:, 0] ** 2,
    }
    info = {k: v if v.dtype == torch.bool else v.to(dtype) for k, v in info.items()}
    return Mu.to(dtype), Ma.to(dtype), info


def _gram(X: Tensor) -> Tensor:
    """``XᵀX`` (B, k, k) in float64 for X (B, d, k)."""
    return torch.bmm(X.transpose(1, 2), X).double()


def ok_reduce(
    u: Tensor,
    A: Tensor,
    *,
    unbiased: bool = True,
    generator: torch.Generator | None = None,
    signs: Tensor | None = None,
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """Reduce a sum of r+1 Kronecker products ``Σ_k u_kᵀ ⊗ A_k`` to r terms, optimally (OK).

    ``u`` (B, m, r+1) holds the vectors as columns, ``A`` (B, *mat, r+1) the matrices. Unbiased:
    per-step variance ``(Σ_mixed σ)²/(K−1) − Σ_mixed σ²``; biased: squared error ``σ_(1)²``.
    ``signs`` (B, r+1) of ±1 overrides the random draw (tests enumerate them). Returns
    ``(u_new, A_new, info)``; ``info`` per batch element: ``sigma`` (ascending), ``mixed`` (mask;
    biased: the dropped one), ``mixed_mass`` (``Σ_mixed σ / Σ σ``) and ``variance``.
    The big matrices are touched twice, by their Gram matrix and by the product with the
    (r+1) × r result (:func:`_reduction`); the decompositions are of (r+1) × (r+1) matrices.
    """
    B, _, R1 = _check_terms(u, A)
    Af = A.reshape(B, -1, R1)
    Mu, Ma, info = _reduction(
        _gram(u), _gram(Af), unbiased=unbiased, generator=generator, signs=signs, dtype=u.dtype
    )
    return u @ Mu, (Af @ Ma).reshape(B, *A.shape[1:-1], R1 - 1), info


# ============================================================================ learners
