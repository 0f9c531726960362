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
- :func:`sqrt_fisher` (√Fisher, rEWC):   √F, elementwise;
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

:data:`METHODS` is the registry: a method's name → :class:`Method` (how its Ω is
obtained, its label and its colour). :func:`continual_step` is one training update
(task loss, SI-type accumulators, the penalty, Adam); :func:`run_continual` runs it
through :func:`nnstudies.training.fit`, task after task, Adam reset at every task.

Per-example quantities never loop over examples in Python. :func:`per_example_output`
says what is differentiated for one example and :func:`per_example_importance` what is
done with its gradients. For networks made only of ``nn.Linear`` layers and
parameter-free modules (``nnstudies.MLP``), the default engine uses that a linear
layer's per-example weight gradient is an outer product δ aᵀ, so that
f(δ aᵀ) = f(δ) f(a)ᵀ for f = square or abs: one forward pass and plain batch backward
passes (one, or one per label) give every example's output sensitivities δ, and a
matrix product sums over examples without ever holding one gradient per example
(:func:`_linear_engine`). Other models use ``torch.func`` (``vmap`` of
``grad``/``jacrev`` over all parameters, in chunks: :func:`_vmap_engine`).

The benchmarks (Permuted and Split tasks) are in :mod:`nnstudies.tasks.continual`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, jacrev, vmap

from .device import threads as threads_
from .tasks.continual import Task, head_logits, task_accuracy
from .training import History, fit, minibatches

__all__ = [
    "METHODS",
    "PATH",
    "POSTHOC",
    "SOS",
    "ContinualResult",
    "Method",
    "OnAF",
    "PathAccumulator",
    "QuadraticPenalty",
    "SynapticIntelligence",
    "absolute_fisher",
    "continual_step",
    "fisher",
    "mas",
    "minibatch_gradient",
    "pearson",
    "per_example_importance",
    "per_example_output",
    "run_continual",
    "sqrt_fisher",
    "train_task",
    "vmap_importance",
]

Importances = list[torch.Tensor]


# ----------------------------------------------------------------------------- checks


def _check_inputs(model: nn.Module, inputs: torch.Tensor) -> None:
    if not isinstance(inputs, torch.Tensor) or inputs.ndim < 2 or len(inputs) == 0:
        raise ValueError(
            f"inputs must be a non-empty batch (N, ...) of examples, got {getattr(inputs, 'shape', type(inputs))}"
        )
    if not any(True for _ in model.parameters()):
        raise ValueError("the model has no parameters")


def _check_finite(values: Importances, what: str) -> Importances:
    for i, v in enumerate(values):
        if not torch.isfinite(v.sum()):  # one pass; a sum is finite only if every term is
            raise ValueError(
                f"{what}: importance of parameter {i} (shape {tuple(v.shape)}) is not finite"
            )
    return values


def check_like_model(
    values: Sequence[torch.Tensor], model: nn.Module, what: str = "importances"
) -> None:
    """Raise a ``ValueError`` unless ``values`` has one tensor per parameter of ``model``, shaped alike."""
    params = list(model.parameters())
    if len(values) != len(params):
        raise ValueError(f"{what}: {len(values)} tensors for a model with {len(params)} parameters")
    for i, (v, p) in enumerate(zip(values, params)):
        if tuple(v.shape) != tuple(p.shape):
            raise ValueError(
                f"{what}: tensor {i} has shape {tuple(v.shape)}, the model's parameter {tuple(p.shape)}"
            )


def _as_index(
    classes: Sequence[int] | torch.Tensor | None, device: torch.device
) -> torch.Tensor | None:
    if classes is None:
        return None
    values = classes if isinstance(classes, torch.Tensor) else list(classes)
    return torch.as_tensor(values, dtype=torch.long, device=device)


# ----------------------------------------------------------------------------- what each measure sums

