"""Claims, rules, the results store and provenance: verdicts by their printed rules, stored results with provenance."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import nnstudies
from nnstudies.provenance import (
    chapter_packages,
    imported_modules,
    module_closure,
    normalized_source,
    numeric_closure,
    numeric_hash,
    source_hash,
)
from nnstudies.results import NOT_TESTED, Claim, Rule, claims_table, load_results, record

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("rule", "values", "verdict"),
    [
        (Rule.above(0.0, margin=0.1), [0.5, 0.52, 0.48], "yes"),
        (
            Rule.above(0.0, margin=0.1, minimum=0.03),
            [0.05, 0.06, 0.04],
            "partly",
        ),  # clear of zero and of the minimum effect, but below the margin
        (Rule.above(0.0, margin=0.1), [0.05, 0.06, 0.04], "inconclusive"),  # below the minimum
        (Rule.above(0.0), [0.3, -0.2, 0.1], "partly"),  # positive mean within 2 sd of zero
        (Rule.above(0.0), [-0.1, -0.2, -0.15], "no"),
        (Rule.below(1.0), [0.1, 0.2, 0.15], "yes"),
        (Rule.below(1.0), [1.1, 1.2, 1.3], "no"),
        (Rule.within(0.0, tolerance=0.1), [0.01, -0.01, 0.0], "yes"),
        (Rule.within(0.0, tolerance=0.1), [0.05, -0.1, 0.2], "partly"),
        (Rule.within(0.0, tolerance=0.1), [0.5, 0.4, 0.6], "no"),
        (Rule.above(0.0), [1.0, 2.0], NOT_TESTED),  # fewer runs than the rule needs
    ],
)
def test_rules_give_the_verdicts_they_print(rule: Rule, values: list[float], verdict: str) -> None:
    assert rule.judge(values) == verdict


def test_rule_text_states_the_rule() -> None:
    assert Rule.above(0.0, margin=0.2, minimum=0.1).text() == (
        "yes if the mean − 2 sd > 0.00× and the mean > 0.20×; partly if the mean > 0.10×; "
        "no if the mean ≤ 0.00×; else inconclusive (≥ 3 runs)"
    )
    assert "within 0.50× … 1.50×" in Rule.within(1.0, tolerance=0.5).text()
    with pytest.raises(ValueError, match="finite"):
        Rule.above().judge([1.0, float("nan"), 2.0])
    with pytest.raises(ValueError, match="margin"):
        Rule.above(margin=-1.0)
    with pytest.raises(ValueError, match="minimum"):
        Rule.above(margin=0.1, minimum=0.2)


def test_a_claim_summarises_its_runs() -> None:
    claim = Claim("x", "the paper claims x", paper="1.0", quantity="gap", rule=Rule.above())
    evidence = claim.evidence([1.5, 2.0, 2.5])
    assert (evidence.mean, evidence.sd, evidence.n, evidence.verdict) == (2.0, 0.5, 3, "yes")
    assert str(evidence) == "2.00× ± 0.50 (n=3)"
    assert claim.judge([1.0, 2.0, 3.0]).verdict == "partly"  # mean − 2 sd = 0 is not clear of zero


def test_claims_table_records_and_reads_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NNSTUDIES_RESULTS_STORE", str(tmp_path))
    claim = Claim(
        "gap",
        "the paper claims a gap",
        paper="big",
        quantity="gap",
        rule=Rule.above(0.0, margin=0.1),
    )
    table = claims_table("98_test", [claim], {"gap": [0.5, 0.6, 0.55]}, scale="cpu")
    assert "not run" in table.data and "cpu: **yes**" in table.data
    assert nnstudies.results.recorded("98_test")["claim.gap"] == [0.5, 0.6, 0.55]
    stored = {
        "provenance": {"modules": ["nnstudies.scales"], "library_hash": "old"},
        "values": {"claim.gap": [0.0, 0.01, -0.01]},
    }
    (tmp_path / "98_test").mkdir()
    (tmp_path / "98_test" / "full.json").write_text(json.dumps(stored))
    table = claims_table("98_test", [claim], {"gap": [0.5, 0.6, 0.55]}, scale="cpu")
    assert "full: **no**" in table.data and "cpu: **yes**" in table.data
    result = load_results("98_test", "full")
    assert result is not None and not result.is_current and "changed since" in result.note()
    with pytest.raises(ValueError, match="not in the table"):
        claims_table("98_test", [claim], {"other": [1.0]}, scale="cpu")


def test_a_damaged_store_is_an_error_not_an_empty_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NNSTUDIES_RESULTS_STORE", str(tmp_path))
    (tmp_path / "97_test").mkdir()
    (tmp_path / "97_test" / "full.json").write_text("{not json")
    with pytest.raises(ValueError, match="damaged"):
        load_results("97_test", "full")
    assert load_results("97_test", "paper") is None
    with pytest.raises(ValueError, match="unknown scale"):
        load_results("97_test", "laptop")


def test_record_rejects_what_json_cannot_hold_faithfully() -> None:
    with pytest.raises(ValueError, match="finite"):
        record("96_test", curve=[1.0, float("inf")])
    with pytest.raises(TypeError, match="numbers, strings"):
        record("96_test", model=object())
    assert record("96_test", curve=(1.0, 2.0), nested={"a": [1, 2]})["curve"] == [1.0, 2.0]


def test_a_dry_run_is_marked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNSTUDIES_DRY_RUN", "1")
    assert record("95_test", a=1)["dry_run"] is True
    monkeypatch.setenv("NNSTUDIES_DRY_RUN", "maybe")
    with pytest.raises(ValueError, match="NNSTUDIES_DRY_RUN"):
        nnstudies.dry_run()


def test_imports_are_read_statically() -> None:
    source = "import nnstudies\nfrom nnstudies.chapters import getting_started as ch\n%pip install x\nimport numpy"
    assert imported_modules(source) == {
        "nnstudies",
        "nnstudies.chapters",
        "nnstudies.chapters.getting_started",
    }
    closure = module_closure(["nnstudies.chapters.getting_started"])
    assert {"nnstudies", "nnstudies.training", "nnstudies.results"} <= closure
    assert not any(name.startswith(("nnstudies.rtrl", "nnstudies.optim")) for name in closure)
    assert source_hash(["nnstudies.scales"]) != source_hash(["nnstudies.scales"], "extra")


def _book_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "book.py"), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_stored_results_refuse_a_dry_run(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import book
    finally:
        sys.path.remove(str(ROOT / "tools"))
    with pytest.raises(SystemExit, match="dry run"):
        book.store_results("99_x", "full", {"dry_run": True}, provenance={"commit": "c"})
    with pytest.raises(SystemExit, match="not 'full'"):
        book.store_results("99_x", "full", {"scale": "cpu"}, provenance={"commit": "c"})
    with pytest.raises(SystemExit, match="uncommitted"):
        book.store_results("99_x", "full", {"scale": "full"}, provenance={"commit": "abc+dirty"})


# Chapters whose `full` results must be stored, made by the library code that is here now.
STORED_FULL = [
    "00_getting_started",
    "01_permutations",
    "02_neuron_descent",
    "03_continual_learning",
    "04_rtrl",
]


@pytest.mark.parametrize("chapter", STORED_FULL)
def test_full_results_are_stored_with_provenance(chapter: str) -> None:
    result = load_results(chapter, "full")
    assert result is not None, (
        f"results/{chapter}/full.json is missing: run `make results SCALE=full CHAPTER={chapter[:2]}`"
    )
    for key in (
        "commit",
        "date",
        "device",
        "threads",
        "torch",
        "seeds",
        "wall_seconds",
        "modules",
    ):
        assert key in result.provenance, f"{result.path} lacks provenance {key!r}"
    assert not result.provenance["commit"].endswith("+dirty"), f"{result.path}: uncommitted code"
    assert not result.values.get("dry_run"), f"{result.path} holds a dry run"
    assert result.values.get("scale") == "full"
    assert any(k.startswith("claim.") for k in result.values), (
        f"{result.path} holds no claim values"
    )
    assert result.is_current, (
        f"{result.path} was made by other numeric code ({result.provenance.get('commit')}): "
        f"`python tools/book.py verify {chapter[:2]}` certifies it if the numbers are the same, "
        f"else re-run `make results SCALE=full CHAPTER={chapter[:2]}`"
    )


def test_a_chapter_is_stale_only_when_its_own_code_changes() -> None:
    """Each notebook's hash covers the library modules it imports, transitively, and no other chapter's modules."""
    import nbformat

    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import book
    finally:
        sys.path.remove(str(ROOT / "tools"))
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    closures = {
        p.stem: module_closure(book.notebook_modules(nbformat.read(p, as_version=4)))
        for p in notebooks
    }
    packages = {p.stem: chapter_packages(c) for p, c in zip(notebooks, closures.values())}
    for stem, closure in closures.items():
        assert len(packages[stem]) == 1, f"{stem} imports several chapters: {packages[stem]}"
        assert {"nnstudies", "nnstudies.training", "nnstudies.results"} <= closure
    assert len({p[0] for p in packages.values()}) == len(notebooks), packages
    # Editing only chapter 4's modules leaves chapters 0-3 current.
    chapter4 = closures[notebooks[-1].stem] - set().union(
        *(closures[p.stem] for p in notebooks[:-1])
    )
    assert "nnstudies.rtrl" in chapter4, sorted(chapter4)
    for stem in (p.stem for p in notebooks[:-1]):
        assert not closures[stem] & chapter4


def test_the_numeric_hash_ignores_docstrings_comments_and_views() -> None:
    """What an edit to a docstring in training.py stales now: nothing."""
    source = (ROOT / "lib" / "nnstudies" / "training.py").read_text()
    edited = source.replace(
        '"""The book\'s one training loop', '"""The one training loop, reworded', 1
    )
    edited = edited.replace("import math\n", "import math  # a comment\n", 1)
    assert edited != source and normalized_source(edited) == normalized_source(source)
    changed = source.replace("DRY_RUN_STEPS = 2", "DRY_RUN_STEPS = 3")
    assert normalized_source(changed) != normalized_source(source)
    assert numeric_hash(["nnstudies.scales"]) != numeric_hash(["nnstudies.scales"], "preset")


