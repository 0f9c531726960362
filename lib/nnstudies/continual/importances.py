"""Per-example importances measured after a task: the Fisher (EWC), √Fisher, AF and MAS.

Every measure is the mean over single examples x_n of a per-example quantity (the sums are
written out in each function's docstring); :func:`vmap_importance` computes it with one of two
engines, never looping over examples in Python: :func:`_linear_engine` for networks of
``nn.Linear`` layers (the outer-product shortcut) and :func:`_vmap_engine` (``torch.func``) for
any other model.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, jacrev, vmap

from ..tasks.continual import head_logits

__all__ = [
    "Importances",
    "absolute_fisher",
    "check_like_model",
    "fisher",
    "mas",
    "per_example_importance",
    "per_example_output",
    "sqrt_fisher",
    "vmap_importance",
]

Importances = list[torch.Tensor]
"""One tensor per parameter of a model, shaped like it."""


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
