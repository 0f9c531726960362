"""The optimizers FOOF, KFAC and NaturalGradient (one update θ ← θ − η Δ each), and
:func:`training_step`, which calls any optimizer as it needs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import torch
from torch import nn

from .curvature import (
    _DAMPING_KINDS,
    _ORDERS,
    DampedInverse,
    _check_damping,
    damped_inverse,
    input_factor,
    output_factor,
)
from .directions import woodbury_solve
from .layers import (
    Layer,
    _check_kinds,
    _loss,
    _patches,
    _positions,
    _split,
    _weight_matrix,
    layer_statistics,
    sample_labels,
    supported_layers,
)

# ----------------------------------------------------------------------------- optimizers


def _check_schedule(decay: float, inv_period: int) -> None:
    """Reject a moving average's ``decay`` outside [0, 1) and an ``inv_period`` below 1."""
    if inv_period < 1:
        raise ValueError(f"inv_period must be >= 1, got {inv_period}")
    if not 0 <= decay < 1:
        raise ValueError(f"decay must lie in [0, 1), got {decay}")


def _parameters(layer: Layer) -> list[torch.Tensor]:
    return [layer.weight] + ([layer.bias] if layer.bias is not None else [])


class _LayerwiseOptimizer(torch.optim.Optimizer):
    """Shared machinery: one parameter group over ``model``'s Linear/Conv2d layers, hooks, the
    backward pass each step needs, heavy-ball momentum.
    """

    def __init__(
        self, model: nn.Module, lr: float, damping: float, momentum: float, order: str = "auto"
    ) -> None:
        if order not in _ORDERS:
            raise ValueError(f"unknown order {order!r}; choose one of {_ORDERS}")
        self.order = order
        if not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"learning rate must be positive and finite, got {lr}")
        _check_damping(damping)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        self.model = model
        self.layers = supported_layers(model)
        super().__init__(
            list(model.parameters()), {"lr": lr, "damping": damping, "momentum": momentum}
        )
        self.steps = 0
        self._inputs: dict[nn.Module, torch.Tensor] = {}
        self._outputs: dict[nn.Module, torch.Tensor] = {}
        self._output_grads: dict[nn.Module, torch.Tensor] = {}
        self._is_factored: dict[nn.Module, bool] = {}
        self._raw: dict[nn.Module, bool] = {}  # keeps the raw momentum buffer (see _direction)
        self._inverse: dict[nn.Module, DampedInverse] = {}  # P per layer (see invert)
        self._record = False
        self._capture = False  # keep ∂L/∂(layer output) of the next loss.backward() (factored)
        self._hooks = [layer.register_forward_hook(self._forward_hook) for layer in self.layers]

    def _forward_hook(
        self, layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
    ) -> None:
        if self._record and torch.is_grad_enabled():
            self._inputs[layer] = inputs[0].detach()
            self._outputs[layer] = output
            factored = self._is_factored[layer] = self._factored(layer, inputs[0])
            if layer not in self._raw:  # fixed at the first step
                rows = inputs[0].numel() // inputs[0].shape[-1]
                m = sum(p[0].numel() if p.ndim > 1 else 1 for p in layer.parameters(False))
                mu = self.param_groups[0]["momentum"]
                self._raw[layer] = mu > 0 and self._period() * rows < m
            if output.requires_grad and factored:
                output.register_hook(lambda g, layer=layer: self._keep_output_grad(layer, g))

    def _factored(self, layer: nn.Module, x: torch.Tensor) -> bool:
        """Whether this layer's direction is built in the factored order (see :meth:`_direction`)
        on inputs ``x``: the order with fewer multiply-adds, counting ∇W̃ = Eᵀ A for the dense one.
        """
        if self.order == "dense" or not isinstance(layer, nn.Linear):
            return False
        if self.order == "factored":
            return True
        rows = x.numel() // x.shape[-1]  # examples (× positions)
        m, n = layer.in_features + (layer.bias is not None), layer.out_features
        two_sided = isinstance(self, KFAC)
        factored = rows * (m * m + n * m + (n * n if two_sided else 0))
        dense = rows * n * m + n * m * m + (n * n * m if two_sided else 0)
        return factored < dense

    def _period(self) -> int:
        """The inversion period T (1 for an optimizer without one)."""
        return int(getattr(self, "inv_period", 1))

    def _keep_output_grad(self, layer: nn.Module, grad: torch.Tensor) -> None:
        if self._capture:
            self._output_grads[layer] = grad.detach()

    def _gradients(
        self, loss: torch.Tensor, also: Sequence[Layer] = ()
    ) -> dict[nn.Module, torch.Tensor]:
        """The backward pass this step needs, in one ``torch.autograd.grad``: ∂L/∂(output) of the
        layers built in the factored order (kept for :meth:`_direction`; their ∇W̃ = Eᵀ A is not
        formed unless they keep a raw momentum buffer), ∇ of the other layers' parameters (into
        ``.grad``), and ∂L/∂(output) of the layers in ``also`` (returned, e.g. for an empirical Ḡ).
        """
        missing = [layer for layer in self.layers if layer not in self._outputs]
        if missing:
            raise RuntimeError(
                f"{type(self).__name__} saw no forward pass of the model before backward()"
            )
        wanted = [layer for layer in self.layers if self._is_factored.get(layer) or layer in also]
        dense = [
            p
            for layer in self.layers
            if not self._is_factored.get(layer) or self._raw.get(layer)
            for p in _parameters(layer)
        ]
        outputs = [self._outputs[layer] for layer in wanted]
        grads = torch.autograd.grad(loss, [*outputs, *dense])
        for p, g in zip(dense, grads[len(outputs) :]):
            p.grad = g if p.grad is None else p.grad + g
        by_layer: dict[nn.Module, torch.Tensor] = {
            layer: g.detach() for layer, g in zip(wanted, grads)
        }
        for layer, g in by_layer.items():
            if self._is_factored.get(layer):
                self._output_grads[layer] = g
        return by_layer

    def remove_hooks(self) -> None:
        """Detach the optimizer from the model (its forward passes are no longer observed)."""
        for h in self._hooks:
            h.remove()

    @property
    def inverses(self) -> Mapping[nn.Module, DampedInverse]:
        """Each layer's damped inverse P, as the last :meth:`invert` left it (read-only)."""
        return MappingProxyType(self._inverse)

    def _new_inverses(self) -> dict[nn.Module, DampedInverse]:
        raise NotImplementedError(f"{type(self).__name__} keeps no inverse curvature")

    @torch.no_grad()
    def invert(self) -> None:
        """Recompute every layer's damped inverse P from the current statistics (done at the
        first step and every ``inv_period`` steps), and carry the heavy-ball momentum over to it:
        the direction m = P_old(v) becomes P_new(v) (see :meth:`_direction`). A layer that keeps
        the raw buffer v rebuilds m from it at its next step.
        """
        old, self._inverse = self._inverse, self._new_inverses()
        for layer in self.layers:
            state = self.state[layer.weight]
            if layer not in old or "direction" not in state:
                continue
            if self._raw.get(layer):
                del state["direction"]
            else:
                state["direction"] = self._inverse[layer].apply(
                    old[layer].unapply(state["direction"])
                )

    def _step(self) -> None:
        """Invert when due, then move every layer by −η Δ."""
        if self.steps % self._period() == 0 or not self._inverse:
            self.invert()
        for layer in self.layers:
            self._apply(layer, self._direction(layer, self._inverse[layer]))

    def _raw_gradient(self, layer: Layer) -> torch.Tensor:
        """∇W̃ from ``.grad``."""
        if layer.weight.grad is None:
            raise RuntimeError(
                "no gradient: call optimizer.backward(loss, outputs) (or loss.backward()) "
                "before step()"
            )
        return _weight_matrix(
            layer, layer.weight.grad, None if layer.bias is None else layer.bias.grad
        )

    def _direction(self, layer: Layer, inverse: DampedInverse) -> torch.Tensor:
        """This step's direction m = P(v): v the heavy-ball momentum buffer of the raw gradient,
        v ← μv + ∇W̃, and P the layer's damped inverse (a linear map, fixed between inversions).

        While P is fixed, m ← μm + P(∇W̃) is the same vector, and P(∇W̃) is built in the factored
        order when that is cheaper: with ∇W̃ = Eᵀ A (E the output gradients, A the inputs, one row
        per example), FOOF's ∇W̃ P = Eᵀ (A P) costs B·m̃² + B·m̃·n multiply-adds against n·m̃²
        (B < n pays), and ∇W̃ itself need not be formed. At an inversion m must become P_new(v):
        either the raw buffer v is kept (forming ∇W̃ every step, B·n·m̃) and m = P_new(v), or only
        m is kept and carried over by :meth:`invert`, m ← P_new(P_old⁻¹(m))
        (:meth:`DampedInverse.unapply`, about 2·n·m̃² once per inversion). A layer keeps the raw
        buffer where that is cheaper, T·B < m̃ (e.g. T = 1), decided at its first step.
        """
        e = self._output_grads.get(layer)
        mu = self.param_groups[0]["momentum"]
        state = self.state[layer.weight]
        if mu > 0 and self._raw.get(layer):
            raw = self._raw_gradient(layer)
            v = state.get("momentum_buffer")
            v = state["momentum_buffer"] = raw.clone() if v is None else v.mul_(mu).add_(raw)
            if "direction" not in state:  # the first step, or P changed (see invert)
                state["direction"] = inverse.apply(v)
                return state["direction"]
        if e is not None:  # P(∇W̃) from E and A, never forming ∇W̃ P's dense product
            a = _patches(layer, self._inputs[layer])
            step = inverse.apply_factored(e.reshape(-1, e.shape[-1]), a.reshape(-1, a.shape[-1]))
        else:
            step = inverse.apply(self._raw_gradient(layer))
        if mu == 0:
            return step
        m = state.get("direction")
        if m is None:
            state["direction"] = step
            return step
        state["direction"] = m.mul_(mu).add_(step)
        return state["direction"]

    @torch.no_grad()
    def _apply(self, layer: Layer, direction: torch.Tensor) -> None:
        lr = self.param_groups[0]["lr"]
        for p, d in zip(_parameters(layer), _split(layer, direction)):
            p.add_(d, alpha=-lr)

    def _end_step(self) -> None:
        self._inputs.clear()
        self._outputs.clear()
        self._output_grads.clear()
        self.steps += 1

    def _collecting(self, inv_period: int, stat_steps: int) -> bool:
        """Whether the coming step feeds the moving averages: the ``stat_steps`` steps ending with
        an inversion step (steps 0, T, 2T, ...).
        """
        r = self.steps % inv_period
        return r == 0 or r > inv_period - stat_steps

    @staticmethod
    def _ema(old: torch.Tensor | None, new: torch.Tensor, decay: float) -> torch.Tensor:
        return new if old is None else old.mul_(decay).add_(new, alpha=1 - decay)


