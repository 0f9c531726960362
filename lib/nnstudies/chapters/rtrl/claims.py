"""Chapter 4's claims (:data:`CLAIMS`) and the per-seed values they are judged on
(:func:`claim_values`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ...claims import (
    BITS,
    EXPONENT,
    MINIMUM_EFFECT,
    SHARE,
    SYMBOLS,
    THIRD_EDITION,
    TIMES,
    TIMES_LOG10,
    Claim,
    Rule,
    RuleChange,
    Unit,
)
from .characters import CharStudy
from .cost import CostStudy
from .experiment import CurriculumStudy, HorizonStudy, VarianceStudy
from .learners import Algorithm, Learner

__all__ = ["CLAIMS", "characters_learned", "claim_values", "optimal_kf_shares"]


CLAIMS = (
    Claim(
        "horizon",
        "TBPTT cannot learn a dependency longer than its truncation horizon",
        paper="TBPTT “categorically forbids learning dependencies beyond the truncation horizon”",
        quantity="loss on the copied bits of TBPTT(k = T+1) − of TBPTT(k = T+2), copy task at a "
        "fixed length T, per seed",
        unit=BITS,
        point="a dependency one step longer than the horizon",
        rule=Rule.above(0.0, margin=0.5, minimum=0.25),
        changes=(MINIMUM_EFFECT,),
    ),
    Claim(
        "noise",
        "OK's noise is far below UORO's and KF-RTRL's",
        paper="orders of magnitude lower than UORO and KF-RTRL",
        quantity="relative variance of the less noisy of UORO and KF-RTRL ÷ of OK at the largest "
        "rank, per seed",
        unit=TIMES_LOG10,
        point="steady state: averaged over 200 steps after OK's rank has filled (at `cpu` and "
        "`full`: 32 steps left out first, twice the largest rank)",
        rule=Rule.above(1.0),
        changes=(
            RuleChange(
                THIRD_EDITION,
                ("cpu", "full"),
                "judged at steady state, not over the first 40 steps",
            ),
        ),
    ),
    Claim(
        "optimal_kf",
        "OK(1), the optimal KF-RTRL, is less noisy than KF-RTRL",
        paper="OK(1) has the least variance of all rank-one Kronecker approximations",
        quantity="share of the steps at which OK(1)'s relative variance is below KF-RTRL's "
        "(steps where both are exact left out), per seed",
        unit=SHARE,
        point="every step of a run",
        rule=Rule.above(0.5, margin=0.25, minimum=0.1),
        changes=(MINIMUM_EFFECT,),
    ),
    Claim(
        "copy",
        "on the copy task with online updates, OK learns longer sequences than TBPTT with a "
        "short horizon",
        paper="OK (n=128, r=16): T = 38–45 (mean 41.8, 5 runs) after 2M steps; longer than TBPTT",
        quantity="length T₊ reached, OK(r) − TBPTT(k) updating every k steps, same seed (k: "
        "the preset's judged horizon, 8 at `full`; the whole k sweep and the sliding-window "
        "TBPTT are shown beside it)",
        unit=SYMBOLS,
        point="TBPTT updating every k steps (the paper's), k shorter than the dependency OK learns",
        rule=Rule.above(0.0, margin=1.0, minimum=0.5),
        changes=(
            RuleChange(
                THIRD_EDITION,
                ("cpu", "full"),
                "not tested with a sliding-window TBPTT at one horizon: the claim is about "
                "TBPTT updating every k steps",
            ),
        ),
    ),
    Claim(
        "characters",
        "on characters, OK reaches about TBPTT's bits per character",
        paper="Penn Treebank: OK 1.747–1.750 bits/char (validation), matching TBPTT",
        quantity="held-out bits per character, OK − TBPTT, same seed",
        unit=Unit("bits", signed=True),
        point="Penn Treebank's text (at `full`: its validation split to train on, its test split "
        "held out), both models at least 0.5 bits/char below the bigram model",
        rule=Rule.within(0.0, tolerance=0.1),
        changes=(
            RuleChange(
                THIRD_EDITION,
                ("cpu", "full"),
                "equivalence margin ±0.1 bits/char (was ±0.05) on at least 3 seeds (was 2), "
                "judged only where both models are 0.5 bits/char below the bigram model",
            ),
        ),
    ),
    Claim(
        "characters_learn",
        "these character models learn far beyond the previous character",
        paper="1.75 bits/char on Penn Treebank after 1M steps",
        quantity="bits/char of the previous-character (bigram) model − the held-out bits/char of "
        "the worse of OK and TBPTT, per seed",
        unit=BITS,
        point="characters, after training",
        rule=Rule.above(0.0, margin=0.5, minimum=0.25),
        changes=(
            MINIMUM_EFFECT,
            RuleChange(
                THIRD_EDITION,
                ("cpu", "full"),
                "both models at least 0.5 bits/char below the bigram model (was OK alone, 0.3), "
                "on at least 3 seeds",
            ),
        ),
    ),
    Claim(
        "cost_ratio",
        "OK costs far less per step than exact RTRL (n ≥ 64)",
        paper="O(r n³) against O(n⁴) time per step",
        quantity="seconds per step of exact RTRL ÷ of OK(r), at the largest n timed, per repeat "
        "(judged on the stored run)",
        unit=TIMES,
        point="n ≥ 64",
        rule=Rule.above(3.0),
        timing=True,
    ),
    Claim(
        "cost_exponent",
        "the cost grows as n³ for OK, as n⁴ for exact RTRL",
        paper="exponents 3 and 4",
        quantity="fitted exponent of exact RTRL − of OK(r), over the three largest n, per repeat "
        "(judged on the stored run)",
        unit=EXPONENT,
        point="n ≤ 256 on a CPU (the asymptotic exponents need larger n)",
        rule=Rule.above(0.5),
        timing=True,
    ),
)
"""The chapter's claims, judged on several seeds (or timing repeats) by the printed rules."""


