"""Chapter 0: train an MLP with SGD and see what the learning rate does, on several seeds.

The experiment is one run spec (:class:`MLPRun`): the book's step function
(:func:`nnstudies.training.classification_step`) run by its one loop (:func:`nnstudies.training.fit`),
executed and cached by the engine (:mod:`nnstudies.runs`). ``presets`` holds the settings per scale,
``experiment`` the runs and the study, ``claims`` the claims and their rules, ``views`` the figures.
"""

from __future__ import annotations

from . import claims, experiment, presets, views
from .claims import *
from .experiment import *
from .presets import *
from .views import *

__all__ = presets.__all__ + experiment.__all__ + claims.__all__ + views.__all__
