"""Chapter 2's experiments: SGD, Adam, the exact natural gradient, KFAC and FOOF side by side, on
several seeds.

The algorithms live in :mod:`nnstudies.optim`. This package holds what the chapter does with
them: the optimizers and networks it chooses between (:mod:`.methods`: :class:`Method`,
:class:`Kind`), a typed :class:`Preset` per scale (:mod:`.presets`), one training run as a spec
(:class:`NeuronRun`, run by :func:`nnstudies.fit` with :func:`neuron_step`), the KFAC-vs-FOOF
cosines and the interleaved timings (:mod:`.experiment`), the tuning that chooses the learning
rates and the comparison on several seeds (:mod:`.studies`), the claims and their per-seed values
(:mod:`.claims`), and figures (:mod:`.views`).
"""

from __future__ import annotations

from . import claims, experiment, methods, presets, studies, views
from .claims import *
from .experiment import *
from .methods import *
from .presets import *
from .studies import *
from .views import *

__all__ = (
    methods.__all__
    + presets.__all__
    + experiment.__all__
    + studies.__all__
    + claims.__all__
    + views.__all__
)
