"""A chapter's numbers: recorded while it runs, stored for the long scales, and judged as claims.

**Recording.** ``record("00_getting_started", test_accuracy=0.87, curve=[...])`` keeps
numbers, strings and (nested) lists or dicts of them. When ``$NNSTUDIES_RESULTS_DIR``
is set (the tests and ``make results`` set it), they are merged into
``<dir>/<chapter>.json``. A dry run marks what it records as such.

**The store.** ``make results SCALE=full`` runs a chapter and writes everything it
recorded, with provenance (commit, source hash, date, device, threads, torch, seeds,
wall time), to ``results/<chapter>/<scale>.json``; :func:`load_results` reads it back,
and :meth:`StoredResults.note` says when it is older than the code.

**Claims.** A :class:`Claim` is what a paper says, judged on several seeds (or pairs, or
runs) by a printed :class:`Rule`::

    beats = Claim("beats_chance", "a trained MLP classifies far above chance", paper="≈ 90% vs 10%",
                  quantity="test accuracy − chance", rule=Rule.above(0.0, margin=0.2))
    beats.judge([0.77, 0.78, 0.76]).verdict      # 'yes'

The verdict is one of ``yes``, ``partly``, ``no`` and ``not tested at this scale``
(fewer runs than the rule needs). :func:`claims_table` shows the paper's number, ours
at ``full`` (stored) and ours in this run side by side.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .provenance import code_hashes, environment
from .scales import check_scale, dry_run

__all__ = [
    "NOT_TESTED",
    "RESULTS_ENV",
    "RESULTS_STORE_ENV",
    "Claim",
    "Evidence",
    "Rule",
    "StoredResults",
    "claims_table",
    "load_results",
    "markdown_table",
    "record",
    "recorded",
    "results_dir",
]

RESULTS_ENV = "NNSTUDIES_RESULTS_DIR"
RESULTS_STORE_ENV = "NNSTUDIES_RESULTS_STORE"
Verdict = Literal["yes", "partly", "no", "not tested at this scale"]
NOT_TESTED: Verdict = "not tested at this scale"
_RECORDED: dict[str, dict[str, Any]] = {}


# ----------------------------------------------------------------------------- recording


def _check_value(chapter: str, name: str, value: Any) -> None:
    if isinstance(value, (bool, int, str)) or value is None:
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{chapter}: the recorded value {name}={value} is not finite")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_value(chapter, f"{name}[{i}]", item)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{chapter}: keys of the recorded mapping {name} must be str, got {key!r}"
                )
            _check_value(chapter, f"{name}.{key}", item)
        return
    raise TypeError(
        f"{chapter}: recorded values must be numbers, strings, or lists/dicts of them; {name} is a {type(value).__name__}"
    )


def record(chapter: str, **values: Any) -> dict[str, Any]:
    """Record named numbers (or curves: lists, dicts) of ``chapter``; return everything recorded for
    it so far.

    The first call of a chapter also records where it runs (device, threads, torch) under
    ``environment``, and a dry run records ``dry_run=True``.
    """
    for name, value in values.items():
        _check_value(chapter, name, value)
    values = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
    entry = _RECORDED.setdefault(chapter, {})
    if not entry:
        values = {
            "environment": environment(),
            **({"dry_run": True} if dry_run() else {}),
            **values,
        }
    entry.update(values)
    folder = os.environ.get(RESULTS_ENV)
    if folder:
        path = Path(folder) / f"{chapter}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        stored = json.loads(path.read_text()) if path.exists() else {}
        stored.update(values)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stored, indent=1, sort_keys=True))
        os.replace(tmp, path)
    return dict(entry)


def recorded(chapter: str) -> dict[str, Any]:
    """What ``chapter`` has recorded in this process."""
    return dict(_RECORDED.get(chapter, {}))


# ----------------------------------------------------------------------------- the store


def results_dir() -> Path | None:
    """The results store: ``$NNSTUDIES_RESULTS_STORE``, else ``results/`` of the checkout the
    library runs from.

    None when neither exists (e.g. the library installed with pip, on Colab): the book's
    pages still show the stored numbers.
    """
    configured = os.environ.get(RESULTS_STORE_ENV)
    folder = Path(configured) if configured else Path(__file__).resolve().parents[2] / "results"
    return folder if folder.is_dir() else None


@dataclass(frozen=True)
class StoredResults:
    """One chapter's stored results at one scale: its recorded ``values`` and their ``provenance``."""

    chapter: str
    scale: str
    values: dict[str, Any]
    provenance: dict[str, Any]
    path: Path

    def __getitem__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise KeyError(
                f"{self.path} holds no value {name!r}; it holds {sorted(self.values)}"
            ) from None

    @property
    def certified(self) -> dict[str, Any]:
        """The hashes these numbers stand for: the provenance's own, or those of the last
        certificate appended by ``tools/book.py verify`` (code shown to give the same numbers)."""
        chain = self.provenance.get("certificates") or [self.provenance]
        return {k: chain[-1].get(k) for k in ("numeric_hash", "notebook_hash", "modules")}

    def current_hashes(self) -> dict[str, str]:
        """The hashes of the code here now (see :func:`~nnstudies.provenance.code_hashes`)."""
        folder = results_dir()
        notebooks = folder.parent / "notebooks" if folder is not None else None
        notebook = notebooks / f"{self.chapter}.ipynb" if notebooks is not None else None
        return code_hashes(self.certified["modules"] or [], self.scale, notebook)

    @property
    def is_current(self) -> bool:
        """True when the numeric code and the notebook's code that made these results (or that a
        certificate showed to give the same numbers) are the code here now. Docstrings,
        comments, figures and claim wording do not count."""
        then = self.certified
        if not then["modules"] or not then["numeric_hash"]:
            return False
        now = self.current_hashes()
        return all(now[k] == then[k] for k in ("numeric_hash", "notebook_hash") if k in now)

    def note(self) -> str:
        """One line: where and when these results were made, and whether the code has changed since."""
        p = self.provenance
        where = (
            f"{p.get('device', '?')}, {p.get('threads', '?')} threads, torch {p.get('torch', '?')}"
        )
        when = f"commit {p.get('commit', '?')}, {p.get('date', '?')}"
        minutes = p.get("wall_seconds", 0) / 60
        text = f"`{self.scale}` results stored from {when} ({where}; {minutes:.0f} min)"
        chain = p.get("certificates", [])
        if chain:
            text += (
                f"; the same numbers certified on the code of commit {chain[-1].get('to', '?')}"
                f" ({len(chain)} certificate{'s' if len(chain) > 1 else ''})"
            )
        if not self.is_current:
            text += (
                "; **the chapter's code has changed since: these numbers are from the older code**"
            )
        return text


