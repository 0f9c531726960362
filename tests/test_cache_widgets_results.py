from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import nnstudies
from nnstudies import Choice, LogSlider, Slider, explore


def test_clear_cache_empties_disk_and_memory() -> None:
    from toy_specs import Regression

    first = nnstudies.execute(Regression(seed=21))
    with torch.no_grad():
        first.model().weight.zero_()  # a returned model is the reader's own: the cache stays intact
    again = nnstudies.execute(Regression(seed=21))
    assert again.cached and torch.equal(again.state["weight"], first.state["weight"])
    assert nnstudies.clear_cache() >= 1 and not nnstudies.cache.MEMORY
    assert not nnstudies.execute(Regression(seed=21)).cached


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
