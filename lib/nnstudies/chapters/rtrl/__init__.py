"""Chapter 4: online learning on the copy task and on characters, and the noise and cost of
RTRL's approximations.

The algorithms live in :mod:`nnstudies.rtrl` and the tasks in :mod:`nnstudies.tasks.sequences`.
This package holds the chapter's settings per scale (:mod:`.presets`), its learners as data
(:mod:`.learners`: :class:`Algorithm`, :class:`Learner`, the model and the online step), the
copy-task runs and studies (:mod:`.experiment`), characters (:mod:`.characters`), every training run as one sweep (:mod:`.plan`), the timing
(:mod:`.cost`), the claims (:mod:`.claims`) and the figures and explorers (:mod:`.views`).
Every training run is a spec executed by :mod:`nnstudies.runs`, cached by its fields.
"""

from __future__ import annotations

from . import characters, claims, cost, experiment, learners, plan, presets, summary, views
from .characters import *
from .claims import *
from .cost import *
from .experiment import *
from .learners import *
from .plan import *
from .presets import *
from .summary import *
from .views import *

__all__ = (
    presets.__all__
    + learners.__all__
    + experiment.__all__
    + characters.__all__
    + plan.__all__
    + cost.__all__
    + claims.__all__
    + summary.__all__
    + views.__all__
)