def _stat_steps(inv_period: int, stat_steps: int | None) -> int:
    steps = min(inv_period, 10) if stat_steps is None else stat_steps
    if not 1 <= steps <= inv_period:
        raise ValueError(f"stat_steps must lie in [1, inv_period], got {steps}")
    return steps


class FOOF(_LayerwiseOptimizer):
    """FOOF: θ ← θ − η (momentum-averaged ∇W̃) (Ā + λI)⁻¹ — gradient descent on neurons.

    Ā is an exponential moving average (``decay``) of the layer inputs' second
    moment, updated during the ``stat_steps`` steps that end with each inversion
    step (default: min(``inv_period``, 10)); (Ā + λI)⁻¹ is recomputed every
    ``inv_period`` steps (steps 0, T, 2T, ...).
    η/λ plays the role of SGD's learning rate. ``order`` ("auto", "factored" or "dense") picks
    how ∇W̃ (Ā + λI)⁻¹ is built per layer; "auto" takes the one with fewer multiply-adds, and every
    order gives the same update. Needs no extra backward pass, and with :meth:`backward` no ∇W̃
    of a layer built in the factored order::

        optimizer = FOOF(model, lr=30.0, damping=100.0)
        for x, y in batches:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)   # the forward pass is observed by the optimizer
            optimizer.backward(loss)              # or loss.backward(), which also forms ∇W̃
            optimizer.step()
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float,
        damping: float,
        *,
        momentum: float = 0.9,
        decay: float = 0.95,
        inv_period: int = 100,
        stat_steps: int | None = None,
        order: str = "auto",
    ) -> None:
        super().__init__(model, lr, damping, momentum, order)
        _check_schedule(decay, inv_period)
        self.decay, self.inv_period = decay, inv_period
        self.stat_steps = _stat_steps(inv_period, stat_steps)
        self._a: dict[nn.Module, torch.Tensor] = {}
        self._record = True  # every step: the factored order needs the inputs
        self._capture = True  # a plain loss.backward() keeps the output gradients too

    def backward(
        self,
        loss: torch.Tensor,
        outputs: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
    ) -> None:
        """The gradients this step needs (``outputs`` and ``targets`` are not used; they keep
        the signature of :meth:`KFAC.backward`)."""
        self._capture = False
        try:
            self._gradients(loss)
        finally:
            self._capture = True

    def _new_inverses(self) -> dict[nn.Module, DampedInverse]:
        """Every layer's (Ā + λI)⁻¹ from the current Ā."""
        if len(self._a) < len(self.layers):
            raise RuntimeError("FOOF has no Ā yet: run a forward pass, backward and step() first")
        damping = self.param_groups[0]["damping"]
        return {
            layer: damped_inverse(
                self._a[layer],
                None,
                damping,
                where=f" of {type(layer).__name__} at step {self.steps}",
            )
            for layer in self.layers
        }

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        """One update; call after ``optimizer.backward(loss)`` (or ``loss.backward()``)."""
        if closure is not None:
            raise ValueError("FOOF.step takes no closure")
        if any(layer not in self._inputs for layer in self.layers):
            raise RuntimeError("FOOF saw no forward pass of the model since the last step")
        if self._collecting(self.inv_period, self.stat_steps):  # Ā ← decay·Ā + (1 − decay)·Ā_B
            for layer in self.layers:
                a_bar = input_factor(_patches(layer, self._inputs[layer]))
                self._a[layer] = self._ema(self._a.get(layer), a_bar, self.decay)
        self._step()  # Δ = (momentum-averaged ∇W̃)(Ā + λI)⁻¹
        self._end_step()