@pytest.mark.parametrize("chapter", STORED_FULL)
def test_numeric_code_never_imports_views_or_claims(chapter: str) -> None:
    import nbformat

    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import book
    finally:
        sys.path.remove(str(ROOT / "tools"))
    nb = nbformat.read(ROOT / "notebooks" / f"{chapter}.ipynb", as_version=4)
    numeric = numeric_closure(book.notebook_modules(nb))
    assert any(m.startswith("nnstudies.chapters.") for m in numeric), sorted(numeric)
    views = ("plotting", "widgets", "explorer", "explore", "views", "claims", "listing")
    for name in numeric:  # (packages' __init__ files only re-export: not in the closure)
        path = ROOT / "lib" / Path(*name.split(".")).with_suffix(".py")
        imported = imported_modules(path.read_text(), package=name.rpartition(".")[0])
        bad = sorted(m for m in imported if m.rpartition(".")[2] in views)
        assert not bad, f"{name} computes numbers but imports {bad}: move that code to views"


def test_a_rule_can_judge_one_value() -> None:
    """A benchmark's single ratio: no spread, so the margin alone decides."""
    assert Rule.above(1.0, margin=0.3, min_runs=1).judge([1.5]) == "yes"
    assert Rule.above(1.0, margin=0.3, minimum=0.1, min_runs=1).judge([1.2]) == "partly"
    assert Rule.below(1.3, min_runs=1).judge([1.4]) == "no"
    assert Rule.above(1.0).judge([1.5]) == NOT_TESTED  # the default still asks for three runs


