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
(Eᵀ A) P or, when the batch is small against the layer's width, Eᵀ (A P); their ``backward``
then asks autograd for E alone, never forming ∇W̃ = Eᵀ A of such a layer, and heavy-ball momentum
on the raw gradient stays exact, carried from one preconditioner to the next at each inversion
(:meth:`DampedInverse.unapply`; see ``_LayerwiseOptimizer._direction``). KFAC and FOOF feed their
moving averages only in the ``stat_steps`` updates that end with each inversion (the paper's S),
KFAC's Monte-Carlo Ḡ and its second backward pass included.

The package's modules, one family each: :mod:`~nnstudies.optim.layers` (the supported layers and
their per-batch statistics), :mod:`~nnstudies.optim.curvature` (the factors and their damped
inverses), :mod:`~nnstudies.optim.directions` (one-batch directions) and
:mod:`~nnstudies.optim.optimizers` (the optimizers and :func:`training_step`). Every public name is
re-exported here: ``from nnstudies.optim import FOOF``.
"""

from __future__ import annotations

from .curvature import DampedInverse, damped_inverse, heuristic_damping, input_factor, output_factor
from .directions import (
    a_inner_cosine,
    foof_direction,
    kfac_direction,
    natural_gradient_direction,
    woodbury_solve,
)
from .layers import Layer, LayerStatistics, layer_statistics, sample_labels, supported_layers
from .optimizers import FOOF, KFAC, NaturalGradient, training_step

__all__ = [
    "FOOF",
    "KFAC",
    "DampedInverse",
    "Layer",
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