class KFAC(_LayerwiseOptimizer):
    """KFAC: θ ← θ − η (Ḡ + λ_G I)⁻¹ ∇W̃ (Ā + λ_A I)⁻¹ (heuristic damping) or (Ā ⊗ Ḡ + λI)⁻¹ vec ∇W̃
    (standard).

    Ā and Ḡ are exponential moving averages (``decay``) of the batch factors, updated during the
    ``stat_steps`` steps that end with each inversion step (default: min(``inv_period``, 10), as
    FOOF; at T = 1 every step), the inverses (or eigendecompositions) recomputed every
    ``inv_period`` steps; ``fisher="mc"`` draws one label per input from the model for Ḡ (a
    second backward pass, on those steps only). Replace ``loss.backward()`` by
    ``optimizer.backward(loss, outputs)``::

        optimizer = KFAC(model, lr=0.3, damping=1.0)
        for x, y in batches:
            optimizer.zero_grad()
            outputs = model(x)
            loss = F.cross_entropy(outputs, y)
            optimizer.backward(loss, outputs)   # the gradients, plus the curvature when due
            optimizer.step()
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float,
        damping: float,
        *,
        damping_kind: str = "heuristic",
        fisher: str = "mc",
        momentum: float = 0.0,
        decay: float = 0.95,
        inv_period: int = 1,
        stat_steps: int | None = None,
        loss: str = "cross_entropy",
        generator: torch.Generator | None = None,
        order: str = "auto",
    ) -> None:
        super().__init__(model, lr, damping, momentum, order)
        _check_kinds(loss, fisher)
        if damping_kind not in _DAMPING_KINDS:
            raise ValueError(
                f"unknown damping_kind {damping_kind!r}; choose one of {_DAMPING_KINDS}"
            )
        _check_schedule(decay, inv_period)
        self.damping_kind, self.fisher, self.loss = damping_kind, fisher, loss
        self.decay, self.inv_period, self.generator = decay, inv_period, generator
        self.stat_steps = _stat_steps(inv_period, stat_steps)
        self._factors: dict[nn.Module, list[torch.Tensor | None]] = {
            layer: [None, None] for layer in self.layers
        }
        self._fresh = False
        self._record = True

    def backward(
        self, loss: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor | None = None
    ) -> None:
        """The gradients this step needs, plus the curvature statistics on the steps that feed
        them (``targets`` are needed for an empirical MSE Fisher only).
        """
        missing = [layer for layer in self.layers if layer not in self._outputs]
        if missing:
            raise RuntimeError("KFAC saw no forward pass of the model before backward()")
        collecting = self._collecting(self.inv_period, self.stat_steps)
        sampled: Sequence[torch.Tensor] = ()
        if collecting and self.fisher == "mc":
            zs = [self._outputs[layer] for layer in self.layers]
            labels = sample_labels(outputs, self.loss, self.generator)
            sampled = torch.autograd.grad(_loss(outputs, labels, self.loss), zs, retain_graph=True)
        empirical = collecting and self.fisher == "empirical"
        true = self._gradients(loss, self.layers if empirical else ())
        if collecting:
            batch = outputs.shape[0]
            grads = sampled if self.fisher == "mc" else [true[layer] for layer in self.layers]
            with torch.no_grad():
                for layer, g in zip(self.layers, grads):
                    f = self._factors[layer]
                    f[0] = self._ema(
                        f[0], input_factor(_patches(layer, self._inputs[layer])), self.decay
                    )
                    f[1] = self._ema(f[1], output_factor(_positions(g) * batch), self.decay)
        self._outputs.clear()
        self._fresh = True

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        """One update; call after :meth:`backward`."""
        if closure is not None:
            raise ValueError("KFAC.step takes no closure")
        if not self._fresh:
            raise RuntimeError(
                "call optimizer.backward(loss, outputs) instead of loss.backward() "
                "before KFAC.step()"
            )
        self._step()
        self._fresh = False
        self._end_step()

    def _new_inverses(self) -> dict[nn.Module, DampedInverse]:
        """Every layer's damped inverse from the current Ā and Ḡ."""
        damping = self.param_groups[0]["damping"]
        inverses: dict[nn.Module, DampedInverse] = {}
        for layer in self.layers:
            a, g = self._factors[layer]
            if a is None or g is None:
                raise RuntimeError(
                    "KFAC has no curvature statistics yet: "
                    "call optimizer.backward(loss, outputs) first"
                )
            where = f" of {type(layer).__name__} at step {self.steps}"
            inverses[layer] = damped_inverse(a, g, damping, self.damping_kind, where=where)
        return inverses


