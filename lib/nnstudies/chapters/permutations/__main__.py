"""Chapter 1's conv study as one part, alone: ``python -m nnstudies.chapters.permutations conv
[--scale paper]``.

At ``paper`` this is the part of the chapter sized for one GPU in 15 minutes: the paper's CIFAR-10
conv nets, five pairs at each learning rate, naive, matched and matched + REPAIR
(:func:`~.studies.learning_rate_study`). It prints the cost estimate, the barriers and the conv
claims' verdicts, and records the study's values and the conv claims' per-pair values under the
chapter's name (``$NNSTUDIES_RESULTS_DIR/01_permutations.json`` when set), as the notebook does.
``NNSTUDIES_DRY_RUN=1`` runs it in seconds on random data of the real shapes (CI does).
"""

from __future__ import annotations

import argparse
import statistics
import time

from ...parts import finish
from ...scales import SCALES, check_scale
from .claims import CLAIMS, conv_claim_values
from .experiment import preset, training_flop
from .presets import ConvStudy
from .studies import conv_values, learning_rate_study

CHAPTER = "01_permutations"


def gpu_minutes(conv: ConvStudy, *, tflops: float = 20.0, overhead_ms: float = 1.0) -> float:
    """The conv study's training on one GPU at every net's update cap, in minutes: Σ updates ×
    (FLOP per update ÷ ``tflops`` + ``overhead_ms``). 20 TFLOP/s: an H100 on these small convs
    (float32 with TF32 convolutions); 1 ms: Python and kernel launches per update."""
    seconds = sum(
        2 * conv.pairs * s.training.steps * (training_flop(s) / (tflops * 1e12) + overhead_ms / 1e3)
        for s in (conv.small, conv.large)
    )
    return seconds / 60


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["conv"], help="the part to run")
    parser.add_argument("--scale", default="paper", choices=list(SCALES))
    args = parser.parse_args(argv)
    p = preset(check_scale(args.scale))
    print(
        f"{args.scale}: {p.conv.pairs} pairs per learning rate of {p.conv.small.describe()}; "
        f"{training_flop(p.conv.small) / 1e9:.1f} GFLOP per update; at every net's cap "
        f"{gpu_minutes(p.conv):.1f} GPU minutes (20 TFLOP/s + 1 ms per update)",
        flush=True,
    )
    start = time.perf_counter()
    study = learning_rate_study(p)
    values = conv_values(study)
    claims = conv_claim_values(study)
    for which in ("small", "large"):
        means = {
            m: statistics.fmean(study.barriers(which, m))
            for m in ("naive", "activations", "repair")
        }
        print(
            f"lr {values[f'cnn_lr_{which}']:g}: test loss barrier "
            + ", ".join(f"{m} {v:.3f}" for m, v in means.items())
        )
    return finish(CHAPTER, "conv", args.scale, start, claims=CLAIMS, judged=claims, **values)


if __name__ == "__main__":
    main()
