"""Chapter 3's Permuted MNIST row as one part, alone: ``python -m nnstudies.chapters.continual_learning
pmnist [--scale paper]``.

At ``paper`` this is the part of the chapter sized for one GPU in 15 minutes: the paper's Permuted
MNIST (10 tasks, 784-2000-2000-10, Adam 1e-3 reset per task, batch 256, 20 epochs per task) with SI
at the paper's chosen strength c = 0.2 and damping ξ = 0.1, on the first
:data:`~.presets.PMNIST_PART_SEEDS` judging
seeds (the paper: 97.2-97.3 % average test accuracy). It prints the cost estimate, the accuracies
and the claim's verdict, and records them under the chapter's name
(``$NNSTUDIES_RESULTS_DIR/03_continual_learning.json`` when set), as the notebook does.
``NNSTUDIES_DRY_RUN=1`` runs it in seconds on random data of the real shapes (CI does).
"""

from __future__ import annotations

import argparse
import statistics
import time

from ...continual import Regulariser
from ...parts import finish
from ...scales import SCALES, check_scale
from .claims import CLAIMS
from .experiment import run_spec, settings, steps_per_task, train_runs
from .presets import PMNIST_PART_SEEDS

CHAPTER = "03_continual_learning"


def gpu_minutes(steps: int, *, ms_per_step: float = 3.0) -> float:
    """The part's training on one GPU in minutes: ``steps`` updates at ``ms_per_step`` each (SI's
    accumulator adds a few elementwise passes over the 4.8 M parameters to every Adam step; Python
    and kernel launches dominate at this size)."""
    return steps * ms_per_step / 1e3 / 60


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["pmnist"], help="the part to run")
    parser.add_argument("--scale", default="paper", choices=list(SCALES))
    args = parser.parse_args(argv)
    p = settings(check_scale(args.scale))
    seeds = p.seeds[:PMNIST_PART_SEEDS]
    c = p.permuted.strengths[Regulariser.SI]
    per_task = steps_per_task(p, "permuted")
    steps = len(seeds) * p.permuted.n_tasks * per_task
    print(
        f"{args.scale}: SI (c = {c:g}) on {p.permuted.n_tasks} permuted {p.dataset} tasks, "
        f"MLP {p.permuted.hidden}, {per_task} steps per task at batch {p.permuted.batch_size}, "
        f"seeds {seeds}; about {gpu_minutes(steps):.1f} GPU minutes (3 ms per update)",
        flush=True,
    )
    start = time.perf_counter()
    specs = [run_spec(p, "permuted", Regulariser.SI, c, seed=s) for s in seeds]
    runs = train_runs(specs, desc=f"SI on Permuted {p.dataset}, seeds {seeds}")
    accuracy = [r.average_accuracy() for r in runs]
    print(
        f"SI: average test accuracy after {p.permuted.n_tasks} tasks "
        + ", ".join(f"{a:.2%}" for a in accuracy)
        + f" (mean {statistics.fmean(accuracy):.2%})"
    )
    claims = {"si_pmnist": accuracy} if p.pmnist_claim else {}
    return finish(
        CHAPTER,
        "pmnist",
        args.scale,
        start,
        claims=CLAIMS,
        judged=claims,
        pmnist_seeds=list(seeds),
        pmnist_strength=c,
        steps_per_task=per_task,
        batch_size=p.permuted.batch_size,
        pmnist_si_test=accuracy,
    )


if __name__ == "__main__":
    main()
