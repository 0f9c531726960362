"""Every chapter end to end at the smoke scale, its headline numbers, and the stored notebooks' state."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_chapters() -> None:
    assert [p.name for p in CHAPTERS][:1] == ["00_getting_started.ipynb"]


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Execute every chapter at the smoke scale with papermill; return what each recorded."""
    out = tmp_path_factory.mktemp("smoke")
    results: dict[str, dict] = {}
    import os

    env = {
        "NNSTUDIES_RESULTS_DIR": str(out / "results"),
        "NNSTUDIES_CACHE": str(out / "cache"),
        "NNSTUDIES_STATIC": "1",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        for path in CHAPTERS:
            papermill.execute_notebook(
                str(path),
                str(out / path.name),
                parameters={"SCALE": "smoke"},
                cwd=str(path.parent),
                kernel_name="python3",
                progress_bar=False,
                execution_timeout=600,
            )  # raises PapermillExecutionError on any cell error
            recorded = out / "results" / f"{path.stem}.json"
            results[path.stem] = json.loads(recorded.read_text()) if recorded.exists() else {}
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return results


def test_every_chapter_runs_and_records_at_smoke(smoke_runs: dict[str, dict]) -> None:
    for path in CHAPTERS:
        recorded = smoke_runs[path.stem]
        assert recorded, f"{path.name} recorded no headline numbers"
        assert recorded.get("scale") == "smoke", f"{path.name} did not run at the smoke scale"


def test_getting_started_claims(smoke_runs: dict[str, dict]) -> None:
    r = smoke_runs["00_getting_started"]
    assert r["test_accuracy"] > 2 * r["chance"], "the trained MLP should clearly beat chance"
    # No timing assertion on the cache (a smoke run trains in 0.06 s, as fast as a cache lookup): the
    # cache's behaviour (trained once, served after) is tested in test_cache_widgets_results.py.
    for claim in ("beats_chance", "lr_matters", "too_large_fails"):
        assert len(r[f"claim.{claim}"]) == 3, f"chapter 0 judges {claim} on three seeds"
    gaps = r["claim.lr_matters"]
    assert sum(gaps) / len(gaps) > 0, "on average a good learning rate should beat the smallest"


def test_permutations_claims(smoke_runs: dict[str, dict]) -> None:
    r = smoke_runs["01_permutations"]
    assert r["barrier_activations"] < r["barrier_naive"], "activation matching lowers the barrier"
    assert r["barrier_weights"] < r["barrier_naive"], "weight matching lowers the barrier"
    assert r["init_midpoint_permuted"] > r["init_midpoint_naive"], "permuted inits beat naive ones"
    claims = {k.removeprefix("claim."): v for k, v in r.items() if k.startswith("claim.")}
    assert len(claims) == 9 and all(len(v) >= 3 for v in claims.values()), "claims on >= 3 pairs"
    for lr in ("small", "large"):  # the conv study, per pair, test and training data
        for method in ("naive", "matched", "repair"):
            for split in ("", "train_"):
                assert len(r[f"conv_{split}barrier_{method}_{lr}_lr"]) == 3
    assert min(claims["matching_lowers_barrier"]) > 0, "matching lowers the barrier of every pair"
    assert max(claims["mlp_barrier_small"]) < 1, "matched barrier below the naive one, every pair"
    assert min(claims["init_above_chance"]) > 0, "permuted averaged inits above chance, every pair"
    assert sorted(map(int, r["init_by_update"])) == [0, 10, 60], "snapshots by update count"
    study = r["fraction_study"]  # how much of the permutation must be right
    mean = lambda xs: sum(xs) / len(xs)
    assert mean(study["1"]["barrier"]) > mean(study["0"]["barrier"]), (
        "scrambling raises the barrier"
    )
    assert mean(study["0"]["init_accuracy"]) > mean(study["1"]["init_accuracy"])


def untested_everywhere(package: str) -> set[str]:
    """Claims a chapter declares untested at every scale (``untested["*"]``): nothing measures them yet."""
    import importlib

    claims = importlib.import_module(f"nnstudies.chapters.{package}.claims").CLAIMS
    return {c.key for c in claims if "*" in c.untested}


def test_neuron_descent_claims(smoke_runs: dict[str, dict]) -> None:
    r = smoke_runs["02_neuron_descent"]
    claims = {k.removeprefix("claim."): v for k, v in r.items() if k.startswith("claim.")}

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    def deciding(value: list[float] | dict[str, list[float]]) -> list[float]:
        return value["stability rule"] if isinstance(value, dict) else value

    measured = {k: v for k, v in claims.items() if k not in untested_everywhere("neuron_descent")}
    assert len(claims) == 11 and all(len(deciding(v)) >= 3 for v in measured.values()), "3 seeds"
    assert set(claims["kfac_beats_natural"]) == {"best point", "stability rule"}, "both protocols"
    assert not set(r["tuning_seeds"]) & set(r["judging_seeds"]), "tuned on seeds of their own"
    assert len(r["cosine_kfac_natural"]) == len(r["cosine_gradient_foof"]) == len(r["seeds"])
    assert all(len(v) == len(r["seeds"]) for k, v in r.items() if k.startswith("final_loss."))
    assert all(len(v) == len(r["seeds"]) for v in r["updates"]["mlp"].values())
    assert mean(claims["cosine_closer_heuristic"]) > 0, "heuristic damping points closer to FOOF"
    assert mean(deciding(claims["foof_beats_kfac_mlp"])) > 0, "FOOF ends below KFAC on the MLP"
    assert mean(r["final_loss.kfac"]) < mean(r["final_loss.sgd"]), "KFAC ends below SGD"
    assert set(r["timing_seconds"]) == {"SGD", "FOOF", "KFAC", "exact natural gradient"}
    assert set(r["conv_timing_seconds"]) == set(r["timing_seconds"])
    assert all(len(r[f"control_loss.{m}"]) == len(r["seeds"]) for m in ("kfac", "natural-same"))


def test_continual_learning_claims(smoke_runs: dict[str, dict]) -> None:
    r = smoke_runs["03_continual_learning"]
    claims = {key.removeprefix("claim."): v for key, v in r.items() if key.startswith("claim.")}

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    assert claims["si_pmnist"] == [], "the P-MNIST number is judged at the paper scale only"
    assert claims["r_si_fisher"] == r["r_si_sqrt_fisher"], "r(SI, √F_emp), one per judging seed"
    assert set(r["swapped.permuted.strengths"]) == {"SI", "SIU"}, "the swapped-strength control"
    judged = [
        v
        for key, v in claims.items()
        if key not in {"si_pmnist", *untested_everywhere("continual_learning")}
    ]
    assert all(len(v) >= 3 for v in judged), "every claim is judged on >= 3 seeds"
    assert set(r["permuted.test"]) == {"none", *r["methods"]}, "every method and none, fresh seeds"
    assert all(len(v) == len(r["seeds"]) for v in r["permuted.test"].values())
    assert r["tuning_seed"] not in r["seeds"], "claims are judged on seeds c was not tuned on"
    assert mean(claims["forgetting_permuted"]) > 0, "without a penalty earlier tasks are forgotten"
    forgetting = r["permuted.forgetting"]
    regularised = mean([mean(forgetting[m]) for m in r["methods"]])
    assert regularised < mean(forgetting["none"]), "the penalty should reduce forgetting"
    assert mean(claims["r_si_sos"]) > 0.7, "SI ≈ SOS"
    assert mean(claims["r_mas_af"]) > 0.7, "MAS ≈ AF"
    assert min(claims["bias_shrinks"]) > 0, "SI's bias share should fall as the batch grows"
    share = {int(b): v for b, v in r["bias.share"].items()}
    assert mean(share[min(share)]) > 0.5, "with small batches SI should be mostly its bias"
    assert len(claims["bias_share"]) >= 3, "the share at (or nearest) the paper's batch is recorded"


def test_rtrl_claims(smoke_runs: dict[str, dict]) -> None:
    r = smoke_runs["04_rtrl"]
    assert r["exact_rtrl_error"] < 1e-8, "exact RTRL must equal BPTT with the parameters held fixed"
    var = {name: sum(v) / len(v) for name, v in r["variance_mean"].items()}  # mean over seeds
    seq = {name: sum(v) / len(v) for name, v in r["variance_sequence"].items()}
    top = f"OK (r={r['rank_max']})"
    assert var["OK (r=1)"] < var["KF-RTRL"], "OK(1), the optimal KF-RTRL, should be less noisy"
    assert var[top] < var["OK (r=2)"] < var["OK (r=1)"], "OK's noise should fall with the rank"
    assert var["KF-RTRL"] < var["UORO"], (
        "Kronecker-factored estimates should be less noisy than UORO"
    )
    assert seq["OK (r=1)"] < seq["KF-RTRL"]
    claims = {k.removeprefix("claim."): v for k, v in r.items() if k.startswith("claim.")}
    for key in ("horizon", "noise", "optimal_kf", "copy", "characters_learn"):
        assert len(claims[key]) >= 3, f"claim {key} is judged on at least 3 seeds"
    assert min(claims["noise"]) > 1, "OK at the largest rank: orders of magnitude less noise"
    shares = claims["optimal_kf"]
    assert sum(shares) / len(shares) > 0.5, "OK(1) below KF-RTRL at most steps"
    assert max(claims["characters_learn"]) < 0 and claims["characters"] == [], (
        "at smoke the character models learn nothing: OK against TBPTT is not judged"
    )
    assert claims["cost_ratio"] == [] and claims["cost_exponent"] == [], (
        "timing claims are judged on the stored full benchmark only, never on a live run"
    )


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_stored_notebook_is_current(path: Path) -> None:
    """Stored outputs were made by the current code (make book), badge and install line match _config.yml."""
    nb = nbformat.read(path, as_version=4)
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), (
        "no cell tagged 'parameters'"
    )
    # The badge image is Colab's own (it shows on Colab and GitHub); the book shows book/_static/colab-badge.svg
    # in its place (book/_ext/nnstudies_book.py: COLAB_BADGE), and `tools/book.py check` below matches the link to _config.yml.
    badge = re.compile(
        r"\[!\[[^\]]*\]\(https://colab\.research\.google\.com/assets/colab-badge\.svg\)\]"
        r"\(https://colab\.research\.google\.com/github/[^)\s]+/notebooks/"
        + re.escape(path.name)
        + r"\)"
    )
    assert any(badge.search(c.source) for c in nb.cells if c.cell_type == "markdown"), (
        "no Colab badge that opens this notebook"
    )
    assert any(c.outputs for c in nb.cells if c.cell_type == "code"), "no stored outputs"
    assert not any(
        o.get("output_type") == "error"
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    widget_views = [
        c
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert not widget_views, "stored outputs must be static (no widget views the book cannot show)"
    check = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "book.py"), "check"],
        capture_output=True,
        text=True,
        check=False,
    )
    mine = [line for line in check.stdout.splitlines() if line.startswith(path.name)]
    assert not mine, "\n".join(mine)


