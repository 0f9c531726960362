"""Chapter 3's runs through the engine: a cached run builds nothing, sweeps go out in one call."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from nnstudies import runs
from nnstudies.chapters import continual_learning as ch
from nnstudies.chapters.continual_learning import experiment
from nnstudies.continual import ContinualResult, Regulariser


def _tiny_spec(**changes: object) -> ch.ContinualRun:
    smoke = ch.PRESETS["smoke"]
    preset = replace(
        smoke,
        permuted=replace(smoke.permuted, hidden=(16,), epochs=1),
        n_train=200,
        n_test=60,
        n_importance=16,
    )
    return replace(ch.run_spec(preset, "permuted", "SI", seed=3, n_tasks=2), **changes)  # type: ignore[arg-type]


def test_a_cached_run_builds_no_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The old route (``cache.cached``) built a model on every hit, so the chapter kept its own
    memo of results around it; with ``execute`` a hit builds nothing, and ``Run.model()`` builds
    only when asked."""
    built: list[ch.ContinualRun] = []
    build = ch.ContinualRun.build

    def counting(self: ch.ContinualRun) -> torch.nn.Module:
        built.append(self)
        return build(self)

    monkeypatch.setattr(ch.ContinualRun, "build", counting)
    spec = _tiny_spec()
    first = runs.execute(spec, root=tmp_path)
    assert len(built) == 1 and not first.cached
    again = runs.execute(spec, root=tmp_path)  # from memory
    runs._MEMORY.clear()
    from_disk = runs.execute(spec, root=tmp_path)  # from the file
    assert len(built) == 1 and again.cached and from_disk.cached
    for hit in (again, from_disk):
        assert isinstance(hit.result, ContinualResult)
        assert torch.equal(hit.result.accuracy.nan_to_num(-1), first.result.accuracy.nan_to_num(-1))
        assert hit.result.train_loss == first.result.train_loss
        assert all(torch.equal(hit.state[k], v) for k, v in first.state.items())
    model = from_disk.model()  # built now, because it is asked for
    assert len(built) == 2
    assert all(torch.equal(p, first.state[k]) for k, p in model.state_dict().items())


def test_spec_fields_decide_the_key() -> None:
    spec = _tiny_spec()
    assert spec.method is Regulariser.SI and spec.data.benchmark is ch.Benchmark.PERMUTED
    assert runs.spec_key(spec) == runs.spec_key(_tiny_spec())
    assert runs.spec_key(spec) != runs.spec_key(_tiny_spec(strength=spec.strength * 2))
    assert runs.spec_key(spec) != runs.spec_key(_tiny_spec(seed=4))


def test_comparison_is_one_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every method on every fresh seed goes to the engine in one call (so it spreads over the cores)."""
    preset = ch.PRESETS["cpu"]
    tuning = ch.Tuning(
        ch.Benchmark.PERMUTED,
        0,
        {Regulariser.NONE: (0.0,), Regulariser.SI: (1.0, 3.0)},
        {Regulariser.NONE: (0.4,), Regulariser.SI: (0.5, 0.45)},
        {Regulariser.NONE: (0.4,), Regulariser.SI: (0.5, 0.45)},
    )
    calls: list[list[ch.ContinualRun]] = []

    def fake(specs: list[ch.ContinualRun], desc: str = "") -> list[ContinualResult]:
        calls.append(list(specs))
        n = 2
        acc = torch.full((n, n), 0.5 + 0.01 * len(calls[-1]))
        return [ContinualResult(acc * (1 + s.seed / 100), acc) for s in specs]

    monkeypatch.setattr(experiment, "train_runs", fake)
    comparison = ch.compare(preset, "permuted", tuning)
    assert len(calls) == 1 and len(calls[0]) == 2 * len(preset.seeds)
    assert [(s.method, s.strength, s.seed) for s in calls[0]] == [
        (m, c, s) for m, c in ((Regulariser.NONE, 0.0), (Regulariser.SI, 1.0)) for s in preset.seeds
    ]
    assert comparison.best == "SI" and len(comparison.test["SI"]) == len(preset.seeds)
    record = comparison.as_record()
    assert record["permuted.best"] == "SI" and type(record["permuted.best"]) is str
    assert all(type(k) is str for k in record["permuted.test"])


def test_swapped_control_is_one_sweep_at_the_other_strengths(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SI runs at SIU's tuned c and SIU at SI's, on the fresh seeds, in one call to the engine."""
    preset = ch.PRESETS["cpu"]
    R = Regulariser
    tuning = ch.Tuning(
        ch.Benchmark.PERMUTED,
        0,
        {R.NONE: (0.0,), R.SI: (1.0, 3.0), R.SIU: (10.0, 30.0)},
        {R.NONE: (0.4,), R.SI: (0.5, 0.45), R.SIU: (0.4, 0.42)},
        {R.NONE: (0.4,), R.SI: (0.5, 0.45), R.SIU: (0.4, 0.42)},
    )
    calls: list[list[ch.ContinualRun]] = []

    def fake(specs: list[ch.ContinualRun], desc: str = "") -> list[ContinualResult]:
        calls.append(list(specs))
        acc = torch.full((2, 2), 0.5)
        return [ContinualResult(acc + s.strength / 100, acc) for s in specs]

    monkeypatch.setattr(experiment, "train_runs", fake)
    swapped = ch.swap_strengths(preset, tuning)
    assert len(calls) == 1
    assert [(s.method, s.strength, s.seed) for s in calls[0]] == [
        (m, c, s) for m, c in ((R.SI, 30.0), (R.SIU, 1.0)) for s in preset.seeds
    ]
    assert swapped.strengths == {R.SI: 30.0, R.SIU: 1.0}
    assert swapped.test[R.SI] == pytest.approx([0.8] * len(preset.seeds))
    with pytest.raises(ValueError, match="needs SI and SIU"):
        only_si = {R.NONE: (0.0,), R.SI: (1.0,)}
        ch.swap_strengths(preset, replace(tuning, strengths=only_si, val=only_si, test=only_si))


def test_sqrt_empirical_fisher_matches_per_example_autograd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """√F_emp of a trained tiny net against an independent reference: one autograd call per example
    of log p(y_n | x_n), squared, averaged, square-rooted."""
    monkeypatch.setenv("NNSTUDIES_CACHE", str(tmp_path))
    spec = _tiny_spec(method=Regulariser.NONE, strength=0.0)
    ours = ch.sqrt_empirical_fisher(spec, 12)
    model = runs.execute(spec).model().double()
    task = spec.data.load(spec.device)[0]
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    for x, y in zip(task.x_train[:12].double(), task.y_train[:12]):
        logp = torch.log_softmax(model(x[None]), dim=-1)[0, y]
        for t, g in zip(total, torch.autograd.grad(logp, params)):
            t += g.square() / 12
    assert len(ours) == len(total)
    for a, b in zip(ours, total):
        torch.testing.assert_close(a.double(), b.sqrt(), rtol=1e-4, atol=1e-6)


def test_correlations_set_si_beside_sqrt_empirical_fisher_and_its_baseline() -> None:
    """The correlation pairs hold SI, SIU and the plain gradient sum against √F_emp."""
    keys = {ch.pair_key(a, b) for a, b in ch.PAIRS}
    assert {"SI-sqrtFemp", "SIU-sqrtFemp", "gradsum-sqrtFemp", "SI-SOS"} <= keys