# A "quantity" names what is summed over examples n (and labels y where it says so):
#   "fisher":    Σ_y p_ny g_ny²   with g_ny = ∂ log p(y|x_n)/∂θ
#   "absolute":  Σ_y p_ny |g_ny|
#   "empirical": g_{n,y_n}²
#   "mas_probs": |∂ ‖softmax(f(x_n))‖²/∂θ|,  "mas_logits": |∂ ‖f(x_n)‖²/∂θ|
_QUANTITIES = ("fisher", "absolute", "empirical", "mas_probs", "mas_logits")
_PER_LABEL = ("fisher", "absolute")  # one gradient per label, weighted by the model's p(y|x)


def per_example_output(
    quantity: str, logits: torch.Tensor, target: torch.Tensor | None = None
) -> torch.Tensor:
    """What is differentiated for ONE example, from its (head's) logits f(x).

    ``"fisher"``, ``"absolute"``: log p(y|x) for every label y (a vector: one gradient per label);
    ``"empirical"``: log p(y_n|x) for the true label y_n = ``target``;
    ``"mas_probs"``: ‖softmax(f(x))‖²;  ``"mas_logits"``: ‖f(x)‖².
    """
    if quantity in _PER_LABEL:
        return logits.log_softmax(-1)
    if quantity == "empirical":
        assert target is not None
        return logits.log_softmax(-1).gather(-1, target.reshape(1)).squeeze(-1)
    if quantity == "mas_probs":
        return logits.softmax(-1).square().sum()
    return logits.square().sum()  # "mas_logits"


