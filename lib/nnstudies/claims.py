"""Fair verdicts: what a paper claims, where it claims it, and the rule that judges our numbers.

A chapter's ``claims`` module holds one :class:`Claim` per statement: the paper's words and number,
the quantity we measure and its :class:`Unit`, the operating point where the paper made the claim,
the :class:`Rule` with its minimum effect, the :class:`Protocol` that decides a tuned comparison,
the scales that cannot reach the operating point, and every :class:`RuleChange` made after results
it judges had been seen. All of it is fixed before a run, and a stored result records a
fingerprint of each claim's decision (:func:`fingerprint`), so that a rule changed afterwards is
found and marked on the page::

    kfac = Claim("kfac_beats_ng", "KFAC trains 10–20× lower than the natural gradient",
                 paper="10–20×", quantity="loss NG / loss KFAC per seed", unit=TIMES_LOG10,
                 point="MNIST MLP, equal updates", rule=Rule.above(0.0, margin=1.0, minimum=0.3))
    kfac.judge([1.2, 1.3, 1.1]).verdict     # 'yes'

The verdicts (:class:`Verdict`): **yes**, the mean clears the paper's margin and the threshold by
``k`` standard deviations of single runs; **partly**, the mean clears the stated minimum effect;
**no**, the mean is on the wrong side; **inconclusive**, anything else; **depends on tuning**, the
two protocols of a tuned comparison disagree; **not tested at this scale**, too few runs, or a
scale that cannot reach the claim's operating point (its number is then shown as an illustration).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import importlib
import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ACCURACY",
    "BITS",
    "COSINE",
    "EXPONENT",
    "LOSS",
    "MINIMUM_EFFECT",
    "PEARSON",
    "POINTS",
    "PROTOCOL_TEXT",
    "SHARE",
    "SYMBOLS",
    "THIRD_EDITION",
    "TIMES",
    "TIMES_LOG10",
    "Claim",
    "Evidence",
    "Judgement",
    "Protocol",
    "Rule",
    "RuleChange",
    "SeedRoles",
    "Unit",
    "Verdict",
    "chapter_claims",
    "fingerprint",
    "fingerprints",
]


class Verdict(enum.StrEnum):
    """What the evidence says about a claim (compares equal to its text: ``Verdict.YES == "yes"``)."""

    YES = "yes"
    PARTLY = "partly"
    NO = "no"
    INCONCLUSIVE = "inconclusive"
    DEPENDS = "depends on tuning"
    NOT_TESTED = "not tested at this scale"


class Protocol(enum.StrEnum):
    """How a tuned comparison picks each method's setting on its tuning seeds."""

    BEST = "best point"  #: each method at its best grid point
    STABLE = "stability rule"  #: the best point whose neighbours towards instability also train


PROTOCOL_TEXT = {
    Protocol.BEST: "each method at the grid point with the best score on the tuning seeds",
    Protocol.STABLE: "each method at its best grid point among those that train on every tuning "
    "seed, and whose neighbour towards a larger step does too",
}


# ----------------------------------------------------------------------------- units


@dataclass(frozen=True)
class Unit:
    """How a claim's per-run values are shown: ``prefix``, ``scale × value``, ``symbol``; or, for a
    ``log10`` quantity (log10 of a ratio), the ratio itself as a geometric mean ×/÷ its spread.
    ``name``: the unit in words (default: the symbol)."""

    symbol: str
    scale: float = 1.0
    fmt: str = ".2f"
    log10: bool = False
    signed: bool = False
    prefix: str = ""
    name: str = ""

    def point(self, value: float) -> str:
        """One value (a mean or a rule's threshold) in this unit."""
        space = "" if self.symbol in ("×", "%", "") else " "
        if self.log10:
            ratio = 10**value
            shown = f"{ratio:,.0f}" if ratio >= 1000 else f"{ratio:.3g}"
            return f"{self.prefix}{shown}{space}{self.symbol}"
        sign = "+" if self.signed else ""
        return f"{self.prefix}{self.scale * value:{sign}{self.fmt}}{space}{self.symbol}"

    def spread(self, sd: float) -> str:
        """A standard deviation of single runs in this unit."""
        if self.log10:
            return f"×/÷ {10**sd:.3g}"
        return f"± {self.scale * sd:{self.fmt}}"

    @property
    def words(self) -> str:
        return self.name or self.symbol


