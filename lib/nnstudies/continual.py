"""Importance-based regularisation for continual learning: EWC, MAS, SI and the measures that explain them.

A network learns tasks one after another. After task k, every parameter θ_i gets
an importance Ω_i ≥ 0, and training on the next tasks adds the quadratic penalty

    c · Σ_i Ω_i (θ_i − θ_i^old)²,        Ω summed over the tasks seen so far,

that holds important parameters near their values θ^old at the end of the last
task (:class:`QuadraticPenalty`). The methods differ only in Ω (Benzing 2022):

Measured after a task, on single examples x (``inputs``), averaged over them:

- :func:`fisher`, ``kind="exact"`` (EWC):  F = E_x Σ_y p(y|x) (∂ log p(y|x)/∂θ)²;
  ``kind="empirical"``: the same with the true label only, E_x (∂ log p(y_x|x)/∂θ)²;
- :func:`absolute_fisher` (AF):           E_x Σ_y p(y|x) |∂ log p(y|x)/∂θ|;
- √Fisher (rEWC): the elementwise square root of the exact Fisher;
- :func:`mas` (MAS):                     E_x |∂ ‖softmax(f(x))‖² / ∂θ|  (``on="logits"``: ‖f(x)‖²).

Accumulated along the training trajectory of a task (hooks around
``optimizer.step()``; the exact call order is in :class:`PathAccumulator`):

- :class:`SynapticIntelligence`, with g_t the task loss's gradient on the step's
  minibatch and Δθ_t = θ_{t+1} − θ_t the step actually taken,
  ``"SI"``:  ω = Σ_t −g_t ⊙ Δθ_t;
  ``"SIU"``: ω = Σ_t −g'_t ⊙ Δθ_t with g'_t from an independent minibatch (unbiased);
  ``"SIB"``: ω = Σ_t −(g_t − g'_t) ⊙ Δθ_t (the bias alone);
  and at the task's end Ω = max(0, ω / (Δ² + ξ)), Δ the total change over the task,
  ξ the damping;
- :class:`SOS`:  v ← β v + (1 − β) g_t², Ω = √(v / (1 − β^T)) (Adam's bias-corrected
  second moment of the task loss's minibatch gradient, β = 0.999, T steps);
- :class:`OnAF`: ω = Σ_t |g_t|, Ω = max(0, ω / (Δ² + ξ)) (rescaled like SI, as in the
  authors' code).

Per-example quantities use ``torch.func`` (``functional_call`` + ``vmap``/``grad``),
never a Python loop over examples. For networks made only of ``nn.Linear`` layers
and parameter-free modules (``nnstudies.MLP``), the default engine uses that a
linear layer's per-example weight gradient is an outer product δ aᵀ, so that
f(δ aᵀ) = f(δ) f(a)ᵀ for f = square or abs: ``vmap(grad)`` gives the per-example
output sensitivities δ, and a matrix product sums over examples without ever
holding one gradient per example. Other models use ``vmap(grad)`` over all
parameters, in chunks.

Benchmarks: :func:`permuted_tasks` (single head: every task a fixed permutation of
the input features) and :func:`split_tasks` (multi-head: every task a few classes;
see :class:`Task` for how heads are implemented). :func:`run_continual` trains on
them one after another and returns the accuracy matrix and the importances.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, jacrev, vmap

from .data import Dataset
from .progress import progress
from .training import DivergenceError, History

__all__ = [
    "METHODS",
    "POSTHOC",
    "PATH",
    "ContinualResult",
    "OnAF",
    "PathAccumulator",
    "QuadraticPenalty",
    "SOS",
    "SynapticIntelligence",
    "Task",
    "absolute_fisher",
    "compute_importance",
    "fisher",
    "mas",
    "minibatch_gradient",
    "pearson",
    "permuted_tasks",
    "run_continual",
    "split_tasks",
    "task_accuracy",
]

Importances = list[torch.Tensor]

POSTHOC = ("EWC", "sqrtFisher", "AF", "MAS")
PATH = ("SI", "SIU", "SIB", "SOS", "OnAF")
METHODS = ("none", *POSTHOC, *PATH)


# ----------------------------------------------------------------------------- checks


def _check_inputs(model: nn.Module, inputs: torch.Tensor) -> None:
    if not isinstance(inputs, torch.Tensor) or inputs.ndim < 2 or len(inputs) == 0:
        raise ValueError(f"inputs must be a non-empty batch (N, ...) of examples, got {getattr(inputs, 'shape', type(inputs))}")
    if not any(True for _ in model.parameters()):
        raise ValueError("the model has no parameters")


def _check_finite(values: Importances, what: str) -> Importances:
    for i, v in enumerate(values):
        if not torch.isfinite(v).all():
            raise ValueError(f"{what}: importance of parameter {i} (shape {tuple(v.shape)}) is not finite")
    return values


def check_like_model(values: Sequence[torch.Tensor], model: nn.Module, what: str = "importances") -> None:
    """Raise a ``ValueError`` unless ``values`` has one tensor per parameter of ``model``, shaped alike."""
    params = list(model.parameters())
    if len(values) != len(params):
        raise ValueError(f"{what}: {len(values)} tensors for a model with {len(params)} parameters")
    for i, (v, p) in enumerate(zip(values, params)):
        if tuple(v.shape) != tuple(p.shape):
            raise ValueError(f"{what}: tensor {i} has shape {tuple(v.shape)}, the model's parameter {tuple(p.shape)}")


def _head(logits: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
    """The logits of the task's head: the columns ``classes`` (all when ``None``)."""
    return logits if classes is None else logits[..., classes]


