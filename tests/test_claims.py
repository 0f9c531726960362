"""Fair verdicts (nnstudies.claims): verdict levels, two protocols, operating points a scale cannot
reach, rules changed after their results, seed roles, and every chapter's claims held to them."""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

import pytest

import nnstudies.results
from nnstudies.claims import (
    POINTS,
    TIMES,
    TIMES_LOG10,
    Claim,
    Protocol,
    Rule,
    RuleChange,
    SeedRoles,
    Verdict,
    fingerprint,
)
from nnstudies.results import claims_table, load_results

CHAPTERS = {
    "00_getting_started": "getting_started",
    "01_permutations": "permutations",
    "02_neuron_descent": "neuron_descent",
    "03_continual_learning": "continual_learning",
    "04_rtrl": "rtrl",
}


def claims_of(package: str) -> object:
    return importlib.import_module(f"nnstudies.chapters.{package}.claims")


def test_each_verdict_level() -> None:
    """yes clears the margin by 2 sd; partly clears the minimum effect; no is the wrong side;
    inconclusive is a right-side mean below the minimum effect."""
    ten_times = Rule.above(0.0, margin=1.0, minimum=math.log10(2))  # a claim of "10×"
    assert ten_times.judge([1.2, 1.3, 1.25]) == Verdict.YES
    assert ten_times.judge([0.5, 0.6, 0.55]) == Verdict.PARTLY  # 3.5×: more than 2×
    assert ten_times.judge([0.05, 0.04, 0.06]) == Verdict.INCONCLUSIVE  # 1.1×: not 2×
    assert ten_times.judge([-0.1, -0.2, -0.15]) == Verdict.NO
    assert ten_times.judge([1.2, 1.3]) == Verdict.NOT_TESTED
    below = Rule.below(1.3, margin=0.2, minimum=0.1)
    assert below.judge([1.25, 1.24, 1.26]) == Verdict.INCONCLUSIVE
    assert below.judge([1.15, 1.14, 1.16]) == Verdict.PARTLY
    assert below.judge([1.4, 1.35, 1.45]) == Verdict.NO


def test_two_protocols_that_disagree_depend_on_tuning() -> None:
    claim = Claim(
        "c", "KFAC beats NG", paper="10×", quantity="ratio", unit=TIMES_LOG10,
        rule=Rule.above(0.0, margin=1.0, minimum=0.3), protocol=Protocol.STABLE,
    )  # fmt: skip
    agree = claim.judge({"stability rule": [1.2, 1.3, 1.25], "best point": [1.5, 1.6, 1.55]})
    assert agree.verdict == Verdict.YES
    differ = claim.judge({"stability rule": [0.6, 0.65, 0.62], "best point": [2.1, 2.2, 2.15]})
    assert differ.verdict == Verdict.DEPENDS
    assert (differ.evidence.verdict, differ.other and differ.other.verdict) == ("partly", "yes")
    table = claims_table(
        "97_test", [claim], {"c": {"stability rule": [0.6, 0.65, 0.62], "best point": [2.1, 2.2, 2.15]}},
        scale="cpu",
    )  # fmt: skip
    assert "cpu: **depends on tuning**" in table.data
    assert ", partly; best point: 141×, yes" in table.data  # each protocol's value and verdict
    assert "4.2×" in table.data
    assert nnstudies.results.recorded("97_test")["claim.c"]["best point"] == [2.1, 2.2, 2.15]
    with pytest.raises(ValueError, match="protocols"):
        claim.judge({"tuned by hand": [1.0, 1.0, 1.0]})


def test_an_operating_point_the_scale_cannot_reach_is_not_tested() -> None:
    claim = Claim(
        "overhead", "FOOF's overhead is 10%", paper="1.1×", quantity="time ratio", unit=TIMES,
        point="ResNets", untested={"cpu": "an MLP is timed"}, rule=Rule.below(1.3),
    )  # fmt: skip
    assert claim.judge([1.05, 1.04, 1.06], "cpu").verdict == Verdict.NOT_TESTED
    assert claim.judge([1.05, 1.04, 1.06], "paper").verdict == Verdict.YES
    table = claims_table("97_test", [claim], {"overhead": [1.05, 1.04, 1.06]}, scale="cpu")
    assert "(illustration)" in table.data and "Not tested at `cpu`: an MLP is timed" in table.data