TIMES_LOG10 = Unit("×", log10=True, name="a ratio, ×")  #: log10 of a ratio, shown as the ratio
TIMES = Unit("×", name="a ratio, ×")  #: a plain ratio
POINTS = Unit("points", scale=100.0, fmt=".1f", signed=True)  #: a difference of accuracies
ACCURACY = Unit("%", scale=100.0, fmt=".1f")
COSINE = Unit("", prefix="cos ", name="cosine")
PEARSON = Unit("", prefix="r = ", name="Pearson r")
BITS = Unit("bits")  #: bits per symbol or character
LOSS = Unit("nats")  #: a cross-entropy loss or loss barrier
SHARE = Unit("%", scale=100.0, fmt=".0f")  #: a share of a total
SYMBOLS = Unit("symbols", fmt=".1f", signed=True)  #: a sequence length
EXPONENT = Unit("", fmt=".2f", signed=True, name="exponent difference")


# ----------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    """A decision rule on per-run values (mean ``m``, standard deviation of single runs ``s``, ``n`` runs).

    ``above(t, margin, minimum)``, with the lead ``ℓ = m − t``: **yes** if ℓ − k·s > 0 and ℓ > margin;
    **partly** if ℓ > minimum; **no** if ℓ ≤ 0 (the mean on the wrong side); else **inconclusive**.
    ``minimum`` is the smallest effect that supports the claim at all; it defaults to ``margin``.
    ``below``: the mirror image. ``within(t, tolerance)``: **yes** if |m − t| + k·s ≤ tolerance;
    **partly** if |m − t| ≤ tolerance; else **no**. Fewer than ``min_runs`` runs: not tested.
    The spread of single runs (not the standard error) keeps a verdict from resting on noise that
    another machine's floating point could flip.
    """

    kind: Literal["above", "below", "within"]
    threshold: float = 0.0
    margin: float = 0.0
    k: float = 2.0
    min_runs: int = 3
    minimum: float | None = None

    @classmethod
    def above(
        cls,
        threshold: float = 0.0,
        *,
        margin: float = 0.0,
        minimum: float | None = None,
        k: float = 2.0,
        min_runs: int = 3,
    ) -> Rule:
        return cls("above", threshold, margin, k, min_runs, minimum)

    @classmethod
    def below(cls, threshold: float = 0.0, **options: Any) -> Rule:
        """The mirror image of :meth:`above` (the same options)."""
        return dataclasses.replace(cls.above(threshold, **options), kind="below")

    @classmethod
    def within(cls, target: float, *, tolerance: float, k: float = 2.0, min_runs: int = 3) -> Rule:
        return cls("within", target, tolerance, k, min_runs)

    def __post_init__(self) -> None:
        if self.margin < 0 or self.k < 0 or self.min_runs < 1:
            raise ValueError(f"a rule needs margin >= 0, k >= 0 and min_runs >= 1, got {self}")
        if self.minimum is not None and not 0 <= self.minimum <= self.margin:
            raise ValueError(f"a rule's minimum effect lies in [0, margin], got {self}")
        if self.kind == "within" and self.minimum is not None:
            raise ValueError("a `within` rule has a tolerance, not a minimum effect")

    @property
    def least(self) -> float:
        """The minimum effect (the lead beyond the threshold) that reads "partly"."""
        return self.margin if self.minimum is None else self.minimum

    def text(self, unit: Unit = TIMES) -> str:
        """The rule in words, its thresholds in ``unit``."""
        k = f"{self.k:g}"
        at = unit.point
        if self.kind == "within":
            t, tol = self.threshold, self.margin
            lo, hi = at(t - tol), at(t + tol)
            return (
                f"yes if the mean ± {k} sd lies within {lo} … {hi}; partly if the mean does; "
                f"else no (≥ {self.min_runs} runs)"
            )
        sign = 1.0 if self.kind == "above" else -1.0
        op = ">" if self.kind == "above" else "<"
        edge, least = self.threshold + sign * self.margin, self.threshold + sign * self.least
        yes = f"yes if the mean {'−' if sign > 0 else '+'} {k} sd {op} {at(self.threshold)}"
        if self.margin:
            yes += f" and the mean {op} {at(edge)}"
        partly = f"partly if the mean {op} {at(least)}"
        wrong = f"no if the mean {'≤' if sign > 0 else '≥'} {at(self.threshold)}"
        rest = "; else inconclusive" if self.least > 0 else ""
        return f"{yes}; {partly}; {wrong}{rest} (≥ {self.min_runs} runs)"

    def judge(self, values: Sequence[float]) -> Verdict:
        xs = [float(v) for v in values]
        if any(not math.isfinite(x) for x in xs):
            raise ValueError(f"a claim's values must be finite, got {xs}")
        if len(xs) < self.min_runs:
            return Verdict.NOT_TESTED
        m = statistics.fmean(xs)
        s = statistics.stdev(xs) if len(xs) > 1 else 0.0  # one value (min_runs=1): no spread
        if self.kind == "within":
            gap = abs(m - self.threshold)
            if gap + self.k * s <= self.margin:
                return Verdict.YES
            return Verdict.PARTLY if gap <= self.margin else Verdict.NO
        lead = (m - self.threshold) * (1.0 if self.kind == "above" else -1.0)
        if lead - self.k * s > 0 and lead > self.margin:
            return Verdict.YES
        if lead > self.least:
            return Verdict.PARTLY
        return Verdict.NO if lead <= 0 else Verdict.INCONCLUSIVE


# ----------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class RuleChange:
    """A change of a claim's rule, operating point or protocol made after results it judges had
    been seen: on ``date`` (``YYYY-MM-DD``), having seen the results of the scales ``seen``.

    The page marks every verdict at a scale in ``seen`` whose results were made on or before
    ``date`` ("rule changed after the result"). A change found by comparing a stored result's
    fingerprint with the claim now must be declared here too (a test checks it)."""

    date: str
    seen: tuple[str, ...]
    what: str

    def __post_init__(self) -> None:
        if len(self.date) != 10 or self.date[4] != "-" or self.date[7] != "-":
            raise ValueError(f"a rule change's date reads YYYY-MM-DD, got {self.date!r}")
        if not self.seen:
            raise ValueError("a rule change names the scales whose results had been seen")


@dataclass(frozen=True)
class Evidence:
    """Per-run values of a claim's quantity and their verdict."""

    values: tuple[float, ...]
    verdict: Verdict
    unit: Unit = TIMES

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def sd(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else math.nan

    def __str__(self) -> str:
        if not self.values:
            return "—"
        if self.n == 1:
            return f"{self.unit.point(self.mean)} (1 run)"
        return f"{self.unit.point(self.mean)} {self.unit.spread(self.sd)} (n={self.n})"


@dataclass(frozen=True)
class Judgement:
    """A claim judged at one scale: the deciding protocol's evidence, the other protocol's (tuned
    comparisons), and the verdict: the deciding one's, or "depends on tuning" where they differ."""

    evidence: Evidence
    other: Evidence | None = None
    untested: str = ""  #: why this scale cannot reach the claim's operating point

    @property
    def verdict(self) -> Verdict:
        if self.untested and self.evidence.values:
            return Verdict.NOT_TESTED
        if self.other is not None and self.other.values and self.evidence.values:
            both = {self.evidence.verdict, self.other.verdict}
            if len(both) > 1 and Verdict.NOT_TESTED not in both:
                return Verdict.DEPENDS
        return self.evidence.verdict


Values = Sequence[float] | Mapping[str, Sequence[float]]


@dataclass(frozen=True)
class Claim:
    """What a paper claims, where, and how we judge it (see the module's docstring).

    ``point``: the operating point where the paper made the claim (batch size, split, steady state,
    architecture), which the measured ``quantity`` follows. ``untested``: scale → why that scale
    cannot reach the point (``"*"``: every scale); its number is shown as an illustration.
    ``protocol``: for a tuned comparison, the protocol whose values decide; the values then come as
    ``{protocol: per-run values}`` for both protocols. ``baseline``: what a similarity is compared
    with (shown beside it). ``changes``: rule changes made after results had been seen.
    ``timing``: its values are measured seconds (or ratios of them), never bit-identical.
    """

    key: str
    statement: str
    paper: str
    quantity: str
    rule: Rule
    unit: Unit = TIMES
    point: str = ""
    untested: Mapping[str, str] = field(default_factory=dict)
    protocol: Protocol | None = None
    baseline: str = ""
    changes: tuple[RuleChange, ...] = ()
    tuned: bool = False
    timing: bool = False

    @property
    def is_tuned(self) -> bool:
        """Whether a setting chosen on tuning seeds enters the values (a tuned comparison, or ``tuned``)."""
        return self.tuned or self.protocol is not None

    def evidence(self, values: Sequence[float]) -> Evidence:
        return Evidence(tuple(float(v) for v in values), self.rule.judge(values), self.unit)

    def judge(self, values: Values, scale: str = "") -> Judgement:
        """Judge per-run ``values`` (for a tuned comparison: ``{protocol: values}``) at ``scale``."""
        why = self.untested.get(scale) or self.untested.get("*", "")
        if not isinstance(values, Mapping):
            return Judgement(self.evidence(values), untested=why)
        if self.protocol is None:
            raise ValueError(f"claim {self.key}: values by protocol, but it names no protocol")
        unknown = set(values) - {p.value for p in Protocol}
        if unknown:
            raise ValueError(f"claim {self.key}: unknown protocols {sorted(unknown)}")
        other = next(p for p in Protocol if p != self.protocol)
        return Judgement(
            self.evidence(values.get(self.protocol, ())),
            self.evidence(values.get(other, ())),
            why,
        )

    def decision(self) -> dict[str, Any]:
        """What decides the verdict (not the wording): rule, protocol, untested scales. Where a claim
        is measured (its ``point``) is described in words; moving it is declared as a :class:`RuleChange`."""
        return {
            "rule": {k: getattr(self.rule, k) for k in ("kind", "threshold", "margin", "k")}
            | {"min_runs": self.rule.min_runs, "minimum": self.rule.least},
            "protocol": self.protocol.value if self.protocol else None,
            "untested": sorted(self.untested),
        }

    def changed_after(self, scale: str, made: str | None, stored: str | None) -> str:
        """The date of the last rule change made after the result at ``scale`` had been seen ("" if
        none): declared changes for results of ``scale`` made before the change (``made``: the
        stored result's date; None: this run), or "undeclared" where the ``stored`` fingerprint
        differs from the claim now and no change is declared. A change dates to the day, so a result
        made on that day counts as before it only when its fingerprint is not the claim's now."""
        day, now = (made or "")[:10], fingerprint(self)
        dates = [
            c.date
            for c in self.changes
            if scale in c.seen
            and (made is None or day < c.date or (day == c.date and stored != now))
        ]
        if stored is not None and stored != now and not dates:
            return "undeclared"
        return max(dates, default="")


@dataclass(frozen=True)
class SeedRoles:
    """Which seeds chose the settings (``tuning``) and which judge the claims (``judging``).

    ``how`` says how the tuning used them, e.g. leave-one-out: each judging seed's setting is chosen
    on the others, so that no value is judged on a seed that chose its own setting.
    """

    judging: tuple[int, ...]
    tuning: tuple[int, ...] = ()
    how: str = ""

    def __post_init__(self) -> None:
        if not self.judging:
            raise ValueError("seed roles need at least one judging seed")

    @property
    def overlap(self) -> tuple[int, ...]:
        """Seeds that both tuned and judge (empty for a fair protocol)."""
        return tuple(sorted(set(self.tuning) & set(self.judging)))

    def as_record(self) -> dict[str, Any]:
        return {"tuning": list(self.tuning), "judging": list(self.judging), "how": self.how}

    @classmethod
    def from_record(cls, value: Mapping[str, Any]) -> SeedRoles:
        return cls(tuple(value["judging"]), tuple(value.get("tuning", ())), value.get("how", ""))

    def mark(self) -> str:
        """The page's mark on a tuned claim whose tuning seeds are also judging seeds ("" if none;
        the folded details under the table name the seeds)."""
        return "tuned on judging seeds" if self.overlap else ""


#: The day the third edition's rules were set, after every chapter's `cpu` and `full` results had been seen.
THIRD_EDITION = "2026-12-06"
#: Its verdict levels.
MINIMUM_EFFECT = RuleChange(
    THIRD_EDITION,
    ("cpu", "full"),
    "'partly' needs the stated minimum effect (was: any mean beyond the threshold)",
)


def fingerprint(claim: Claim) -> str:
    """A short hash of what decides ``claim``'s verdict (:meth:`Claim.decision`)."""
    text = json.dumps(claim.decision(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprints(claims: Iterable[Claim]) -> dict[str, str]:
    """``{claim key: fingerprint}``: what a stored result records of the rules when its run started."""
    return {c.key: fingerprint(c) for c in claims}


def chapter_claims(modules: Iterable[str]) -> list[Claim]:
    """The claims of every chapter package among ``modules`` (their ``claims.CLAIMS``)."""
    from .provenance import chapter_packages

    found: list[Claim] = []
    for package in chapter_packages(modules):
        try:
            module = importlib.import_module(f"{package}.claims")
        except ModuleNotFoundError:
            continue
        found += list(getattr(module, "CLAIMS", ()))
    return found
