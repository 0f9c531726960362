"""Online recurrent learning: exact RTRL, UORO, KF-RTRL, OK (optimal Kronecker sum) and truncated
BPTT.

A recurrent cell maps the previous state and an input to the next state,
``h_t = F(h_{t-1}, x_t; θ)``. Its parameters form one matrix ``W`` of shape
``(m, g·n)`` acting on the augmented input ``â_t = [x_t, h_{t-1}, 1] ∈ R^m``
(``m = input_size + hidden_size + 1``, ``n = hidden_size``, ``g`` gates):
``z_t = â_t W``. Real Time Recurrent Learning (RTRL, :cite:`williams1989rtrl`)
carries the *influence matrix* ``G_t = dh_t/dθ`` (``n × |θ|``) forward in time,

    G_t = H_t G_{t-1} + F_t,      H_t = ∂h_t/∂h_{t-1},   F_t = ∂h_t/∂θ (immediate),

and the gradient of the loss at step t is ``(∂L_t/∂h_t) G_t``.

Vec / Kronecker convention (used everywhere in this module)
-----------------------------------------------------------
``θ = vec(W)`` is ``W`` flattened in row-major order, ``θ[p·gn + q] = W[p, q]``.
With ``D_t = ∂h_t/∂z_t`` (``n × gn``) the immediate Jacobian is a Kronecker product

    F_t[i, p·gn + q] = â_t[p] · D_t[i, q],    i.e.   F_t = â_tᵀ ⊗ D_t,

and a Kronecker sum ``G ≈ Σ_k u_kᵀ ⊗ A_k`` (``u_k ∈ R^m``, ``A_k ∈ R^{n×gn}``) gives
``H G = Σ_k u_kᵀ ⊗ (H A_k)`` and the weight gradient ``∂L/∂W = Σ_k u_k (A_kᵀ c)ᵀ``
with ``c = ∂L/∂h`` — an outer product, never the full ``n × |θ|`` matrix.

Batches
-------
Every learner keeps one state and one influence (exact or approximate) *per
batch element*: shapes start with the batch size ``B``. The loss at step t is
the batch mean of the cross-entropy of ``readout(h_t)`` against ``y_t``, so each
learner's ``step`` adds ``(1/B) Σ_b (∂ℓ_b/∂h_t^b) G_t^b`` — the gradient of the
batch-mean loss — to ``.grad`` of the cell's weight, and the readout's exact
gradient to the readout's ``.grad``. Parameters are never changed: the caller's
optimiser does that.

Learners: :class:`ExactRTRL` (O(n⁴) time, O(n³) memory per step and example),
:class:`UORO` (:cite:`tallec2018uoro`, rank one over all of θ, O(n²)),
:class:`KFRTRL` (:cite:`mujika2018kfrtrl`, one Kronecker product, O(n³)),
:class:`OK` (:cite:`benzing2019optimal`, the optimal sum of ``r`` Kronecker
products, O(r n³); its reduction is :func:`ok_reduce`) and :class:`TBPTT`
(backpropagation through the last ``k`` steps). The tasks they are trained on (the
copy task, character streams) live in :mod:`nnstudies.tasks.sequences`.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "KFRTRL",
    "OK",
    "TBPTT",
    "UORO",
    "CellStep",
    "ExactRTRL",
    "KroneckerCell",
    "OnlineLearner",
    "RHNCell",
    "RecurrentModel",
    "TanhCell",
    "drop_smallest",
    "kronecker_core",
    "minimum_variance_mixing",
    "ok_reduce",
    "random_signs",
]

_EPS = 1e-12


# ============================================================================ cells


@dataclass
class CellStep:
    """One step of a cell with its derivatives (all batched, first dimension B).

    ``h``: next state ``h_t`` (B, n); ``H``: ``∂h_t/∂h_{t-1}`` (B, n, n);
    ``a``: augmented input ``â_t = [x_t, h_{t-1}, 1]`` (B, m);
    ``D``: ``∂h_t/∂z_t`` (B, n, g·n), so that ``F_t = â_tᵀ ⊗ D_t``.
    """

    h: Tensor
    H: Tensor
    a: Tensor
    D: Tensor


class KroneckerCell(nn.Module):
    """A cell whose parameters are one matrix ``W`` (m × g·n) acting on ``â = [x, h, 1]``:
    ``z = â W``.

    Called like :class:`torch.nn.RNNCell`: ``cell(x_t, h_prev) -> h_t`` with
    ``x_t`` of shape (B, input_size) and ``h_prev`` (B, hidden_size) or ``None``
    (zeros). :meth:`step` also returns ``H_t`` and the factors ``(â_t, D_t)``.
    """

    gates: int = 1

    def __init__(self, input_size: int, hidden_size: int, *, init_std: float | None = None) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(
                f"input_size and hidden_size must be >= 1, got {input_size} and {hidden_size}"
            )
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.weight = nn.Parameter(torch.empty(self.augmented_size, self.gates * hidden_size))
        self.init_std = float(init_std if init_std is not None else self.default_init_std())
        with torch.no_grad():
            self.weight.normal_(0.0, self.init_std)

    def default_init_std(self) -> float:
        return 1.0 / math.sqrt(self.hidden_size)

    @property
    def augmented_size(self) -> int:
        """``m = input_size + hidden_size + 1``, the length of ``â``."""
        return self.input_size + self.hidden_size + 1

    def check(self, x: Tensor, h: Tensor | None) -> Tensor:
        """Validate shapes; return ``h`` (zeros when ``None``)."""
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(
                f"x_t must have shape (batch, {self.input_size}), got {tuple(x.shape)}"
            )
        if h is None:
            return x.new_zeros(x.shape[0], self.hidden_size)
        if h.shape != (x.shape[0], self.hidden_size):
            raise ValueError(
                f"h_prev must have shape ({x.shape[0]}, {self.hidden_size}), got {tuple(h.shape)}"
            )
        return h

    def augment(self, x: Tensor, h: Tensor) -> Tensor:
        """``â = [x, h, 1]`` (B, m)."""
        return torch.cat([x, h, x.new_ones(x.shape[0], 1)], dim=1)

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        h = self.check(x, h)
        return self._next(self.augment(x, h) @ self.weight, h)

    def _next(self, z: Tensor, h: Tensor) -> Tensor:
        raise NotImplementedError

    def _derivatives(self, z: Tensor, h: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(h_next, dz, direct)``: ``dz`` (B, g·n) holds the diagonal blocks of D, ``direct`` (B,
        n) the diagonal of ∂h_t/∂h_{t-1} at fixed z."""
        raise NotImplementedError

    @torch.no_grad()
    def step(self, x: Tensor, h: Tensor | None = None) -> CellStep:
        """Next state, ``H_t = ∂h_t/∂h_{t-1}`` and the factors ``(â_t, D_t)`` with
        ``F_t = â_tᵀ ⊗ D_t``.

        ``D_t`` is block diagonal: ``D_t[:, :, j·n:(j+1)·n] = diag(∂h/∂z_j)`` for gate ``j``.
        ``H_t = diag(direct) + D_t W_hᵀ`` with ``W_h = W[input_size : input_size + n]``
        (the rows of ``W`` that multiply ``h_{t-1}``).
        """
        h = self.check(x, h)
        a = self.augment(x, h)
        W = self.weight.detach()
        h_next, dz, direct = self._derivatives(a @ W, h)
        n, B = self.hidden_size, x.shape[0]
        D = (
            torch.diag_embed(dz.view(B, self.gates, n))
            .permute(0, 2, 1, 3)
            .reshape(B, n, self.gates * n)
        )
        Wh = W[self.input_size : self.input_size + n]  # (n, g n)
        H = dz[:, :n, None] * Wh[:, :n].T
        for j in range(1, self.gates):
            H = H + dz[:, j * n : (j + 1) * n, None] * Wh[:, j * n : (j + 1) * n].T
        if direct is not None:
            H = H + torch.diag_embed(direct)
        return CellStep(h_next, H, a, D)


