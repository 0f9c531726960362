"""The engine: runs as specs, their keys and cache, sweeps over a process pool and submitit, and
fit's stop, schedule and divergence. Numbers from every executor are compared with each other and
with a run in this process."""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import pytest
import torch

import toy_specs
from nnstudies import runs
from nnstudies.device import threads
from nnstudies.training import DivergenceError, History, Optimizer, OptimizerSpec, fit
from toy_specs import Regression

ROOT = Path(__file__).resolve().parents[1]


def test_a_key_changes_with_every_field_and_only_with_them() -> None:
    base = Regression()
    assert runs.spec_key(base) == runs.spec_key(Regression())
    variants = [
        Regression(seed=1),
        Regression(steps=41),
        Regression(optimizer=OptimizerSpec(lr=0.05000001, warmup=5)),
        Regression(optimizer=OptimizerSpec(kind=Optimizer.ADAM, lr=0.05, warmup=5)),
    ]
    assert len({runs.spec_key(v) for v in [base, *variants]}) == 5


def test_a_spec_must_be_frozen_and_hold_plain_values() -> None:
    @dataclasses.dataclass
    class Loose(runs.Spec):
        seed: int = 0

    with pytest.raises(TypeError, match="frozen"):
        runs.spec_key(Loose())

    @dataclasses.dataclass(frozen=True)
    class Holding(runs.Spec):
        data: object = dataclasses.field(default_factory=lambda: torch.zeros(3))

    with pytest.raises(TypeError, match="Tensor"):
        runs.spec_key(Holding())


def test_a_cache_hit_builds_nothing_and_returns_the_same_numbers() -> None:
    toy_specs.BUILDS.clear()
    first = runs.execute(Regression(seed=3))
    runs._MEMORY.clear()  # from disk, as in a new session
    again = runs.execute(Regression(seed=3))
    assert toy_specs.BUILDS == [3], "a hit must not build the model"
    assert again.cached and not first.cached
    assert again.history.train_loss == first.history.train_loss
    assert all(torch.equal(again.state[k], first.state[k]) for k in first.state)
    model = again.model()  # built only when asked for
    assert toy_specs.BUILDS == [3, 3]
    assert torch.equal(model.weight, first.state["weight"])


def test_a_damaged_cache_entry_is_reported_and_run_again(tmp_path: Path) -> None:
    first = runs.execute(Regression(seed=4), root=tmp_path)
    (tmp_path / f"{first.key}.pt").write_bytes(b"not a torch file")
    runs._MEMORY.clear()
    with pytest.warns(UserWarning, match="damaged"):
        again = runs.execute(Regression(seed=4), root=tmp_path)
    assert not again.cached and again.history.train_loss == first.history.train_loss


def _numbers(done: list[runs.Run]) -> list[tuple[list[float], list[list[float]]]]:
    return [(r.history.train_loss, r.state["weight"].tolist()) for r in done]


def test_the_same_numbers_from_this_process_the_pool_and_submitit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = [Regression(seed=s) for s in range(3)]
    here = runs.run_all(specs, workers=1, root=tmp_path / "here", show_progress=False)
    assert all(not r.cached for r in here)
    pool = runs.run_all(specs, workers=2, root=tmp_path / "pool", show_progress=False)
    assert _numbers(pool) == _numbers(here)
    monkeypatch.setenv("PYTHONPATH", str(Path(toy_specs.__file__).parent))
    executor = runs.make_executor("submitit-local", folder=tmp_path / "logs")
    array = runs.run_all(specs, executor=executor, root=tmp_path / "submitit", show_progress=False)
    assert _numbers(array) == _numbers(here)
    # and each of them is in the cache for the next session
    runs._MEMORY.clear()
    again = runs.run_all(specs, workers=2, root=tmp_path / "pool", show_progress=False)
    assert all(r.cached for r in again) and _numbers(again) == _numbers(here)


