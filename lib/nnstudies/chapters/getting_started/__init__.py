"""Chapter 0: train an MLP with SGD and see what the learning rate does, on several seeds.

The experiment is one run spec (:class:`MLPRun`): the book's step function
(:func:`nnstudies.training.classification_step`) run by its one loop (:func:`nnstudies.training.fit`),
executed and cached by the engine (:mod:`nnstudies.runs`). ``presets`` holds the settings per scale,
``experiment`` the runs and the study, ``claims`` the claims and their rules, ``views`` the figures.
"""

from .claims import CLAIMS, best_learning_rate, claim_values
from .experiment import LearningRateStudy, MLPRun, learning_rate_study, load_data, train_mlp
from .presets import PRESETS, Preset
from .views import explorer_chart, explorer_rows, plot_examples, plot_learning_rates, plot_study

__all__ = [
    "CLAIMS",
    "PRESETS",
    "LearningRateStudy",
    "MLPRun",
    "Preset",
    "best_learning_rate",
    "claim_values",
    "explorer_chart",
    "explorer_rows",
    "learning_rate_study",
    "load_data",
    "plot_examples",
    "plot_learning_rates",
    "plot_study",
    "train_mlp",
]
