"""KFAC, exact natural gradient and FOOF ("gradient descent on neurons"), as directions and as
optimizers.

Conventions (Benzing 2022). For a layer with weight W (an ``nn.Linear``, or an
``nn.Conv2d`` seen as a linear map on input patches) take, for example i, its
input a_i — with a 1 appended when the layer has a bias, so W̃ = [W b] — and the
per-example output gradient e_i = ∂ℓ_i/∂(W̃ a_i) of the per-example loss ℓ_i.
Over a batch of B examples with the batch-mean loss L = (1/B) Σ ℓ_i:

    Ā = (1/B) Σ_i a_i a_iᵀ,   Ḡ = (1/B) Σ_i e_i e_iᵀ,   ∇W̃ = (1/B) Σ_i e_i a_iᵀ.

For a convolution every spatial position p is one more sample of the same
weight: Ā averages a_{i,p} a_{i,p}ᵀ over examples *and* positions, Ḡ sums
e_{i,p} e_{i,p}ᵀ over positions and averages over examples, and ∇W̃ sums over
positions. The gradient always uses the true labels; the curvature uses the true
labels (``fisher="empirical"``) or labels drawn from the model's own predictive
distribution (``fisher="mc"``, one draw per input).

- FOOF:   Δ = ∇W̃ (Ā + λI)⁻¹  (first order: descent on the neurons' outputs)
- KFAC:   Δ = (Ḡ + λ_G I)⁻¹ ∇W̃ (Ā + λ_A I)⁻¹ with heuristic damping
          λ_A = π√λ, λ_G = √λ/π, π = √((tr Ā/dim Ā)/(tr Ḡ/dim Ḡ)); or with standard
          damping vec Δ = (Ā ⊗ Ḡ + λI)⁻¹ vec ∇W̃ (vec stacks columns).
- natural gradient: Δ = (F + λI)⁻¹ g over all parameters, F = (1/B) Σ g_i g_iᵀ from
  per-example gradients g_i, by the Woodbury identity without forming F.

The factors (:func:`input_factor`, :func:`output_factor`) and their damped inverses
(:func:`damped_inverse`, a :class:`DampedInverse` per layer) are computed in one place,
used alike by the one-batch directions (:func:`foof_direction`, :func:`kfac_direction`)
and the optimizers (:class:`FOOF`, :class:`KFAC`); FOOF is the case with no output-side
factor. Every direction is returned per parameter, shaped like ``model.parameters()``;
an update is θ ← θ − η Δ.

The optimizers build each linear layer's update in the cheaper of two orders (``order="auto"``):
(Eᵀ A) P or, when the batch is small against the layer's width, Eᵀ (A P), keeping heavy-ball
momentum exact (see ``_LayerwiseOptimizer._direction``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "FOOF",
    "KFAC",
    "DampedInverse",
    "LayerStatistics",
    "NaturalGradient",
    "a_inner_cosine",
    "damped_inverse",
    "foof_direction",
    "heuristic_damping",
    "input_factor",
    "kfac_direction",
    "layer_statistics",
    "natural_gradient_direction",
    "output_factor",
    "sample_labels",
    "supported_layers",
    "training_step",
    "woodbury_solve",
]

_SUPPORTED = (nn.Linear, nn.Conv2d)
Layer = nn.Linear | nn.Conv2d  #: the layers KFAC, FOOF and the natural gradient handle
_LOSSES = ("cross_entropy", "mse")
_FISHERS = ("empirical", "mc")


# ---------------------------------------------------------------------------- layers and statistics


def supported_layers(model: nn.Module) -> list[Layer]:
    """The ``nn.Linear`` and ``nn.Conv2d`` layers of ``model``; any other layer with parameters is
    an error.
    """
    layers: list[Layer] = []
    for name, module in model.named_modules():
        own = list(module.parameters(recurse=False))
        if isinstance(module, _SUPPORTED):
            if isinstance(module, nn.Conv2d) and (
                module.groups != 1 or isinstance(module.padding, str)
            ):
                raise ValueError(
                    f"layer {name!r}: grouped convolutions and string paddings are not supported"
                )
            layers.append(module)
        elif own:
            raise ValueError(
                f"layer {name!r} ({type(module).__name__}) has parameters; "
                "nnstudies.optim supports only nn.Linear and nn.Conv2d"
            )
    if not layers:
        raise ValueError("the model has no nn.Linear or nn.Conv2d layer")
    return layers


def _patches(layer: Layer, x: torch.Tensor) -> torch.Tensor:
    """Layer inputs as (B, positions, features), with a column of ones when the layer has a bias."""
    if isinstance(layer, nn.Conv2d):
        assert not isinstance(layer.padding, str)  # supported_layers refuses string paddings
        cols = F.unfold(
            x,
            layer.kernel_size,
            dilation=layer.dilation,
            padding=layer.padding,
            stride=layer.stride,
        )
        a = cols.transpose(1, 2)  # (B, P, C·kh·kw)
    else:
        a = x.reshape(x.shape[0], -1, x.shape[-1])  # (B, 1, m) for (B, m)
    if layer.bias is not None:
        a = torch.cat([a, a.new_ones(*a.shape[:2], 1)], dim=2)
    return a


def _positions(z: torch.Tensor) -> torch.Tensor:
    """Layer outputs (or their gradients) as (B, positions, units)."""
    return z.flatten(2).transpose(1, 2) if z.ndim == 4 else z.reshape(z.shape[0], -1, z.shape[-1])


def _weight_matrix(layer: Layer, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """W̃ = [W b] as a matrix (units out × inputs)."""
    w = weight.reshape(weight.shape[0], -1)
    return torch.cat([w, bias[:, None]], dim=1) if bias is not None else w


def _split(layer: Layer, matrix: torch.Tensor) -> list[torch.Tensor]:
    """Undo :func:`_weight_matrix`: [weight, bias] (bias only when the layer has one)."""
    if layer.bias is None:
        return [matrix.reshape(layer.weight.shape)]
    return [matrix[:, :-1].reshape(layer.weight.shape), matrix[:, -1].clone()]


def sample_labels(
    outputs: torch.Tensor, loss: str = "cross_entropy", generator: torch.Generator | None = None
) -> torch.Tensor:
    """Targets drawn from the model's predictive distribution: a class from softmax(outputs), or
    outputs + N(0, I) for MSE.
    """
    outputs = outputs.detach()
    if loss == "cross_entropy":
        probs = torch.softmax(outputs.double(), dim=1)
        return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(outputs.device)
    noise = torch.randn(outputs.shape, generator=generator, dtype=outputs.dtype, device="cpu").to(
        outputs.device
    )
    return outputs + noise


def _loss(outputs: torch.Tensor, targets: torch.Tensor, loss: str) -> torch.Tensor:
    """Batch mean of ℓ_i: cross-entropy, or ½‖f(x_i) − y_i‖² for MSE."""
    if loss == "cross_entropy":
        return F.cross_entropy(outputs, targets)
    return 0.5 * ((outputs - targets) ** 2).flatten(1).sum(1).mean()


def _check_kinds(loss: str, fisher: str) -> None:
    if loss not in _LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {_LOSSES}")
    if fisher not in _FISHERS:
        raise ValueError(f"unknown fisher {fisher!r}; choose one of {_FISHERS}")


@contextmanager
def _recording(layers: Sequence[Layer]) -> Iterator[list[tuple[torch.Tensor, torch.Tensor]]]:
    """Record (input, output) of every layer during forward passes inside the block."""
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    handles = [
        layer.register_forward_hook(lambda _m, inp, out: seen.append((inp[0].detach(), out)))
        for layer in layers
    ]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


@dataclass
class LayerStatistics:
    """One layer's per-example quantities on a batch: inputs a (B, P, m̃) and output gradients (B,
    P, n).
    """

    layer: Layer
    a: torch.Tensor
    e: torch.Tensor  # true labels: the gradient's
    e_fisher: torch.Tensor  # the curvature's: true labels (empirical) or sampled labels (mc)

    @property
    def batch(self) -> int:
        return self.a.shape[0]

    def gradient(self) -> torch.Tensor:
        """∇W̃ = (1/B) Σ_{i,p} e a ᵀ."""
        return torch.einsum("bpn,bpm->nm", self.e, self.a) / self.batch

    def a_factor(self) -> torch.Tensor:
        """Ā of this batch (:func:`input_factor`)."""
        return input_factor(self.a)

    def g_factor(self) -> torch.Tensor:
        """Ḡ of this batch, from the curvature's output gradients (:func:`output_factor`)."""
        return output_factor(self.e_fisher)


