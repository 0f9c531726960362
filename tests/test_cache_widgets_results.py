from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

import nnstudies
from nnstudies import MLP, Choice, LogSlider, Slider, explore
from nnstudies.cache import cache_dir, cache_key, cached
from nnstudies.training import History


def _build() -> MLP:
    torch.manual_seed(0)
    return MLP(4, [8], 2)


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, model: MLP) -> History:
        self.calls += 1
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)  # "training" that changes the weights
        return History(step=[1], train_loss=[0.5])


def test_cache_hit_and_miss() -> None:
    fit = Counter()
    model, history = cached({"width": 8, "seed": 0}, build=_build, fit=fit)
    assert fit.calls == 1 and history.train_loss == [0.5]
    again, _ = cached({"width": 8, "seed": 0}, build=_build, fit=fit)
    assert fit.calls == 1, "same configuration must not retrain"
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values())
    )
    assert not torch.equal(again.state_dict()["1.weight"], _build().state_dict()["1.weight"])
    cached({"width": 8, "seed": 1}, build=_build, fit=fit)
    assert fit.calls == 2, "another configuration must train"


def test_cache_survives_a_new_process_via_disk() -> None:
    fit = Counter()
    cached({"k": 1}, build=_build, fit=fit)
    nnstudies.cache._MEMORY.clear()  # as if the kernel restarted
    cached({"k": 1}, build=_build, fit=fit)
    assert fit.calls == 1


def test_corrupt_entry_is_rebuilt_not_crashed_on() -> None:
    fit = Counter()
    config = {"k": "corrupt"}
    cached(config, build=_build, fit=fit)
    path = cache_dir() / f"{cache_key(config)}.pt"
    path.write_bytes(b"\x00garbage")
    nnstudies.cache._MEMORY.clear()
    with pytest.warns(UserWarning, match="damaged"):
        _, history = cached(config, build=_build, fit=fit)
    assert fit.calls == 2 and history.train_loss == [0.5]
    nnstudies.cache._MEMORY.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached(config, build=_build, fit=fit)  # the rebuilt entry loads cleanly
    assert fit.calls == 2


def test_mutating_a_returned_model_leaves_the_cache_alone() -> None:
    fit = Counter()
    model, _ = cached({"k": 2}, build=_build, fit=fit)
    with torch.no_grad():
        model[1].weight.zero_()
    again, _ = cached({"k": 2}, build=_build, fit=fit)
    assert again[1].weight.abs().sum() > 0


def test_cache_config_must_be_plain_data() -> None:
    with pytest.raises(TypeError, match="tensor|Tensor"):
        cache_key({"lr": torch.tensor(0.1)})
    assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2})


def test_explore_static_calls_once_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    calls = []

    def draw(lr: float, method: str, width: int) -> str:
        calls.append((lr, method, width))
        return f"figure for {lr} {method} {width}"

    result = explore(
        draw,
        interactive=False,
        lr=LogSlider(0.05, 1e-3, 1.0),
        method=Choice("sgd", ["sgd", "adam"]),
        width=Slider(64, 8, 512, 8),
    )
    assert result is None
    assert calls == [(0.05, "sgd", 64)]
    assert "figure for 0.05 sgd 64" in capsys.readouterr().out


def test_explore_is_static_under_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNSTUDIES_STATIC", "1")
    assert not nnstudies.is_interactive()
    calls = []
    explore(lambda x: calls.append(x), x=Slider(2, 0, 5))
    assert calls == [2]


def test_explore_interactive_builds_controls(monkeypatch: pytest.MonkeyPatch) -> None:
    import ipywidgets as w

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **kw: shown.extend(objs))
    calls = []
    explore(
        lambda lr, kind: calls.append((lr, kind)),
        interactive=True,
        lr=LogSlider(0.1, 1e-3, 1.0),
        kind=Choice("a", ["a", "b"]),
    )
    (panel,) = [o for o in shown if isinstance(o, w.VBox)]
    controls = panel.children[0].children
    assert isinstance(controls[0], w.FloatLogSlider) and controls[0].value == pytest.approx(0.1)
    assert isinstance(controls[1], w.Dropdown) and controls[1].value == "a"
    assert calls[0] == (pytest.approx(0.1), "a")
    controls[1].value = "b"
    assert calls[-1] == (pytest.approx(0.1), "b")


def test_controls_validate() -> None:
    with pytest.raises(ValueError):
        LogSlider(0.0, 0.0, 1.0)
    with pytest.raises(ValueError):
        Slider(10, 0, 5)
    with pytest.raises(ValueError):
        Choice("c", ["a", "b"])
    with pytest.raises(TypeError):
        explore(lambda x: None, x=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        explore(lambda: None)


def test_record_writes_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNSTUDIES_RESULTS_DIR", str(tmp_path))
    nnstudies.record("99_test", a=1.5)
    nnstudies.record("99_test", b="x")
    stored = json.loads((tmp_path / "99_test.json").read_text())
    assert (
        stored.pop("environment")["torch"] == torch.__version__
    )  # the first record says where it ran
    assert stored == {"a": 1.5, "b": "x"}
    with pytest.raises(ValueError, match="finite"):
        nnstudies.record("99_test", c=float("nan"))