def _execute(
    path: Path, out: Path, env: dict[str, str], parameters: dict[str, str], timeout: int = 600
) -> dict:
    """Run one chapter with papermill under ``env``; return what it recorded."""
    import os

    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        papermill.execute_notebook(
            str(path),
            str(out / path.name),
            parameters=parameters,
            cwd=str(path.parent),
            kernel_name="python3",
            progress_bar=False,
            execution_timeout=timeout,
        )
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    recorded = Path(env["NNSTUDIES_RESULTS_DIR"]) / f"{path.stem}.json"
    return json.loads(recorded.read_text()) if recorded.exists() else {}


def test_same_seed_same_code_same_machine_same_numbers(
    smoke_runs: dict[str, dict], tmp_path: Path
) -> None:
    """Chapter 0 at smoke, run again in a fresh kernel with an empty cache, records the same numbers (timings aside)."""
    path = CHAPTERS[0]
    env = {
        "NNSTUDIES_RESULTS_DIR": str(tmp_path / "results"),
        "NNSTUDIES_CACHE": str(tmp_path / "cache"),
        "NNSTUDIES_STATIC": "1",
    }
    again = _execute(path, tmp_path, env, {"SCALE": "smoke"})
    first = smoke_runs[path.stem]
    varying = {"environment", "train_seconds", "cached_seconds"}
    assert {k: v for k, v in again.items() if k not in varying} == {
        k: v for k, v in first.items() if k not in varying
    }
