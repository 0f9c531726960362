"""Truncated backpropagation through time: a sliding window of k steps with an update at every
step (:class:`TBPTT`), and the common form that updates once every k steps (:class:`ChunkedTBPTT`),
as the paper's baseline does."""

from __future__ import annotations

from collections import deque

import torch
import torch.nn.functional as F
from torch import Tensor

from .cells import RecurrentModel
from .learner import OnlineLearner, _accumulate

__all__ = ["TBPTT", "ChunkedTBPTT"]


def _check_horizon(horizon: int) -> int:
    if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1:
        raise ValueError(f"horizon must be an int >= 1, got {horizon!r}")
    return horizon


class TBPTT(OnlineLearner):
    """Truncated BPTT(k), sliding window: at step t, ``∂L_t/∂θ`` backpropagated through the last k
    steps only.

    The state ``h_{t−k}`` is treated as a constant; the window ``x_{t−k+1..t}`` is
    recomputed with autograd each step (O(k) cell evaluations per step). With
    ``k ≥ t`` the estimate is exact. (The common chunked variant, one backward pass per
    k steps, truncates each loss after 1..k steps instead: :class:`ChunkedTBPTT`.)
    """

    name = "TBPTT"

    def __init__(self, model: RecurrentModel, horizon: int) -> None:
        super().__init__(model)
        self.horizon = _check_horizon(horizon)

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


class ChunkedTBPTT(OnlineLearner):
    """Truncated BPTT(k) as it is usually run, and as the paper's baseline: the sequence is cut
    into chunks of k steps, and at the end of each chunk the gradient of the chunk's mean loss,
    ``∂/∂θ (1/k) Σ_{s in chunk} L_s``, is backpropagated to the chunk's start (whose state is a
    constant).

    The loss at the j-th step of a chunk is thus truncated after j steps (1 ≤ j ≤ k), and the
    parameters change once every k steps: :attr:`ready` is True only after the step that ends a
    chunk, and only then does :meth:`step` add to ``.grad``. One cell evaluation per step.
    """

    name = "TBPTT, every k"

    def __init__(self, model: RecurrentModel, horizon: int) -> None:
        super().__init__(model)
        self.horizon = _check_horizon(horizon)

    def _reset_influence(self, batch_size: int) -> None:
        self._graph_h: Tensor = self._like.new_zeros(batch_size, self.cell.hidden_size)
        self._losses: list[Tensor] = []
        self.ready = False

    def _scale_influence(self, keep: Tensor) -> None:
        self._graph_h = self._graph_h * keep[:, None]  # inside the chunk's graph

    def step(self, x: Tensor, y: Tensor) -> Tensor:
        self._check(x, y)
        with torch.enable_grad():
            h = self.cell(x, self._graph_h)
            loss = F.cross_entropy(self.model.readout(h), y)
        self._losses.append(loss)
        self.ready = len(self._losses) == self.horizon
        if self.ready:
            params = [p for p in self.model.parameters() if p.requires_grad]
            grads = torch.autograd.grad(torch.stack(self._losses).mean(), params, allow_unused=True)
            for p, g in zip(params, grads):
                if g is not None:
                    _accumulate(p, g)
            self._losses, h = [], h.detach()
        self._graph_h = h
        self.h = h.detach()
        return loss.detach()
