from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import nnstudies
from nnstudies import CNN, MLP
from nnstudies.data import Dataset


def toy_data(n: int = 256, features: int = 8, classes: int = 3, seed: int = 0) -> Dataset:
    """Linearly separable blobs: a network must get them nearly all right."""
    g = torch.Generator().manual_seed(seed)
    centers = 3 * torch.randn(classes, features, generator=g)
    y = torch.randint(classes, (2 * n,), generator=g)
    x = centers[y] + 0.5 * torch.randn(2 * n, features, generator=g)
    return Dataset("toy", x[:n], y[:n], x[n:], y[n:], classes)


def test_mlp_layout() -> None:
    model = MLP(40, [32, 16], 10, bias=False)
    kinds = [type(m) for m in model]
    assert kinds == [nn.Flatten, nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    assert [l.weight.shape for l in model.linears] == [(32, 40), (16, 32), (10, 16)]
    assert all(l.bias is None for l in model.linears)
    assert MLP(5, 7, 2).hidden == (7,)
    assert model(torch.randn(4, 40)).shape == (4, 10)
    assert MLP(784, [20], 10)(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_mlp_kaiming_scale() -> None:
    torch.manual_seed(0)
    layer = MLP(1000, [1000], 10).linears[0]
    assert abs(layer.weight.std().item() - math.sqrt(2 / 1000)) < 0.002
    assert torch.count_nonzero(layer.bias) == 0


def test_models_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="40 input features"):
        MLP(40, [8], 10)(torch.randn(2, 39))
    with pytest.raises(ValueError, match="positive"):
        MLP(40, [0], 10)
    with pytest.raises(ValueError, match="init"):
        MLP(4, [4], 2, init="xavier")
    with pytest.raises(ValueError, match="1-D CNN"):
        CNN(1, 10, [4], dim=1)(torch.randn(2, 1, 3, 40))
    with pytest.raises(ValueError, match="dim"):
        CNN(1, 10, dim=3)


def test_cnn_shapes() -> None:
    cnn1 = CNN(1, 10, [8, 8, 16], dim=1)
    assert cnn1(torch.randn(5, 40)).shape == (5, 10)
    assert cnn1(torch.randn(5, 1, 40)).shape == (5, 10)
    cnn2 = CNN(3, 10, [8, 8], dim=2)
    assert cnn2(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert not any(isinstance(m, nn.Conv2d) and m.bias is not None for m in cnn2.modules())


def test_training_learns_and_records_history() -> None:
    data = toy_data()
    torch.manual_seed(0)
    model = MLP(8, [32], 3)
    history = nnstudies.train(model, data, lr=0.05, epochs=5, batch_size=32, show_progress=False)
    assert len(history.train_loss) == len(history.step) == 5 * 8
    assert history.eval_step == [8, 16, 24, 32, 40]
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert history.final_test_accuracy > 0.9
    loss, acc = nnstudies.evaluate(model, data.x_test, data.y_test)
    assert acc == history.final_test_accuracy and loss == pytest.approx(history.test_loss[-1])


def test_same_seed_same_smoke_run() -> None:
    """Seeding gives identical results twice (the smoke-scale chapter run, bit for bit)."""
    from nnstudies.chapters import getting_started as ch

    p = ch.PRESETS["smoke"]
    runs = []
    for _ in range(2):
        nnstudies.clear_cache()
        nnstudies.runs._MEMORY.clear()
        run = ch.train_mlp(p, 0.05, seed=7)
        assert not run.cached
        runs.append(run.history)
    assert runs[0].train_loss == runs[1].train_loss
    assert runs[0].test_accuracy == runs[1].test_accuracy
    other = ch.train_mlp(p, 0.05, seed=8).history
    assert other.train_loss != runs[0].train_loss


def test_a_diverging_chapter_run_is_a_result_kept_in_the_cache() -> None:
    """Chapter 0's run records where the loss blew up (no exception smuggling), and is cached."""
    from nnstudies.chapters import getting_started as ch

    run = ch.train_mlp(ch.PRESETS["smoke"], 1e4, seed=0)
    assert run.history.diverged_at is not None and not run.cached
    assert len(run.history.train_loss) == run.history.diverged_at - 1
    assert ch.train_mlp(ch.PRESETS["smoke"], 1e4, seed=0).cached


def test_divergence_stops_with_step_and_keeps_history() -> None:
    data = toy_data()
    torch.manual_seed(0)
    with pytest.raises(nnstudies.DivergenceError) as info:
        nnstudies.train(MLP(8, [32], 3), data, lr=1e6, epochs=3, batch_size=32, show_progress=False)
    error = info.value
    assert not math.isfinite(error.loss)
    assert f"step {error.step}" in str(error) and "learning rate" in str(error)
    assert len(error.history.train_loss) == error.step - 1  # every finite step kept
    assert all(math.isfinite(v) for v in error.history.train_loss)


def test_bad_training_arguments() -> None:
    data = toy_data()
    with pytest.raises(ValueError, match="learning rate"):
        nnstudies.train(MLP(8, [4], 3), data, lr=-1.0, epochs=1, show_progress=False)
    with pytest.raises(ValueError, match="optimizer"):
        nnstudies.train(
            MLP(8, [4], 3), data, lr=0.1, epochs=1, optimizer="lion", show_progress=False
        )
    with pytest.raises(ValueError, match="epochs"):
        nnstudies.train(MLP(8, [4], 3), data, lr=0.1, epochs=0, show_progress=False)


def test_progress_is_one_line_in_a_script(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NNSTUDIES_STATIC", raising=False)
    nnstudies.train(MLP(8, [4], 3), toy_data(), lr=0.1, epochs=2, batch_size=64, desc="toy run")
    out = capsys.readouterr().out
    assert out.count("toy run") == 1 and "\r" not in out and "100%" in out


def test_no_progress_bars_when_outputs_are_stored(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The book's executions set $NNSTUDIES_STATIC: no bar is stored in a notebook's outputs."""
    monkeypatch.setenv("NNSTUDIES_STATIC", "1")
    nnstudies.train(MLP(8, [4], 3), toy_data(), lr=0.1, epochs=2, batch_size=64, desc="toy run")
    captured = capsys.readouterr()
    assert "toy run" not in captured.out + captured.err and "%|" not in captured.out + captured.err
