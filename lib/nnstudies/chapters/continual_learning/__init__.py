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

from .claims import CLAIMS, claim_values, fragile_claims, near_ties
from .experiment import (
    Comparison,
    ContinualRun,
    TaskData,
    Tuning,
    compare,
    label,
    load_tasks,
    run_spec,
    settings,
    strength,
    task_grid,
    train_run,
    train_runs,
    trained_model,
    tune,
)
from .presets import BENCHMARKS, PRESETS, Benchmark, BenchmarkSettings, Preset
from .studies import PAIRS, BiasStudy, Correlations, bias_study, correlations
from .views import (
    bias_explorer_chart,
    bias_explorer_figure,
    bias_explorer_rows,
    bias_table,
    comparison_table,
    comparison_table_from_record,
    correlation_table,
    cost_table,
    explorer_chart,
    explorer_figure,
    explorer_rows,
    plot_bias,
    plot_correlations,
    plot_forgetting,
    plot_gaps,
    plot_matrix,
    plot_methods,
    plot_tuning,
)

__all__ = [
    "BENCHMARKS",
    "CLAIMS",
    "PAIRS",
    "PRESETS",
    "Benchmark",
    "BenchmarkSettings",
    "BiasStudy",
    "Comparison",
    "ContinualRun",
    "Correlations",
    "Preset",
    "TaskData",
    "Tuning",
    "bias_explorer_chart",
    "bias_explorer_figure",
    "bias_explorer_rows",
    "bias_study",
    "bias_table",
    "claim_values",
    "compare",
    "comparison_table",
    "comparison_table_from_record",
    "correlation_table",
    "correlations",
    "cost_table",
    "explorer_chart",
    "explorer_figure",
    "explorer_rows",
    "fragile_claims",
    "label",
    "load_tasks",
    "near_ties",
    "plot_bias",
    "plot_correlations",
    "plot_forgetting",
    "plot_gaps",
    "plot_matrix",
    "plot_methods",
    "plot_tuning",
    "run_spec",
    "settings",
    "strength",
    "task_grid",
    "train_run",
    "train_runs",
    "trained_model",
    "tune",
]
