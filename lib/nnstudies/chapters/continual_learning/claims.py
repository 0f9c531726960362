"""Chapter 3's claims: what the paper says, how it is measured, the rule that judges it, and which
verdicts another machine might read differently.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from ...claims import (
    ACCURACY,
    MINIMUM_EFFECT,
    PEARSON,
    POINTS,
    SHARE,
    THIRD_EDITION,
    Claim,
    Protocol,
    Rule,
    RuleChange,
    SeedRoles,
)
from ...continual import Regulariser
from ...scales import dry_run
from .experiment import Comparison, Tuning, label
from .presets import Preset
from .studies import BiasStudy, Correlations

__all__ = [
    "CLAIMS",
    "PAPER_BATCH",
    "bias_share",
    "claim_values",
    "fragile_claims",
    "near_ties",
    "seed_roles",
    "stored_claim_values",
]

R = Regulariser
PAPER_BATCH = 256  #: the paper's batch size on P-MNIST, where its claims about SI's bias are made
_PROTOCOL = RuleChange(
    THIRD_EDITION,
    ("cpu", "full"),
    "the deciding protocol named (the best point on validation, which the runs used); the "
    "stability rule is not run yet",
)

CLAIMS = (
    Claim(
        "forgetting_permuted",
        "without regularisation, earlier permuted tasks are forgotten",
        paper="catastrophic forgetting (Kirkpatrick et al. 2017; Benzing 2022)",
        quantity="mean drop of earlier tasks' test accuracy, no regularisation",
        unit=POINTS,
        point="permuted tasks, one shared head",
        rule=Rule.above(0.0, margin=0.05, minimum=0.02),
        changes=(MINIMUM_EFFECT,),
    ),
    Claim(
        "forgetting_split",
        "without regularisation, earlier split tasks are forgotten (each task has its own head)",
        paper="forgetting, smaller with separate heads",
        quantity="the same on Split tasks",
        unit=POINTS,
        point="split tasks, a head per task",
        rule=Rule.above(0.0, margin=0.05, minimum=0.02),
        changes=(MINIMUM_EFFECT,),
    ),
    Claim(
        "beats_none_permuted",
        "Permuted: regularisation clearly beats none",
        paper="P-MNIST: ≈ 97% with SI and the others vs far less without",
        quantity="test accuracy of the best method − of none, each strength and the best method "
        "chosen on validation data of the tuning seeds",
        unit=POINTS,
        point="permuted tasks, judged on fresh seeds",
        rule=Rule.above(0.0, margin=0.02, minimum=0.01),
        protocol=Protocol.BEST,
        changes=(MINIMUM_EFFECT, _PROTOCOL),
    ),
    Claim(
        "beats_none_split",
        "Split: regularisation clearly beats none",
        paper="Split CIFAR: SI 73.2–73.9% (validation) vs less without",
        quantity="the same on Split tasks",
        unit=POINTS,
        point="split tasks, judged on fresh seeds",
        rule=Rule.above(0.0, margin=0.02, minimum=0.01),
        protocol=Protocol.BEST,
        changes=(MINIMUM_EFFECT, _PROTOCOL),
    ),
    Claim(
        "siu_worse",
        "Permuted: SIU (SI without its bias) is worse than SI",
        paper="yes: removing the bias hurts",
        quantity="test accuracy SI − SIU, each at its tuned c, fresh seeds; worse means by more than the "
        "1-point band within which SIB counts as good as SI",
        # Until the second edition's cross-check this rule was Rule.above(0, margin=0.01): at `cpu` SI and SIU
        # came out level (−0.2 ± 0.9 and +0.3 ± 0.6 points on two floating-point paths), and a boundary at zero
        # turned that tie into "no" on one path and "partly" on the other. The threshold is now the chapter's
        # band of equal accuracy (one point, the spread of single runs; see `sib_as_good` and `near_ties`).
        unit=POINTS,
        point="permuted tasks at the paper's batch 256, judged on fresh seeds",
        rule=Rule.above(0.01),
        protocol=Protocol.BEST,
        changes=(
            RuleChange(
                "2026-11-28",
                ("cpu",),
                "'worse' means by more than 1 point (was: any amount), set after SI and SIU came out "
                "level at `cpu` on two floating-point paths",
            ),
            _PROTOCOL,
        ),
    ),
    Claim(
        "siu_worse_same_c",
        "Permuted: SIU is worse than SI at the same strength (the bias, not the strength)",
        paper="the bias, not the path integral, explains SI's performance",
        quantity="test accuracy SI − SIU at the same c, averaged over the two tuned strengths (SI's "
        "and SIU's), fresh seeds",
        unit=POINTS,
        point="permuted tasks at the paper's batch 256, judged on fresh seeds",
        rule=Rule.above(0.01),
        protocol=Protocol.BEST,
    ),
    Claim(
        "sib_as_good",
        "Permuted: SIB (SI's bias alone) is as good as SI",
        paper="as good or better",
        quantity="test accuracy SIB − SI, each at its tuned c, fresh seeds",
        unit=POINTS,
        point="permuted tasks, judged on fresh seeds",
        untested={
            "cpu": "SIB's strength is a near tie there (c = 1 and 3 within 0.05 point of validation "
            "accuracy on one floating-point path, 0.8 on another), which rounding decides, and the "
            "verdict follows the strength (yes at c = 3, no at c = 1)"
        },
        rule=Rule.above(-0.01),
        protocol=Protocol.BEST,
        changes=(
            _PROTOCOL,
            RuleChange(
                THIRD_EDITION,
                ("cpu", "full"),
                "not tested at `cpu`, after a cross-check on another floating-point path read no "
                "where this page reads yes, from one tie of tuning",
            ),
        ),
    ),
    Claim(
        "r_si_sos",
        "SI's importance ≈ SOS (√ of Adam's second moment)",
        paper="r = 0.99 (P-MNIST), 0.96 (CIFAR)",
        quantity="Pearson r over all parameters, one trajectory per seed",
        unit=PEARSON,
        point="the first permuted task, no penalty",
        rule=Rule.above(0.9),
    ),
    Claim(
        "r_si_onaf",
        "SI ≈ OnAF",
        paper="r = 0.935 (P-MNIST)",
        quantity="Pearson r, as above",
        unit=PEARSON,
        point="the first permuted task, no penalty",
        rule=Rule.above(0.9),
    ),
    Claim(
        "r_mas_af",
        "MAS ≈ AF (absolute Fisher)",
        paper="r = 0.963",
        quantity="Pearson r, as above",
        unit=PEARSON,
        point="the first permuted task, no penalty",
        rule=Rule.above(0.9),
    ),
    Claim(
        "r_mas_sqrtfisher",
        "MAS ≈ √Fisher",
        paper="r ≥ 0.9",
        quantity="Pearson r, as above",
        unit=PEARSON,
        point="the first permuted task, no penalty",
        rule=Rule.above(0.9),
    ),
    Claim(
        "bias_share",
        "at the paper's batch size, SI's importance is mostly its bias",
        paper="the bias, not the path integral, explains SI",
        quantity="mean Ω of SIB ÷ mean Ω of SI, per seed",
        unit=SHARE,
        point=f"batch {PAPER_BATCH}, the paper's (the batch sweep is the sensitivity)",
        untested={"smoke": f"no batch {PAPER_BATCH} in the sweep"},
        rule=Rule.above(0.5, margin=0.1, minimum=0.05),
        changes=(
            RuleChange(
                THIRD_EDITION,
                ("cpu", "full"),
                "judged at the paper's batch 256, no longer at the sweep's smallest batch (16 at "
                "`cpu`, 32 at `full`), where the share is largest",
            ),
        ),
    ),
    Claim(
        "bias_shrinks",
        "SI's bias shrinks as the batch grows (it comes from minibatch noise)",
        paper="bias ∝ gradient noise",
        quantity="SIB's share of SI at the smallest − at the largest batch size",
        unit=POINTS,
        point="the batch sweep around the paper's 256",
        rule=Rule.above(0.0, margin=0.1, minimum=0.05),
        changes=(MINIMUM_EFFECT,),
    ),
    Claim(
        "si_pmnist",
        "Permuted MNIST, 10 tasks, 784-2000-2000-10: SI's average test accuracy",
        paper="97.2–97.3%",
        quantity="SI's average test accuracy after 10 tasks (run only at the `paper` scale)",
        unit=ACCURACY,
        point="P-MNIST, 784-2000-2000-10, the paper's settings",
        rule=Rule.within(0.9725, tolerance=0.01),
    ),
    Claim(
        "r_si_fisher",
        "SI's importance approximates a rescaled √Fisher directly",
        paper="SI ≈ √(empirical Fisher), rescaled (the abstract)",
        quantity="Pearson r of SI's importance with √F_emp (the empirical Fisher at the task's end, "
        "on 500 training examples), one trajectory per seed",
        unit=PEARSON,
        point="the first permuted task, no penalty, the paper's batch 256",
        baseline="r of a plain-gradient importance (|g| summed over steps) with √F_emp",
        rule=Rule.above(0.9),
    ),
)
"""What the paper claims, how we measure it, and the rule that judges it (chosen before the runs)."""


def bias_share(batch_sizes: Sequence[int], share: Mapping[int, Sequence[float]]) -> list[float]:
    """Per seed, SIB's share of SI at the paper's batch size; where the sweep has no such batch,
    interpolated between its neighbours on a log scale of the batch size, or else taken at the
    nearest end (the claim is then not tested at that scale, and the value is an illustration)."""
    if PAPER_BATCH in batch_sizes:
        return list(share[PAPER_BATCH])
    below = [b for b in batch_sizes if b < PAPER_BATCH]
    above = [b for b in batch_sizes if b > PAPER_BATCH]
    if not below or not above:
        return list(share[min(batch_sizes, key=lambda b: abs(math.log(b / PAPER_BATCH)))])
    lo, hi = max(below), min(above)
    w = math.log(PAPER_BATCH / lo) / math.log(hi / lo)
    return [(1 - w) * a + w * b for a, b in zip(share[lo], share[hi])]


def stored_claim_values(values: Mapping[str, Any]) -> dict[str, list[float]]:
    """Claim values whose quantity changed since a run, recomputed from its stored measurements."""
    sizes = [int(b) for b in values["bias.batch_sizes"]]
    return {"bias_share": bias_share(sizes, {int(b): v for b, v in values["bias.share"].items()})}


def seed_roles(preset: Preset) -> SeedRoles:
    """The tuning seeds choose strengths and the best method on validation data; fresh seeds judge."""
    return SeedRoles(tuple(preset.seeds), (preset.tuning_seed, *preset.extra_tuning_seeds))


def claim_values(
    permuted: Comparison,
    split: Comparison,
    corr: Correlations,
    bias: BiasStudy,
    *,
    swapped: Comparison,
    preset: Preset,
) -> dict[str, list[float]]:
    """Per-seed values of each of :data:`CLAIMS` (none for the P-MNIST number below the paper scale);
    ``swapped``: SI at SIU's strength and SIU at SI's (:func:`~.experiment.swap_strengths`)."""
    small, large = bias.batch_sizes[0], bias.batch_sizes[-1]  # the sensitivity's ends
    same_c = [  # SI − SIU at SI's strength, and at SIU's: paired by seed
        0.5 * ((si - siu_at_si) + (si_at_siu - siu))
        for si, siu_at_si, si_at_siu, siu in zip(
            permuted.test[R.SI], swapped.test[R.SIU], swapped.test[R.SI], permuted.test[R.SIU]
        )
    ]
    return {
        "forgetting_permuted": list(permuted.forgetting[R.NONE]),
        "forgetting_split": list(split.forgetting[R.NONE]),
        "beats_none_permuted": permuted.gap(permuted.best, R.NONE),
        "beats_none_split": split.gap(split.best, R.NONE),
        "siu_worse": permuted.gap(R.SI, R.SIU),
        "siu_worse_same_c": same_c,
        "sib_as_good": permuted.gap(R.SIB, R.SI),
        "r_si_sos": list(corr.r["SI-SOS"]),
        "r_si_onaf": list(corr.r["SI-OnAF"]),
        "r_mas_af": list(corr.r["MAS-AF"]),
        "r_mas_sqrtfisher": list(corr.r["MAS-sqrtFisher"]),
        "bias_share": bias_share(bias.batch_sizes, bias.share),
        "r_si_fisher": list(corr.r["SI-sqrtFemp"]),
        "bias_shrinks": [a - b for a, b in zip(bias.share[small], bias.share[large])],
        "si_pmnist": list(permuted.test[R.SI]) if preset.pmnist_claim and not dry_run() else [],
    }


# The tuned choices each accuracy claim rests on: (benchmark, methods whose strength matters; "best": the choice
# of the best method too).
_TUNED: dict[str, tuple[str, tuple[str, ...]]] = {
    "beats_none_permuted": ("permuted", ("best",)),
    "beats_none_split": ("split", ("best",)),
    "siu_worse": ("permuted", (R.SI, R.SIU)),
    "siu_worse_same_c": ("permuted", (R.SI, R.SIU)),
    "sib_as_good": ("permuted", (R.SI, R.SIB)),
}


def near_ties(tuning: Tuning, *, tolerance: float = 0.01) -> dict[str, float]:
    """Choices the tuning seed barely made: by how much validation accuracy each won, where under ``tolerance``.

    Keys are methods whose chosen strength beat the runner-up strength, and ``"best"`` when the best method
    beat the runner-up method. One point (0.01) is about the spread of single runs here: a lead below it
    is a coin toss that another seed, or another machine, may decide the other way.
    """
    out: dict[str, float] = {}
    for m, vals in tuning.val.items():
        ranked = sorted(vals, reverse=True)
        if len(ranked) > 1 and ranked[0] - ranked[1] < tolerance:
            out[m] = ranked[0] - ranked[1]
    leads = sorted((tuning.best_val(m) for m in tuning.strengths if m != R.NONE), reverse=True)
    if len(leads) > 1 and leads[0] - leads[1] < tolerance:
        out["best"] = leads[0] - leads[1]
    return out


def fragile_claims(
    values: dict[str, Sequence[float]],
    tunings: dict[str, Tuning] | None = None,
    *,
    shift: float = 2.0,
    scale: str | None = None,
) -> list[tuple[Claim, str, str]]:
    """Claims whose verdict may read differently on another machine, with the reason; at ``scale``,
    a claim not tested there (its table row says why) is left out.

    Three reasons. (1) The verdict changes when every run moves by ``shift`` standard errors (sd/√n):
    another machine's floating point changes each run about as much as another seed does, so it moves
    the mean by about one standard error. (2) The claim compares strengths (or a best method) that the
    tuning seed chose by less than a point of validation accuracy (:func:`near_ties`; ``tunings`` by
    benchmark name): another machine may choose otherwise. (3) It compares a method whose strength is still
    at an end of its extended grid (:attr:`Tuning.edges`): a better c may lie beyond. Returns (claim, verdict, reason).
    """
    ties = {name: near_ties(t) for name, t in (tunings or {}).items()}
    out: list[tuple[Claim, str, str]] = []
    for claim in CLAIMS:
        xs = list(values.get(claim.key, ()))
        if len(xs) < claim.rule.min_runs or (scale and claim.judge(xs, scale).untested):
            continue
        verdict = claim.rule.judge(xs)
        step = shift * statistics.stdev(xs) / math.sqrt(len(xs))
        reasons = []
        for sign in (-1.0, 1.0):
            moved = claim.rule.judge([x + sign * step for x in xs])
            if moved != verdict:
                reasons.append(f"{moved} two standard errors {'up' if sign > 0 else 'down'}")
                break
        bench, methods = _TUNED.get(claim.key, ("", ()))
        tied = [(m, ties[bench][m]) for m in methods if m in ties.get(bench, {})]
        if tied:
            what = ", ".join(
                f"{'the best method' if m == 'best' else label(m) + ' strength'} by {lead:.1%}"
                for m, lead in tied
            )
            reasons.append(f"{bench} tuning chose {what} on validation")
        tuning = (tunings or {}).get(bench)
        if tuning is not None:
            named = [tuning.best if m == "best" else Regulariser(m) for m in methods]
            at_edge = [(m, tuning.edges[m]) for m in named if m in tuning.edges]
            if at_edge:
                what = ", ".join(f"{label(m)} (c = {c:.3g})" for m, c in at_edge)
                reasons.append(f"{bench} tuning chose the end of the grid for {what}")
        if reasons:
            out.append((claim, verdict, "; ".join(reasons)))
    return out
