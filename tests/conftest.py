"""Shared fixtures: every test gets its own model cache; data sets share one folder per run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import nnstudies.cache as cache_module

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNSTUDIES_CACHE", str(tmp_path / "model-cache"))
    cache_module.MEMORY.clear()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


def pytest_configure(config: pytest.Config) -> None:
    # MNIST-1D is generated once per machine into the data folder; keep the tests' copy apart
    # from a reader's only when they asked for it.
    os.environ.setdefault("MPLBACKEND", "Agg")
