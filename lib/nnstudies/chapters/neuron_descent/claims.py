"""Chapter 2's claims, and the per-seed (or per-repeat) values that judge them."""

from __future__ import annotations

import numpy as np

from ...results import Claim, Rule
from .experiment import TimingResult
from .methods import Method as M
from .studies import Comparison

__all__ = ["CLAIMS", "claim_values"]

CLAIMS = (
    Claim(
        "kfac_beats_natural",
        "KFAC reaches a 10–20× lower training loss than the exact (subsampled) natural gradient "
        "at equal updates",
        paper="10–20× (Fig. 1A, MNIST MLP)",
        quantity="log10(loss NG / loss KFAC) per seed",
        rule=Rule.above(0.0, margin=1.0),
        fmt=".2f",
    ),
    Claim(
        "kfac_beats_natural_identical",
        "KFAC still beats the exact natural gradient when both see identical data",
        paper="KFAC still wins (Fig. 1B)",
        quantity="log10(loss NG / loss KFAC) per seed, 1000 images, full batch (the Fisher on the "
        "gradient's own data)",
        rule=Rule.above(0.0, margin=0.3),
        fmt=".2f",
    ),
    Claim(
        "heuristic_beats_standard",
        "heuristic damping is what makes KFAC work: with standard damping it trains far worse",
        paper="heuristic ≫ standard (Fig. 3A)",
        quantity="log10(loss KFAC standard / loss KFAC heuristic) per seed",
        rule=Rule.above(0.0, margin=0.3),
        fmt=".2f",
    ),
    Claim(
        "standard_like_sgd",
        "with standard damping KFAC trains like SGD",
        paper="standard-damped KFAC ≈ SGD (Fig. 3A)",
        quantity="log10(loss KFAC standard / loss SGD) per seed (0: equal; ±0.3: a factor 2)",
        rule=Rule.within(0.0, tolerance=0.3),
        fmt=".2f",
    ),
    Claim(
        "cosine_closer_heuristic",
        "KFAC's update is closer to FOOF's with heuristic than with standard damping",
        paper="clearly closer (Fig. 3B)",
        quantity="mean cosine (Ā inner product) along a KFAC run, heuristic − standard, per seed",
        rule=Rule.above(0.0, margin=0.1),
        fmt=".2f",
    ),
    Claim(
        "cosine_high",
        "with heuristic damping KFAC's update is close to FOOF's",
        paper="high cosine (Fig. 3B)",
        quantity="mean cosine (Ā inner product) along a KFAC run, heuristic damping, per seed",
        rule=Rule.above(0.5, margin=0.3),
        fmt=".2f",
    ),
    Claim(
        "foof_faster_than_kfac",
        "FOOF is about 1.5× faster per update than KFAC",
        paper="≈ 1.5× (Fig. 4A, ResNet)",
        quantity="time KFAC / time FOOF per update at T = 100, 784-1000-1000-1000-10 MLP, "
        "batch 100, per repeat",
        rule=Rule.above(1.0, margin=0.3),
        fmt=".2f",
        timing=True,
    ),
    Claim(
        "foof_overhead_small",
        "FOOF's amortised overhead over SGD is small (about 10%)",
        paper="≈ 1.1× SGD (Fig. 4A, ResNet)",
        quantity="time FOOF / time SGD per update at T = 100, same MLP, per repeat",
        rule=Rule.below(1.3),
        fmt=".2f",
        timing=True,
    ),
    Claim(
        "foof_beats_kfac_mlp",
        "FOOF trains MLPs at least as well as KFAC",
        paper="FOOF better (Fig. 4, MLPs and CNNs)",
        quantity="log10(loss KFAC / loss FOOF) per seed",
        rule=Rule.above(0.0, margin=0.1),
        fmt=".2f",
    ),
    Claim(
        "kfac_beats_foof_autoencoder",
        "KFAC is slightly better than FOOF on autoencoders",
        paper="KFAC slightly better (Fig. 4)",
        quantity="log10(loss FOOF / loss KFAC) on the autoencoder, per seed",
        rule=Rule.above(0.0),
        fmt=".2f",
    ),
)


def _cosine_means(comparison: Comparison) -> tuple[list[float], list[float]]:
    runs = comparison.runs[M.KFAC]
    return (
        [float(np.mean(r.history.metrics["cosine_heuristic"])) for r in runs],
        [float(np.mean(r.history.metrics["cosine_standard"])) for r in runs],
    )


def claim_values(
    mlp: Comparison, ae: Comparison, timing: TimingResult, control: Comparison
) -> dict[str, list[float]]:
    """Per-seed (or per-repeat) values of each of :data:`CLAIMS`; ``control`` is the identical-data
    comparison (``compare(preset, Kind.CONTROL)``).
    """
    cos_h, cos_s = _cosine_means(mlp)
    return {
        "kfac_beats_natural": mlp.log_ratio(M.NATURAL, M.KFAC),
        "kfac_beats_natural_identical": control.log_ratio(M.NATURAL_SAME, M.KFAC),
        "heuristic_beats_standard": mlp.log_ratio(M.KFAC_STANDARD, M.KFAC),
        "standard_like_sgd": mlp.log_ratio(M.KFAC_STANDARD, M.SGD),
        "cosine_closer_heuristic": [h - s for h, s in zip(cos_h, cos_s)],
        "cosine_high": cos_h,
        "foof_faster_than_kfac": timing.ratio("KFAC", "FOOF"),
        "foof_overhead_small": timing.ratio("FOOF", "SGD"),
        "foof_beats_kfac_mlp": mlp.log_ratio(M.KFAC, M.FOOF),
        "kfac_beats_foof_autoencoder": ae.log_ratio(M.FOOF, M.KFAC),
    }
