"""Chapter 2's MLP comparison as one part, alone: ``python -m nnstudies.chapters.neuron_descent mlp
[--scale paper]``.

At ``paper`` this is the part of the chapter sized for one GPU in 15 minutes: the paper's MLP
(784-1000-1000-1000-10, ReLU, no biases) on MNIST, 6000 updates at batch 100, every method at the
paper's settings (Benzing 2022), on the preset's judging seeds (:func:`~.studies.compare_protocols`,
with the direction cosines along KFAC's runs). It prints the cost estimate, each method's final
training loss and the MLP claims' verdicts, and records the final losses, the updates, the
cosines and the MLP claims' per-seed values under the chapter's name
(``$NNSTUDIES_RESULTS_DIR/02_neuron_descent.json`` when set), as the notebook does.
``NNSTUDIES_DRY_RUN=1`` runs it in seconds on random data of the real shapes (CI does).
"""

from __future__ import annotations

import argparse
import statistics
import time

from ...parts import finish
from ...scales import SCALES, check_scale, dry_run
from .claims import CLAIMS, direction_values
from .methods import Method
from .presets import PRESETS, Experiment
from .studies import STABLE, compare_protocols

CHAPTER = "02_neuron_descent"

#: Seconds per update on one GPU (an H100 or a T4-class card is slower; Python and kernel launches
#: dominate at batch 100): a guess from the CPU's flop counts, to be replaced by a measured run.
GPU_MS_PER_UPDATE = {
    Method.SGD: 1.0,
    Method.ADAM: 1.0,
    Method.NATURAL: 4.0,
    Method.KFAC: 3.0,
    Method.KFAC_STANDARD: 6.0,
    Method.FOOF: 2.0,
}

_MLP_CLAIMS = (
    "kfac_beats_natural",
    "heuristic_beats_standard",
    "standard_like_sgd",
    "foof_beats_kfac_mlp",
    "cosine_high",
    "cosine_closer_heuristic",
    "kfac_not_second_order",
)


def gpu_minutes(exp: Experiment, seeds: int) -> float:
    """The MLP comparison on one GPU, in minutes: runs × updates × :data:`GPU_MS_PER_UPDATE`."""
    ms = sum(GPU_MS_PER_UPDATE.get(m, 4.0) for m in exp.methods)
    return seeds * exp.steps * ms / 1e3 / 60


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["mlp"], help="the part to run")
    parser.add_argument("--scale", default="paper", choices=list(SCALES))
    args = parser.parse_args(argv)
    p = PRESETS[check_scale(args.scale)]
    exp = p.mlp
    print(
        f"{args.scale}: MLP with hidden widths {'-'.join(map(str, exp.hidden))} on {p.dataset}, {exp.steps} updates "
        f"at batch {exp.batch_size}, T = {exp.inv_period}, seeds {list(p.seeds)}; about "
        f"{gpu_minutes(exp, len(p.seeds)):.0f} GPU minutes estimated"
        + (" (a dry run: two updates a run)" if dry_run() else ""),
        flush=True,
    )
    start = time.perf_counter()
    comparisons = compare_protocols(p)
    mlp = comparisons[STABLE]
    for m in mlp.runs:
        losses = mlp.final_losses(m)
        print(f"{m}: final training loss, median {statistics.median(losses):.4g} ({losses})")
    cosines = direction_values(mlp)
    claims = {
        "kfac_beats_natural": mlp.log_ratio(Method.NATURAL, Method.KFAC),
        "heuristic_beats_standard": mlp.log_ratio(Method.KFAC_STANDARD, Method.KFAC),
        "standard_like_sgd": mlp.log_ratio(Method.KFAC_STANDARD, Method.SGD),
        "foof_beats_kfac_mlp": mlp.log_ratio(Method.KFAC, Method.FOOF),
        "cosine_high": cosines["cosine_heuristic"],
        "cosine_closer_heuristic": [
            h - s for h, s in zip(cosines["cosine_heuristic"], cosines["cosine_standard"])
        ],
        "kfac_not_second_order": cosines["cosine_kfac_natural"],
    }
    return finish(
        CHAPTER,
        "mlp",
        args.scale,
        start,
        claims=CLAIMS,
        judged={k: {STABLE: v} if k in _TUNED else v for k, v in claims.items()},
        judging_seeds=list(p.seeds),
        tuning_seeds=list(exp.tune_seeds),
        updates=mlp.updates(),
        **{f"final_loss.{m}": mlp.final_losses(m) for m in mlp.runs},
        **cosines,
    )


_TUNED = {c.key for c in CLAIMS if c.protocol is not None and c.key in _MLP_CLAIMS}

if __name__ == "__main__":
    main()