def layer_statistics(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    fisher: str = "empirical",
    loss: str = "cross_entropy",
    generator: torch.Generator | None = None,
) -> list[LayerStatistics]:
    """Per supported layer, the inputs and per-example output gradients of one batch (one forward,
    one or two backwards).
    """
    _check_kinds(loss, fisher)
    layers = supported_layers(model)
    if len(inputs) != len(targets):
        raise ValueError(f"inputs ({len(inputs)}) and targets ({len(targets)}) differ in length")
    with _recording(layers) as seen:
        outputs = model(inputs)
    if len(seen) != len(layers):
        raise ValueError("every supported layer must be called exactly once per forward pass")
    batch = len(inputs)
    zs = [z for _, z in seen]
    grads = torch.autograd.grad(_loss(outputs, targets, loss), zs, retain_graph=fisher == "mc")
    if fisher == "mc":
        sampled = sample_labels(outputs, loss, generator)
        grads_f = torch.autograd.grad(_loss(outputs, sampled, loss), zs)
    else:
        grads_f = grads
    return [
        LayerStatistics(
            layer,
            _patches(layer, x),
            _positions(g).detach() * batch,
            _positions(gf).detach() * batch,
        )
        for layer, (x, _), g, gf in zip(layers, seen, grads, grads_f)
    ]


