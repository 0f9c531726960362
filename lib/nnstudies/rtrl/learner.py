"""The base of the online learners (:class:`OnlineLearner`: ``reset``, ``reset_where``, ``step``)
and the small helpers they share."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .cells import CellStep, RecurrentModel

__all__ = ["OnlineLearner", "random_signs"]

_EPS = 1e-12


def random_signs(
    shape: tuple[int, ...], *, generator: torch.Generator | None, like: Tensor
) -> Tensor:
    """Independent ±1 with probability ½ each, drawn from ``generator`` (on its own device), as
    ``like``'s dtype/device."""
    device = generator.device if generator is not None else like.device
    bits = torch.randint(0, 2, shape, generator=generator, device=device)
    return (2 * bits - 1).to(device=like.device, dtype=like.dtype)


def _norm(t: Tensor) -> Tensor:
    """Euclidean / Frobenius norm per batch element."""
    return t.flatten(1).norm(dim=1)


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
    ready = True
    """Whether ``.grad`` holds a gradient to apply after this step (always, except for a learner
    that updates once every few steps: :class:`~nnstudies.rtrl.ChunkedTBPTT`)."""

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
