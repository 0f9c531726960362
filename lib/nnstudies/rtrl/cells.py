"""Recurrent cells whose parameters form one matrix ``W`` acting on ``â = [x, h, 1]``, with the
Jacobians every online learner needs (:class:`CellStep`), and the model around a cell
(:class:`RecurrentModel`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CellStep", "KroneckerCell", "RHNCell", "RecurrentModel", "TanhCell"]


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
