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

:class:`Regulariser` names a method in code (a ``str`` enum: ``Regulariser.SI == "SI"``) and
:data:`METHODS` is the registry: a method → :class:`Method` (how its Ω is obtained, its label
and its colour). :func:`continual_step` is one training update
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

Where each part lives (every name is importable from this package):
:mod:`~nnstudies.continual.importances` (measured after a task, the two engines),
:mod:`~nnstudies.continual.path` (accumulated during training),
:mod:`~nnstudies.continual.penalty`, :mod:`~nnstudies.continual.methods` (the registry) and
:mod:`~nnstudies.continual.training` (the step, a task, a run). The benchmarks (Permuted and
Split tasks) are in :mod:`nnstudies.tasks.continual`.
"""

from .importances import (
    Importances,
    absolute_fisher,
    check_like_model,
    fisher,
    mas,
    per_example_importance,
    per_example_output,
    sqrt_fisher,
    vmap_importance,
)
from .importances import (
    _linear_engine as _linear_engine,
)
from .importances import (
    _vmap_engine as _vmap_engine,
)
from .methods import METHODS, PATH, POSTHOC, Method, Regulariser
from .path import SOS, OnAF, PathAccumulator, SynapticIntelligence, minibatch_gradient
from .penalty import QuadraticPenalty
from .training import ContinualResult, continual_step, pearson, run_continual, train_task

__all__ = [
    "METHODS",
    "PATH",
    "POSTHOC",
    "SOS",
    "ContinualResult",
    "Importances",
    "Method",
    "OnAF",
    "PathAccumulator",
    "QuadraticPenalty",
    "Regulariser",
    "SynapticIntelligence",
    "absolute_fisher",
    "check_like_model",
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
