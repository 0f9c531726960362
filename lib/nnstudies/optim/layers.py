"""Which layers the curvature methods handle, and their per-batch statistics: inputs a, output
gradients e, the gradient ∇W̃ (see :mod:`nnstudies.optim` for the conventions)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .curvature import input_factor, output_factor

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
