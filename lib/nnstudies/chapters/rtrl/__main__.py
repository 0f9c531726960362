"""Chapter 4's copy task as one part, alone: ``python -m nnstudies.chapters.rtrl copy [--scale
paper]``.

At ``paper`` this is the part of the chapter sized for one GPU in about 15 minutes: the paper's
copy task (n = 128, batch 16, OK with r = 16, Adam 10^-3.5, the curriculum), OK against TBPTT
updating every k steps at the preset's judged k, on the first seed, for the preset's steps (the
paper ran 2M). It prints the cost estimate and the lengths T₊ reached, and records them under the
chapter's name (``$NNSTUDIES_RESULTS_DIR/04_rtrl.json`` when set), as the notebook does.
``NNSTUDIES_DRY_RUN=1`` runs it in seconds (CI does).
"""

from __future__ import annotations

import argparse
import time

from ...results import record
from ...scales import SCALES, check_scale
from .experiment import CopySpec, copy_runs, copy_spec
from .learners import Algorithm, Learner
from .presets import PRESETS, Preset

CHAPTER = "04_rtrl"
PAPER_STEPS = 2_000_000
"""The paper's steps per copy-task run (5 runs of OK)."""
MS_PER_STEP = {Algorithm.OK: 5.0, Algorithm.TBPTT_EVERY_K: 1.5}
"""Estimated milliseconds per step on one GPU at n = 128, batch 16 (not measured: OK's r + 1
products ``H A_k`` are about 2 GFLOP a step, a tenth of a millisecond on an H100; the rest is kernel
launches and the small decompositions of its reduction)."""


def part_specs(preset: Preset) -> list[CopySpec]:
    """OK(r) and TBPTT(k) updating every k steps at the judged k, on the first seed."""
    c = preset.curriculum
    learners = (
        Learner(Algorithm.OK, rank=c.rank),
        Learner(Algorithm.TBPTT_EVERY_K, horizon=c.horizon),
    )
    return [copy_spec(learner, preset, seed=c.seeds[0]) for learner in learners]


def gpu_minutes(specs: list[CopySpec], steps: int | None = None) -> float:
    """Estimated minutes on one GPU for ``specs`` (at ``steps`` each, default theirs), from
    :data:`MS_PER_STEP`."""
    return sum((steps or s.steps) * MS_PER_STEP[s.learner.algorithm] for s in specs) / 6e4


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("part", choices=["copy"], help="the part to run")
    parser.add_argument("--scale", default="paper", choices=list(SCALES))
    args = parser.parse_args(argv)
    p = PRESETS[check_scale(args.scale)]
    specs = part_specs(p)
    ok_only = [s for s in specs if s.learner.algorithm is Algorithm.OK]
    print(
        f"{args.scale}: copy task, n = {p.copy.hidden}, batch {p.copy.batch}, "
        + ", ".join(s.learner.label for s in specs)
        + f", {p.curriculum.steps} steps each: about {gpu_minutes(specs):.0f} GPU minutes "
        f"(estimated); the paper's {PAPER_STEPS:,} steps on 5 runs of OK: about "
        f"{5 * gpu_minutes(ok_only, PAPER_STEPS) / 60:.0f} GPU hours",
        flush=True,
    )
    start = time.perf_counter()
    runs = copy_runs(specs)
    for run in runs:
        print(f"{run.label}: T₊ = {run.final_length} after {len(run.lengths)} steps")
    seconds = time.perf_counter() - start
    print(f"{seconds:.0f} s")
    return record(
        CHAPTER,
        scale=args.scale,
        part="copy",
        part_seconds=seconds,
        part_hidden=p.copy.hidden,
        part_rank=p.curriculum.rank,
        part_lengths={run.label: run.final_length for run in runs},
        part_seconds_per_run={run.label: run.history.seconds for run in runs},
    )


if __name__ == "__main__":
    main()
