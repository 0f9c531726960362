"""Chapter 3: continual learning with importance-based penalties (SI, MAS, EWC and the measures that
explain them): benchmarks per scale, tuned strengths, fresh seeds, claims, figures.

- :mod:`.presets`: the settings per scale (data only);
- :mod:`.experiment`: one run as a spec (:class:`ContinualRun`), tuning and the comparison;
- :mod:`.studies`: the importances' correlations and SI's bias against batch size;
- :mod:`.claims`: what the paper claims and how each claim is judged;
- :mod:`.views`: figures, explorers and tables.

The algorithms live in :mod:`nnstudies.continual` and the task streams in
:mod:`nnstudies.tasks.continual`.
"""

from __future__ import annotations

from . import claims, experiment, presets, studies, views
from .claims import *
from .experiment import *
from .presets import *
from .studies import *
from .views import *

__all__ = presets.__all__ + experiment.__all__ + studies.__all__ + claims.__all__ + views.__all__
