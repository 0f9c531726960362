"""Chapter 2's claims, the seeds that tune and judge them, and the per-seed (or per-repeat) values
that judge them."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ...claims import (
    COSINE,
    MINIMUM_EFFECT,
    THIRD_EDITION,
    TIMES,
    TIMES_LOG10,
    Claim,
    Protocol,
    Rule,
    RuleChange,
    SeedRoles,
)
from .experiment import TimingResult
from .methods import Method as M
from .presets import Preset
from .studies import Comparison

__all__ = ["CLAIMS", "claim_values", "direction_values", "seed_roles"]

_X2, _X125 = math.log10(2.0), math.log10(1.25)  # a factor 2 and 1.25, as log10 ratios
# Set after the `cpu` results of 2026-11-28 had been seen (SGD at the edge of stability flipped a verdict).
_STABILITY = RuleChange(
    "2026-11-28",
    ("cpu",),
    "settings chosen by the stability rule (the best point whose neighbour towards a larger step "
    "also trains), no longer at the best grid point",
)
_PROTOCOL = RuleChange(
    THIRD_EDITION,
    ("cpu", "full"),
    "the deciding protocol named (the stability rule, which the runs used); the best-point "
    "protocol is not run yet",
)
_RESNET = (
    "the paper times ResNets; this times the wide MLP, whose dense layers make FOOF's and KFAC's "
    "extra products relatively larger (the chapter's conv benchmark is closer)"
)
_RESNET_CHANGE = RuleChange(
    THIRD_EDITION, ("cpu", "full"), "not tested on an MLP: the paper's claim is about ResNets"
)
_PAPER_AUTOENCODER = "the paper trains its autoencoder for 3,000 updates"
_CONV = RuleChange(
    THIRD_EDITION,
    ("cpu", "full"),
    "judged on the chapter's conv net (three 3×3 convolutions, batch 100), closer to the paper's "
    "ResNets than the MLP, on which it is not tested; the MLP's ratio had been seen",
)
_MEASURED = RuleChange(
    THIRD_EDITION,
    ("cpu", "full"),
    "measured (was: not tested at any scale); no value of it had been seen, the other claims' "
    "results had",
)

CLAIMS = (
    Claim(
        "kfac_beats_natural",
        "KFAC reaches a 10–20× lower training loss than the exact (subsampled) natural gradient "
        "at equal updates",
        paper="10–20× (Fig. 1A, MNIST MLP)",
        quantity="final training loss of the natural gradient ÷ of KFAC, per seed",
        unit=TIMES_LOG10,
        point="MLP classifier, equal updates, each method at its tuned setting",
        rule=Rule.above(0.0, margin=1.0, minimum=_X2),
        protocol=Protocol.STABLE,
        changes=(_STABILITY, MINIMUM_EFFECT, _PROTOCOL),
    ),
    Claim(
        "kfac_beats_natural_identical",
        "KFAC still beats the exact natural gradient when both see identical data",
        paper="KFAC still wins (Fig. 1B)",
        quantity="final training loss of the natural gradient ÷ of KFAC, per seed, on 1000 images "
        "with full batches (the Fisher on the gradient's own data)",
        unit=TIMES_LOG10,
        point="identical data for both, 1,000 full-batch updates in the paper",
        rule=Rule.above(0.0, margin=_X2, minimum=_X125),
        protocol=Protocol.STABLE,
        changes=(_STABILITY, MINIMUM_EFFECT, _PROTOCOL),
    ),
    Claim(
        "heuristic_beats_standard",
        "heuristic damping is what makes KFAC work: with standard damping it trains far worse",
        paper="heuristic ≫ standard (Fig. 3A)",
        quantity="final training loss of standard-damped KFAC ÷ of heuristic KFAC, per seed",
        unit=TIMES_LOG10,
        point="MLP classifier, equal updates, each damping at its tuned setting",
        rule=Rule.above(0.0, margin=_X2, minimum=_X125),
        protocol=Protocol.STABLE,
        changes=(_STABILITY, MINIMUM_EFFECT, _PROTOCOL),
    ),
    Claim(
        "standard_like_sgd",
        "with standard damping KFAC trains like SGD",
        paper="standard-damped KFAC ≈ SGD (Fig. 3A)",
        quantity="final training loss of standard-damped KFAC ÷ of SGD, per seed",
        unit=TIMES_LOG10,
        point="MLP classifier, equal updates, each at its tuned setting",
        rule=Rule.within(0.0, tolerance=_X2),
        protocol=Protocol.STABLE,
        changes=(_STABILITY, _PROTOCOL),
    ),
    Claim(
        "cosine_closer_heuristic",
        "KFAC's update is closer to FOOF's with heuristic than with standard damping",
        paper="clearly closer (Fig. 3B)",
        quantity="mean cosine to FOOF's update (Ā inner product) along a KFAC run, heuristic − "
        "standard damping, per seed",
        unit=COSINE,
        point="along a KFAC training run of the MLP",
        rule=Rule.above(0.0, margin=0.1, minimum=0.05),
        tuned=True,
        changes=(MINIMUM_EFFECT,),
    ),
    Claim(
        "cosine_high",
        "with heuristic damping KFAC's update is close to FOOF's",
        paper="high cosine (Fig. 3B)",
        quantity="mean cosine to FOOF's update (Ā inner product) along a KFAC run, heuristic "
        "damping, per seed",
        unit=COSINE,
        point="along a KFAC training run of the MLP",
        baseline="the plain gradient's cosine to FOOF's update along the same runs "
        "(`cosine_gradient_foof`, printed beside it)",
        rule=Rule.above(0.5, margin=0.3, minimum=0.15),
        tuned=True,
        changes=(MINIMUM_EFFECT,),
    ),
    Claim(
        "foof_faster_than_kfac",
        "FOOF is about 1.5× faster per update than KFAC",
        paper="≈ 1.5× (Fig. 4A, ResNet)",
        quantity="time per update of KFAC ÷ of FOOF at T = 100, 784-1000-1000-1000-10 MLP, "
        "batch 100, per repeat",
        unit=TIMES,
        point="ResNets (the paper's Fig. 4A)",
        untested={"*": _RESNET},
        rule=Rule.above(1.0, margin=0.3, minimum=0.15),
        timing=True,
        changes=(_RESNET_CHANGE,),
    ),
    Claim(
        "foof_overhead_small",
        "FOOF's amortised overhead over SGD is small (about 10%)",
        paper="≈ 1.1× SGD (Fig. 4A, ResNet)",
        quantity="time per update of FOOF ÷ of SGD at T = 100 on the chapter's conv net (three "
        "3×3 convolutions, global average pooling, a linear read-out; batch 100, 28×28 inputs), "
        "per repeat",
        unit=TIMES,
        point="ResNets (the paper's Fig. 4A); here a small conv net, whose cost is in the "
        "activations as a ResNet's is (on the MLP: not tested)",
        rule=Rule.below(1.3),
        timing=True,
        changes=(_RESNET_CHANGE, _CONV),
    ),
    Claim(
        "foof_beats_kfac_mlp",
        "FOOF trains MLPs at least as well as KFAC",
        paper="FOOF better (Fig. 4, MLPs and CNNs)",
        quantity="final training loss of KFAC ÷ of FOOF, per seed",
        unit=TIMES_LOG10,
        point="MLP classifier, equal updates, each at its tuned setting",
        rule=Rule.above(0.0, margin=0.1, minimum=0.05),
        protocol=Protocol.STABLE,
        changes=(_STABILITY, MINIMUM_EFFECT, _PROTOCOL),
    ),
    Claim(
        "kfac_beats_foof_autoencoder",
        "KFAC is slightly better than FOOF on autoencoders",
        paper="KFAC slightly better (Fig. 4)",
        quantity="final training loss of FOOF ÷ of KFAC on the autoencoder, per seed",
        unit=TIMES_LOG10,
        point="the autoencoder trained for 3,000 updates",
        untested={
            "smoke": f"60 updates; {_PAPER_AUTOENCODER}",
            "cpu": f"500 updates on MNIST-1D; {_PAPER_AUTOENCODER}",
            "full": f"40 updates; {_PAPER_AUTOENCODER}",
        },
        rule=Rule.above(0.0),
        protocol=Protocol.STABLE,
        changes=(
            RuleChange(
                THIRD_EDITION,
                ("cpu", "full"),
                "not tested below the paper's 3,000 updates",
            ),
            _PROTOCOL,
        ),
    ),
    Claim(
        "kfac_not_second_order",
        "KFAC's update is not close to the natural gradient's",
        paper="abstract: KFAC “is not closely related to second-order updates”",
        quantity="mean cosine of KFAC's update (heuristic damping) to the exact natural "
        "gradient's (at its own tuned damping), both from the same batch and sampled labels, in "
        "the Ā inner product averaged over layers, along each judging seed's KFAC run",
        unit=COSINE,
        point="along a KFAC training run of the MLP",
        baseline="the plain gradient's cosine to the exact natural gradient's update on the same "
        "batches, printed beside it",
        rule=Rule.below(0.5, margin=0.2, minimum=0.1),
        tuned=True,
        changes=(_MEASURED,),
    ),
)


def _cosine_means(comparison: Comparison, key: str) -> list[float]:
    """Per run of KFAC, the mean along training of the probe's ``key`` (see
    :func:`~.experiment.direction_cosines`), its gaps (a degenerate network) left out."""
    out = []
    for run in comparison.runs[M.KFAC]:
        values = [v for v in run.history.metrics.get(key, []) if math.isfinite(v)]
        out.append(float(np.mean(values)) if values else math.nan)
    return out


def direction_values(mlp: Comparison) -> dict[str, list[float]]:
    """Per judging seed, the mean cosines along KFAC's run (deciding protocol's comparison):
    ``cosine_kfac_natural``, ``cosine_gradient_natural``, ``cosine_gradient_foof``,
    ``cosine_heuristic`` and ``cosine_standard`` (KFAC's to FOOF's)."""
    keys = (
        "cosine_kfac_natural",
        "cosine_gradient_natural",
        "cosine_gradient_foof",
        "cosine_heuristic",
        "cosine_standard",
    )
    return {key: _cosine_means(mlp, key) for key in keys}


def seed_roles(p: Preset) -> SeedRoles:
    """The seeds that chose the settings and the seeds that judge them (disjoint): ``smoke`` and
    ``full`` tune in the run on the MLP's tuning seeds; ``cpu`` uses settings tuned at ``cpu`` on
    seeds 0 and 1 (its ``tune_seeds``); ``paper`` takes the paper's settings (no tuning)."""
    how = (
        "every grid point trained on the tuning seeds, each judging seed trained at the chosen "
        "settings"
        if p.mlp.grids
        else "the preset's fixed settings, chosen on the tuning seeds"
        if p.mlp.tune_seeds
        else "the paper's settings, not tuned here"
    )
    return SeedRoles(tuple(p.seeds), tuple(p.mlp.tune_seeds), how)


