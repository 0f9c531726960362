"""Chapter 2's runs through the engine: divergence, thread policy and cache keys."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from nnstudies import device as device_module
from nnstudies.chapters.neuron_descent import (
    PRESETS,
    Kind,
    Method,
    MethodRun,
    Setting,
    experiment,
    run_spec,
)
from nnstudies.runs import execute, spec_key

SMOKE = PRESETS["smoke"]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNSTUDIES_CACHE", str(tmp_path))
    monkeypatch.setenv("NNSTUDIES_DEVICE", "cpu")


def test_a_diverging_run_stops_with_history_diverged_at() -> None:
    """A run whose loss becomes NaN ends there through fit(on_divergence="stop"): the step is in
    History.diverged_at, nothing is smuggled into the metrics, and MethodRun reads it from there.
    """
    spec = run_spec(SMOKE, Method.SGD, Setting(1e30), steps=20)
    run = MethodRun.of(execute(spec, cache=False))
    assert run.history.diverged_at is not None
    assert run.diverged_at == run.history.diverged_at
    assert "diverged_at" not in run.history.metrics
    assert run.final_train_loss == run.history.train_loss[0]  # a diverged run made no progress


def test_training_runs_on_one_thread_by_the_device_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run executed directly (as a notebook does) trains on one torch thread, through
    nnstudies.device.threads(1, device), and gives the caller's thread count back afterwards."""
    entered: list[tuple[int | None, torch.device | None]] = []
    seen: list[int] = []

    @contextmanager
    def recording(count: int | None, device: torch.device | None = None) -> Iterator[None]:
        entered.append((count, device))
        with device_module.threads(count, device):
            yield

    monkeypatch.setattr(experiment, "threads", recording)
    step = experiment.neuron_step

    def counting(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        inner = step(*args, **kwargs)  # type: ignore[arg-type]

        def run(t: int) -> float:
            seen.append(torch.get_num_threads())
            return inner(t)

        return run

    monkeypatch.setattr(experiment, "neuron_step", counting)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        execute(run_spec(SMOKE, Method.FOOF, Setting(0.1, 0.03), steps=3), cache=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert entered == [(1, torch.device("cpu"))]
    assert seen and set(seen) == {1}


def test_the_spec_names_every_data_size() -> None:
    """Two runs differing only in the test set's size are different runs (the old cache config
    left n_test out, so they shared one entry)."""
    a = run_spec(SMOKE, Method.SGD, Setting(0.03))
    b = run_spec(replace(SMOKE, n_test=SMOKE.n_test + 1), Method.SGD, Setting(0.03))
    assert (a.n_test, a.n_train) == (SMOKE.n_test, SMOKE.n_train)
    assert replace(a, n_test=b.n_test) == b
    assert spec_key(a) != spec_key(b)
    for size in ("n_train", "eval_examples", "n_examples"):
        assert spec_key(replace(a, **{size: 7})) != spec_key(a)


def test_the_control_uses_the_mlp_settings_and_methods_are_enums() -> None:
    """The identical-data control runs at the MLP's natural-gradient setting; methods and kinds
    are string enums, so figures and recorded numbers keep their plain names."""
    from nnstudies.chapters.neuron_descent import chosen_setting

    cpu = PRESETS["cpu"]
    assert (
        chosen_setting(cpu, Method.NATURAL_SAME, Kind.CONTROL) == cpu.mlp.settings[Method.NATURAL]
    )
    assert f"final_loss.{Method.KFAC_STANDARD}" == "final_loss.kfac-standard"
    spec = run_spec(cpu, "natural-same", Setting(0.1, 0.3), kind="control")  # type: ignore[arg-type]
    assert spec.method is Method.NATURAL_SAME and spec.kind is Kind.CONTROL
    assert spec.n_examples == cpu.control.n_examples and spec.eval_examples is None


def test_a_pool_takes_the_dearest_runs_first_and_each_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """_run_dearest_first hands every distinct spec to one run_all, standard-damped KFAC before
    SGD, and gives each spec its own run back, whatever the order (a spec two protocols share
    trains once)."""
    from nnstudies.chapters.neuron_descent import studies

    seen: list[list[object]] = []

    def fake_run_all(specs: list[object], desc: str = "") -> list[str]:
        seen.append(list(specs))
        return [f"run of {spec.label}" for spec in specs]  # type: ignore[attr-defined]

    monkeypatch.setattr(studies, "run_all", fake_run_all)
    sgd = run_spec(SMOKE, Method.SGD, Setting(0.03))
    standard = run_spec(SMOKE, Method.KFAC_STANDARD, Setting(0.01, 0.01))
    done = studies._run_dearest_first([sgd, standard, sgd], "test")
    assert seen == [[standard, sgd]]
    assert done == {sgd: f"run of {sgd.label}", standard: f"run of {standard.label}"}


def test_seed_roles_keep_tuning_and_judging_apart() -> None:
    """Every scale judges on seeds that no tuning saw; `full` tunes in the run on seed 0 and judges
    on three fresh seeds; `paper` takes the paper's settings (no tuning seeds)."""
    from nnstudies.chapters.neuron_descent import seed_roles

    for scale, preset in PRESETS.items():
        roles = seed_roles(preset)
        assert not roles.overlap and len(roles.judging) == 3, scale
    assert seed_roles(PRESETS["full"]).tuning == (0,)
    assert seed_roles(PRESETS["full"]).judging == (3, 4, 5)
    assert seed_roles(PRESETS["paper"]).tuning == ()
