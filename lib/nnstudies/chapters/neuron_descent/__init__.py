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

from .claims import CLAIMS, claim_values
from .experiment import (
    MethodRun,
    NeuronRun,
    TimingResult,
    autoencoder,
    batch_stream,
    cosine_to_foof,
    cosine_vs_damping,
    experiment_of,
    load_data,
    make_model,
    make_optimizer,
    neuron_step,
    run_spec,
    time_per_update,
)
from .methods import Kind, Method
from .presets import (
    CONTROL_METHODS,
    FULL_GRIDS,
    GRIDS,
    GRIDS_AUTOENCODER,
    MLP_METHODS,
    PRESETS,
    Experiment,
    Preset,
    Setting,
    Timing,
    grid,
)
from .studies import (
    Comparison,
    TuningResult,
    chosen_setting,
    chosen_settings,
    compare,
    train_run,
    tune,
    tune_many,
)
from .views import (
    METHODS,
    MethodStyle,
    explorer_chart,
    explorer_figure,
    explorer_rows,
    plot_cosines,
    plot_final_losses,
    plot_runs,
)

__all__ = [
    "CLAIMS",
    "CONTROL_METHODS",
    "FULL_GRIDS",
    "GRIDS",
    "GRIDS_AUTOENCODER",
    "METHODS",
    "MLP_METHODS",
    "PRESETS",
    "Comparison",
    "Experiment",
    "Kind",
    "Method",
    "MethodRun",
    "MethodStyle",
    "NeuronRun",
    "Preset",
    "Setting",
    "Timing",
    "TimingResult",
    "TuningResult",
    "autoencoder",
    "batch_stream",
    "chosen_setting",
    "chosen_settings",
    "claim_values",
    "compare",
    "cosine_to_foof",
    "cosine_vs_damping",
    "experiment_of",
    "explorer_chart",
    "explorer_figure",
    "explorer_rows",
    "grid",
    "load_data",
    "make_model",
    "make_optimizer",
    "neuron_step",
    "plot_cosines",
    "plot_final_losses",
    "plot_runs",
    "run_spec",
    "time_per_update",
    "train_run",
    "tune",
    "tune_many",
]
