"""Every chapter at the paper scale in a dry run.

Kept apart from tests/test_notebooks.py so that `make test`, which runs test files in parallel
(pytest-xdist, one file per worker at a time), runs these beside the smoke runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_notebooks import CHAPTERS, _execute


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_paper_scale_dry_run(path: Path, tmp_path: Path) -> None:
    """Every chapter runs top to bottom at paper scale in a dry run (random data of the real shapes, two steps a loop)."""
    env = {
        "NNSTUDIES_RESULTS_DIR": str(tmp_path / "results"),
        "NNSTUDIES_CACHE": str(tmp_path / "cache"),
        "NNSTUDIES_STATIC": "1",
        "NNSTUDIES_DRY_RUN": "1",
        "NNSTUDIES_SCALE": "paper",
    }
    recorded = _execute(path, tmp_path, env, {}, timeout=300)
    assert recorded.get("scale") == "paper", f"{path.name} did not run at paper"
    assert recorded.get("dry_run") is True, (
        f"{path.name}: what a dry run records must be marked as such"
    )


def _part(tmp_path: Path, package: str, part: str, chapter: str) -> dict:
    """Run ``python -m nnstudies.chapters.<package> <part> --scale paper`` alone in a dry run and
    return what it recorded for ``chapter``."""
    env = {
        **os.environ,
        "NNSTUDIES_RESULTS_DIR": str(tmp_path / "results"),
        "NNSTUDIES_CACHE": str(tmp_path / "cache"),
        "NNSTUDIES_DRY_RUN": "1",
    }
    command = [sys.executable, "-m", f"nnstudies.chapters.{package}", part, "--scale", "paper"]
    subprocess.run(command, env=env, check=True, timeout=300)
    recorded = json.loads((tmp_path / "results" / f"{chapter}.json").read_text())
    assert (recorded["scale"], recorded["part"], recorded["dry_run"]) == ("paper", part, True)
    return recorded


def test_paper_conv_part_dry_run(tmp_path: Path) -> None:
    """Chapter 1's conv study, the part sized for one GPU at paper, runs alone in a dry run and
    records every conv barrier per pair (naive, matched, REPAIR; test and training data) and the
    conv claims' per-pair values."""
    recorded = _part(tmp_path, "permutations", "conv", "01_permutations")
    assert recorded["conv_channels"] == [64, 64, 128, 128], "the paper's conv net"
    for split in ("", "train_"):
        for method in ("naive", "matched", "repair"):
            for lr in ("small", "large"):
                assert len(recorded[f"conv_{split}barrier_{method}_{lr}_lr"]) == 1, "one pair a lr"
    assert {k for k in recorded if k.startswith("claim.")} == {
        "claim.cnn_barrier_remains",
        "claim.cnn_larger_barrier_at_large_lr",
        "claim.cnn_repair_removes_barrier",
    }


def test_paper_mlp_part_dry_run(tmp_path: Path) -> None:
    """Chapter 2's MLP comparison, the part sized for one GPU at paper (the MNIST MLP, 6000
    updates, the paper's settings), runs alone in a dry run and records every method's final
    losses, the updates, the direction cosines and the MLP claims' per-seed values."""
    recorded = _part(tmp_path, "neuron_descent", "mlp", "02_neuron_descent")
    assert recorded["judging_seeds"] == [0, 1, 2] and recorded["tuning_seeds"] == []
    methods = ("sgd", "adam", "natural", "kfac", "kfac-standard", "foof")
    assert all(len(recorded[f"final_loss.{m}"]) == 3 for m in methods)
    assert set(recorded["updates"]) == set(methods)
    assert len(recorded["cosine_kfac_natural"]) == len(recorded["cosine_gradient_foof"]) == 3
    assert recorded["claim.kfac_beats_natural"].keys() == {"stability rule"}
    assert len(recorded["claim.kfac_not_second_order"]) == 3


def test_paper_pmnist_part_dry_run(tmp_path: Path) -> None:
    """Chapter 3's Permuted MNIST row (SI at the paper's c = 0.2), the part sized for one GPU at
    paper, runs alone in a dry run and records SI's accuracy per seed and the claim's values."""
    recorded = _part(tmp_path, "continual_learning", "pmnist", "03_continual_learning")
    assert recorded["pmnist_strength"] == 0.2 and recorded["batch_size"] == 256, "the paper's SI"
    assert len(recorded["pmnist_si_test"]) == len(recorded["pmnist_seeds"]) >= 1
    assert recorded["claim.si_pmnist"] == recorded["pmnist_si_test"]


def test_paper_copy_part_dry_run(tmp_path: Path) -> None:
    """Chapter 4's copy task, the part sized for one GPU at paper (n = 128, r = 16), runs alone in
    a dry run and records the length each learner reached."""
    recorded = _part(tmp_path, "rtrl", "copy", "04_rtrl")
    assert (recorded["part_hidden"], recorded["part_rank"]) == (128, 16), "the paper's setting"
    assert set(recorded["part_lengths"]) == {"OK (r=16)", "TBPTT (k=10, every k)"}
