"""A chapter's numbers: recorded while it runs, stored for the long scales, and judged as claims.

**Recording.** ``record("00_getting_started", test_accuracy=0.87, curve=[...])`` keeps
numbers, strings and (nested) lists or dicts of them. When ``$NNSTUDIES_RESULTS_DIR``
is set (the tests and ``make results`` set it), they are merged into
``<dir>/<chapter>.json``. A dry run marks what it records as such.

**The store.** ``make results SCALE=full`` runs a chapter and writes everything it
recorded, with provenance (commit, source hash, date, device, threads, torch, seeds,
wall time), to ``results/<chapter>/<scale>.json``; :func:`load_results` reads it back,
and :meth:`StoredResults.note` says when it is older than the code.

**The claims table.** :func:`claims_table` judges a chapter's claims (:mod:`nnstudies.claims`:
rules, units, operating points, protocols, seed roles, rule changes) on this run's values and on
the stored ``full`` ones, side by side, and records the values with each claim's fingerprint, so
that a rule changed after its result is marked on the page.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .claims import (
    PROTOCOL_TEXT,
    Claim,
    Evidence,
    Judgement,
    Protocol,
    Rule,
    SeedRoles,
    Values,
    Verdict,
    fingerprints,
)
from .provenance import PACKAGE, code_hashes, environment
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
NOT_TESTED = Verdict.NOT_TESTED
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
    """The results store: ``$NNSTUDIES_RESULTS_STORE``, else the results shipped inside the
    installed package (package data ``nnstudies/stored_results``, copied from the repository's
    ``results/`` by setup.py: a copy installed by pip, as on Colab), else ``results/`` of the
    checkout the library runs from (an editable install, or ``lib/`` on the path).

    None when none of these exists.
    """
    configured = os.environ.get(RESULTS_STORE_ENV)
    shipped = resources.files(PACKAGE) / "stored_results"
    if configured:
        folder = Path(configured)
    elif isinstance(shipped, Path) and shipped.is_dir():
        folder = shipped
    else:
        folder = Path(__file__).resolve().parents[2] / "results"
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
        threads = p.get("threads", "?")
        plural = "" if threads == 1 else "s"
        where = f"{p.get('device', '?')}, {threads} thread{plural}, torch {p.get('torch', '?')}"
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


# ----------------------------------------------------------------------------- claims table


def _values(kept: Any) -> Any:
    """Recorded values of a claim: a list, or ``{protocol: list}`` for a tuned comparison."""
    return dict(kept) if isinstance(kept, Mapping) else list(kept)


NB_HYPHEN = "\u2011"
_SHORT = {Verdict.NOT_TESTED: "not tested"}  # in the table; its folded details say why


def _cell(claim: Claim, judged: Judgement) -> str:
    """The deciding protocol's values; the other protocol's mean beside them, and each one's verdict
    where the two disagree."""
    text = str(judged.evidence)
    if judged.untested and judged.evidence.values:
        text += " (illustration)"
    other = judged.other
    if other is not None and other.values:
        name = next(p for p in Protocol if p != claim.protocol)
        split = judged.verdict == Verdict.DEPENDS
        if split:
            text += f", {judged.evidence.verdict}"
        text += f"; {name}: {other.unit.point(other.mean)}"
        if split:
            text += f", {other.verdict}"
    return text


def _verdict(judged: Judgement, scale: str) -> str:
    return f"{scale}: **{_SHORT.get(judged.verdict, judged.verdict)}**"


def _joined(verdicts: Sequence[str]) -> str:
    """ "full: **yes** · cpu: **no**", or "full, cpu: **yes**" where the scales agree."""
    scales, texts = zip(*(v.split(": ", 1) for v in verdicts))
    if len(set(texts)) == 1 and len(verdicts) > 1:
        return f"{', '.join(scales)}: {texts[0]}"
    return " · ".join(verdicts)


def _preset_seed_roles(stored: StoredResults) -> SeedRoles | None:
    """The seed roles of a stored result that predates their recording, from its chapter's preset
    (``nnstudies.chapters.<name>.claims.seed_roles``), where the preset is the one it ran: its
    numeric code, presets included, is current."""
    import importlib

    package = f"{PACKAGE}.chapters.{stored.chapter.partition('_')[2]}"
    try:
        roles = importlib.import_module(f"{package}.claims").seed_roles
        preset = importlib.import_module(f"{package}.presets").PRESETS[stored.scale]
    except (ImportError, AttributeError, KeyError):
        return None
    return roles(preset) if stored.is_current else None


def _changed_mark(changed: Mapping[str, str]) -> str:
    """'rule changed after the result (date)', or one date per scale where they differ."""
    dates = set(changed.values())
    if len(dates) == 1:  # a date is never broken across lines (non-breaking hyphens)
        return f"rule changed after the result ({dates.pop().replace('-', NB_HYPHEN)})"
    return (
        "rule changed after the result ("
        + "; ".join(
            f"{scale}: {date.replace('-', NB_HYPHEN)}" for scale, date in changed.items() if date
        )
        + ")"
    )


def _details(claims: Sequence[Claim], seeds: Mapping[str, SeedRoles | None]) -> str:
    lines = []
    for c in claims:
        quantity = c.quantity[:1].upper() + c.quantity[1:]
        parts = [f"- **{c.statement}.** {quantity} ({c.unit.words})."]
        if c.point:
            parts.append(f"Where the paper made the claim: {c.point}.")
        parts.append(f"Rule: {c.rule.text(c.unit)}.")
        if c.protocol is not None:
            other = next(p for p in Protocol if p != c.protocol)
            parts.append(
                f"Decided by the {c.protocol}: {PROTOCOL_TEXT[c.protocol]}. The {other} is shown "
                "beside it where it was run; where the two disagree, the verdict depends on tuning."
            )
        if c.baseline:
            parts.append(f"Baseline: {c.baseline}.")
        for where, why in sorted(c.untested.items()):
            scale = "any scale here" if where == "*" else f"`{where}`"
            parts.append(f"Not tested at {scale}: {why}.")
        if c.is_tuned:
            for where, roles in seeds.items():
                if roles is not None:
                    how = f" ({roles.how})" if roles.how else ""
                    parts.append(
                        f"Seeds at `{where}`: tuning {list(roles.tuning)}, judging "
                        f"{list(roles.judging)}{how}."
                    )
        for change in c.changes:
            parts.append(
                f"Rule changed on {change.date}, after the {', '.join(change.seen)} results had "
                f"been seen: {change.what}."
            )
        lines.append(" ".join(parts))
    return "\n".join(lines)


def claims_table(
    chapter: str,
    claims: Sequence[Claim],
    values: Mapping[str, Values],
    *,
    scale: str,
    seeds: SeedRoles | None = None,
    stored_values: Mapping[str, Values] | None = None,
    stored_scale: str = "full",
) -> Any:
    """The claims table: the paper claims | paper | ours at ``stored_scale`` (stored) | ours in this
    run | verdicts, each number in its claim's unit, and under it, folded, how each claim is measured
    and judged (quantity, operating point, rule, protocol, seeds, rule changes).

    ``values[claim.key]`` holds this run's per-run values (``{protocol: values}`` for a tuned
    comparison); they are recorded as ``claim.<key>``, beside each claim's fingerprint
    (``claim_rules``) and ``seeds``' roles, which is where the stored results are read from.
    ``stored_values``: values of the stored scale recomputed from its stored measurements by the
    claims module as it is now (a claim whose quantity changed is re-judged without a re-run);
    they replace the stored ``claim.<key>`` of the claims they name.
    A verdict is marked where its rule changed after the result it judges (:meth:`Claim.changed_after`),
    and where a tuned claim was judged on a seed that also tuned it (:meth:`SeedRoles.mark`).
    """
    unknown = set(values) - {c.key for c in claims}
    if unknown:
        raise ValueError(f"values given for claims that are not in the table: {sorted(unknown)}")
    record(
        chapter,
        **{
            f"claim.{c.key}": _values(values.get(c.key, ()))
            if isinstance(values.get(c.key), Mapping)
            else list(map(float, values.get(c.key, ())))
            for c in claims
        },
        claim_rules=fingerprints(claims),
        timing_claims=[c.key for c in claims if c.timing],  # tools/verify.py skips them
        **({"seed_roles": seeds.as_record()} if seeds is not None else {}),
    )
    stored = load_results(chapter, stored_scale) if scale != stored_scale else None
    kept_rules: Mapping[str, str] = {}
    kept_seeds: SeedRoles | None = None
    if stored is not None:
        kept_rules = stored.provenance.get("claims") or stored.values.get("claim_rules") or {}
        roles = stored.values.get("seed_roles") or stored.provenance.get("seed_roles")
        kept_seeds = SeedRoles.from_record(roles) if roles else _preset_seed_roles(stored)
    header = [
        "the paper claims",
        "paper",
        f"ours, `{stored_scale}`",
        f"ours, `{scale}` (this run)",
        "verdict",
    ]
    rows = []
    for claim in claims:
        live = claim.judge(values.get(claim.key, ()), scale)
        verdicts, changed, marks = [], {}, []
        kept = (stored_values or {}).get(claim.key)
        if kept is None and stored is not None:
            kept = stored.values.get(f"claim.{claim.key}")
        old = None
        if stored is not None and kept is not None:
            old = claim.judge(_values(kept), stored_scale)
            verdicts.append(_verdict(old, stored_scale))
            made = stored.provenance.get("date", "")
            changed[stored_scale] = claim.changed_after(
                stored_scale, made, kept_rules.get(claim.key)
            )
            if claim.is_tuned and kept_seeds is not None and kept_seeds.mark():
                marks.append(kept_seeds.mark())
        verdicts.append(_verdict(live, scale))
        changed[scale] = claim.changed_after(scale, None, None)
        if claim.is_tuned and seeds is not None and seeds.mark():
            marks.append(seeds.mark())
        if any(changed.values()):
            marks.insert(0, _changed_mark(changed))
        verdict = _joined(verdicts)
        if marks:
            verdict += " — " + "; ".join(dict.fromkeys(marks))
        rows.append(
            [
                claim.statement,
                claim.paper,
                _cell(claim, old) if old else "not run",
                _cell(claim, live),
                verdict,
            ]
        )
    details = _details(claims, {stored_scale: kept_seeds, scale: seeds})
    return markdown_table(
        header,
        rows,
        folded=("How each claim is measured and judged", details),
    )


def markdown_table(
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    folded: tuple[str, str] | None = None,
) -> Any:
    """A table for a notebook cell, as Markdown: rendered by Jupyter, Colab, GitHub and the book.

    ``folded``: (summary, Markdown) shown folded under the table (an HTML ``<details>`` block).
    """
    from IPython.display import Markdown

    if any(len(row) != len(header) for row in rows):
        raise ValueError("every row needs one entry per header column")

    def escape(value: object) -> str:
        return str(value).replace("\n", " ").replace("|", "\\|")

    lines = ["| " + " | ".join(map(escape, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(escape, row)) + " |" for row in rows]
    if folded is not None:
        summary, body = folded
        lines += ["", f"<details><summary>{summary}</summary>", "", body, "", "</details>"]
    return Markdown("\n".join(lines))