def per_example_importance(
    quantity: str, grads: torch.Tensor, probs: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-example gradients g (N, ...), or (N, labels, ...) per label, to per-example importances (N, ...).

    ``"fisher"``: Σ_y p(y|x) g_y²;  ``"absolute"``: Σ_y p(y|x) |g_y|;  ``"empirical"``: g²;  MAS: |g|.
    """
    if quantity in _PER_LABEL:
        f = grads.square() if quantity == "fisher" else grads.abs()
        assert probs is not None
        return torch.einsum("nc,nc...->n...", probs, f)
    return grads.square() if quantity == "empirical" else grads.abs()


# ----------------------------------------------------------------------------- per-example engines


def _vmap_engine(
    model: nn.Module,
    x: torch.Tensor,
    quantity: str,
    targets: torch.Tensor | None,
    classes: torch.Tensor | None,
    chunk_size: int | None,
    budget: int = 2**26,
) -> Importances:
    """Σ_n of the quantity, by ``vmap`` over examples of ``grad``/``jacrev`` w.r.t. all parameters.

    Without ``chunk_size``, each ``vmap`` call takes as many examples as keep its
    per-example (per-label) gradients to about ``budget`` numbers (256 MiB in float32).
    """
    if chunk_size is None:
        labels = head_logits(model(x[:1]), classes).shape[-1] if quantity in _PER_LABEL else 1
        n_params = sum(p.numel() for p in model.parameters())
        chunk_size = max(1, min(256, budget // (n_params * labels)))
    names = [n for n, _ in model.named_parameters()]
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def logits_of(p: dict[str, torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
        return head_logits(functional_call(model, (p, buffers), (xi.unsqueeze(0),))[0], classes)

    def output(
        p: dict[str, torch.Tensor], xi: torch.Tensor, ti: torch.Tensor | None = None
    ) -> torch.Tensor:
        return per_example_output(quantity, logits_of(p, xi), ti)

    if quantity in _PER_LABEL:
        per_example = vmap(jacrev(output), in_dims=(None, 0))
    else:
        per_example = vmap(grad(output), in_dims=(None, 0, 0))
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    for start in range(0, len(x), chunk_size):
        xs = x[start : start + chunk_size]
        if quantity in _PER_LABEL:
            probs = head_logits(model(xs), classes).softmax(-1)
            grads = per_example(params, xs)
        else:
            ts = (
                targets[start : start + chunk_size]
                if targets is not None
                else torch.zeros(len(xs), dtype=torch.long, device=x.device)
            )
            probs = None
            grads = per_example(params, xs, ts)
        for n in names:
            total[n] += per_example_importance(quantity, grads[n], probs).sum(0)
    return [total[n] for n in names]


def _linear_layers(model: nn.Module) -> list[nn.Linear] | None:
    """The ``nn.Linear`` children of a sequential model that has no other parameters or buffers, else ``None``.

    The other children must be parameter-free, act on each example alone (no batch
    statistics: they have no buffers) and not work in place (``inplace=True``).
    """
    if not isinstance(model, nn.Sequential):
        return None
    linears = []
    for child in model:
        if isinstance(child, nn.Linear):
            linears.append(child)
        elif (
            any(True for _ in child.parameters())
            or any(True for _ in child.buffers())
            or getattr(child, "inplace", False)
        ):
            return None
    owned = {id(p) for layer in linears for p in layer.parameters()}
    if not linears or owned != {id(p) for p in model.parameters()}:
        return None
    return linears


def _linear_engine(
    model: nn.Sequential,
    x: torch.Tensor,
    quantity: str,
    targets: torch.Tensor | None,
    classes: torch.Tensor | None,
    chunk_size: int,
) -> Importances:
    """The mean over examples of the quantity for linear layers: one forward, plain batch backwards.

    For one example, layer l's weight gradient is δ_l a_lᵀ, with a_l the layer's input and
    δ_l = ∂s/∂z_l the sensitivity of the example's scalar s to the layer's output z_l.
    Since f(δ aᵀ) = f(δ) f(a)ᵀ for f = square and f = abs, Σ_n f(g_n) = f(Δ)ᵀ f(A), with
    Δ and A stacking δ_n and a_n over the examples: no per-example gradient is ever held.
    Examples do not mix in such a network, so ONE batch backward pass of Σ_n s_n gives
    every δ_n at once. For the Fisher and AF, one backward pass per label y of
    Σ_n w_ny log p(y|x_n), with w = √p (Fisher: Σ_y p g_y² = Σ_y (√p g_y)²) or w = p
    (AF: Σ_y p |g_y| = Σ_y |p g_y|), all from the same forward pass.
    """
    linears = _linear_layers(model)
    assert linears is not None
    square = quantity in ("fisher", "empirical")
    f = torch.square if square else torch.abs
    outputs = vmap(partial(per_example_output, quantity))  # what each example differentiates
    totals: list[list[torch.Tensor]] = [[] for _ in linears]  # filled by the first chunk
    for start in range(0, len(x), chunk_size):
        xs = x[start : start + chunk_size]
        ts = (
            targets[start : start + chunk_size]
            if targets is not None
            else torch.zeros(len(xs), dtype=torch.long, device=x.device)
        )
        acts: list[torch.Tensor] = []  # a_l: each linear layer's input
        zs: list[torch.Tensor] = []  # z_l: its output, where δ_l is taken
        with torch.enable_grad():
            h = xs
            for child in model:
                if isinstance(child, nn.Linear):
                    acts.append(h.detach())
                    bias = None if child.bias is None else child.bias.detach()
                    h = F.linear(h.detach() if not zs else h, child.weight.detach(), bias)
                    if not zs:
                        h.requires_grad_(True)
                    zs.append(h)
                else:
                    h = child(h)
            if any(a.ndim != 2 for a in acts):
                raise ValueError(
                    "the linear engine needs 2-D inputs to every linear layer; use engine='vmap'"
                )
            out = outputs(head_logits(h, classes), ts)  # (n, labels) or (n,)
            sums = [torch.zeros_like(z) for z in zs]  # Σ_y f(w_y δ_y) per example and unit
            if quantity in _PER_LABEL:
                probs = out.detach().exp()
                weight = probs.sqrt() if square else probs
                labels = out.shape[-1]
                for y in range(labels):
                    direction = torch.zeros_like(out)
                    direction[:, y] = weight[:, y]
                    deltas = torch.autograd.grad(out, zs, direction, retain_graph=y < labels - 1)
                    for s, d in zip(sums, deltas):
                        s += f(d)
            else:
                sums = [f(d) for d in torch.autograd.grad(out.sum(), zs)]
        for i, layer in enumerate(linears):
            d = sums[i] / len(x)  # the mean over all examples, folded into the small factor
            parts = [d.T @ f(acts[i])] + ([d.sum(0)] if layer.bias is not None else [])
            if totals[i]:
                for t, part in zip(totals[i], parts):
                    t += part
            else:
                totals[i] = parts
    by_id = {id(p): t for layer, ts in zip(linears, totals) for p, t in zip(layer.parameters(), ts)}
    return [by_id[id(p)] for p in model.parameters()]


def vmap_importance(
    model: nn.Module,
    inputs: torch.Tensor,
    quantity: str,
    *,
    targets: torch.Tensor | None = None,
    classes: Sequence[int] | torch.Tensor | None = None,
    engine: str = "auto",
    chunk_size: int | None = None,
) -> Importances:
    """The mean over ``inputs`` of a per-example quantity, one tensor per parameter.

    ``quantity`` is one of ``"fisher"``, ``"absolute"``, ``"empirical"``, ``"mas_probs"``,
    ``"mas_logits"`` (see :func:`per_example_output` and :func:`per_example_importance`).
    ``engine="vmap"``: ``vmap`` over examples of ``grad`` (``jacrev`` per label) w.r.t. all
    parameters; ``"linear"``: the outer-product shortcut for MLPs, from one forward pass
    and batch backward passes (same numbers, faster);
    ``"auto"``: the shortcut wherever it applies.
    """
    _check_inputs(model, inputs)
    if quantity not in _QUANTITIES:
        raise ValueError(f"unknown quantity {quantity!r}")
    if engine not in ("auto", "linear", "vmap"):
        raise ValueError(f"unknown engine {engine!r}; choose 'auto', 'linear' or 'vmap'")
    linear_ok = _linear_layers(model) is not None
    if engine == "linear" and not linear_ok:
        raise ValueError(
            "engine='linear' needs a sequential model of nn.Linear layers and parameter-free modules"
        )
    use_linear = linear_ok and engine != "vmap"
    idx = _as_index(classes, inputs.device)
    was_training = model.training
    model.eval()  # dropout off: importances of the deterministic network
    try:
        with torch.no_grad():
            if use_linear:
                total = _linear_engine(model, inputs, quantity, targets, idx, chunk_size or 256)  # type: ignore[arg-type]
            else:
                total = [
                    t / len(inputs)
                    for t in _vmap_engine(model, inputs, quantity, targets, idx, chunk_size)
                ]
    finally:
        model.train(was_training)
    return _check_finite(total, quantity)


# ----------------------------------------------------------------------------- measured after a task


def fisher(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    kind: str = "exact",
    targets: torch.Tensor | None = None,
    classes: Sequence[int] | None = None,
    engine: str = "auto",
) -> Importances:
    """The diagonal Fisher information (EWC's importance), averaged over ``inputs``.

    ``kind="exact"``:     F = (1/N) Σ_n Σ_y p(y|x_n) (∂ log p(y|x_n)/∂θ)², labels summed
    with the model's own probabilities;
    ``kind="empirical"``: F = (1/N) Σ_n (∂ log p(y_n|x_n)/∂θ)² with the true ``targets`` y_n.

    ``classes`` restricts the softmax to a task's head (split tasks); ``targets`` then
    index into ``classes``. Returns one tensor per parameter, shaped like it.
    """
    if kind == "exact":
        if targets is not None:
            raise ValueError(
                "the exact Fisher sums over all labels; targets are only for kind='empirical'"
            )
        return vmap_importance(model, inputs, "fisher", classes=classes, engine=engine)
    if kind == "empirical":
        if targets is None or targets.shape != inputs.shape[:1]:
            shape = None if targets is None else tuple(targets.shape)
            raise ValueError(f"kind='empirical' needs one target per input, got {shape}")
        return vmap_importance(
            model, inputs, "empirical", targets=targets, classes=classes, engine=engine
        )
    raise ValueError(f"unknown Fisher kind {kind!r}; choose 'exact' or 'empirical'")


def absolute_fisher(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    classes: Sequence[int] | None = None,
    engine: str = "auto",
) -> Importances:
    """AF: (1/N) Σ_n Σ_y p(y|x_n) |∂ log p(y|x_n)/∂θ|, the Fisher with |·| in place of (·)²."""
    return vmap_importance(model, inputs, "absolute", classes=classes, engine=engine)


def sqrt_fisher(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    classes: Sequence[int] | None = None,
    engine: str = "auto",
) -> Importances:
    """√Fisher (rEWC): the elementwise square root of the exact Fisher, √F."""
    return [f.sqrt() for f in fisher(model, inputs, classes=classes, engine=engine)]


def mas(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    on: str = "probs",
    classes: Sequence[int] | None = None,
    engine: str = "auto",
) -> Importances:
    """MAS: (1/N) Σ_n |∂ ‖softmax(f(x_n))‖² / ∂θ| (``on="probs"``) or |∂ ‖f(x_n)‖² / ∂θ| (``on="logits"``).

    Per example, as in Aljundi et al. (2018) and Benzing (2022); not the gradient of a
    batch mean (which would let examples' gradients cancel before the |·|).
    """
    if on not in ("probs", "logits"):
        raise ValueError(f"unknown MAS output {on!r}; choose 'probs' or 'logits'")
    return vmap_importance(model, inputs, f"mas_{on}", classes=classes, engine=engine)


# ----------------------------------------------------------------------------- accumulated during training


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
        return [
            (w / (t.square() + self.damping)).clamp_min(0) for w, t in zip(self.omega, total_change)
        ]


# ----------------------------------------------------------------------------- the penalty


class QuadraticPenalty:
    """c · Σ_i Ω_i (θ_i − θ_i^old)², with Ω the importances summed over the tasks so far.

    ``importances`` and ``anchor`` are lists of tensors shaped like ``model.parameters()``;
    importances must be finite and non-negative. Its gradient is 2c Ω ⊙ (θ − θ^old).
    """

    def __init__(
        self, importances: Sequence[torch.Tensor], anchor: Sequence[torch.Tensor], strength: float
    ) -> None:
        if not (isinstance(strength, (int, float)) and strength >= 0 and math.isfinite(strength)):
            raise ValueError(f"strength must be a finite number >= 0, got {strength!r}")
        importances, anchor = list(importances), list(anchor)
        if len(importances) != len(anchor):
            raise ValueError(f"{len(importances)} importances but {len(anchor)} anchor tensors")
        for i, (o, a) in enumerate(zip(importances, anchor)):
            if o.shape != a.shape:
                raise ValueError(
                    f"importance {i} has shape {tuple(o.shape)}, its anchor {tuple(a.shape)}"
                )
        _check_finite(importances, "QuadraticPenalty")
        if any((o < 0).any() for o in importances):
            raise ValueError("importances must be non-negative")
        self.importances = [o.detach() for o in importances]
        self.anchor = [a.detach().clone() for a in anchor]
        self.strength = float(strength)

    def add_task(
        self, importances: Sequence[torch.Tensor], anchor: Sequence[torch.Tensor]
    ) -> QuadraticPenalty:
        """A penalty with Ω + ``importances`` and the new ``anchor`` (θ at the end of the new task)."""
        if len(importances) != len(self.importances):
            raise ValueError(
                f"{len(importances)} new importances for {len(self.importances)} parameters"
            )
        summed = [o + n.detach() for o, n in zip(self.importances, importances)]
        return QuadraticPenalty(summed, anchor, self.strength)

    def __call__(self, model: nn.Module) -> torch.Tensor:
        params = list(model.parameters())
        check_like_model(self.importances, model, "QuadraticPenalty")
        terms = [
            (o * (p - a).square()).sum() for o, p, a in zip(self.importances, params, self.anchor)
        ]
        return self.strength * torch.stack(terms).sum()


# ----------------------------------------------------------------------------- the registry


AfterTask = Callable[[nn.Module, torch.Tensor, "tuple[int, ...] | None"], Importances]
DuringTask = Callable[[nn.Module, float], PathAccumulator]


@dataclass(frozen=True)
class Method:
    """A regularisation method: where its importance Ω comes from, and how the book names and draws it.

    ``after_task(model, inputs, classes)`` measures Ω after a task on single examples;
    ``during_task(model, damping)`` makes the :class:`PathAccumulator` that collects Ω while
    the task trains. Neither: no penalty (``"none"``).
    """

    name: str
    label: str
    colour: str
    after_task: AfterTask | None = None
    during_task: DuringTask | None = None

    @property
    def kind(self) -> str:
        """``"none"``, ``"after the task"`` or ``"during training"``."""
        return (
            "after the task"
            if self.after_task
            else "during training"
            if self.during_task
            else "none"
        )


def _si(variant: str) -> DuringTask:
    return lambda model, damping: SynapticIntelligence(model, damping=damping, variant=variant)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("none", "none", "#999999"),
        Method("EWC", "EWC", "#0072B2", after_task=lambda model, x, c: fisher(model, x, classes=c)),
        Method(
            "sqrtFisher",
            "√Fisher",
            "#56B4E9",
            after_task=lambda model, x, c: sqrt_fisher(model, x, classes=c),
        ),
        Method(
            "AF",
            "AF",
            "#009E73",
            after_task=lambda model, x, c: absolute_fisher(model, x, classes=c),
        ),
        Method("MAS", "MAS", "#CC79A7", after_task=lambda model, x, c: mas(model, x, classes=c)),
        Method("SI", "SI", "#D55E00", during_task=_si("SI")),
        Method("SIU", "SIU", "#E69F00", during_task=_si("SIU")),
        Method("SIB", "SIB", "#882255", during_task=_si("SIB")),
        Method("SOS", "SOS", "#000000", during_task=lambda model, damping: SOS(model)),
        Method(
            "OnAF",
            "OnAF",
            "#44AA99",
            during_task=lambda model, damping: OnAF(model, damping=damping),
        ),
    )
}
"""Every method by name: ``"none"``, the measures after a task, and those accumulated during training."""
POSTHOC = tuple(name for name, m in METHODS.items() if m.after_task)
PATH = tuple(name for name, m in METHODS.items() if m.during_task)


# ----------------------------------------------------------------------------- training


def continual_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    *,
    classes: tuple[int, ...] | None = None,
    penalty: QuadraticPenalty | None = None,
    accumulators: Sequence[PathAccumulator] = (),
    independent: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> Callable[[int], float]:
    """One update on the next minibatch: task loss, path accumulators, penalty, optimizer step; returns the task loss.

    ``independent`` yields the other minibatches that SIU and SIB need (its own random stream).
    """

    def step(t: int) -> float:
        x, y = next(batches)
        loss = F.cross_entropy(head_logits(model(x), classes), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # p.grad = g_t, the gradient of the task loss alone
        other = (
            minibatch_gradient(model, *next(independent), classes=classes) if independent else None
        )
        for accumulator in accumulators:
            accumulator.before_step(independent=other)  # reads g_t and θ_t
        if penalty is not None:
            penalty(model).backward()  # p.grad += 2c Ω ⊙ (θ − θ_old)
        optimizer.step()
        for accumulator in accumulators:
            accumulator.after_step()  # e.g. SI: ω −= g_t ⊙ (θ_{t+1} − θ_t)
        return loss.item()

    return step


@dataclass
class ContinualResult:
    """What :func:`run_continual` returns.

    ``accuracy[i, j]``: test accuracy on task j after training task i, for j ≤ i (NaN
    for tasks not yet trained: nothing uses them, and measuring them cost as much as
    the rest); ``val_accuracy`` the same on the validation split (NaN when there is none); ``train_loss[k]``: the task loss at every step of task k.
    ``importances[name][k]``: Ω of task k alone (not summed) for the method and every
    tracked measure; ``seconds``: wall time.
    """

    accuracy: torch.Tensor
    val_accuracy: torch.Tensor
    train_loss: list[list[float]] = field(default_factory=list)
    importances: dict[str, list[Importances]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def n_tasks(self) -> int:
        return int(self.accuracy.shape[0])

    def average_accuracy(self, after: int | None = None, *, split: str = "test") -> float:
        """Mean accuracy over the first ``after`` tasks after training them (default: all tasks), ``split`` "test" or "val"."""
        n = self.n_tasks if after is None else after
        if not 1 <= n <= self.n_tasks:
            raise ValueError(f"after must lie in 1..{self.n_tasks}, got {after}")
        matrix = self.accuracy if split == "test" else self.val_accuracy
        return float(matrix[n - 1, :n].mean())

    def forgetting(self, after: int | None = None) -> float:
        """Mean over tasks j < n of (test accuracy right after learning j − after learning task n); NaN for n = 1."""
        n = self.n_tasks if after is None else after
        if n < 2:
            return math.nan
        return float(
            torch.stack(
                [self.accuracy[j, j] - self.accuracy[n - 1, j] for j in range(n - 1)]
            ).mean()
        )

    def first(self, n: int) -> ContinualResult:
        """The result after the first ``n`` tasks: a run on ``tasks[:n]`` is the first part of a run on more."""
        if not 1 <= n <= self.n_tasks:
            raise ValueError(f"n must lie in 1..{self.n_tasks}, got {n}")
        importances = {m: v[:n] for m, v in self.importances.items()}
        return ContinualResult(
            self.accuracy[:n, :n],
            self.val_accuracy[:n, :n],
            self.train_loss[:n],
            importances,
            self.seconds,
        )

    def to_dict(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "val_accuracy": self.val_accuracy,
            "train_loss": self.train_loss,
            "importances": self.importances,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ContinualResult:
        return cls(
            d["accuracy"], d["val_accuracy"], d["train_loss"], d["importances"], d["seconds"]
        )


def _check_run(
    method: str, track: Sequence[str], tasks: Sequence[Task], sizes: dict[str, int | None]
) -> list[str]:
    """The measures a run computes (its method's first), after checking its arguments."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    unknown = [t for t in track if t not in METHODS or t == "none"]
    if unknown:
        raise ValueError(f"unknown measures to track {unknown}; choose from {list(METHODS)[1:]}")
    if not tasks:
        raise ValueError("no tasks")
    bad = {name: value for name, value in sizes.items() if value is not None and value < 1}
    if bad:
        raise ValueError(f"these must be >= 1: {bad}")
    return list(dict.fromkeys(([method] if method != "none" else []) + list(track)))


def train_task(
    model: nn.Module,
    task: Task,
    *,
    penalty: QuadraticPenalty | None,
    accumulators: Sequence[PathAccumulator],
    lr: float,
    batch_size: int,
    steps: int,
    seed: int,
    show_progress: bool = True,
    desc: str = "task",
) -> History:
    """Learn one task: a fresh Adam, :func:`continual_step` run ``steps`` times by :func:`~nnstudies.training.fit`.

    Minibatches come from a random stream seeded by ``seed``; SIU's and SIB's independent
    minibatches from another one, so tracking them leaves the trajectory unchanged.
    """
    optimizer = torch.optim.Adam(
        model.parameters(), lr=lr
    )  # Adam's state is reset at every task, as in the paper
    for accumulator in accumulators:
        accumulator.begin_task()
    data = task.training_set()
    others = (
        minibatches(data, batch_size, seed=2 * seed + 1)
        if any(a.needs_independent for a in accumulators)
        else None
    )
    step = continual_step(
        model,
        optimizer,
        minibatches(data, batch_size, seed=2 * seed),
        classes=task.classes,
        penalty=penalty,
        accumulators=accumulators,
        independent=others,
    )
    return fit(
        step,
        steps=steps,
        show_progress=show_progress,
        desc=desc,
        hint=f" ({desc}); try a smaller strength c",
    )


def _evaluate(result: ContinualResult, k: int, model: nn.Module, tasks: Sequence[Task]) -> None:
    """Row k of the accuracy matrices: test and validation accuracy of tasks 0..k after training task k."""
    for j, other in enumerate(tasks[: k + 1]):
        result.accuracy[k, j] = task_accuracy(model, other, "test")
        result.val_accuracy[k, j] = task_accuracy(model, other, "val")


def run_continual(
    model: nn.Module,
    tasks: Sequence[Task],
    method: str,
    strength: float,
    *,
    epochs: int = 5,
    steps: int | None = None,
    batch_size: int = 64,
    lr: float = 1e-3,
    damping: float = 0.1,
    n_importance: int = 1000,
    track: Sequence[str] = (),
    seed: int = 0,
    show_progress: bool = True,
    desc: str | None = None,
    threads: int | None = None,
) -> ContinualResult:
    """Train ``model`` (in place) on ``tasks`` in order with ``method``'s quadratic penalty of strength ``strength``.

    Each task: a fresh Adam (learning rate ``lr``) runs :func:`continual_step` through
    :func:`~nnstudies.training.fit` for ``steps`` updates (default: ``epochs`` passes over the
    task's training set in minibatches of ``batch_size``). At the task's end the method's Ω
    is measured (measures after a task: on its first ``n_importance`` training inputs) and
    added to the penalty. ``method`` is a key of :data:`METHODS`; ``track`` names more
    measures computed on the same trajectory (they do not change it: SIU and SIB draw their
    independent minibatches from a stream of their own). Minibatches of task k come from a
    stream seeded by (``seed``, k), so the first k tasks of a longer run are the run on k tasks.
    ``threads`` sets torch's intra-op threads for the run (restored afterwards).
    """
    measures = _check_run(
        method,
        track,
        tasks,
        {"epochs": epochs, "steps": steps, "batch_size": batch_size, "n_importance": n_importance},
    )
    started, device, n = time.perf_counter(), next(model.parameters()).device, len(tasks)
    tasks = [t.to(device) for t in tasks]
    accumulators = {m: build(model, damping) for m in measures if (build := METHODS[m].during_task)}
    result = ContinualResult(
        torch.full((n, n), math.nan),
        torch.full((n, n), math.nan),
        importances={m: [] for m in measures},
    )
    penalty: QuadraticPenalty | None = None
    model.train()
    with threads_(threads):
        for k, task in enumerate(tasks):
            history = train_task(
                model,
                task,
                penalty=penalty if strength > 0 else None,
                accumulators=list(accumulators.values()),
                lr=lr,
                batch_size=batch_size,
                steps=steps or epochs * math.ceil(len(task.y_train) / batch_size),
                seed=seed * 1_000_003 + k,
                show_progress=show_progress,
                desc=f"{desc or method}, task {k + 1}/{n}",
            )
            result.train_loss.append(history.train_loss)
            for m in measures:  # this task's Ω of every measure
                after = METHODS[m].after_task
                omega = (
                    after(model, task.x_train[:n_importance], task.classes)
                    if after
                    else accumulators[m].end_task()
                )
                result.importances[m].append([o.detach().cpu() for o in omega])
            if method != "none":
                own, anchor = (
                    [o.to(device) for o in result.importances[method][-1]],
                    [p.detach() for p in model.parameters()],
                )
                penalty = (
                    QuadraticPenalty(own, anchor, strength)
                    if penalty is None
                    else penalty.add_task(own, anchor)
                )
            _evaluate(result, k, model, tasks)
    result.seconds = time.perf_counter() - started
    return result


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