class NaturalGradient(_LayerwiseOptimizer):
    """Exact subsampled natural gradient: θ ← θ − η (F + λI)⁻¹ g, all layers jointly, by the
    Woodbury identity.

    F = (1/B) Σ g_i g_iᵀ is built from per-example gradients on ``fisher_inputs``,
    a batch independent of the gradient's (as in the paper; pass the same batch
    for "identical data"), with labels drawn from the model (``fisher="mc"``) or
    given (``fisher="empirical"``, then ``fisher_targets`` are required)::

        optimizer = NaturalGradient(model, lr=1e-3, damping=1e-3)
        for (x, y), (x_f, _) in zip(batches, other_batches):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step(fisher_inputs=x_f)
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float,
        damping: float,
        *,
        fisher: str = "mc",
        loss: str = "cross_entropy",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(model, lr, damping, momentum=0.0)
        _check_kinds(loss, fisher)
        self.fisher, self.loss, self.generator = fisher, loss, generator

    def step(  # type: ignore[override]
        self,
        closure: None = None,
        *,
        fisher_inputs: torch.Tensor | None = None,
        fisher_targets: torch.Tensor | None = None,
    ) -> None:
        """One update from ``.grad`` and the Fisher of ``fisher_inputs``."""
        if closure is not None:
            raise ValueError("NaturalGradient.step takes no closure")
        if fisher_inputs is None:
            raise ValueError(
                "NaturalGradient.step needs fisher_inputs (a batch of inputs for the Fisher)"
            )
        grads = [self._raw_gradient(layer).clone() for layer in self.layers]
        if self.fisher == "mc":
            with torch.no_grad():
                targets = sample_labels(self.model(fisher_inputs), self.loss, self.generator)
            fisher = "empirical"  # labels already drawn
        else:
            if fisher_targets is None:
                raise ValueError("fisher='empirical' needs fisher_targets")
            targets, fisher = fisher_targets, "empirical"
        stats = layer_statistics(self.model, fisher_inputs, targets, fisher=fisher, loss=self.loss)
        directions = woodbury_solve(stats, grads, self.param_groups[0]["damping"])
        for layer, d in zip(self.layers, directions):
            if not torch.isfinite(d).all():
                raise FloatingPointError(
                    f"natural-gradient direction of {type(layer).__name__} "
                    f"at step {self.steps} is not finite"
                )
            self._apply(layer, d)
        self.steps += 1


def training_step(
    optimizer: torch.optim.Optimizer,
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    loss: str = "cross_entropy",
    fisher_inputs: torch.Tensor | None = None,
) -> torch.Tensor:
    """One update with ``optimizer`` — any torch optimizer, or FOOF, KFAC, NaturalGradient, each
    called as it needs.

    Returns the batch loss before the update (detached). A non-finite loss is returned
    without updating, so the caller can stop. ``fisher_inputs`` feeds the natural
    gradient's Fisher (default: the same batch).
    """
    _check_kinds(loss, "empirical")
    optimizer.zero_grad(set_to_none=True)
    outputs = model(inputs)
    value = _loss(outputs, targets, loss)
    if not torch.isfinite(value):
        return value.detach()
    if isinstance(optimizer, (KFAC, FOOF)):
        optimizer.backward(value, outputs, targets)
        optimizer.step()
    elif isinstance(optimizer, NaturalGradient):
        value.backward()
        optimizer.step(fisher_inputs=inputs if fisher_inputs is None else fisher_inputs)
    else:
        value.backward()
        optimizer.step()
    return value.detach()