def claim_values(
    *,
    horizon: HorizonStudy,
    variance: VarianceStudy,
    curriculum: CurriculumStudy,
    characters: CharStudy,
    cost: CostStudy,
) -> dict[str, list[float]]:
    """Per-seed (or per-repeat) values of each of :data:`CLAIMS`.

    The timing claims get values only where the run is a judged benchmark (``cost.judged``), and
    the comparison of OK with TBPTT on characters only where both models have learned beyond the
    previous character (the ``characters_learn`` claim's verdict is yes): between models that
    have barely learned it would test early training speed, not the paper's claim. The copy
    claim compares OK with TBPTT updating every k steps at the preset's judged horizon.
    """
    kf, uoro, ok_top = (
        variance.mean(spec)
        for spec in (
            Learner(Algorithm.KF),
            Learner(Algorithm.UORO),
            Learner(Algorithm.OK, rank=max(variance.ranks)),
        )
    )
    ok_T, tbptt_T = curriculum.lengths(curriculum.ok), curriculum.lengths(curriculum.tbptt)
    ok_bpc, tbptt_bpc = characters.final(characters.ok), characters.final(characters.tbptt)
    worse = [max(a, b) for a, b in zip(ok_bpc, tbptt_bpc)]
    values = {
        "horizon": [
            a - b
            for a, b in zip(
                horizon.final_bit_loss(horizon.short), horizon.final_bit_loss(horizon.enough)
            )
        ],
        "noise": [math.log10(min(k, u) / max(o, 1e-30)) for k, u, o in zip(kf, uoro, ok_top)],
        "optimal_kf": optimal_kf_shares(variance),
        "copy": [float(a - b) for a, b in zip(ok_T, tbptt_T)],
        "characters_learn": [characters.bigram - a for a in worse],
    }
    if characters_learned(values["characters_learn"]):
        values["characters"] = [a - b for a, b in zip(ok_bpc, tbptt_bpc)]
    if cost.judged:
        values["cost_ratio"] = cost.ratios()
        values["cost_exponent"] = [
            e - o for e, o in zip(cost.exponents(cost.exact), cost.exponents(cost.ok))
        ]
    return values


def optimal_kf_shares(variance: VarianceStudy, *, exact_below: float = 1e-6) -> list[float]:
    """Per seed, the share of the steps at which OK(1)'s relative variance is below KF-RTRL's,
    leaving out the steps where both are exact (below ``exact_below``)."""
    shares = []
    for kf, ok in zip(
        variance.per_step[Learner(Algorithm.KF)], variance.per_step[Learner(Algorithm.OK, rank=1)]
    ):
        pairs = [(a, b) for a, b in zip(kf, ok) if max(a, b) > exact_below]
        shares.append(sum(b < a for a, b in pairs) / len(pairs) if pairs else 0.5)
    return shares


def characters_learned(values: Sequence[float]) -> bool:
    """True when the ``characters_learn`` claim's verdict on ``values`` is yes."""
    rule = next(claim.rule for claim in CLAIMS if claim.key == "characters_learn")
    return rule.judge(values) == "yes"
