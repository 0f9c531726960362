"""Every chapter end to end at the smoke scale, its headline numbers, and the stored notebooks' state."""

from __future__ import annotations

import json
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

    env = {"NNSTUDIES_RESULTS_DIR": str(out / "results"), "NNSTUDIES_CACHE": str(out / "cache"), "NNSTUDIES_STATIC": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        for path in CHAPTERS:
            papermill.execute_notebook(
                str(path), str(out / path.name), parameters={"SCALE": "smoke"}, cwd=str(path.parent),
                kernel_name="python3", progress_bar=False, execution_timeout=600,
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
    assert r["cached_seconds"] < r["train_seconds"], "a cached model should load faster than it trains"


def test_permutations_claims(smoke_runs: dict[str, dict]) -> None:
    r = smoke_runs["01_permutations"]
    assert r["barrier_activations"] < r["barrier_naive"], "activation matching should lower the barrier"
    assert r["barrier_weights"] < r["barrier_naive"], "weight matching should lower the barrier"
    assert r["init_midpoint_permuted"] > r["init_midpoint_naive"], "permuted inits should average better than naive ones"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_stored_notebook_is_current(path: Path) -> None:
    """Stored outputs were made by the current code (make book), badge and install line match _config.yml."""
    nb = nbformat.read(path, as_version=4)
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells), "no cell tagged 'parameters'"
    assert any("colab.research.google.com/assets/colab-badge.svg" in c.source for c in nb.cells if c.cell_type == "markdown")
    assert any(c.outputs for c in nb.cells if c.cell_type == "code"), "no stored outputs"
    assert not any(o.get("output_type") == "error" for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    widget_views = [c for c in nb.cells if c.cell_type == "code" for o in c.outputs
                    if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert not widget_views, "stored outputs must be static (no widget views the book cannot show)"
    check = subprocess.run([sys.executable, str(ROOT / "tools" / "book.py"), "check"], capture_output=True, text=True, check=False)
    mine = [line for line in check.stdout.splitlines() if line.startswith(path.name)]
    assert not mine, "\n".join(mine)