def test_stored_results_follow_the_notebook_code_and_certificates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat

    from nnstudies.provenance import code_hashes
    from nnstudies.results import StoredResults

    (tmp_path / "results").mkdir()
    monkeypatch.setenv("NNSTUDIES_RESULTS_STORE", str(tmp_path / "results"))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# a chapter"), nbformat.v4.new_code_cell("x = 1")]
    path = tmp_path / "notebooks" / "98_x.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    modules = ["nnstudies", "nnstudies.chapters.getting_started"]
    provenance = {"modules": modules, **code_hashes(modules, "full", path)}
    stored = StoredResults("98_x", "full", {}, provenance, tmp_path / "results" / "98_x.json")
    assert stored.is_current
    nb.cells[0].source = "# the chapter, reworded"  # prose: still current
    nb.cells[1].source = "x = 1  # a comment"  # and a comment
    nbformat.write(nb, path)
    assert stored.is_current
    nb.cells[1].source = "x = 2"  # code that computes: stale
    nbformat.write(nb, path)
    assert not stored.is_current
    certificate = {"to": "abc", "modules": modules, **code_hashes(modules, "full", path)}
    certified = StoredResults(
        "98_x", "full", {}, {**provenance, "certificates": [certificate]}, stored.path
    )
    assert certified.is_current and "certified on the code of commit abc" in certified.note()