def _by_protocol(
    comparisons: Mapping[str, Comparison], values: Callable[[Comparison], list[float]]
) -> dict[str, list[float]]:
    return {protocol: values(c) for protocol, c in comparisons.items()}


def claim_values(
    mlp: Mapping[str, Comparison],
    ae: Mapping[str, Comparison],
    timing: TimingResult,
    control: Mapping[str, Comparison],
    conv_timing: TimingResult,
) -> dict[str, Any]:
    """Per-seed (or per-repeat) values of each of :data:`CLAIMS`, the tuned comparisons' as
    ``{protocol: values}`` (``compare_protocols``: the MLP, the autoencoder and the identical-data
    ``control``); the cosines from the deciding protocol's KFAC runs; the timings of the MLP
    (``timing``) and of the conv net (``conv_timing``).
    """
    stable = mlp[Protocol.STABLE]
    cosines = direction_values(stable)
    return {
        "kfac_beats_natural": _by_protocol(mlp, lambda c: c.log_ratio(M.NATURAL, M.KFAC)),
        "kfac_beats_natural_identical": _by_protocol(
            control, lambda c: c.log_ratio(M.NATURAL_SAME, M.KFAC)
        ),
        "heuristic_beats_standard": _by_protocol(
            mlp, lambda c: c.log_ratio(M.KFAC_STANDARD, M.KFAC)
        ),
        "standard_like_sgd": _by_protocol(mlp, lambda c: c.log_ratio(M.KFAC_STANDARD, M.SGD)),
        "cosine_closer_heuristic": [
            h - s for h, s in zip(cosines["cosine_heuristic"], cosines["cosine_standard"])
        ],
        "cosine_high": cosines["cosine_heuristic"],
        "foof_faster_than_kfac": timing.ratio("KFAC", "FOOF"),
        "foof_overhead_small": conv_timing.ratio("FOOF", "SGD"),
        "foof_beats_kfac_mlp": _by_protocol(mlp, lambda c: c.log_ratio(M.KFAC, M.FOOF)),
        "kfac_beats_foof_autoencoder": _by_protocol(ae, lambda c: c.log_ratio(M.FOOF, M.KFAC)),
        "kfac_not_second_order": cosines["cosine_kfac_natural"],
    }
