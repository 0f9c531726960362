"""Permutation symmetry of hidden units: matching two networks, interpolating them, and REPAIR.

Hidden units of a layer can be reordered — rows of the weights into the layer and
columns of the weights out of it — without changing the network's function. Two
networks trained from different seeds are compared after *matching* the units of
network B to those of network A:

- :func:`match_activations` pairs units whose activations on the same inputs are
  most similar (cosine similarity, or Pearson correlation), one linear assignment
  per hidden layer, all layers at once (Benzing et al. 2022);
- :func:`match_weights` pairs units whose weights agree best, by coordinate descent
  over layers (Ainsworth et al. 2022, "weight matching").

Both return one permutation per hidden layer for :func:`permute`. Then
:func:`interpolation_curve` evaluates θ(α) = (1−α)·θ_A + α·θ_B along the line,
:func:`barrier` measures the bump over the straight line between the endpoints
(Entezari et al. 2022), :func:`repair` renormalises an interpolated network
(Jordan et al. 2023), and :func:`variance_ratio` measures the collapse of its units' spread
that REPAIR corrects. Works for :class:`nnstudies.models.MLP` and
:class:`nnstudies.models.CNN` (a conv channel is a unit; every spatial position
is a sample).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from .data import Dataset
from .models import CNN, MLP
from .training import evaluate

__all__ = [
    "Barrier",
    "Curve",
    "Layer",
    "activation_similarity",
    "barrier",
    "hidden_activations",
    "interpolate",
    "interpolation_curve",
    "match_activations",
    "match_weights",
    "max_output_difference",
    "permute",
    "preactivation_stats",
    "random_permutations",
    "repair",
    "scramble",
    "variance_ratio",
    "weight_similarity",
]

WeightLayer = nn.Linear | nn.Conv1d | nn.Conv2d
ALPHAS: tuple[float, ...] = tuple(i / 10 for i in range(11))
"""The interpolation points α = 0, 0.1, …, 1 (as the authors' code)."""


# ----------------------------------------------------------------------------- structure


def _layers(model: nn.Module) -> list[WeightLayer]:
    """The weight layers of a supported model, input to output; all but the last feed a ReLU."""
    if not isinstance(model, (MLP, CNN)):
        raise TypeError(
            f"permutations support nnstudies.models.MLP and CNN, got {type(model).__name__}"
        )
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]


def _widths(model: nn.Module) -> list[int]:
    return [layer.weight.shape[0] for layer in _layers(model)[:-1]]


def _check_same_architecture(a: nn.Module, b: nn.Module) -> None:
    la, lb = _layers(a), _layers(b)
    kinds_a, kinds_b = [type(m).__name__ for m in la], [type(m).__name__ for m in lb]
    if type(a) is not type(b) or kinds_a != kinds_b:
        raise ValueError(
            f"different architectures: {type(a).__name__}{kinds_a} vs {type(b).__name__}{kinds_b}"
        )
    for i, (x, y) in enumerate(zip(la, lb)):
        if x.weight.shape != y.weight.shape or (x.bias is None) != (y.bias is None):
            raise ValueError(
                f"layer {i} differs: weight {tuple(x.weight.shape)} vs {tuple(y.weight.shape)}, "
                f"bias {x.bias is not None} vs {y.bias is not None}"
            )


