"""Chapter 1, permutations: pairs of networks, matched, interpolated and judged, at every scale.

The algorithms live in :mod:`nnstudies.permutations`. This package holds the chapter's settings
(:mod:`.presets`: one :class:`Preset` per scale), the training of its networks as run specs
(:mod:`.experiment`), the studies built on them (:mod:`.studies`: the matching methods
:data:`METHODS`, :func:`analyse_pair` → :class:`PairResult`, the recorded values), the claims
(:mod:`.claims`) and the figures and explorers (:mod:`.views`).
"""

from __future__ import annotations

from . import claims, experiment, presets, studies, views
from .claims import *
from .experiment import *
from .presets import *
from .studies import *
from .views import *

__all__ = presets.__all__ + experiment.__all__ + studies.__all__ + claims.__all__ + views.__all__
