"""resolve_device: 'auto' picks the best available device; explicit requests are checked."""

from __future__ import annotations

import pytest
import torch

from samkit import devices as device_module
from samkit.devices import resolve_device


@pytest.fixture
def no_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "_mps_available", lambda: False)


@pytest.fixture
def one_cuda_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(device_module, "_mps_available", lambda: True)


@pytest.fixture
def mps_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "_mps_available", lambda: True)


def test_auto_is_default_and_falls_back_to_cpu_without_accelerator(no_accelerator: None) -> None:
    assert resolve_device() == torch.device("cpu")


def test_auto_prefers_cuda_over_mps(one_cuda_device: None) -> None:
    assert resolve_device("auto") == torch.device("cuda")


def test_auto_picks_mps_when_cuda_is_missing(mps_only: None) -> None:
    assert resolve_device("auto") == torch.device("mps")


def test_cpu_is_always_available(one_cuda_device: None) -> None:
    assert resolve_device("cpu") == torch.device("cpu")


def test_request_is_case_and_space_insensitive(no_accelerator: None) -> None:
    assert resolve_device("  CPU ") == torch.device("cpu")


def test_torch_device_is_accepted(no_accelerator: None) -> None:
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_explicit_cuda_index_is_kept(one_cuda_device: None) -> None:
    assert resolve_device("cuda:0") == torch.device("cuda", 0)


def test_unavailable_cuda_raises_value_error(no_accelerator: None) -> None:
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


def test_cuda_index_beyond_device_count_raises(one_cuda_device: None) -> None:
    with pytest.raises(ValueError, match="only 1 CUDA device"):
        resolve_device("cuda:3")


def test_unavailable_mps_raises_value_error(no_accelerator: None) -> None:
    with pytest.raises(ValueError, match="MPS is not available"):
        resolve_device(torch.device("mps"))


def test_unknown_device_string_raises_value_error() -> None:
    with pytest.raises(ValueError, match="Unknown device 'gpu'"):
        resolve_device("gpu")


def test_unsupported_device_type_raises_value_error() -> None:
    with pytest.raises(ValueError, match="Unsupported device 'meta'"):
        resolve_device("meta")


def test_non_string_request_raises_type_error() -> None:
    with pytest.raises(TypeError, match="got int"):
        resolve_device(0)  # type: ignore[arg-type]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_auto_returns_a_device_tensors_can_be_placed_on() -> None:
    device = resolve_device("auto")
    assert torch.zeros(1, device=device).device.type == "cuda"