class TanhCell(KroneckerCell):
    """``h_t = tanh(â_t W)``, W of shape (m, n); ``D_t = diag(1 − h_t²)``, ``H_t = D_t W_hᵀ``.

    Initial weights N(0, 1/n) unless ``init_std`` is given.
    """

    gates = 1

    def _next(self, z: Tensor, h: Tensor) -> Tensor:
        return torch.tanh(z)

    def _derivatives(self, z: Tensor, h: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        h_next = torch.tanh(z)
        return h_next, 1 - h_next * h_next, None


class RHNCell(KroneckerCell):
    """The depth-1 recurrent highway cell of the paper.

    ``[z_c, z_f] = â_t W`` (W of shape (m, 2n)), ``c = 2σ(z_c) − 1``, ``f = σ(z_f)``,
    ``h_t = f ⊙ h_{t-1} + (1 − f) ⊙ c``. Then
    ``∂h/∂z_c = (1 − f) ⊙ 2σ(z_c)(1 − σ(z_c))``, ``∂h/∂z_f = (h_{t-1} − c) ⊙ f(1 − f)``,
    ``D_t = [diag(∂h/∂z_c), diag(∂h/∂z_f)]`` and ``H_t = diag(f) + D_t W_hᵀ``.
    Initial weights N(0, 0.01²) as in the authors' code unless ``init_std`` is given;
    ``forget_bias`` is added to the initial bias of ``z_f`` (0 in the paper; a positive
    value makes the untrained cell keep its state longer, ``f ≈ σ(forget_bias)``).
    """

    gates = 2

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        init_std: float | None = None,
        forget_bias: float = 0.0,
    ) -> None:
        super().__init__(input_size, hidden_size, init_std=init_std)
        self.forget_bias = float(forget_bias)
        with torch.no_grad():
            self.weight[-1, hidden_size:] += self.forget_bias

    def default_init_std(self) -> float:
        return 0.01

    def _next(self, z: Tensor, h: Tensor) -> Tensor:
        zc, zf = z.chunk(2, dim=1)
        c, f = 2 * torch.sigmoid(zc) - 1, torch.sigmoid(zf)
        return f * h + (1 - f) * c

    def _derivatives(self, z: Tensor, h: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        zc, zf = z.chunk(2, dim=1)
        sc, f = torch.sigmoid(zc), torch.sigmoid(zf)
        c = 2 * sc - 1
        h_next = f * h + (1 - f) * c
        dz = torch.cat([(1 - f) * 2 * sc * (1 - sc), (h - c) * f * (1 - f)], dim=1)
        return h_next, dz, f


class RecurrentModel(nn.Module):
    """A cell and a linear readout; the loss at step t is ``mean_b CE(readout(h_t^b), y_t^b)``."""

    def __init__(self, cell: KroneckerCell, readout: nn.Linear) -> None:
        super().__init__()
        if not isinstance(cell, KroneckerCell):
            raise TypeError(
                f"cell must be a KroneckerCell (RHNCell, TanhCell), got {type(cell).__name__}"
            )
        if not isinstance(readout, nn.Linear) or readout.in_features != cell.hidden_size:
            raise ValueError(
                f"readout must be an nn.Linear with in_features = hidden_size = {cell.hidden_size}"
            )
        self.cell, self.readout = cell, readout

    @property
    def num_outputs(self) -> int:
        return self.readout.out_features

    def forward(
        self, xs: Tensor, h0: Tensor | None = None, resets: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Run over ``xs`` (T, B, input_size); return logits (T, B, outputs) and the last state.

        ``resets`` (T, B) bool: the state of element b is zeroed before step t where
        ``resets[t, b]``.
        """
        h = self.cell.check(xs[0], h0)
        logits = []
        for t in range(xs.shape[0]):
            if resets is not None:
                h = h * (~resets[t]).unsqueeze(1).to(h.dtype)
            h = self.cell(xs[t], h)
            logits.append(self.readout(h))
        return torch.stack(logits), h

    def sequence_loss(self, xs: Tensor, ys: Tensor, resets: Tensor | None = None) -> Tensor:
        """``Σ_t mean_b CE`` over the sequence: what the learners' accumulated ``.grad`` is the
        gradient of."""
        logits, _ = self(xs, resets=resets)
        return (
            F.cross_entropy(logits.flatten(0, 1), ys.flatten(), reduction="none")
            .view(ys.shape)
            .mean(1)
            .sum()
        )


# ================================================================ random signs and the OK reduction


def random_signs(
    shape: tuple[int, ...], *, generator: torch.Generator | None, like: Tensor
) -> Tensor:
    """Independent ±1 with probability ½ each, drawn from ``generator`` (on its own device), as
    ``like``'s dtype/device."""
    device = generator.device if generator is not None else like.device
    bits = torch.randint(0, 2, shape, generator=generator, device=device)
    return (2 * bits - 1).to(device=like.device, dtype=like.dtype)


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


class OnlineLearner:
    """Base of the online learners: ``reset(batch_size)``, then ``step(x_t, y_t) -> loss_t`` every
    step.

    ``step`` adds the learner's estimate of ``∂L_t/∂θ`` (L_t the batch-mean
    cross-entropy at step t) to ``.grad`` of every parameter of the model and leaves
    the parameters alone. ``reset_where(mask)`` starts new sequences for some
    batch elements (zero state and influence). After a step, ``h`` is the state
    ``h_t`` (B, n) and ``example_grads`` (B, m, g·n) each element's estimate of the
    gradient of its own loss ``ℓ_t^b`` with respect to the cell weight.
    """

    name = "learner"

    def __init__(self, model: RecurrentModel) -> None:
        if not isinstance(model, RecurrentModel):
            raise TypeError(f"model must be a RecurrentModel, got {type(model).__name__}")
        self.model = model
        self.cell = model.cell
        self.batch_size = 0
        self.h: Tensor | None = None

    # -- state
    @property
    def _like(self) -> Tensor:
        return self.cell.weight

    def reset(self, batch_size: int) -> None:
        """Start ``batch_size`` fresh sequences: zero state, zero influence."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.h = self._like.new_zeros(batch_size, self.cell.hidden_size)
        self._reset_influence(batch_size)

    def _reset_influence(self, batch_size: int) -> None:
        raise NotImplementedError

    def reset_where(self, mask: Tensor) -> None:
        """Zero the state and influence of the batch elements where ``mask`` (B,) is True."""
        h = self._require_reset()
        if mask.shape != (self.batch_size,):
            raise ValueError(f"mask must have shape ({self.batch_size},), got {tuple(mask.shape)}")
        keep = (~mask.to(device=self._like.device, dtype=torch.bool)).to(self._like.dtype)
        self.h = h * keep[:, None]
        self._scale_influence(keep)

    def _scale_influence(self, keep: Tensor) -> None:
        raise NotImplementedError

    def _require_reset(self) -> Tensor:
        """The state ``h`` (B, n), or a clear error when :meth:`reset` was never called."""
        if self.h is None:
            raise RuntimeError(f"call {type(self).__name__}.reset(batch_size) before step()")
        return self.h

    def _check(self, x: Tensor, y: Tensor) -> None:
        self._require_reset()
        if x.ndim != 2 or x.shape != (self.batch_size, self.cell.input_size):
            raise ValueError(
                f"x_t must have shape ({self.batch_size}, {self.cell.input_size}), "
                f"got {tuple(x.shape)}"
            )
        if y.shape != (self.batch_size,) or y.dtype != torch.int64:
            raise ValueError(
                f"y_t must be int64 class indices of shape ({self.batch_size},), "
                f"got {y.dtype} {tuple(y.shape)}"
            )

    # -- gradients
    def _readout(self, h: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Batch-mean CE at ``h``; add the readout's gradient to its ``.grad``;
        return ``(loss, ∂L/∂h)``."""
        readout = self.model.readout
        with torch.enable_grad():
            leaf = h.detach().requires_grad_(True)
            loss = F.cross_entropy(readout(leaf), y)
            params = [p for p in readout.parameters() if p.requires_grad]
            grads = torch.autograd.grad(loss, [leaf, *params])
        for p, g in zip(params, grads[1:]):
            _accumulate(p, g)
        return loss.detach(), grads[0]

    def cell_gradients(self, c: Tensor) -> Tensor:
        """Per-example estimates ``c_b G_b`` of the cell weight's gradient, shape (B, m, g·n), for
        ``c = ∂L/∂h`` (B, n)."""
        raise NotImplementedError

    def _advance(self, cs: CellStep) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, x: Tensor, y: Tensor) -> Tensor:
        """Advance one step; add the estimate of ``∂L_t/∂θ`` to ``.grad``; return ``L_t`` (a 0-dim
        tensor)."""
        self._check(x, y)
        cs = self.cell.step(x, self.h)
        self._advance(cs)
        self.h = cs.h
        loss, c = self._readout(cs.h, y)
        grads = self.cell_gradients(c)  # (B, m, gn); c carries the batch mean's 1/B
        _accumulate(self.cell.weight, grads.sum(0))
        self.example_grads = grads * self.batch_size  # each element's estimate for its own loss
        return loss


def _accumulate(p: Tensor, g: Tensor) -> None:
    if p.grad is None:
        p.grad = g.detach().clone()
    else:
        p.grad.add_(g.detach())


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


def _norm(t: Tensor) -> Tensor:
    """Euclidean / Frobenius norm per batch element."""
    return t.flatten(1).norm(dim=1)


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


class TBPTT(OnlineLearner):
    """Truncated BPTT(k), sliding window: at step t, ``∂L_t/∂θ`` backpropagated through the last k
    steps only.

    The state ``h_{t−k}`` is treated as a constant; the window ``x_{t−k+1..t}`` is
    recomputed with autograd each step (O(k) cell evaluations per step). With
    ``k ≥ t`` the estimate is exact. (The common chunked variant, one backward pass per
    k steps, truncates each loss after 1..k steps instead.)
    """

    name = "TBPTT"

    def __init__(self, model: RecurrentModel, horizon: int) -> None:
        super().__init__(model)
        if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1:
            raise ValueError(f"horizon must be an int >= 1, got {horizon!r}")
        self.horizon = horizon

    def _reset_influence(self, batch_size: int) -> None:
        self.root = self._like.new_zeros(batch_size, self.cell.hidden_size).detach()
        self.window: deque[tuple[Tensor, Tensor | None]] = deque()
        self._pending_keep: Tensor | None = None

    def reset_where(self, mask: Tensor) -> None:
        h = self._require_reset()
        if mask.shape != (self.batch_size,):
            raise ValueError(f"mask must have shape ({self.batch_size},), got {tuple(mask.shape)}")
        keep = (~mask.to(device=self._like.device, dtype=torch.bool)).to(self._like.dtype)
        self._pending_keep = keep if self._pending_keep is None else self._pending_keep * keep
        self.h = h * keep[:, None]

    def step(self, x: Tensor, y: Tensor) -> Tensor:
        self._check(x, y)
        self.window.append((x.detach(), self._pending_keep))
        self._pending_keep = None
        if len(self.window) > self.horizon:
            x_old, keep_old = self.window.popleft()
            with torch.no_grad():
                root = self.root if keep_old is None else self.root * keep_old[:, None]
                self.root = self.cell(x_old, root)
        params = [p for p in self.model.parameters() if p.requires_grad]
        with torch.enable_grad():
            h = self.root
            for x_s, keep in self.window:
                if keep is not None:
                    h = h * keep[:, None]
                h = self.cell(x_s, h)
            loss = F.cross_entropy(self.model.readout(h), y)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        for p, g in zip(params, grads):
            if g is not None:
                _accumulate(p, g)
        self.h = h.detach()
        return loss.detach()
