"""Every chapter at the paper scale in a dry run.

Kept apart from tests/test_notebooks.py so that `make test`, which runs test files in parallel
(pytest-xdist, one file per worker at a time), runs these beside the smoke runs.
"""

from __future__ import annotations

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
