from __future__ import annotations

import pytest
import torch

import nnstudies
from nnstudies import device as device_module
from nnstudies.scales import SCALE_ENV, check_scale, pick, resolve_scale


def test_known_scales_pass() -> None:
    for name in ("smoke", "cpu", "paper"):
        assert check_scale(name) == name


def test_unknown_scale_lists_valid_ones() -> None:
    with pytest.raises(ValueError) as info:
        check_scale("laptop")
    message = str(info.value)
    assert "'laptop'" in message and all(f"'{s}'" in message for s in ("smoke", "cpu", "paper"))


def test_environment_overrides_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SCALE_ENV, raising=False)
    assert resolve_scale("cpu") == "cpu"
    monkeypatch.setenv(SCALE_ENV, "smoke")
    assert resolve_scale("cpu") == "smoke"
    monkeypatch.setenv(SCALE_ENV, "huge")
    with pytest.raises(ValueError, match=SCALE_ENV):
        resolve_scale("cpu")


def test_bad_default_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SCALE_ENV, raising=False)
    with pytest.raises(ValueError, match="unknown scale"):
        resolve_scale("CPU")


def test_pick_needs_every_scale() -> None:
    assert pick({"smoke": 1, "cpu": 2, "full": 3, "paper": 4}, "full") == 3
    with pytest.raises(ValueError, match="lack"):
        pick({"smoke": 1, "cpu": 2, "paper": 4}, "cpu")
    with pytest.raises(ValueError, match="unknown scale"):
        pick({"smoke": 1, "cpu": 2, "full": 3, "paper": 4}, "gpu")


def test_cpu_when_no_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(device_module.DEVICE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "_mps_available", lambda: False)
    assert nnstudies.get_device() == torch.device("cpu")
    assert nnstudies.describe_device(torch.device("cpu")).startswith("device: cpu")


def test_cuda_preferred_then_mps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(device_module.DEVICE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert nnstudies.get_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "_mps_available", lambda: True)
    assert nnstudies.get_device().type == "mps"


def test_asking_for_missing_cuda_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        nnstudies.get_device("cuda")
    monkeypatch.setenv(device_module.DEVICE_ENV, "cpu")
    assert nnstudies.get_device() == torch.device("cpu")


def test_seeding_repeats_draws() -> None:
    nnstudies.seed_everything(3)
    a = torch.randn(5)
    nnstudies.seed_everything(3)
    assert torch.equal(a, torch.randn(5))
    with pytest.raises(ValueError):
        nnstudies.seed_everything(-1)


def test_setup_prints_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    device = nnstudies.setup(seed=1)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "device:" in out[0] and str(device.type) in out[0]
