"""One-batch directions: FOOF, KFAC and the exact natural gradient (by the Woodbury identity), and
the Ā inner product that compares them."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .curvature import _check_damping, _eye, damped_inverse, input_factor
from .layers import (
    Layer,
    LayerStatistics,
    _patches,
    _recording,
    _split,
    _weight_matrix,
    layer_statistics,
    supported_layers,
)

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
