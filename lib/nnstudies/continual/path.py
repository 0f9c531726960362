"""Importances accumulated along a task's training trajectory: SI (and SIU, SIB), SOS and OnAF.

Each is a :class:`PathAccumulator` called around ``optimizer.step()`` (the call order is in its
docstring); its equation is in its own docstring.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..tasks.continual import head_logits
from .importances import Importances, _check_finite, check_like_model

__all__ = ["SOS", "OnAF", "PathAccumulator", "SynapticIntelligence", "minibatch_gradient"]


def minibatch_gradient(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    classes: Sequence[int] | torch.Tensor | None = None,
) -> Importances:
    """∇θ of the mean cross-entropy on ``(x, y)`` (``p.grad`` is left untouched)."""
    loss = F.cross_entropy(head_logits(model(x), classes), y)
    return [g.detach() for g in torch.autograd.grad(loss, list(model.parameters()))]


class PathAccumulator:
    """Base of the importances accumulated during a task's training.

    Call order, for every task (as :func:`continual_step` does)::

        acc.begin_task()                                   # before the task's first step
        for x, y in batches:
            optimizer.zero_grad()
            cross_entropy(model(x), y).backward()          # p.grad = g_t: the TASK loss's gradient only
            g_ind = minibatch_gradient(model, x2, y2)      # only if acc.needs_independent (SIU, SIB)
            acc.before_step(independent=g_ind)             # reads g_t from p.grad, and θ_t
            penalty(model).backward()                      # AFTER before_step: adds c ∇(penalty) to p.grad
            optimizer.step()
            acc.after_step()                               # reads θ_{t+1}; Δθ_t = θ_{t+1} − θ_t
        omega = acc.end_task()                             # this task's Ω (not summed over tasks)

    Several accumulators may watch the same training; each reads the same p.grad.
    """

    needs_independent = False

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._params = list(model.parameters())
        self._start: list[torch.Tensor] | None = None
        self._prev: list[torch.Tensor] | None = None
        self._grad: list[torch.Tensor] | None = None
        self._independent: list[torch.Tensor] | None = None
        self.steps = 0

    def _snapshot(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self._params]

    def begin_task(self) -> None:
        """Start a task: remember θ at its start and zero the running sums."""
        self._start = self._snapshot()
        self.steps = 0
        self._reset()

    def before_step(self, independent: Sequence[torch.Tensor] | None = None) -> None:
        """After ``loss.backward()`` of the task loss, before the penalty's gradient and ``optimizer.step()``."""
        if self._start is None:
            raise RuntimeError("call begin_task() before the first step")
        if any(p.grad is None for p in self._params):
            raise RuntimeError(
                "before_step() reads p.grad: call it after the task loss's backward()"
            )
        if self.needs_independent:
            if independent is None:
                raise ValueError(
                    f"{type(self).__name__} needs the gradient on an independent minibatch (independent=...)"
                )
            check_like_model(list(independent), self.model, "independent gradient")
            self._independent = [g.detach() for g in independent]
        self._grad = [p.grad.detach().clone() for p in self._params]  # type: ignore[union-attr]
        self._prev = self._snapshot()
        self._on_gradient(self._grad)

    def after_step(self) -> None:
        """Right after ``optimizer.step()``."""
        if self._prev is None or self._grad is None:
            raise RuntimeError("after_step() without before_step()")
        deltas = [p.detach() - q for p, q in zip(self._params, self._prev)]
        self._on_step(self._grad, deltas)
        self.steps += 1
        self._prev = self._grad = None

    def end_task(self) -> Importances:
        """This task's Ω."""
        if self._start is None or self.steps == 0:
            raise RuntimeError("end_task() needs begin_task() and at least one step")
        total = [p.detach() - s for p, s in zip(self._params, self._start)]
        return _check_finite(self._omega(total), type(self).__name__)

    # subclasses
    def _reset(self) -> None: ...
    def _on_gradient(self, g: list[torch.Tensor]) -> None: ...
    def _on_step(self, g: list[torch.Tensor], delta: list[torch.Tensor]) -> None: ...
    def _omega(self, total_change: list[torch.Tensor]) -> Importances:
        raise NotImplementedError