def _text(table: object) -> str:
    """A claims table's Markdown with its dates' non-breaking hyphens read as hyphens."""
    return str(table.data).replace("\u2011", "-")  # type: ignore[attr-defined]


def _store(tmp: Path, chapter: str, date: str, values: dict, rules: dict) -> None:
    (tmp / chapter).mkdir(parents=True, exist_ok=True)
    stored = {"provenance": {"date": date, "claims": rules, "modules": []}, "values": values}
    (tmp / chapter / "full.json").write_text(json.dumps(stored))


def test_a_rule_changed_after_its_result_is_marked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found against the stored fingerprint, dated by the declaration; declared for another scale's
    results; never marked on a result made after the change."""
    monkeypatch.setenv("NNSTUDIES_RESULTS_STORE", str(tmp_path))
    before = Claim("gap", "a gap", paper="big", quantity="gap", unit=POINTS, rule=Rule.above(0.0))
    after = Claim(
        "gap", "a gap", paper="big", quantity="gap", unit=POINTS, rule=Rule.above(0.02),
        changes=(RuleChange("2026-12-01", ("full",), "the threshold raised"),),
    )  # fmt: skip
    values = {"claim.gap": [0.03, 0.04, 0.05]}
    _store(tmp_path, "96_test", "2026-11-20 10:00 UTC", values, {"gap": fingerprint(before)})
    table = _text(claims_table("96_test", [after], {"gap": [0.03, 0.04, 0.05]}, scale="cpu"))
    assert "rule changed after the result (full: 2026-12-01)" in table
    undeclared = Claim("gap", "a gap", paper="big", quantity="gap", rule=Rule.above(0.02))
    table = _text(claims_table("96_test", [undeclared], {"gap": [0.03, 0.04, 0.05]}, scale="cpu"))
    assert "rule changed after the result (full: undeclared)" in table
    _store(tmp_path, "96_test", "2026-12-02 10:00 UTC", values, {"gap": fingerprint(after)})
    table = claims_table("96_test", [after], {"gap": [0.03, 0.04, 0.05]}, scale="cpu").data
    assert "rule changed" not in table  # the rule was fixed before this result
    seen_at_cpu = Claim(
        "gap", "a gap", paper="big", quantity="gap", rule=Rule.above(0.02),
        changes=(RuleChange("2026-12-01", ("cpu",), "set after the cpu numbers"),),
    )  # fmt: skip
    table = _text(claims_table("96_test", [seen_at_cpu], {"gap": [0.03, 0.04, 0.05]}, scale="cpu"))
    assert "rule changed after the result (cpu: 2026-12-01)" in table
    _store(tmp_path, "96_test", "2026-12-01 15:00 UTC", values, {"gap": fingerprint(after)})
    table = claims_table("96_test", [after], {"gap": [0.03, 0.04, 0.05]}, scale="cpu").data
    assert "rule changed" not in table  # made later on the day of the change, under the new rule
    _store(tmp_path, "96_test", "2026-12-01 09:00 UTC", values, {"gap": fingerprint(before)})
    table = _text(claims_table("96_test", [after], {"gap": [0.03, 0.04, 0.05]}, scale="cpu"))
    assert "rule changed after the result (full: 2026-12-01)" in table  # earlier that day


def test_seed_roles_mark_tuning_on_a_judging_seed() -> None:
    claim = Claim("c", "c", paper="p", quantity="q", rule=Rule.above(), tuned=True)
    fair = claims_table(
        "93_test", [claim], {"c": [1.0, 1.0, 1.0]}, scale="cpu", seeds=SeedRoles((1, 2, 3), (0,))
    )
    assert "tuned on judging" not in fair.data and "tuning [0], judging [1, 2, 3]" in fair.data
    unfair = claims_table(
        "93_test", [claim], {"c": [1.0, 1.0, 1.0]}, scale="cpu", seeds=SeedRoles((0, 1, 2), (0,))
    )
    assert "— tuned on judging seeds" in unfair.data and "judging [0, 1, 2]" in unfair.data
    assert nnstudies.results.recorded("93_test")["seed_roles"]["tuning"] == [0]
    with pytest.raises(ValueError, match="judging"):
        SeedRoles(())


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_every_claim_states_its_unit_point_and_rule(chapter: str) -> None:
    for claim in claims_of(CHAPTERS[chapter]).CLAIMS:  # type: ignore[attr-defined]
        assert claim.point, f"{chapter} {claim.key}: where the paper made the claim"
        assert claim.unit is not TIMES or "÷" in claim.quantity, f"{chapter} {claim.key}: its unit"
        assert claim.rule.kind == "within" or claim.rule.least >= 0


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_every_rule_changed_after_a_stored_result_is_declared(chapter: str) -> None:
    """The mark on the page needs a date: a stored fingerprint that differs from the claim now must
    be covered by a declared change of that claim for `full` results made on or before it."""
    stored = load_results(chapter, "full")
    assert stored is not None and "claims" in stored.provenance, f"{chapter}: rules not recorded"
    for claim in claims_of(CHAPTERS[chapter]).CLAIMS:  # type: ignore[attr-defined]
        then = stored.provenance["claims"].get(claim.key)
        when = claim.changed_after("full", stored.provenance["date"], then)
        assert when != "undeclared", f"{chapter} {claim.key}: changed after the result, undeclared"


def test_the_known_rule_changes_are_declared() -> None:
    """Chapter 1's reserve seeds, chapter 2's stability rule and chapter 3's SIU threshold."""
    by_key = {
        (ch, c.key): c
        for ch, pkg in CHAPTERS.items()
        for c in claims_of(pkg).CLAIMS  # type: ignore[attr-defined]
    }
    for key, what in (
        (("01_permutations", "cnn_larger_barrier_at_large_lr"), "reserve"),
        (("02_neuron_descent", "kfac_beats_natural"), "stability rule"),
        (("03_continual_learning", "siu_worse"), "1 point"),
    ):
        assert any(what in c.what and c.date == "2026-11-28" for c in by_key[key].changes), key


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_tuning_and_judging_seeds_are_disjoint_or_marked(chapter: str) -> None:
    """Every scale's presets keep tuning and judging seeds apart."""
    module = claims_of(CHAPTERS[chapter])
    presets = importlib.import_module(f"nnstudies.chapters.{CHAPTERS[chapter]}.presets").PRESETS
    if not hasattr(module, "seed_roles"):
        assert not any(c.is_tuned for c in module.CLAIMS)  # type: ignore[attr-defined]
        return
    for scale, preset in presets.items():
        roles = module.seed_roles(preset)  # type: ignore[attr-defined]
        assert len(roles.judging) >= (1 if scale == "smoke" else 3), (chapter, scale)
        assert not roles.overlap, f"{chapter} at {scale} tunes on judging seeds {roles.overlap}"


def test_a_stored_result_without_seed_roles_takes_its_presets() -> None:
    """A stored result that predates recorded seed roles takes them from its chapter's preset where
    its code is current (chapter 2's full run of 2026-11-28 tuned on seed 0 and was judged on 0, 1
    and 2, which the page marked), and none where its code has changed since."""
    from nnstudies.results import _preset_seed_roles

    stored = load_results("02_neuron_descent", "full")
    assert stored is not None
    if "seed_roles" in stored.values or "seed_roles" in stored.provenance:
        return  # recorded with the result: the preset is not consulted
    assert (_preset_seed_roles(stored) is None) == (not stored.is_current)
