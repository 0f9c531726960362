"""Chapter 4's copy task as one part, alone: ``python -m nnstudies.chapters.rtrl copy [--scale
paper]``.

At ``paper`` this is the part of the chapter sized for one GPU: the paper's copy task (n = 128,
batch 16, OK with r = 16, Adam 10^-3.5, the curriculum), OK against TBPTT updating every k steps
at the preset's judged k, on the first seed, for as many steps as ``--minutes`` (15) allow: it
first times both learners' steps on this device (:func:`~.cost.measure_step`), then runs both for
that many steps (whole thousands, at most the preset's; the paper ran 2M). It prints the timing,
the estimate of the paper's own 2M-step runs at that speed, and the lengths T₊ reached, and
records them under the chapter's name (``$NNSTUDIES_RESULTS_DIR/04_rtrl.json`` when set), as the
notebook does. ``NNSTUDIES_DRY_RUN=1`` runs it in seconds, without the timing (CI does).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from ...parts import finish
from ...scales import SCALES, check_scale, dry_run
from .cost import measure_step
from .experiment import CopySpec, copy_runs, copy_spec
from .learners import Algorithm, Learner
from .presets import PRESETS, Preset

CHAPTER = "04_rtrl"
PAPER_STEPS = 2_000_000
"""The paper's steps per copy-task run (5 runs of OK)."""
OVERHEAD = 1.25
"""The time a training step takes over the learner's own step (the curriculum's bookkeeping, the
loss on the copied bits, clipping and Adam), as a factor, for sizing the part."""


def part_specs(preset: Preset) -> list[CopySpec]:
    """OK(r) and TBPTT(k) updating every k steps at the judged k, on the first seed."""
    c = preset.curriculum
    learners = (
        Learner(Algorithm.OK, rank=c.rank),
        Learner(Algorithm.TBPTT_EVERY_K, horizon=c.horizon),
    )
    return [copy_spec(learner, preset, seed=c.seeds[0]) for learner in learners]


def seconds_per_step(spec: CopySpec, *, steps: int = 30) -> float:
    """The learner's seconds per step at the spec's width and batch on this device (the median of
    ``steps`` after a warm-up; the curriculum's bookkeeping and Adam not included)."""
    return measure_step(spec.learner, spec.network.hidden, batch=spec.network.batch, steps=steps)[0]


def sized(specs: list[CopySpec], minutes: float) -> tuple[list[CopySpec], dict[str, float]]:
    """``specs`` with as many steps as ``minutes`` allow on this device (whole thousands, at most
    their own), and each learner's measured seconds per step. A dry run keeps them as they are."""
    if dry_run():
        return specs, {}
    per_step = {s.learner.label: seconds_per_step(s) for s in specs}
    steps = int(minutes * 60 / (OVERHEAD * sum(per_step.values())) // 1000 * 1000)
    steps = min(max(steps, 1000), min(s.steps for s in specs))
    return [replace(s, steps=steps) for s in specs], per_step


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("part", choices=["copy"], help="the part to run")
    parser.add_argument("--scale", default="paper", choices=list(SCALES))
    parser.add_argument("--minutes", type=float, default=15.0, help="the time to fill")
    args = parser.parse_args(argv)
    p = PRESETS[check_scale(args.scale)]
    specs, per_step = sized(part_specs(p), args.minutes)
    if per_step:
        ok_step = next(v for k, v in per_step.items() if k.startswith("OK"))
        print(
            "seconds per step on this device: "
            + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in per_step.items())
            + f"; the paper's {PAPER_STEPS:,} steps of OK would take {PAPER_STEPS * ok_step / 3600:.1f} h "
            f"a run at this speed (5 runs: {5 * PAPER_STEPS * ok_step / 3600:.0f} h), before "
            "the curriculum's bookkeeping and Adam",
            flush=True,
        )
    print(
        f"{args.scale}: copy task, n = {p.copy.hidden}, batch {p.copy.batch}, "
        + ", ".join(s.learner.label for s in specs)
        + f", {specs[0].steps} steps each",
        flush=True,
    )
    start = time.perf_counter()
    runs = copy_runs(specs)
    for run in runs:
        print(f"{run.label}: T₊ = {run.final_length} after {len(run.lengths)} steps")
    return finish(
        CHAPTER,
        "copy",
        args.scale,
        start,
        part_hidden=p.copy.hidden,
        part_rank=p.curriculum.rank,
        part_lengths={run.label: run.final_length for run in runs},
        part_steps=specs[0].steps,
        part_seconds_per_step=per_step,
        part_seconds_per_run={run.label: run.history.seconds for run in runs},
    )


if __name__ == "__main__":
    main()
