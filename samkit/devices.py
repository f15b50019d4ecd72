"""Choosing the torch device a model runs on, and waiting for the work queued on it."""

from __future__ import annotations

import torch

_KNOWN_TYPES = ("cpu", "cuda", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """
    Turn a device request into a usable torch.device.

    Arguments:
      device (str or torch.device): "auto" picks CUDA if available, else Apple MPS if available,
        else the CPU. "cpu", "cuda", "cuda:N" and "mps" (or the matching torch.device) are
        checked for availability.

    Returns:
      (torch.device): the device to use.

    Raises:
      ValueError: the request is not one of the forms above, or names a device this machine
        does not have (with the reason).
      TypeError: device is neither a str nor a torch.device.
    """
    if isinstance(device, str):
        request = device.strip().lower()
        if request == "auto":
            if torch.cuda.is_available():
                return torch.device("cuda")
            if _mps_available():
                return torch.device("mps")
            return torch.device("cpu")
        try:
            resolved = torch.device(request)
        except RuntimeError as error:
            raise ValueError(
                f"Unknown device {device!r}: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'."
            ) from error
    elif isinstance(device, torch.device):
        resolved = device
    else:
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}.")

    if resolved.type not in _KNOWN_TYPES:
        raise ValueError(f"Unsupported device {str(resolved)!r}: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"Device {str(resolved)!r} was requested but CUDA is not available here "
                f"(torch {torch.__version__}, built with CUDA {torch.version.cuda or 'no'}). "
                "Use device='cpu' or 'auto'."
            )
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(
                f"Device {str(resolved)!r} was requested but only {count} CUDA device(s) exist "
                f"(cuda:0 to cuda:{count - 1})."
            )
    if resolved.type == "mps" and not _mps_available():
        raise ValueError(
            "Device 'mps' was requested but Apple MPS is not available here "
            "(it needs macOS 12.3+ on Apple silicon and a torch build with MPS). Use device='cpu' or 'auto'."
        )
    return resolved


def synchronize(device: torch.device) -> None:
    """Wait for queued work on `device` (CUDA or MPS) so a clock reading covers it; no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
