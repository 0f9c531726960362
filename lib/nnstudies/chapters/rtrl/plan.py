"""Every training run of chapter 4 as one sweep (:func:`train_all`), so that the engine spreads
them over all workers at once, the longest first; the studies then find them in the cache."""

from __future__ import annotations

from ...runs import run_all
from .characters import CharSpec, char_specs
from .experiment import CopySpec, copy_spec, curriculum_specs, horizon_specs
from .learners import Algorithm, Learner
from .presets import Preset

__all__ = ["chapter_specs", "train_all"]


def chapter_specs(preset: Preset) -> list[CharSpec | CopySpec]:
    """The runs of sections 1, 4 and 5 (section 3 reuses section 4's OK networks) and of the
    curriculum explorer, OK's first (its steps cost the most), then the rest in the order of the
    chapter."""
    c = preset.curriculum
    explorer = [  # the explorer's grid, seed 0 (most of it is in the sweep already)
        copy_spec(learner, preset, seed=c.seeds[0])
        for learner in [Learner(Algorithm.TBPTT_EVERY_K, horizon=k) for k in c.explorer_horizons]
        + [Learner(Algorithm.OK, rank=r) for r in c.explorer_ranks]
    ]
    specs: list[CharSpec | CopySpec] = [
        *char_specs(preset),
        *curriculum_specs(preset),
        *horizon_specs(preset),
        *explorer,
    ]
    unique = list(dict.fromkeys(specs))
    first = [s for s in unique if s.learner.algorithm is Algorithm.OK]
    return first + [s for s in unique if s not in first]


def train_all(preset: Preset) -> int:
    """Execute (or load from the cache) every run of :func:`chapter_specs` as one sweep; return how
    many runs there are."""
    specs = chapter_specs(preset)
    run_all(specs, desc="the chapter's training runs")
    return len(specs)