# ---------------------------------------------------------------------- the curvature, in one place


def input_factor(a: torch.Tensor) -> torch.Tensor:
    """Ā = mean of a aᵀ over examples and positions, from layer inputs ``a`` shaped (B, P, m̃)."""
    flat = a.reshape(-1, a.shape[-1])
    return flat.T @ flat / flat.shape[0]


def output_factor(e: torch.Tensor) -> torch.Tensor:
    """Ḡ = (1/B) Σ_i Σ_p e eᵀ, from per-example output gradients ``e`` shaped (B, P, n)."""
    flat = e.reshape(-1, e.shape[-1])
    return flat.T @ flat / e.shape[0]


def heuristic_damping(
    a_bar: torch.Tensor, g_bar: torch.Tensor, damping: float
) -> tuple[float, float]:
    """Martens and Grosse's split of λ: (λ_A, λ_G) = (π√λ, √λ/π), π² = (tr Ā/dim Ā)/(tr Ḡ/dim Ḡ)."""
    ta, tg = a_bar.trace().item() / a_bar.shape[0], g_bar.trace().item() / g_bar.shape[0]
    if not (ta > 0 and tg > 0 and math.isfinite(ta) and math.isfinite(tg)):
        raise FloatingPointError(f"cannot balance the damping: tr Ā/dim = {ta}, tr Ḡ/dim = {tg}")
    pi = math.sqrt(ta / tg)
    return pi * math.sqrt(damping), math.sqrt(damping) / pi


def _spd_inverse(matrix: torch.Tensor, what: str) -> torch.Tensor:
    """Inverse of a symmetric positive-definite matrix; a non-finite or singular one is an error."""
    if not torch.isfinite(matrix).all():
        raise FloatingPointError(f"{what} has non-finite entries")
    chol, info = torch.linalg.cholesky_ex(matrix)
    if info.item() != 0:
        raise FloatingPointError(
            f"{what} is singular or not positive definite; increase the damping"
        )
    return torch.cholesky_inverse(chol)


def _check_damping(damping: float) -> None:
    if not (damping > 0 and math.isfinite(damping)):
        raise ValueError(f"damping must be positive and finite, got {damping}")


def _eye(n: int, like: torch.Tensor) -> torch.Tensor:
    return torch.eye(n, dtype=like.dtype, device=like.device)


_DAMPING_KINDS = ("heuristic", "standard")
_ORDERS = ("auto", "factored", "dense")