class SynapticIntelligence(PathAccumulator):
    """SI (Zenke et al. 2017) and Benzing's variants, as a :class:`PathAccumulator`.

    With g_t the task loss's gradient on the minibatch of step t, g'_t the same on an
    independent minibatch, and Δθ_t the step taken (penalty included):

    - ``"SI"``:  ω = Σ_t −g_t ⊙ Δθ_t
    - ``"SIU"``: ω = Σ_t −g'_t ⊙ Δθ_t          (unbiased: no correlation with the step's noise)
    - ``"SIB"``: ω = Σ_t −(g_t − g'_t) ⊙ Δθ_t  (the bias alone: SI − SIU)

    and at the end of the task Ω = max(0, ω / (Δ² + ξ)), Δ = θ_end − θ_start, ξ = ``damping``.
    """

    def __init__(self, model: nn.Module, *, damping: float = 0.1, variant: str = "SI") -> None:
        if variant not in ("SI", "SIU", "SIB"):
            raise ValueError(f"unknown SI variant {variant!r}; choose 'SI', 'SIU' or 'SIB'")
        if not (damping > 0 and math.isfinite(damping)):
            raise ValueError(f"damping must be positive and finite, got {damping}")
        super().__init__(model)
        self.variant, self.damping = variant, damping
        self.needs_independent = variant != "SI"
        self.omega: list[torch.Tensor] = []

    def _reset(self) -> None:
        self.omega = [torch.zeros_like(p) for p in self._params]

    def _on_step(self, g: list[torch.Tensor], delta: list[torch.Tensor]) -> None:
        other = self._independent
        for k, (w, d) in enumerate(zip(self.omega, delta)):
            if self.variant == "SI":
                used = g[k]  # the very minibatch the step was taken on: biased
            elif self.variant == "SIU":
                used = other[k]  # type: ignore[index]  # an independent minibatch: unbiased
            else:
                used = g[k] - other[k]  # type: ignore[index]  # SIB: the difference, the bias alone
            w.sub_(used * d)  # ω −= g ⊙ Δθ

    def _omega(self, total_change: list[torch.Tensor]) -> Importances:
        return [
            (w / (t.square() + self.damping)).clamp_min(0) for w, t in zip(self.omega, total_change)
        ]


class SOS(PathAccumulator):
    """Square root of the (bias-corrected) running second moment of the minibatch gradient.

    v ← β v + (1 − β) g_t² at every step, Ω = √(v / (1 − β^T)) at the end (T steps),
    the quantity Adam divides by, with β = 0.999 as in Adam.
    """

    def __init__(self, model: nn.Module, *, beta: float = 0.999) -> None:
        if not 0 < beta < 1:
            raise ValueError(f"beta must lie in (0, 1), got {beta}")
        super().__init__(model)
        self.beta = beta
        self.v: list[torch.Tensor] = []

    def _reset(self) -> None:
        self.v = [torch.zeros_like(p) for p in self._params]

    def _on_gradient(self, g: list[torch.Tensor]) -> None:
        for v, gi in zip(self.v, g):
            v.mul_(self.beta).add_(gi.square(), alpha=1 - self.beta)

    def _omega(self, total_change: list[torch.Tensor]) -> Importances:
        correction = 1 - self.beta**self.steps
        return [(v / correction).sqrt() for v in self.v]


class OnAF(PathAccumulator):
    """Online absolute Fisher: ω = Σ_t |g_t|, Ω = max(0, ω / (Δ² + ξ)) (rescaled as SI is).

    ``rescale=False``: Ω = ω = Σ_t |g_t|, the plain sum of gradient magnitudes over the task's
    steps (the baseline the chapter sets beside SI's correlation with √F_emp).
    """

    def __init__(self, model: nn.Module, *, damping: float = 0.1, rescale: bool = True) -> None:
        if not (damping > 0 and math.isfinite(damping)):
            raise ValueError(f"damping must be positive and finite, got {damping}")
        super().__init__(model)
        self.damping, self.rescale = damping, rescale
        self.omega: list[torch.Tensor] = []

    def _reset(self) -> None:
        self.omega = [torch.zeros_like(p) for p in self._params]

    def _on_gradient(self, g: list[torch.Tensor]) -> None:
        for w, gi in zip(self.omega, g):
            w.add_(gi.abs())

    def _omega(self, total_change: list[torch.Tensor]) -> Importances:
        if not self.rescale:
            return [w.clone() for w in self.omega]
        return [
            (w / (t.square() + self.damping)).clamp_min(0) for w, t in zip(self.omega, total_change)
        ]