def test_a_failed_run_is_reported_with_its_spec_and_the_others_are_kept(tmp_path: Path) -> None:
    specs = [Regression(seed=0), Regression(seed=1, fail=True), Regression(seed=2)]
    with pytest.raises(runs.SweepError, match="seed 1 was asked to fail") as caught:
        runs.run_all(specs, workers=2, root=tmp_path, show_progress=False)
    assert [r is not None for r in caught.value.runs] == [True, False, True]
    assert caught.value.failures[0][0] == specs[1]
    runs._MEMORY.clear()
    kept = runs.run_all([specs[0], specs[2]], workers=1, root=tmp_path, show_progress=False)
    assert all(r.cached for r in kept)


def test_unknown_settings_are_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="unknown executor"):
        runs.make_executor("cluster")
    monkeypatch.setenv("NNSTUDIES_WORKERS", "two")
    with pytest.raises(ValueError, match="positive integer"):
        runs.default_workers()


def test_every_run_executes_on_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    monkeypatch.setattr(
        Regression,
        "build",
        lambda self: seen.append(torch.get_num_threads()) or torch.nn.Linear(16, 1),
    )
    with threads(2):
        runs.execute(Regression(seed=11))
        assert torch.get_num_threads() == 2
    assert seen == [1]


def test_one_thread_policy_restores_the_count() -> None:
    before = torch.get_num_threads()
    with threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with threads(1, torch.device("meta")):  # not the CPU: left alone
        assert torch.get_num_threads() == before


def _counting_step(losses: list[float]):  # the loss of update t is losses[t - 1]
    return lambda t: losses[t - 1]


def test_fit_stops_where_the_stop_rule_says_and_evaluates_there() -> None:
    evaluations: list[int] = []
    history = fit(
        _counting_step([5.0, 4.0, 3.0, 2.0, 1.0, 0.5]),
        steps=6,
        evaluate=lambda: evaluations.append(1) or {"test_loss": 0.0},
        eval_every=4,
        stop=lambda t, h: h.running_loss(t, window=2) <= 2.5,
        show_progress=False,
    )
    assert history.step == [1, 2, 3, 4] and history.stopped_at == 4
    assert history.eval_step == [4] and len(evaluations) == 1  # not evaluated twice at the stop
    full = fit(_counting_step([1.0] * 3), steps=3, show_progress=False)
    assert full.stopped_at is None


def test_fit_records_or_raises_a_divergence() -> None:
    losses = [1.0, 2.0, math.inf, 1.0]
    with pytest.raises(DivergenceError) as caught:
        fit(_counting_step(losses), steps=4, show_progress=False)
    assert caught.value.step == 3 and caught.value.history.train_loss == [1.0, 2.0]
    history = fit(_counting_step(losses), steps=4, on_divergence="stop", show_progress=False)
    assert history.diverged_at == 3 and history.train_loss == [1.0, 2.0]
    assert History.from_dict(history.to_dict()).diverged_at == 3


def test_warm_up_follows_its_formula() -> None:
    model = torch.nn.Linear(2, 1)
    spec = OptimizerSpec(lr=0.3, warmup=4)
    opt = spec.make(model.parameters())
    seen: list[float] = []

    def step(t: int) -> float:
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        return 1.0

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "scheduler stepped before the optimizer"
        fit(step, steps=6, scheduler=spec.scheduler(opt), show_progress=False)
    assert seen == [0.3 * min(1.0, k / 4) for k in range(1, 7)]
    assert OptimizerSpec(lr=0.3).scheduler(opt) is None


def test_a_divergence_crosses_process_boundaries_intact(tmp_path: Path) -> None:
    import pickle

    error = DivergenceError(3, math.nan, History(step=[1, 2], train_loss=[1.0, 2.0]), " (lr=9)")
    again = pickle.loads(pickle.dumps(error))
    assert (again.step, again.history.train_loss, str(again)) == (3, [1.0, 2.0], str(error))


def test_the_device_is_part_of_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = runs.spec_key(Regression())
    monkeypatch.setattr(runs, "get_device", lambda: torch.device("meta"))
    assert runs.spec_key(Regression()) != cpu