@dataclass(frozen=True)
class DampedInverse:
    """One layer's damped inverse curvature, ready to turn a gradient ∇W̃ into a direction Δ.

    FOOF (no output side):  Δ = ∇W̃ (Ā + λI)⁻¹
    KFAC, heuristic:        Δ = (Ḡ + λ_G I)⁻¹ ∇W̃ (Ā + λ_A I)⁻¹
    KFAC, standard:         Δ = Q_G [(Q_Gᵀ ∇W̃ Q_A) ⊘ (s_G s_Aᵀ + λ)] Q_Aᵀ
                            with Ā = Q_A diag(s_A) Q_Aᵀ and Ḡ likewise;
                            this is vec Δ = (Ā ⊗ Ḡ + λI)⁻¹ vec ∇W̃
    """

    input_side: torch.Tensor  # (Ā + λ_A I)⁻¹, or Q_A (standard damping)
    output_side: torch.Tensor | None = None  # (Ḡ + λ_G I)⁻¹, Q_G (standard), or None (FOOF)
    eigenvalues: torch.Tensor | None = None  # s_G s_Aᵀ + λ (standard damping only)

    def apply(self, grad: torch.Tensor) -> torch.Tensor:
        if self.eigenvalues is not None:  # standard damping, in the factors' eigenbases
            assert self.output_side is not None
            q_a, q_g = self.input_side, self.output_side
            return q_g @ ((q_g.T @ grad @ q_a) / self.eigenvalues) @ q_a.T
        direction = grad @ self.input_side
        return direction if self.output_side is None else self.output_side @ direction

    def apply_factored(self, e: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """:meth:`apply` of ∇W̃ = Eᵀ A without forming it: E (rows, n) output gradients, A (rows,
        m̃) inputs. FOOF: Eᵀ (A P_A); KFAC: (E P_G)ᵀ (A P_A); standard damping: the same inside
        the eigenbases.
        """
        if self.eigenvalues is not None:
            assert self.output_side is not None
            q_a, q_g = self.input_side, self.output_side
            return q_g @ (((e @ q_g).T @ (a @ q_a)) / self.eigenvalues) @ q_a.T
        right = a @ self.input_side
        return (e if self.output_side is None else e @ self.output_side).T @ right


def damped_inverse(
    a_bar: torch.Tensor,
    g_bar: torch.Tensor | None,
    damping: float,
    damping_kind: str = "heuristic",
    where: str = "",
) -> DampedInverse:
    """The damped inverse of Ā alone (FOOF, ``g_bar=None``) or of Ā ⊗ Ḡ (KFAC), used by directions
    and optimizers.
    """
    if g_bar is None:
        return DampedInverse(
            _spd_inverse(
                a_bar + damping * _eye(a_bar.shape[0], a_bar), f"FOOF factor Ā + λI{where}"
            )
        )
    if damping_kind == "heuristic":
        lam_a, lam_g = heuristic_damping(a_bar, g_bar, damping)
        return DampedInverse(
            _spd_inverse(
                a_bar + lam_a * _eye(a_bar.shape[0], a_bar), f"KFAC factor Ā + λ_A I{where}"
            ),
            _spd_inverse(
                g_bar + lam_g * _eye(g_bar.shape[0], g_bar), f"KFAC factor Ḡ + λ_G I{where}"
            ),
        )
    if damping_kind == "standard":
        if not (torch.isfinite(a_bar).all() and torch.isfinite(g_bar).all()):
            raise FloatingPointError(f"KFAC factors{where} are not finite")
        try:
            s_a, q_a = torch.linalg.eigh(a_bar)
            s_g, q_g = torch.linalg.eigh(g_bar)
        except torch.linalg.LinAlgError as error:
            raise FloatingPointError(
                f"KFAC factors{where} have no eigendecomposition: {error}"
            ) from None
        return DampedInverse(
            q_a, q_g, s_g[:, None].clamp_min(0) * s_a[None, :].clamp_min(0) + damping
        )
    raise ValueError(f"unknown damping_kind {damping_kind!r}; choose one of {_DAMPING_KINDS}")


# ----------------------------------------------------------------------------- directions


def _per_parameter(model: nn.Module, by_layer: dict[Layer, torch.Tensor]) -> list[torch.Tensor]:
    """Directions of each layer's W̃, split and ordered like ``model.parameters()``."""
    pieces = {}
    for layer, matrix in by_layer.items():
        for p, d in zip(
            [layer.weight] + ([layer.bias] if layer.bias is not None else []), _split(layer, matrix)
        ):
            pieces[p] = d
    return [pieces[p] for p in model.parameters()]


def foof_direction(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    damping: float,
    *,
    loss: str = "cross_entropy",
) -> list[torch.Tensor]:
    """FOOF: ∇W̃ (Ā + λI)⁻¹ per layer, on one batch."""
    _check_damping(damping)
    stats = layer_statistics(model, inputs, targets, loss=loss)
    return _per_parameter(
        model,
        {s.layer: damped_inverse(s.a_factor(), None, damping).apply(s.gradient()) for s in stats},
    )


def kfac_direction(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    damping: float,
    *,
    damping_kind: str = "heuristic",
    fisher: str = "empirical",
    loss: str = "cross_entropy",
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """KFAC: (Ḡ + λ_G I)⁻¹ ∇W̃ (Ā + λ_A I)⁻¹ (heuristic) or (Ā ⊗ Ḡ + λI)⁻¹ vec ∇W̃ (standard), on
    one batch.
    """
    _check_damping(damping)
    stats = layer_statistics(model, inputs, targets, fisher=fisher, loss=loss, generator=generator)
    return _per_parameter(
        model,
        {
            s.layer: damped_inverse(s.a_factor(), s.g_factor(), damping, damping_kind).apply(
                s.gradient()
            )
            for s in stats
        },
    )


def _per_example(s: LayerStatistics) -> torch.Tensor | None:
    """Explicit per-example gradients (B, n, m̃) for layers with several positions; None for P = 1
    (kept factored).
    """
    return None if s.a.shape[1] == 1 else torch.einsum("bpn,bpm->bnm", s.e_fisher, s.a)


def woodbury_solve(
    stats: Sequence[LayerStatistics], grads: Sequence[torch.Tensor], damping: float
) -> list[torch.Tensor]:
    """(F + λI)⁻¹ u with F = G Gᵀ, G = [g_1 … g_B]/√B the per-example gradients of ``stats``; u =
    ``grads`` per layer.

    (λI + G Gᵀ)⁻¹ u = u/λ − G (λI + GᵀG)⁻¹ Gᵀ u / λ: a B × B solve; GᵀG and Gᵀu are
    built from factored per-layer products, GᵀG = Σ_layers (A Aᵀ) ⊙ (E Eᵀ) / B for
    single-position layers.
    """
    batch = stats[0].batch
    gram = torch.zeros(batch, batch, dtype=grads[0].dtype, device=grads[0].device)
    proj = torch.zeros(batch, dtype=grads[0].dtype, device=grads[0].device)
    explicit = [_per_example(s) for s in stats]
    for s, u, g in zip(stats, grads, explicit):
        if g is None:
            a, e = s.a[:, 0], s.e_fisher[:, 0]
            gram += (a @ a.T) * (e @ e.T)
            proj += torch.einsum("bn,nm,bm->b", e, u, a)
        else:
            flat = g.reshape(batch, -1)
            gram += flat @ flat.T
            proj += flat @ u.reshape(-1)
    gram /= batch
    proj /= math.sqrt(batch)
    if not torch.isfinite(gram).all():
        raise FloatingPointError("the per-example gradients are not finite")
    v = torch.linalg.solve(gram + damping * _eye(batch, gram), proj) / math.sqrt(batch)
    out = []
    for s, u, g in zip(stats, grads, explicit):
        gv = (
            torch.einsum("b,bn,bm->nm", v, s.e_fisher[:, 0], s.a[:, 0])
            if g is None
            else torch.einsum("b,bnm->nm", v, g)
        )
        out.append((u - gv) / damping)
    return out


def natural_gradient_direction(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    damping: float,
    *,
    fisher: str = "empirical",
    loss: str = "cross_entropy",
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """(F + λI)⁻¹ g over all parameters, F = (1/B) Σ g_i g_iᵀ, gradient and Fisher from the same
    batch."""
    _check_damping(damping)
    stats = layer_statistics(model, inputs, targets, fisher=fisher, loss=loss, generator=generator)
    directions = woodbury_solve(stats, [s.gradient() for s in stats], damping)
    return _per_parameter(model, {s.layer: d for s, d in zip(stats, directions)})


def a_inner_cosine(
    model: nn.Module, inputs: torch.Tensor, u: Sequence[torch.Tensor], v: Sequence[torch.Tensor]
) -> list[float]:
    """Per layer, the cosine of two directions in the Ā inner product ⟨U, V⟩_Ā = tr(U Ā Vᵀ) (Ā from
    ``inputs``).
    """
    layers = supported_layers(model)
    params = list(model.parameters())
    index: dict[torch.Tensor, int] = {p: i for i, p in enumerate(params)}
    with _recording(layers) as seen, torch.no_grad():
        model(inputs)
    cosines = []
    for layer, (x, _) in zip(layers, seen):
        a_bar = input_factor(_patches(layer, x))
        bias = layer.bias
        mu, mv = (
            _weight_matrix(layer, d[index[layer.weight]], None if bias is None else d[index[bias]])
            for d in (u, v)
        )
        uv, uu, vv = (torch.trace(p @ a_bar @ q.T) for p, q in ((mu, mv), (mu, mu), (mv, mv)))
        cosines.append((uv / torch.sqrt(uu * vv)).item())
    return cosines


# ----------------------------------------------------------------------------- optimizers


class _LayerwiseOptimizer(torch.optim.Optimizer):
    """Shared machinery: one parameter group over ``model``'s Linear/Conv2d layers, hooks,
    heavy-ball momentum.
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
        self._record = False
        self._capture = False  # keep ∂L/∂(layer output) of the next backward (factored order)
        self._hooks = [layer.register_forward_hook(self._forward_hook) for layer in self.layers]

    def _forward_hook(
        self, layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
    ) -> None:
        if self._record and torch.is_grad_enabled():
            self._inputs[layer] = inputs[0].detach()
            self._outputs[layer] = output
            if output.requires_grad and self._factored(layer, inputs[0]):
                output.register_hook(lambda g, layer=layer: self._keep_output_grad(layer, g))

    def _factored(self, layer: nn.Module, x: torch.Tensor) -> bool:
        """Whether this layer's direction is built in the factored order (see :meth:`_direction`)
        on inputs ``x``.
        """
        if self.order == "dense" or not isinstance(layer, nn.Linear):
            return False
        if self.order == "factored":
            return True
        rows = x.numel() // x.shape[-1]  # examples (× positions)
        m, n = layer.in_features + (layer.bias is not None), layer.out_features
        two_sided = isinstance(self, KFAC)
        factored = rows * (m * m + n * m + (n * n if two_sided else 0))
        dense = n * m * m + (n * n * m if two_sided else 0)
        return factored < dense

    def _keep_output_grad(self, layer: nn.Module, grad: torch.Tensor) -> None:
        if self._capture:
            self._output_grads[layer] = grad.detach()

    def remove_hooks(self) -> None:
        """Detach the optimizer from the model (its forward passes are no longer observed)."""
        for h in self._hooks:
            h.remove()

    def _gradient(self, layer: Layer) -> torch.Tensor:
        """The raw gradient of W̃ from ``.grad``, with heavy-ball momentum applied (v ← μv + ∇)."""
        grad = self._raw_gradient(layer)
        mu = self.param_groups[0]["momentum"]
        if mu == 0:
            return grad
        state = self.state[layer.weight]
        buf = state.get("momentum_buffer")
        state["momentum_buffer"] = grad.clone() if buf is None else buf.mul_(mu).add_(grad)
        return state["momentum_buffer"]

    def _raw_gradient(self, layer: Layer) -> torch.Tensor:
        """∇W̃ from ``.grad``."""
        if layer.weight.grad is None:
            raise RuntimeError(
                "no gradient: call loss.backward() (or optimizer.backward) before step()"
            )
        return _weight_matrix(
            layer, layer.weight.grad, None if layer.bias is None else layer.bias.grad
        )

    def _direction(self, layer: Layer, inverse: DampedInverse, inverted: bool) -> torch.Tensor:
        """This step's direction m = P(v), v the raw heavy-ball momentum buffer v ← μv + ∇W̃ and P
        the layer's damped inverse (a linear map, fixed between inversions).

        Between inversions m is kept instead, m ← μm + P(∇W̃): the same vector, since P is linear
        and unchanged. P(∇W̃) is then built in the factored order when that is cheaper: with
        ∇W̃ = Eᵀ A (E the output gradients, A the inputs, one row per example), FOOF's ∇W̃ P =
        Eᵀ (A P) costs B·m̃² + B·m̃·n multiply-adds against n·m̃² (B < n pays). At an inversion
        step P changes, so m = P(v) is recomputed from the kept raw buffer v: the update equals
        the one with momentum on the raw gradient, Δ = P(v), at every step.
        """
        mu = self.param_groups[0]["momentum"]
        grad = self._gradient(layer)  # v (the raw momentum buffer), or ∇W̃ when μ = 0
        state = self.state[layer.weight]
        if mu > 0 and (inverted or "direction" not in state):
            state["direction"] = inverse.apply(grad)
            return state["direction"]
        e = self._output_grads.get(layer)
        if e is not None:  # P(∇W̃) from E and A, never forming ∇W̃ P's dense product
            a = _patches(layer, self._inputs[layer])
            step = inverse.apply_factored(e.reshape(-1, e.shape[-1]), a.reshape(-1, a.shape[-1]))
        else:
            step = inverse.apply(self._raw_gradient(layer) if mu > 0 else grad)
        if mu == 0:
            return step
        state["direction"].mul_(mu).add_(step)
        return state["direction"]

    @torch.no_grad()
    def _apply(self, layer: Layer, direction: torch.Tensor) -> None:
        lr = self.param_groups[0]["lr"]
        params = [layer.weight] + ([layer.bias] if layer.bias is not None else [])
        for p, d in zip(params, _split(layer, direction)):
            p.add_(d, alpha=-lr)

    @staticmethod
    def _ema(old: torch.Tensor | None, new: torch.Tensor, decay: float) -> torch.Tensor:
        return new if old is None else old.mul_(decay).add_(new, alpha=1 - decay)


class FOOF(_LayerwiseOptimizer):
    """FOOF: θ ← θ − η (momentum-averaged ∇W̃) (Ā + λI)⁻¹ — gradient descent on neurons.

    Ā is an exponential moving average (``decay``) of the layer inputs' second
    moment, updated during the ``stat_steps`` steps that end with each inversion
    step (default: min(``inv_period``, 10)); (Ā + λI)⁻¹ is recomputed every
    ``inv_period`` steps (steps 0, T, 2T, ...).
    η/λ plays the role of SGD's learning rate. ``order`` ("auto", "factored" or "dense") picks
    how ∇W̃ (Ā + λI)⁻¹ is built per layer; "auto" takes the one with fewer multiply-adds, and every
    order gives the same update. Needs no extra backward pass::

        optimizer = FOOF(model, lr=30.0, damping=100.0)
        for x, y in batches:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)   # the forward pass is observed by the optimizer
            loss.backward()
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
        if inv_period < 1:
            raise ValueError(f"inv_period must be >= 1, got {inv_period}")
        if not 0 <= decay < 1:
            raise ValueError(f"decay must lie in [0, 1), got {decay}")
        self.decay, self.inv_period = decay, inv_period
        self.stat_steps = min(inv_period, 10) if stat_steps is None else stat_steps
        if not 1 <= self.stat_steps <= inv_period:
            raise ValueError(f"stat_steps must lie in [1, inv_period], got {self.stat_steps}")
        self._a: dict[nn.Module, torch.Tensor] = {}
        self._inverse: dict[nn.Module, DampedInverse] = {}
        self._record = True  # every step: the factored order needs the inputs
        self._capture = True

    @torch.no_grad()
    def invert(self) -> None:
        """Recompute every layer's (Ā + λI)⁻¹ from the current Ā (every ``inv_period`` steps)."""
        if len(self._a) < len(self.layers):
            raise RuntimeError("FOOF has no Ā yet: run a forward pass, backward and step() first")
        damping = self.param_groups[0]["damping"]
        for layer in self.layers:
            where = f" of {type(layer).__name__} at step {self.steps}"
            self._inverse[layer] = damped_inverse(self._a[layer], None, damping, where=where)

    def _collecting(self) -> bool:
        """Whether the coming step's forward pass feeds Ā: the ``stat_steps`` steps ending with an
        inversion step.
        """
        r = self.steps % self.inv_period
        return r == 0 or r > self.inv_period - self.stat_steps

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        """One update; call after ``loss.backward()``."""
        if closure is not None:
            raise ValueError("FOOF.step takes no closure")
        if any(layer not in self._inputs for layer in self.layers):
            raise RuntimeError("FOOF saw no forward pass of the model since the last step")
        if self._collecting():  # Ā ← decay·Ā + (1 − decay)·(this batch's Ā)
            for layer in self.layers:
                a_bar = input_factor(_patches(layer, self._inputs[layer]))
                self._a[layer] = self._ema(self._a.get(layer), a_bar, self.decay)
        inverted = self.steps % self.inv_period == 0
        if inverted:
            self.invert()
        for layer in self.layers:  # Δ = (momentum-averaged ∇W̃)(Ā + λI)⁻¹
            self._apply(layer, self._direction(layer, self._inverse[layer], inverted))
        self._inputs.clear()
        self._outputs.clear()
        self._output_grads.clear()
        self.steps += 1


class KFAC(_LayerwiseOptimizer):
    """KFAC: θ ← θ − η (Ḡ + λ_G I)⁻¹ ∇W̃ (Ā + λ_A I)⁻¹ (heuristic damping) or (Ā ⊗ Ḡ + λI)⁻¹ vec ∇W̃
    (standard).

    Ā and Ḡ are exponential moving averages (``decay``) of the batch factors, the
    inverses (or eigendecompositions) recomputed every ``inv_period`` steps;
    ``fisher="mc"`` draws one label per input from the model for Ḡ (a second
    backward pass). Replace ``loss.backward()`` by ``optimizer.backward(loss, outputs)``::

        optimizer = KFAC(model, lr=0.3, damping=1.0)
        for x, y in batches:
            optimizer.zero_grad()
            outputs = model(x)
            loss = F.cross_entropy(outputs, y)
            optimizer.backward(loss, outputs)   # gradients into .grad, plus the curvature
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
        if inv_period < 1:
            raise ValueError(f"inv_period must be >= 1, got {inv_period}")
        if not 0 <= decay < 1:
            raise ValueError(f"decay must lie in [0, 1), got {decay}")
        self.damping_kind, self.fisher, self.loss = damping_kind, fisher, loss
        self.decay, self.inv_period, self.generator = decay, inv_period, generator
        self._factors: dict[nn.Module, list[torch.Tensor | None]] = {
            layer: [None, None] for layer in self.layers
        }
        self._inverse: dict[nn.Module, DampedInverse] = {}
        self._fresh = False
        self._record = True

    def backward(
        self, loss: torch.Tensor, outputs: torch.Tensor, targets: torch.Tensor | None = None
    ) -> None:
        """``loss.backward()`` plus this step's curvature statistics (``targets`` are needed for an
        empirical MSE Fisher only).
        """
        missing = [layer for layer in self.layers if layer not in self._outputs]
        if missing:
            raise RuntimeError("KFAC saw no forward pass of the model before backward()")
        zs = [self._outputs[layer] for layer in self.layers]
        batch = outputs.shape[0]
        if self.fisher == "mc":
            grads = torch.autograd.grad(
                _loss(outputs, sample_labels(outputs, self.loss, self.generator), self.loss),
                zs,
                retain_graph=True,
            )
        else:
            grads = torch.autograd.grad(loss, zs, retain_graph=True)
        self._capture = True  # the true-label output gradients, for the factored order
        try:
            loss.backward()
        finally:
            self._capture = False
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
        inverted = self.steps % self.inv_period == 0
        if inverted:
            self.invert()
        for layer in self.layers:
            self._apply(layer, self._direction(layer, self._inverse[layer], inverted))
        self._inputs.clear()
        self._output_grads.clear()
        self._fresh = False
        self.steps += 1

    @torch.no_grad()
    def invert(self) -> None:
        """Recompute every layer's damped inverse from the current Ā and Ḡ (done every
        ``inv_period`` steps).
        """
        damping = self.param_groups[0]["damping"]
        for layer in self.layers:
            a, g = self._factors[layer]
            if a is None or g is None:
                raise RuntimeError(
                    "KFAC has no curvature statistics yet: "
                    "call optimizer.backward(loss, outputs) first"
                )
            where = f" of {type(layer).__name__} at step {self.steps}"
            self._inverse[layer] = damped_inverse(a, g, damping, self.damping_kind, where=where)


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
        grads = [self._gradient(layer).clone() for layer in self.layers]
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
    if isinstance(optimizer, KFAC):
        optimizer.backward(value, outputs, targets)
        optimizer.step()
    elif isinstance(optimizer, NaturalGradient):
        value.backward()
        optimizer.step(fisher_inputs=inputs if fisher_inputs is None else fisher_inputs)
    else:
        value.backward()
        optimizer.step()
    return value.detach()