def _as_index(classes: Sequence[int] | torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    return None if classes is None else torch.as_tensor(list(classes) if not isinstance(classes, torch.Tensor) else classes,
                                                         dtype=torch.long, device=device)


# ----------------------------------------------------------------------------- per-example engines

# A "quantity" names what is summed over examples n (and labels y where it says so):
#   "fisher":    Σ_y p_ny g_ny²   with g_ny = ∂ log p(y|x_n)/∂θ
#   "absolute":  Σ_y p_ny |g_ny|
#   "empirical": g_{n,y_n}²
#   "mas_probs": |∂ ‖softmax(f(x_n))‖²/∂θ|,  "mas_logits": |∂ ‖f(x_n)‖²/∂θ|
_QUANTITIES = ("fisher", "absolute", "empirical", "mas_probs", "mas_logits")


def _scalar_of(quantity: str, logits: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """The per-example scalar whose gradient is taken (label-free quantities and the empirical Fisher)."""
    if quantity == "empirical":
        return logits.log_softmax(-1).gather(-1, target.reshape(1)).squeeze(-1)
    if quantity == "mas_probs":
        return logits.softmax(-1).square().sum()
    return logits.square().sum()  # mas_logits


def _combine(quantity: str, per_label: torch.Tensor, probs: torch.Tensor | None) -> torch.Tensor:
    """Σ over labels of p f(g) for fisher/absolute ((N, C, ...) → (N, ...)); f(g) for the scalar quantities."""
    if quantity in ("fisher", "absolute"):
        f = per_label.square() if quantity == "fisher" else per_label.abs()
        assert probs is not None
        return torch.einsum("nc,nc...->n...", probs, f)
    return per_label.square() if quantity == "empirical" else per_label.abs()


def _vmap_engine(model: nn.Module, x: torch.Tensor, quantity: str, targets: torch.Tensor | None,
                 classes: torch.Tensor | None, chunk_size: int | None, budget: int = 2**26) -> Importances:
    """Σ_n of the quantity, by ``vmap`` over examples of ``grad``/``jacrev`` w.r.t. all parameters.

    Without ``chunk_size``, each ``vmap`` call takes as many examples as keep its
    per-example (per-label) gradients to about ``budget`` numbers (256 MiB in float32).
    """
    if chunk_size is None:
        labels = _head(model(x[:1]), classes).shape[-1] if quantity in ("fisher", "absolute") else 1
        n_params = sum(p.numel() for p in model.parameters())
        chunk_size = max(1, min(256, budget // (n_params * labels)))
    names = [n for n, _ in model.named_parameters()]
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def logits_of(p: dict[str, torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
        return _head(functional_call(model, (p, buffers), (xi.unsqueeze(0),))[0], classes)

    if quantity in ("fisher", "absolute"):
        per_example = vmap(jacrev(lambda p, xi: logits_of(p, xi).log_softmax(-1)), in_dims=(None, 0))
    else:
        per_example = vmap(grad(lambda p, xi, ti: _scalar_of(quantity, logits_of(p, xi), ti)), in_dims=(None, 0, 0))
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    for start in range(0, len(x), chunk_size):
        xs = x[start : start + chunk_size]
        if quantity in ("fisher", "absolute"):
            probs = _head(model(xs), classes).softmax(-1)
            grads = per_example(params, xs)
        else:
            ts = targets[start : start + chunk_size] if targets is not None else torch.zeros(len(xs), dtype=torch.long, device=x.device)
            probs = None
            grads = per_example(params, xs, ts)
        for n in names:
            total[n] += _combine(quantity, grads[n], probs).sum(0)
    return [total[n] for n in names]


def _linear_layers(model: nn.Module) -> list[nn.Linear] | None:
    """The ``nn.Linear`` children of a sequential model that has no other parameters or buffers, else ``None``."""
    if not isinstance(model, nn.Sequential):
        return None
    linears = []
    for child in model:
        if isinstance(child, nn.Linear):
            linears.append(child)
        elif any(True for _ in child.parameters()) or any(True for _ in child.buffers()):
            return None
    owned = {id(p) for layer in linears for p in layer.parameters()}
    if not linears or owned != {id(p) for p in model.parameters()}:
        return None
    return linears


def _linear_engine(model: nn.Sequential, x: torch.Tensor, quantity: str, targets: torch.Tensor | None,
                   classes: torch.Tensor | None, chunk_size: int) -> Importances:
    """Σ_n of the quantity for a sequence of linear layers, without per-example weight gradients.

    For one example, layer l's weight gradient is δ_l a_lᵀ, with a_l the layer's input and
    δ_l = ∂s/∂z_l the sensitivity of the scalar s to the layer's output z_l. Since
    f(δ aᵀ) = f(δ) f(a)ᵀ for f = square and f = abs, Σ_n f(g_n) = f(Δ)ᵀ f(A) with Δ, A
    stacking δ_n and a_n over the examples (and the label sum weighted into f(Δ)).
    The δ's come from ``vmap`` over examples of ``grad`` (``jacrev`` for all labels)
    with respect to zero perturbations e_l added to each layer's output.
    """
    linears = _linear_layers(model)
    assert linears is not None
    layer_of = {id(layer): i for i, layer in enumerate(linears)}

    def run(h: torch.Tensor, eps: list[torch.Tensor] | None, acts: list[torch.Tensor] | None) -> torch.Tensor:
        for child in model:
            if isinstance(child, nn.Linear):
                if acts is not None:
                    acts.append(h)
                bias = None if child.bias is None else child.bias.detach()
                h = F.linear(h, child.weight.detach(), bias)
                if eps is not None:
                    h = h + eps[layer_of[id(child)]]
            else:
                h = child(h)
        return h

    def logits_of(eps: list[torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
        return _head(run(xi.unsqueeze(0), eps, None)[0], classes)

    zeros = [torch.zeros(layer.out_features, dtype=x.dtype, device=x.device) for layer in linears]
    if quantity in ("fisher", "absolute"):
        per_example = vmap(jacrev(lambda e, xi: logits_of(e, xi).log_softmax(-1)), in_dims=(None, 0))
    else:
        per_example = vmap(grad(lambda e, xi, ti: _scalar_of(quantity, logits_of(e, xi), ti)), in_dims=(None, 0, 0))
    square = quantity in ("fisher", "empirical")
    totals: list[list[torch.Tensor]] = [[torch.zeros_like(p) for p in layer.parameters()] for layer in linears]
    for start in range(0, len(x), chunk_size):
        xs = x[start : start + chunk_size]
        acts: list[torch.Tensor] = []
        logits = _head(run(xs, None, acts), classes)
        if any(a.ndim != 2 for a in acts):
            raise ValueError("the linear engine needs 2-D inputs to every linear layer; use engine='vmap'")
        if quantity in ("fisher", "absolute"):
            deltas, probs = per_example(zeros, xs), logits.softmax(-1)
        else:
            ts = targets[start : start + chunk_size] if targets is not None else torch.zeros(len(xs), dtype=torch.long, device=x.device)
            deltas, probs = per_example(zeros, xs, ts), None
        for i, layer in enumerate(linears):
            d = _combine(quantity, deltas[i], probs)  # (n, out): Σ_y p f(δ) or f(δ)
            a = acts[i].square() if square else acts[i].abs()
            totals[i][0] += d.T @ a  # weight (out, in)
            if layer.bias is not None:
                totals[i][1] += d.sum(0)
    by_id = {id(p): t for layer, ts in zip(linears, totals) for p, t in zip(layer.parameters(), ts)}
    return [by_id[id(p)] for p in model.parameters()]


def _importance(model: nn.Module, inputs: torch.Tensor, quantity: str, *, targets: torch.Tensor | None = None,
                classes: Sequence[int] | torch.Tensor | None = None, engine: str = "auto",
                chunk_size: int | None = None) -> Importances:
    """The mean over ``inputs`` of a per-example quantity (see ``_QUANTITIES``), one tensor per parameter."""
    _check_inputs(model, inputs)
    if quantity not in _QUANTITIES:
        raise ValueError(f"unknown quantity {quantity!r}")
    if engine not in ("auto", "linear", "vmap"):
        raise ValueError(f"unknown engine {engine!r}; choose 'auto', 'linear' or 'vmap'")
    linear_ok = _linear_layers(model) is not None
    if engine == "linear" and not linear_ok:
        raise ValueError("engine='linear' needs a sequential model of nn.Linear layers and parameter-free modules")
    use_linear = linear_ok and engine != "vmap"
    idx = _as_index(classes, inputs.device)
    was_training = model.training
    model.eval()  # dropout off: importances of the deterministic network
    try:
        with torch.no_grad():
            if use_linear:
                total = _linear_engine(model, inputs, quantity, targets, idx, chunk_size or 256)  # type: ignore[arg-type]
            else:
                total = _vmap_engine(model, inputs, quantity, targets, idx, chunk_size)
    finally:
        model.train(was_training)
    return _check_finite([t / len(inputs) for t in total], quantity)


def fisher(model: nn.Module, inputs: torch.Tensor, *, kind: str = "exact", targets: torch.Tensor | None = None,
           classes: Sequence[int] | None = None, engine: str = "auto") -> Importances:
    """The diagonal Fisher information (EWC's importance), averaged over ``inputs``.

    ``kind="exact"``:     F = (1/N) Σ_n Σ_y p(y|x_n) (∂ log p(y|x_n)/∂θ)², labels summed
    with the model's own probabilities;
    ``kind="empirical"``: F = (1/N) Σ_n (∂ log p(y_n|x_n)/∂θ)² with the true ``targets`` y_n.

    ``classes`` restricts the softmax to a task's head (split tasks); ``targets`` then
    index into ``classes``. Returns one tensor per parameter, shaped like it.
    """
    if kind == "exact":
        if targets is not None:
            raise ValueError("the exact Fisher sums over all labels; targets are only for kind='empirical'")
        return _importance(model, inputs, "fisher", classes=classes, engine=engine)
    if kind == "empirical":
        if targets is None or targets.shape != inputs.shape[:1]:
            raise ValueError(f"kind='empirical' needs one target per input, got {None if targets is None else tuple(targets.shape)}")
        return _importance(model, inputs, "empirical", targets=targets, classes=classes, engine=engine)
    raise ValueError(f"unknown Fisher kind {kind!r}; choose 'exact' or 'empirical'")


def absolute_fisher(model: nn.Module, inputs: torch.Tensor, *, classes: Sequence[int] | None = None,
                    engine: str = "auto") -> Importances:
    """AF: (1/N) Σ_n Σ_y p(y|x_n) |∂ log p(y|x_n)/∂θ|, the Fisher with |·| in place of (·)²."""
    return _importance(model, inputs, "absolute", classes=classes, engine=engine)


def mas(model: nn.Module, inputs: torch.Tensor, *, on: str = "probs", classes: Sequence[int] | None = None,
        engine: str = "auto") -> Importances:
    """MAS: (1/N) Σ_n |∂ ‖softmax(f(x_n))‖² / ∂θ| (``on="probs"``) or |∂ ‖f(x_n)‖² / ∂θ| (``on="logits"``).

    Per example, as in Aljundi et al. (2018) and Benzing (2022); not the gradient of a
    batch mean (which would let examples' gradients cancel before the |·|).
    """
    if on not in ("probs", "logits"):
        raise ValueError(f"unknown MAS output {on!r}; choose 'probs' or 'logits'")
    return _importance(model, inputs, f"mas_{on}", classes=classes, engine=engine)


def compute_importance(method: str, model: nn.Module, inputs: torch.Tensor, *,
                       classes: Sequence[int] | None = None) -> Importances:
    """Ω of a measure computed after a task: ``"EWC"`` (exact Fisher), ``"sqrtFisher"``, ``"AF"``, ``"MAS"``."""
    if method == "EWC":
        return fisher(model, inputs, classes=classes)
    if method == "sqrtFisher":
        return [f.sqrt() for f in fisher(model, inputs, classes=classes)]
    if method == "AF":
        return absolute_fisher(model, inputs, classes=classes)
    if method == "MAS":
        return mas(model, inputs, classes=classes)
    raise ValueError(f"{method!r} is not measured after a task; choose one of {POSTHOC}")


# ----------------------------------------------------------------------------- path-based accumulators


def minibatch_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                       classes: Sequence[int] | torch.Tensor | None = None) -> Importances:
    """∇θ of the mean cross-entropy on ``(x, y)`` (``p.grad`` is left untouched)."""
    idx = classes if classes is None or isinstance(classes, torch.Tensor) else _as_index(classes, x.device)
    loss = F.cross_entropy(_head(model(x), idx), y)
    return [g.detach() for g in torch.autograd.grad(loss, list(model.parameters()))]


class PathAccumulator:
    """Base of the importances accumulated during a task's training.

    Call order, for every task::

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
            raise RuntimeError("before_step() reads p.grad: call it after the task loss's backward()")
        if self.needs_independent:
            if independent is None:
                raise ValueError(f"{type(self).__name__} needs the gradient on an independent minibatch (independent=...)")
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
        ind = self._independent
        for w, gi, d, k in zip(self.omega, g, delta, range(len(g))):
            if self.variant == "SI":
                w.sub_(gi * d)
            elif self.variant == "SIU":
                w.sub_(ind[k] * d)  # type: ignore[index]
            else:
                w.sub_((gi - ind[k]) * d)  # type: ignore[index]

    def _omega(self, total_change: list[torch.Tensor]) -> Importances:
        return [(w / (t.square() + self.damping)).clamp_min(0) for w, t in zip(self.omega, total_change)]


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
        correction = 1 - self.beta ** self.steps
        return [(v / correction).sqrt() for v in self.v]


class OnAF(PathAccumulator):
    """Online absolute Fisher: ω = Σ_t |g_t|, Ω = max(0, ω / (Δ² + ξ)) (rescaled as SI is)."""

    def __init__(self, model: nn.Module, *, damping: float = 0.1) -> None:
        if not (damping > 0 and math.isfinite(damping)):
            raise ValueError(f"damping must be positive and finite, got {damping}")
        super().__init__(model)
        self.damping = damping
        self.omega: list[torch.Tensor] = []

    def _reset(self) -> None:
        self.omega = [torch.zeros_like(p) for p in self._params]

    def _on_gradient(self, g: list[torch.Tensor]) -> None:
        for w, gi in zip(self.omega, g):
            w.add_(gi.abs())

    def _omega(self, total_change: list[torch.Tensor]) -> Importances:
        return [(w / (t.square() + self.damping)).clamp_min(0) for w, t in zip(self.omega, total_change)]


def make_accumulator(method: str, model: nn.Module, *, damping: float = 0.1) -> PathAccumulator:
    """The accumulator of a path-based method (``"SI"``, ``"SIU"``, ``"SIB"``, ``"SOS"``, ``"OnAF"``)."""
    if method in ("SI", "SIU", "SIB"):
        return SynapticIntelligence(model, damping=damping, variant=method)
    if method == "SOS":
        return SOS(model)
    if method == "OnAF":
        return OnAF(model, damping=damping)
    raise ValueError(f"{method!r} is not accumulated during training; choose one of {PATH}")


# ----------------------------------------------------------------------------- the penalty


class QuadraticPenalty:
    """c · Σ_i Ω_i (θ_i − θ_i^old)², with Ω the importances summed over the tasks so far.

    ``importances`` and ``anchor`` are lists of tensors shaped like ``model.parameters()``;
    importances must be finite and non-negative. Its gradient is 2c Ω ⊙ (θ − θ^old).
    """

    def __init__(self, importances: Sequence[torch.Tensor], anchor: Sequence[torch.Tensor], strength: float) -> None:
        if not (isinstance(strength, (int, float)) and strength >= 0 and math.isfinite(strength)):
            raise ValueError(f"strength must be a finite number >= 0, got {strength!r}")
        importances, anchor = list(importances), list(anchor)
        if len(importances) != len(anchor):
            raise ValueError(f"{len(importances)} importances but {len(anchor)} anchor tensors")
        for i, (o, a) in enumerate(zip(importances, anchor)):
            if o.shape != a.shape:
                raise ValueError(f"importance {i} has shape {tuple(o.shape)}, its anchor {tuple(a.shape)}")
        _check_finite(importances, "QuadraticPenalty")
        if any((o < 0).any() for o in importances):
            raise ValueError("importances must be non-negative")
        self.importances = [o.detach() for o in importances]
        self.anchor = [a.detach().clone() for a in anchor]
        self.strength = float(strength)

    def add_task(self, importances: Sequence[torch.Tensor], anchor: Sequence[torch.Tensor]) -> QuadraticPenalty:
        """A penalty with Ω + ``importances`` and the new ``anchor`` (θ at the end of the new task)."""
        if len(importances) != len(self.importances):
            raise ValueError(f"{len(importances)} new importances for {len(self.importances)} parameters")
        summed = [o + n.detach() for o, n in zip(self.importances, importances)]
        return QuadraticPenalty(summed, anchor, self.strength)

    def __call__(self, model: nn.Module) -> torch.Tensor:
        params = list(model.parameters())
        check_like_model(self.importances, model, "QuadraticPenalty")
        total = sum(((o * (p - a).square()).sum() for o, p, a in zip(self.importances, params, self.anchor)),
                    torch.zeros((), device=params[0].device, dtype=params[0].dtype))
        return self.strength * total


# ----------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class Task:
    """One task of a continual-learning benchmark, its data on one device.

    ``classes`` is ``None`` for a single-head task (all outputs compete). For a
    multi-head (split) task it lists the output units of its head: the network keeps
    one output per class of the whole data set, a task's logits are the columns
    ``classes`` (the other outputs are ignored — masked out — in its loss, its
    importances and its accuracy), and its labels ``y_*`` are positions in ``classes``
    (0 … k−1). Since tasks' classes are disjoint, each head's output weights are its own.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[int, ...] | None = None

    def to(self, device: torch.device | str) -> Task:
        return Task(self.name, *(t.to(device) for t in (self.x_train, self.y_train, self.x_val, self.y_val,
                                                         self.x_test, self.y_test)), self.classes)


def _train_val(dataset: Dataset, validation: float, seed: int) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_val, y_val): a random ``validation`` fraction of the training set held out."""
    if not 0 <= validation < 1:
        raise ValueError(f"validation must be a fraction in [0, 1), got {validation}")
    n = len(dataset.y_train)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(dataset.x_train.device)
    n_val = int(round(validation * n))
    val, train = order[:n_val], order[n_val:]
    return dataset.x_train[train], dataset.y_train[train], dataset.x_train[val], dataset.y_train[val]


def permuted_tasks(dataset: Dataset, n_tasks: int, seed: int, *, validation: float = 0.0) -> list[Task]:
    """``n_tasks`` single-head tasks, each the data set with its input features in a fixed random order.

    Every task's permutation (of the flattened input) is drawn from ``seed``; all tasks
    use the same examples. ``validation`` holds out that fraction of the training set.
    """
    if not isinstance(n_tasks, int) or n_tasks < 1:
        raise ValueError(f"n_tasks must be a positive int, got {n_tasks!r}")
    xtr, ytr, xva, yva = _train_val(dataset, validation, seed)
    generator = torch.Generator().manual_seed(seed)
    d = dataset.in_features
    tasks = []
    for k in range(n_tasks):
        perm = torch.randperm(d, generator=generator).to(xtr.device)

        def p(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(len(x), d)[:, perm].reshape(x.shape)

        tasks.append(Task(f"permutation {k + 1}", p(xtr), ytr, p(xva), yva, p(dataset.x_test), dataset.y_test))
    return tasks


def split_tasks(dataset: Dataset, classes_per_task: int, *, validation: float = 0.0, seed: int = 0) -> list[Task]:
    """Multi-head tasks of ``classes_per_task`` consecutive classes each: (0, 1), (2, 3), … for 2.

    Labels become positions within the task's classes; see :class:`Task` for the heads.
    """
    c = dataset.num_classes
    if not isinstance(classes_per_task, int) or classes_per_task < 2 or c % classes_per_task:
        raise ValueError(f"classes_per_task must be an int >= 2 dividing the {c} classes, got {classes_per_task!r}")
    xtr, ytr, xva, yva = _train_val(dataset, validation, seed)
    tasks = []
    for start in range(0, c, classes_per_task):
        classes = tuple(range(start, start + classes_per_task))

        def pick(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            keep = (y >= start) & (y < start + classes_per_task)
            return x[keep], y[keep] - start

        tasks.append(Task(f"classes {classes}", *pick(xtr, ytr), *pick(xva, yva), *pick(dataset.x_test, dataset.y_test),
                          classes=classes))
    return tasks


@torch.no_grad()
def task_accuracy(model: nn.Module, task: Task, split: str = "test", *, batch_size: int = 4096) -> float:
    """Accuracy of ``model`` on ``task`` (its head only for split tasks); ``split`` is "train", "val" or "test"."""
    x, y = {"train": (task.x_train, task.y_train), "val": (task.x_val, task.y_val),
            "test": (task.x_test, task.y_test)}[split]
    if len(y) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    idx = _as_index(task.classes, x.device)
    correct = 0
    for start in range(0, len(y), batch_size):
        logits = _head(model(x[start : start + batch_size]), idx)
        correct += (logits.argmax(1) == y[start : start + batch_size]).sum().item()
    model.train(was_training)
    return correct / len(y)


# ----------------------------------------------------------------------------- training


@dataclass
class ContinualResult:
    """What :func:`run_continual` returns.

    ``accuracy[i, j]``: test accuracy on task j after training task i (tasks not yet
    trained included); ``val_accuracy`` the same on the validation split (NaN when
    there is none). ``importances[name][k]``: Ω of task k alone (not summed) for the
    method and every tracked measure; ``seconds``: wall time.
    """

    accuracy: torch.Tensor
    val_accuracy: torch.Tensor
    importances: dict[str, list[Importances]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def average_accuracy(self) -> float:
        """Mean test accuracy over all tasks after the last one."""
        return float(self.accuracy[-1].mean())

    @property
    def average_val_accuracy(self) -> float:
        return float(self.val_accuracy[-1].mean())

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "val_accuracy": self.val_accuracy, "importances": self.importances,
                "seconds": self.seconds}

    @classmethod
    def from_dict(cls, d: dict) -> ContinualResult:
        return cls(d["accuracy"], d["val_accuracy"], d["importances"], d["seconds"])


def run_continual(
    model_fn: Callable[[], nn.Module],
    tasks: Sequence[Task],
    method: str,
    strength: float,
    *,
    epochs: int = 5,
    batch_size: int = 64,
    lr: float = 1e-3,
    damping: float = 0.1,
    n_importance: int = 1000,
    track: Sequence[str] = (),
    seed: int = 0,
    device: torch.device | str | None = None,
    show_progress: bool = True,
    desc: str | None = None,
    threads: int | None = None,
) -> ContinualResult:
    """Train ``model_fn()`` on ``tasks`` in order with ``method``'s quadratic penalty of strength ``strength``.

    Each task: Adam (learning rate ``lr``, state reset at the task's start) for
    ``epochs`` passes over the task's training set in minibatches of ``batch_size``;
    loss = cross-entropy (the task's head) + c Σ Ω (θ − θ^old)² with Ω summed over
    earlier tasks. At the task's end the method's Ω is measured (the post-hoc
    measures on the task's first ``n_importance`` training inputs) and added. ``method``
    is one of :data:`METHODS` (``"none"``: no penalty). ``track`` names more measures
    to compute alongside on the same trajectory (they do not change training; SIU
    and SIB draw their independent minibatches from a generator of their own).
    ``threads`` sets torch's intra-op threads for the run (restored afterwards): small
    networks on a busy CPU train faster on one thread than on several.
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run_continual(model_fn, tasks, method, strength, epochs=epochs, batch_size=batch_size, lr=lr,
                              damping=damping, n_importance=n_importance, track=track, seed=seed, device=device,
                              show_progress=show_progress, desc=desc)
    finally:
        torch.set_num_threads(previous)


def _run_continual(
    model_fn: Callable[[], nn.Module],
    tasks: Sequence[Task],
    method: str,
    strength: float,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    damping: float,
    n_importance: int,
    track: Sequence[str],
    seed: int,
    device: torch.device | str | None,
    show_progress: bool,
    desc: str | None,
) -> ContinualResult:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    unknown = [t for t in track if t not in METHODS or t == "none"]
    if unknown:
        raise ValueError(f"unknown measures to track {unknown}; choose from {METHODS[1:]}")
    if not tasks:
        raise ValueError("no tasks")
    if epochs < 1 or batch_size < 1 or n_importance < 1:
        raise ValueError(f"epochs, batch_size and n_importance must be >= 1, got {epochs}, {batch_size}, {n_importance}")
    import time

    started = time.perf_counter()
    torch.manual_seed(seed)
    model = model_fn()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    tasks = [t.to(device) for t in tasks]
    measures = list(dict.fromkeys(([method] if method != "none" else []) + list(track)))
    accumulators = {m: make_accumulator(m, model, damping=damping) for m in measures if m in PATH}
    need_independent = any(a.needs_independent for a in accumulators.values())
    order_gen = torch.Generator().manual_seed(seed)
    indep_gen = torch.Generator().manual_seed(seed + 10_007)
    penalty: QuadraticPenalty | None = None
    n_tasks = len(tasks)
    acc = torch.full((n_tasks, n_tasks), float("nan"))
    val = torch.full((n_tasks, n_tasks), float("nan"))
    importances: dict[str, list[Importances]] = {m: [] for m in measures}
    steps_per_task = sum(epochs * math.ceil(len(t.y_train) / batch_size) for t in tasks)
    step = 0
    with progress(total=steps_per_task, desc=desc or f"{method} c={strength:g}", disable=not show_progress) as bar:
        for k, task in enumerate(tasks):
            idx = _as_index(task.classes, device)
            opt = torch.optim.Adam(model.parameters(), lr=lr)  # reset per task, as in the paper
            for a in accumulators.values():
                a.begin_task()
            n = len(task.y_train)
            model.train()
            for _ in range(epochs):
                order = torch.randperm(n, generator=order_gen).to(device)
                for start in range(0, n, batch_size):
                    index = order[start : start + batch_size]
                    opt.zero_grad(set_to_none=True)
                    loss = F.cross_entropy(_head(model(task.x_train[index]), idx), task.y_train[index])
                    value = loss.item()
                    step += 1
                    if not math.isfinite(value):
                        raise DivergenceError(step, value, History(), f" (task {k + 1}, {method}, c={strength:g})")
                    loss.backward()
                    independent = None
                    if need_independent:
                        other = torch.randint(n, (len(index),), generator=indep_gen).to(device)
                        independent = minibatch_gradient(model, task.x_train[other], task.y_train[other], classes=idx)
                    for a in accumulators.values():
                        a.before_step(independent=independent)
                    if penalty is not None and strength > 0:
                        penalty(model).backward()
                    opt.step()
                    for a in accumulators.values():
                        a.after_step()
                    bar.update(1)
            inputs = task.x_train[:n_importance]
            fisher_cache: Importances | None = None
            for m in measures:
                if m in PATH:
                    omega = accumulators[m].end_task()
                elif m in ("EWC", "sqrtFisher"):
                    fisher_cache = fisher_cache or fisher(model, inputs, classes=task.classes)
                    omega = fisher_cache if m == "EWC" else [f.sqrt() for f in fisher_cache]
                else:
                    omega = compute_importance(m, model, inputs, classes=task.classes)
                importances[m].append([o.detach().cpu() for o in omega])
            if method != "none":
                anchor = [p.detach().clone() for p in model.parameters()]
                own = [o.to(device) for o in importances[method][-1]]
                penalty = QuadraticPenalty(own, anchor, strength) if penalty is None else penalty.add_task(own, anchor)
            for j, other_task in enumerate(tasks):
                acc[k, j] = task_accuracy(model, other_task, "test")
                val[k, j] = task_accuracy(model, other_task, "val")
            bar.set_postfix(task=k + 1, avg_acc=f"{acc[k, : k + 1].mean():.3f}", refresh=False)
    return ContinualResult(acc, val, importances, time.perf_counter() - started)


def pearson(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    """Pearson correlation of two importances over all parameters (each flattened and concatenated)."""
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        raise ValueError("the two importances must have the same number and shapes of tensors")
    x = torch.cat([t.reshape(-1) for t in a]).double()
    y = torch.cat([t.reshape(-1) for t in b]).double()
    x, y = x - x.mean(), y - y.mean()
    denominator = (x.norm() * y.norm()).item()
    if denominator == 0:
        raise ValueError("an importance is constant; its correlation is undefined")
    return float((x @ y).item() / denominator)