def load_results(chapter: str, scale: str) -> StoredResults | None:
    """The stored results of ``chapter`` at ``scale``, or None when none are stored (or no store is
    here).

    A damaged file is an error that names it, never a silent empty result.
    """
    check_scale(scale)
    folder = results_dir()
    if folder is None:
        return None
    path = folder / chapter / f"{scale}.json"
    if not path.exists():
        return None
    try:
        stored = json.loads(path.read_text())
        values, provenance = stored["values"], stored["provenance"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(
            f"{path} is damaged ({error}); re-create it with `make results SCALE={scale}`"
        ) from error
    return StoredResults(chapter, scale, values, provenance, path)


# ----------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class Evidence:
    """Per-run values of a claim's quantity, their summary and the verdict of its rule."""

    values: tuple[float, ...]
    verdict: Verdict
    fmt: str = ".3f"  #: how its values are printed (most claims: three decimals)

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
            return f"{self.mean:{self.fmt}} (1 run)"
        return f"{self.mean:{self.fmt}} ± {self.sd:{self.fmt}} (n={self.n})"


@dataclass(frozen=True)
class Rule:
    """A decision rule on per-run values ``x`` (mean ``m``, standard deviation ``s``, ``n`` runs).

    ``above(t, margin)``: **yes** if m − k·s > t and m > t + margin; **partly** if m > t; else **no**.
    ``below(t, margin)``: the mirror image. ``within(t, tol)``: **yes** if |m − t| + k·s ≤ tol;
    **partly** if |m − t| ≤ tol; else **no**. Fewer than ``min_runs`` runs: not tested.
    Using the spread of single runs (not the standard error) keeps a verdict from
    resting on noise that another machine's floating point could flip.
    """

    kind: Literal["above", "below", "within"]
    threshold: float = 0.0
    margin: float = 0.0
    k: float = 2.0
    min_runs: int = 3

    @classmethod
    def above(
        cls, threshold: float = 0.0, *, margin: float = 0.0, k: float = 2.0, min_runs: int = 3
    ) -> Rule:
        return cls("above", threshold, margin, k, min_runs)

    @classmethod
    def below(
        cls, threshold: float = 0.0, *, margin: float = 0.0, k: float = 2.0, min_runs: int = 3
    ) -> Rule:
        return cls("below", threshold, margin, k, min_runs)

    @classmethod
    def within(cls, target: float, *, tolerance: float, k: float = 2.0, min_runs: int = 3) -> Rule:
        return cls("within", target, tolerance, k, min_runs)

    def __post_init__(self) -> None:
        if self.margin < 0 or self.k < 0 or self.min_runs < 1:
            raise ValueError(f"a rule needs margin >= 0, k >= 0 and min_runs >= 1, got {self}")

    def text(self, fmt: str = ".3g") -> str:
        t, d, k = f"{self.threshold:{fmt}}", f"{self.margin:{fmt}}", f"{self.k:g}"
        if self.kind == "within":
            core = f"yes if abs(mean − {t}) + {k} sd ≤ {d}; partly if abs(mean − {t}) ≤ {d}"
        else:
            op, sign = (">", "−") if self.kind == "above" else ("<", "+")
            edge = self.threshold + (self.margin if self.kind == "above" else -self.margin)
            clear = f" and mean {op} {edge:{fmt}}" if self.margin else ""
            core = f"yes if mean {sign} {k} sd {op} {t}{clear}; partly if mean {op} {t}"
        return f"{core}; else no (≥ {self.min_runs} runs)"

    def judge(self, values: Sequence[float]) -> Verdict:
        xs = [float(v) for v in values]
        if any(not math.isfinite(x) for x in xs):
            raise ValueError(f"a claim's values must be finite, got {xs}")
        if len(xs) < self.min_runs:
            return NOT_TESTED
        m = statistics.fmean(xs)
        s = statistics.stdev(xs) if len(xs) > 1 else 0.0  # one value (min_runs=1): no spread
        if self.kind == "within":
            gap = abs(m - self.threshold)
            return (
                "yes"
                if gap + self.k * s <= self.margin
                else "partly"
                if gap <= self.margin
                else "no"
            )
        sign = 1.0 if self.kind == "above" else -1.0
        lead = sign * (m - self.threshold)
        if lead - self.k * s > 0 and lead > self.margin:
            return "yes"
        return "partly" if lead > 0 else "no"


@dataclass(frozen=True)
class Claim:
    """What a paper claims, the paper's number, the per-run quantity we measure, and the rule that
    judges it.
    """

    key: str
    statement: str
    paper: str
    quantity: str
    rule: Rule
    fmt: str = ".3f"  #: how its values are printed (most claims: three decimals)
    timing: bool = (
        False  #: its values are measured seconds (or ratios of them): never bit-identical
    )

    def judge(self, values: Sequence[float]) -> Evidence:
        return Evidence(tuple(float(v) for v in values), self.rule.judge(values), self.fmt)


def claims_table(
    chapter: str,
    claims: Sequence[Claim],
    values: Mapping[str, Sequence[float]],
    *,
    scale: str,
    stored_scale: str = "full",
) -> Any:
    """The claims table: the paper | ours at ``stored_scale`` (stored) | ours in this run | verdicts
    | rule.

    ``values[claim.key]`` holds this run's per-run values; they are recorded as ``claim.<key>``,
    which is where the stored results are read from. Returns a displayable table.
    """
    unknown = set(values) - {c.key for c in claims}
    if unknown:
        raise ValueError(f"values given for claims that are not in the table: {sorted(unknown)}")
    record(chapter, **{f"claim.{c.key}": list(map(float, values.get(c.key, ()))) for c in claims})
    record(chapter, timing_claims=[c.key for c in claims if c.timing])  # tools/verify.py skips them
    stored = load_results(chapter, stored_scale) if scale != stored_scale else None
    header = [
        "the paper claims",
        "paper",
        f"ours, `{stored_scale}` (stored)",
        f"ours, `{scale}` (this run)",
        "verdict",
        "rule",
    ]
    rows = []
    for claim in claims:
        live = claim.judge(values.get(claim.key, ()))
        kept = stored.values.get(f"claim.{claim.key}") if stored is not None else None
        old = claim.judge(kept) if kept is not None else None
        verdicts = (
            f"{stored_scale}: **{old.verdict}** · " if old else ""
        ) + f"{scale}: **{live.verdict}**"
        rows.append(
            [
                claim.statement,
                claim.paper,
                str(old) if old else "not run",
                str(live),
                verdicts,
                f"{claim.quantity}: {claim.rule.text(claim.fmt)}",
            ]
        )
    return markdown_table(header, rows)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> Any:
    """A table for a notebook cell, as Markdown: rendered by Jupyter, Colab, GitHub and the book."""
    from IPython.display import Markdown

    if any(len(row) != len(header) for row in rows):
        raise ValueError("every row needs one entry per header column")

    def escape(value: object) -> str:
        return str(value).replace("\n", " ").replace("|", "\\|")

    lines = ["| " + " | ".join(map(escape, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(escape, row)) + " |" for row in rows]
    return Markdown("\n".join(lines))