def _check_perms(model: nn.Module, perms: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    widths = _widths(model)
    if len(perms) != len(widths):
        raise ValueError(
            f"expected {len(widths)} permutations (one per hidden layer), got {len(perms)}"
        )
    checked = []
    for i, (p, n) in enumerate(zip(perms, widths)):
        p = torch.as_tensor(p)
        if (
            p.dtype not in (torch.int64, torch.int32)
            or p.shape != (n,)
            or not torch.equal(p.sort().values.cpu(), torch.arange(n))
        ):
            raise ValueError(
                f"permutation {i} is not a permutation of range({n}): "
                f"shape {tuple(p.shape)}, dtype {p.dtype}"
            )
        checked.append(p.long())
    return checked


def random_permutations(
    model: nn.Module, generator: torch.Generator | None = None
) -> list[torch.Tensor]:
    """One uniformly random permutation per hidden layer of ``model``."""
    return [torch.randperm(n, generator=generator) for n in _widths(model)]


def scramble(
    perms: Sequence[torch.Tensor], fraction: float, generator: torch.Generator | None = None
) -> list[torch.Tensor]:
    """``perms`` with a ``fraction`` of each layer's assignments replaced by random ones.

    Per layer of n units, round(fraction·n) positions are drawn uniformly and their
    entries are shuffled among themselves, so the result is still a permutation; a
    shuffled entry can land on its own place by chance (about one per layer). Fraction 0
    returns copies of ``perms``; fraction 1 a uniformly random permutation per layer.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    out = []
    for p in perms:
        p = torch.as_tensor(p).long().clone()
        k = round(fraction * len(p))
        chosen = torch.randperm(len(p), generator=generator)[:k]
        p[chosen] = p[chosen[torch.randperm(k, generator=generator)]]
        out.append(p)
    return out


# ----------------------------------------------------------------------------- permute, interpolate


def permute(model: nn.Module, perms: Sequence[torch.Tensor]) -> nn.Module:
    """A copy of ``model`` with hidden layer ``l``'s units reordered so that new unit ``i`` is old
    unit ``perms[l][i]``.

    The copy computes the same function; ``model`` is left untouched.
    """
    perms = _check_perms(model, perms)
    new = copy.deepcopy(model)
    layers = _layers(new)
    with torch.no_grad():
        for layer_in, layer_out, p in zip(layers[:-1], layers[1:], perms):
            p = p.to(layer_in.weight.device)
            layer_in.weight.copy_(layer_in.weight[p])
            if layer_in.bias is not None:
                layer_in.bias.copy_(layer_in.bias[p])
            layer_out.weight.copy_(layer_out.weight[:, p])
    return new


def interpolate(model_a: nn.Module, model_b: nn.Module, alpha: float) -> nn.Module:
    """The model with parameters (1 − α)·θ_A + α·θ_B (a new model; both inputs untouched)."""
    _check_same_architecture(model_a, model_b)
    new = copy.deepcopy(model_a)
    state_b = model_b.state_dict()
    with torch.no_grad():
        for name, value in new.state_dict().items():
            if value.is_floating_point():
                value.mul_(1 - alpha).add_(state_b[name].to(value.device), alpha=alpha)
    return new


# ----------------------------------------------------------------------------- activations


def _units_last(x: torch.Tensor) -> torch.Tensor:
    """(N, C) stays; (N, C, L) or (N, C, H, W) becomes (N·L or N·H·W, C): every position is a
    sample.
    """
    return x if x.ndim == 2 else x.movedim(1, -1).reshape(-1, x.shape[1])


def _record(model: nn.Module, inputs: torch.Tensor, *, pre: bool) -> list[torch.Tensor]:
    """Hidden activations of one batch: post-ReLU (``pre=False``) or the weight layers' outputs
    (``pre=True``).
    """
    layers = _layers(model)
    watched: list[nn.Module]
    if pre:
        watched = list(layers[:-1])
    else:
        watched = [m for m in model.modules() if isinstance(m, nn.ReLU)]
        if len(watched) != len(layers) - 1:
            raise ValueError("expected one ReLU after each hidden weight layer")
    seen: list[torch.Tensor] = []
    handles = [
        m.register_forward_hook(lambda _m, _i, out: seen.append(_units_last(out))) for m in watched
    ]
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for h in handles:
            h.remove()
    return seen


def hidden_activations(model: nn.Module, inputs: torch.Tensor) -> list[torch.Tensor]:
    """Post-ReLU activations of each hidden layer as (samples, units)."""
    was = model.training
    model.eval()
    try:
        return _record(model, inputs, pre=False)
    finally:
        model.train(was)


def _batches(inputs: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    return [inputs[i : i + batch_size] for i in range(0, len(inputs), batch_size)]


def _activation_sums(
    model_a: nn.Module, model_b: nn.Module, inputs: torch.Tensor, batch_size: int
) -> list[dict[str, torch.Tensor]]:
    """Per hidden layer, Σ a bᵀ, Σ a, Σ b, Σ a², Σ b² over the samples of ``inputs`` (float64), and
    the layer's sample count ``"n"`` (a conv layer after pooling has fewer positions per input).
    """
    device = next(model_a.parameters()).device
    sums: list[dict[str, torch.Tensor]] = []
    for batch in _batches(inputs.to(device), batch_size):
        acts_a, acts_b = hidden_activations(model_a, batch), hidden_activations(model_b, batch)
        if not sums:
            zeros = lambda *shape: torch.zeros(*shape, dtype=torch.float64, device=device)
            sums = [
                {
                    "ab": zeros(a.shape[1], b.shape[1]),
                    "a": zeros(a.shape[1]),
                    "b": zeros(b.shape[1]),
                    "aa": zeros(a.shape[1]),
                    "bb": zeros(b.shape[1]),
                    "n": zeros(()),
                }
                for a, b in zip(acts_a, acts_b)
            ]
        for s, a, b in zip(sums, acts_a, acts_b):
            s["ab"] += (a.T @ b).double()
            s["a"] += a.sum(0).double()
            s["b"] += b.sum(0).double()
            s["aa"] += (a * a).sum(0).double()
            s["bb"] += (b * b).sum(0).double()
            s["n"] += a.shape[0]
    if not sums:
        raise ValueError("inputs is empty")
    return sums


def activation_similarity(
    model_a: nn.Module,
    model_b: nn.Module,
    inputs: torch.Tensor,
    *,
    similarity: str = "cosine",
    batch_size: int = 2048,
) -> list[torch.Tensor]:
    """Per hidden layer, S[i, j]: the similarity of A's unit i and B's unit j over all samples of
    ``inputs``.

    ``"cosine"``: S = Âᵀ B̂ with each unit's post-ReLU activation vector scaled to unit
    length (as Benzing et al.); ``"pearson"``: the same after subtracting each unit's
    mean (as REPAIR). Sums are accumulated over batches, so memory does not grow with
    the number of inputs.
    """
    if similarity not in ("cosine", "pearson"):
        raise ValueError(f"unknown similarity {similarity!r}; choose 'cosine' or 'pearson'")
    _check_same_architecture(model_a, model_b)
    matrices = []
    for s in _activation_sums(model_a, model_b, inputs, batch_size):
        n = s["n"]
        if similarity == "cosine":
            sim = s["ab"] / torch.sqrt(s["aa"][:, None] * s["bb"][None, :]).clamp_min(1e-12)
        else:
            mean_a, mean_b = s["a"] / n, s["b"] / n
            cov = s["ab"] / n - mean_a[:, None] * mean_b[None, :]
            std_a = (s["aa"] / n - mean_a**2).clamp_min(0).sqrt()
            std_b = (s["bb"] / n - mean_b**2).clamp_min(0).sqrt()
            sim = cov / (std_a[:, None] * std_b[None, :]).clamp_min(1e-12)
        matrices.append(sim.cpu())
    return matrices


def match_activations(
    model_a: nn.Module,
    model_b: nn.Module,
    inputs: torch.Tensor,
    *,
    similarity: str = "cosine",
    batch_size: int = 2048,
) -> list[torch.Tensor]:
    """Permutations aligning ``model_b``'s hidden units to ``model_a``'s by their activations on
    ``inputs``.

    Per hidden layer, with S from :func:`activation_similarity`, the permutation p
    maximises Σ_i S[i, p[i]] (a linear assignment). Layers are matched
    independently, in one shot, from the unpermuted networks.
    """
    perms = []
    for sim in activation_similarity(
        model_a, model_b, inputs, similarity=similarity, batch_size=batch_size
    ):
        _, cols = linear_sum_assignment(sim.numpy(), maximize=True)
        perms.append(torch.as_tensor(cols, dtype=torch.long))
    return perms


# ----------------------------------------------------------------------------- weight matching


def _rows(w: torch.Tensor) -> torch.Tensor:
    """A weight as (units out, everything else)."""
    return w.reshape(w.shape[0], -1)


def _cols(w: torch.Tensor) -> torch.Tensor:
    """A weight as (units in, everything else)."""
    return w.transpose(0, 1).reshape(w.shape[1], -1)


Layer = tuple[torch.Tensor, "torch.Tensor | None"]
"""A weight layer as (weight, bias or None)."""


def weight_similarity(
    layer: int, a: Sequence[Layer], b: Sequence[Layer], perms: Sequence[torch.Tensor]
) -> torch.Tensor:
    """C[i, j]: how well B's unit j fits A's unit i in hidden ``layer``, the other layers'
    permutations held fixed.

    C = W_A^l (W_B^l P_{l−1}ᵀ)ᵀ + b_A^l b_B^lᵀ + (W_A^{l+1})ᵀ P_{l+1} W_B^{l+1}: the weights
    into the unit (B's columns permuted by the layer below), its bias, and the weights
    out of it (B's rows permuted by the layer above). ``a``, ``b``: (weight, bias) per layer.
    """
    (wa_in, ba_in), (wa_out, _) = a[layer], a[layer + 1]
    (wb_in, bb_in), (wb_out, _) = b[layer], b[layer + 1]
    if layer > 0:
        wb_in = wb_in[:, perms[layer - 1]]
    if layer + 1 < len(perms):
        wb_out = wb_out[perms[layer + 1]]
    sim = _rows(wa_in) @ _rows(wb_in).T + _cols(wa_out) @ _cols(wb_out).T
    if ba_in is not None and bb_in is not None:
        sim += torch.outer(ba_in, bb_in)
    return sim


def _weights(model: nn.Module) -> list[Layer]:
    """Each weight layer's (weight, bias or None), float64 on the CPU."""
    return [
        (
            m.weight.detach().double().cpu(),
            None if m.bias is None else m.bias.detach().double().cpu(),
        )
        for m in _layers(model)
    ]


def _weight_objective(
    a: Sequence[Layer], b: Sequence[Layer], perms: Sequence[torch.Tensor]
) -> float:
    """Σ_l ⟨W_A^l, P_l W_B^l P_{l−1}ᵀ⟩ + ⟨b_A^l, P_l b_B^l⟩ (float64), from the permuted weights."""
    total = 0.0
    for l, ((wa, ba), (wb, bb)) in enumerate(zip(a, b)):
        if l > 0:
            wb = wb[:, perms[l - 1]]
        if l < len(perms):
            wb, bb = wb[perms[l]], None if bb is None else bb[perms[l]]
        total += float((wa * wb).sum())
        if ba is not None and bb is not None:
            total += float(ba @ bb)
    return total


def match_weights(
    model_a: nn.Module,
    model_b: nn.Module,
    *,
    max_sweeps: int = 100,
    seed: int = 0,
    start: str = "forward",
) -> list[torch.Tensor]:
    """Permutations aligning ``model_b`` to ``model_a`` by weight matching (Git Re-Basin, Ainsworth
    et al.).

    Maximises Σ_l ⟨W_A^l, P_l W_B^l P_{l−1}ᵀ⟩ (+ ⟨b_A^l, P_l b_B^l⟩) by coordinate descent:
    visit the hidden layers in a random order (from ``seed``); for layer l, holding the
    other permutations fixed, solve the linear assignment on :func:`weight_similarity`;
    repeat until a sweep changes nothing or ``max_sweeps``. A permutation is replaced
    only by one that strictly raises the objective, so the descent cannot cycle.

    ``start="identity"`` begins from no permutation, as Git Re-Basin. ``start="forward"``
    (the default) first matches the layers from the input up, each on its incoming weights
    alone, the layer below already matched (the input is shared, so the first layer's
    incoming weights are directly comparable), and keeps that start if its objective is
    higher than the identity's. On trained MLPs this start lands near a better optimum,
    and the descent then needs few sweeps.
    """
    if max_sweeps < 1:
        raise ValueError(f"max_sweeps must be >= 1, got {max_sweeps}")
    if start not in ("forward", "identity"):
        raise ValueError(f"unknown start {start!r}; choose 'forward' or 'identity'")
    _check_same_architecture(model_a, model_b)
    wa, wb = _weights(model_a), _weights(model_b)
    perms = [torch.arange(n) for n in _widths(model_a)]
    if start == "forward" and len(perms) > 1:  # one hidden layer: the descent is exact at once
        forward: list[torch.Tensor] = []
        for layer in range(len(perms)):
            (w_a, b_a), (w_b, b_b) = wa[layer], wb[layer]
            if layer > 0:
                w_b = w_b[:, forward[-1]]
            sim = _rows(w_a) @ _rows(w_b).T
            if b_a is not None and b_b is not None:
                sim += torch.outer(b_a, b_b)
            cols = linear_sum_assignment(sim.numpy(), maximize=True)[1]
            forward.append(torch.as_tensor(cols, dtype=torch.long))
        if _weight_objective(wa, wb, forward) > _weight_objective(wa, wb, perms):
            perms = forward
    rng = np.random.default_rng(seed)
    for _ in range(max_sweeps):
        changed = False
        for layer in rng.permutation(len(perms)):
            sim = weight_similarity(layer, wa, wb, perms)
            new = torch.as_tensor(
                linear_sum_assignment(sim.numpy(), maximize=True)[1], dtype=torch.long
            )
            rows = torch.arange(len(new))
            gain = sim[rows, new].sum() - sim[rows, perms[layer]].sum()
            if gain > 1e-12 * sim.abs().sum().clamp_min(1.0):
                perms[layer], changed = new, True
        if not changed:
            break
    return perms


# ----------------------------------------------------------------------------- curves and barriers


@dataclass(frozen=True)
class Curve:
    """Loss and accuracy of θ(α) = (1−α)·θ_A + α·θ_B at each α."""

    alphas: list[float]
    loss: list[float]
    accuracy: list[float]

    def at(self, alpha: float) -> tuple[float, float]:
        """(loss, accuracy) at the α closest to ``alpha``."""
        i = int(np.argmin([abs(a - alpha) for a in self.alphas]))
        return self.loss[i], self.accuracy[i]


@dataclass(frozen=True)
class Barrier:
    """Height of the bump over the straight line between the endpoints, on loss and on error (1 −
    accuracy).
    """

    loss: float
    error: float


def _xy(
    data: Dataset | tuple[torch.Tensor, torch.Tensor], split: str
) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(data, Dataset):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        return (data.x_test, data.y_test) if split == "test" else (data.x_train, data.y_train)
    x, y = data
    if len(x) != len(y):
        raise ValueError(f"inputs ({len(x)}) and labels ({len(y)}) differ in length")
    return x, y


def interpolation_curve(
    model_a: nn.Module,
    model_b: nn.Module,
    data: Dataset | tuple[torch.Tensor, torch.Tensor],
    alphas: Sequence[float] = ALPHAS,
    *,
    split: str = "test",
) -> Curve:
    """Mean cross-entropy and accuracy of the interpolated model at each α, on ``data`` (a Dataset's
    test split by default).
    """
    x, y = _xy(data, split)
    device = next(model_a.parameters()).device
    x, y = x.to(device), y.to(device)
    losses, accs = [], []
    for alpha in alphas:
        loss, acc = evaluate(interpolate(model_a, model_b, alpha), x, y)
        losses.append(loss)
        accs.append(acc)
    return Curve([float(a) for a in alphas], losses, accs)


def barrier(curve: Curve) -> Barrier:
    """max_α [L(θ(α)) − ((1−α)·L(θ_A) + α·L(θ_B))], on loss and on error; needs α = 0 and α = 1 on
    the curve.
    """
    if not curve.alphas or min(curve.alphas) != 0.0 or max(curve.alphas) != 1.0:
        raise ValueError("the curve must include alpha = 0 and alpha = 1 (the endpoints)")
    a = np.asarray(curve.alphas)
    i0, i1 = int(np.argmin(a)), int(np.argmax(a))

    def height(values: Sequence[float]) -> float:
        v = np.asarray(values)
        return float(np.max(v - ((1 - a) * v[i0] + a * v[i1])))

    return Barrier(loss=height(curve.loss), error=height([1 - acc for acc in curve.accuracy]))


# ----------------------------------------------------------------------------- REPAIR


def _moments(outputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each unit's mean and standard deviation (float64) over every sample of ``outputs`` (batches
    of one layer's outputs; a conv channel's positions are samples, as :func:`_units_last`)."""
    first = second = None
    count = 0
    for out in outputs:
        z = _units_last(out)
        s1, s2 = z.sum(0).double(), z.square().sum(0).double()
        first, second = (s1, s2) if first is None or second is None else (first + s1, second + s2)
        count += z.shape[0]
    if first is None or second is None:
        raise ValueError("inputs is empty")
    mean = first / count
    return mean, (second / count - mean**2).clamp_min(0).sqrt()


def preactivation_stats(model: nn.Module, inputs: torch.Tensor, batch_size: int = 2048) -> Stats:
    """Per hidden layer, the mean and standard deviation of each unit's pre-activation over
    ``inputs`` (a conv layer: of each channel, over every input and position, as BatchNorm's).
    """
    was = model.training
    model.eval()
    try:
        acts = [_record(model, batch, pre=True) for batch in _batches(inputs, batch_size)]
    finally:
        model.train(was)
    if not acts:
        raise ValueError("inputs is empty")
    return [_moments([a[l] for a in acts]) for l in range(len(acts[0]))]


def variance_ratio(
    model_a: nn.Module,
    model_b: nn.Module,
    alpha: float,
    inputs: torch.Tensor,
    batch_size: int = 2048,
) -> list[float]:
    """Variance collapse (Jordan et al.): per hidden layer, the mean over units of σ_α ÷ ((1−α)·σ_A
    + α·σ_B), σ a unit's pre-activation standard deviation over ``inputs`` and σ_α the interpolated
    network's. 1: the interpolated units keep the endpoints' spread; well below 1: it collapses,
    and REPAIR (:func:`repair`) restores it.
    """
    device = next(model_a.parameters()).device
    inputs = inputs.to(device)
    mid = preactivation_stats(interpolate(model_a, model_b, alpha), inputs, batch_size)
    ends = zip(*(preactivation_stats(m, inputs, batch_size) for m in (model_a, model_b)))
    return [
        float((s / ((1 - alpha) * sa + alpha * sb).clamp_min(1e-12)).mean())
        for (_, s), ((_, sa), (_, sb)) in zip(mid, ends)
    ]


def _with_hidden_biases(model: nn.Module) -> nn.Module:
    """The model with a (zero) bias added to every hidden weight layer that has none."""
    for layer in _layers(model)[:-1]:
        if (
            layer.bias is None
        ):  # registered as None by the layer: assigning a Parameter registers it
            layer.bias = nn.Parameter(
                torch.zeros(
                    layer.weight.shape[0], device=layer.weight.device, dtype=layer.weight.dtype
                )
            )
    return model


Stats = list[tuple[torch.Tensor, torch.Tensor]]


def repair(
    model_a: nn.Module,
    model_b: nn.Module,
    alpha: float,
    inputs: torch.Tensor,
    *,
    endpoint_stats: tuple[Stats, Stats] | None = None,
    batch_size: int = 2048,
) -> nn.Module:
    """REPAIR: the interpolated model with each hidden unit's pre-activation statistics reset.

    ``model_b`` should already be aligned to ``model_a`` (see :func:`permute`). For
    hidden layer l, unit i, the target mean and standard deviation over ``inputs``
    are (1−α)·μ_A + α·μ_B and (1−α)·σ_A + α·σ_B; the interpolated layer's weights
    and bias are rescaled and shifted to match them, layer by layer from the input
    (each layer measured after the earlier ones were corrected). A conv layer's unit is a
    channel, its statistics taken over every input and position: the BatchNorm that Jordan et al.
    insert after each conv of a net without one, reset to these targets and fused into the conv.
    Hidden layers without a bias get one. ``endpoint_stats``: A's and B's statistics on ``inputs``
    from :func:`preactivation_stats`, when already computed (along a line of α, say).

    One pass over ``inputs``: their activations are carried from layer to layer (in batches of
    ``batch_size``), each hidden layer's output measured, corrected, and passed on.
    """
    device = next(model_a.parameters()).device
    inputs = inputs.to(device)
    if endpoint_stats is None:
        endpoint_stats = preactivation_stats(model_a, inputs), preactivation_stats(model_b, inputs)
    stats_a, stats_b = endpoint_stats
    model = _with_hidden_biases(interpolate(model_a, model_b, alpha))
    was = model.training
    model.eval()
    hidden = {id(layer): l for l, layer in enumerate(_layers(model)[:-1])}
    carried = _batches(inputs, batch_size)
    with torch.no_grad():
        for module in model.children():  # MLP and CNN are sequences of their layers
            outputs = [module(x) for x in carried]
            l = hidden.get(id(module))
            if l is not None:
                assert isinstance(module, WeightLayer) and module.bias is not None
                mean, std = _moments(outputs)
                target_mean = (1 - alpha) * stats_a[l][0] + alpha * stats_b[l][0]
                target_std = (1 - alpha) * stats_a[l][1] + alpha * stats_b[l][1]
                scale = (target_std / std.clamp_min(1e-8)).to(module.weight.dtype)
                module.weight.mul_(scale.reshape(-1, *[1] * (module.weight.ndim - 1)))
                module.bias.copy_(
                    (module.bias - mean.to(module.bias.dtype)) * scale
                    + target_mean.to(module.bias.dtype)
                )
                outputs = [module(x) for x in carried]  # the corrected layer's, passed on
            carried = outputs
    model.train(was)
    return model


def max_output_difference(model_a: nn.Module, model_b: nn.Module, inputs: torch.Tensor) -> float:
    """max |f_A(x) − f_B(x)| over ``inputs`` (both in evaluation mode)."""
    with torch.no_grad():
        return (model_a.eval()(inputs) - model_b.eval()(inputs)).abs().max().item()
