"""Online recurrent learning: exact RTRL, UORO, KF-RTRL, OK (optimal Kronecker sum) and truncated
BPTT.

A recurrent cell maps the previous state and an input to the next state,
``h_t = F(h_{t-1}, x_t; θ)``. Its parameters form one matrix ``W`` of shape
``(m, g·n)`` acting on the augmented input ``â_t = [x_t, h_{t-1}, 1] ∈ R^m``
(``m = input_size + hidden_size + 1``, ``n = hidden_size``, ``g`` gates):
``z_t = â_t W``. Real Time Recurrent Learning (RTRL, :cite:`williams1989rtrl`)
carries the *influence matrix* ``G_t = dh_t/dθ`` (``n × |θ|``) forward in time,

    G_t = H_t G_{t-1} + F_t,      H_t = ∂h_t/∂h_{t-1},   F_t = ∂h_t/∂θ (immediate),

and the gradient of the loss at step t is ``(∂L_t/∂h_t) G_t``.

Vec / Kronecker convention (used everywhere in this package)
-----------------------------------------------------------
``θ = vec(W)`` is ``W`` flattened in row-major order, ``θ[p·gn + q] = W[p, q]``.
With ``D_t = ∂h_t/∂z_t`` (``n × gn``) the immediate Jacobian is a Kronecker product

    F_t[i, p·gn + q] = â_t[p] · D_t[i, q],    i.e.   F_t = â_tᵀ ⊗ D_t,

and a Kronecker sum ``G ≈ Σ_k u_kᵀ ⊗ A_k`` (``u_k ∈ R^m``, ``A_k ∈ R^{n×gn}``) gives
``H G = Σ_k u_kᵀ ⊗ (H A_k)`` and the weight gradient ``∂L/∂W = Σ_k u_k (A_kᵀ c)ᵀ``
with ``c = ∂L/∂h`` — an outer product, never the full ``n × |θ|`` matrix.

Batches
-------
Every learner keeps one state and one influence (exact or approximate) *per
batch element*: shapes start with the batch size ``B``. The loss at step t is
the batch mean of the cross-entropy of ``readout(h_t)`` against ``y_t``, so each
learner's ``step`` adds ``(1/B) Σ_b (∂ℓ_b/∂h_t^b) G_t^b`` — the gradient of the
batch-mean loss — to ``.grad`` of the cell's weight, and the readout's exact
gradient to the readout's ``.grad``. Parameters are never changed: the caller's
optimiser does that.

Learners: :class:`ExactRTRL` (O(n⁴) time, O(n³) memory per step and example),
:class:`UORO` (:cite:`tallec2018uoro`, rank one over all of θ, O(n²)),
:class:`KFRTRL` (:cite:`mujika2018kfrtrl`, one Kronecker product, O(n³)),
:class:`OK` (:cite:`benzing2019optimal`, the optimal sum of ``r`` Kronecker
products, O(r n³); its reduction is :func:`ok_reduce`) and :class:`TBPTT`
(backpropagation through the last ``k`` steps at every step) and :class:`ChunkedTBPTT` (one
update every ``k`` steps, through the chunk). The tasks they are trained on (the
copy task, character streams) live in :mod:`nnstudies.tasks.sequences`.

Modules: :mod:`.cells` (the cells and the model), :mod:`.learner` (the base class),
:mod:`.exact`, :mod:`.uoro`, :mod:`.kronecker` (KF-RTRL and OK), :mod:`.reduction` (OK's
reduction) and :mod:`.tbptt`; every public name is importable from here.
"""

from __future__ import annotations

from .cells import CellStep, KroneckerCell, RecurrentModel, RHNCell, TanhCell
from .exact import ExactRTRL
from .kronecker import KFRTRL, OK
from .learner import OnlineLearner, random_signs
from .reduction import drop_smallest, kronecker_core, minimum_variance_mixing, ok_reduce
from .tbptt import TBPTT, ChunkedTBPTT
from .uoro import UORO

__all__ = [
    "KFRTRL",
    "OK",
    "TBPTT",
    "UORO",
    "CellStep",
    "ChunkedTBPTT",
    "ExactRTRL",
    "KroneckerCell",
    "OnlineLearner",
    "RHNCell",
    "RecurrentModel",
    "TanhCell",
    "drop_smallest",
    "kronecker_core",
    "minimum_variance_mixing",
    "ok_reduce",
    "random_signs",
]
