"""Choosing the torch device to compute on, with one-line errors for devices that cannot work."""

from __future__ import annotations

from typing import Final

import torch

from riffusion.errors import RiffusionError

#: The value of a setting (device, dtype, batch size) that lets riffusion choose.
AUTO: Final = "auto"


def best_available_device() -> torch.device:
    """CUDA when present, else Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(name: str | None = AUTO) -> torch.device:
    """The torch device called name ("cpu", "cuda", "cuda:1", "mps", ...; None or "auto": best).

    Raises RiffusionError for a name torch does not know and for an accelerator this machine lacks,
    which torch would otherwise only report deep inside the first computation.
    """
    if name is None or name.strip().lower() == AUTO:
        return best_available_device()
    try:
        device = torch.device(name.strip())
    except RuntimeError:
        raise RiffusionError(
            f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RiffusionError("device 'cuda' requested, but CUDA is not available here")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise RiffusionError(f"device {name!r} requested, but this machine has {count} GPU(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise RiffusionError("device 'mps' requested, but MPS is not available here")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise RiffusionError(f"device {name!r} is not supported: use auto, cpu, cuda or mps")
    return device


def cuda_or_cpu(model_device: torch.device) -> torch.device:
    """Where work beside a model on model_device runs that must not go to MPS: model_device when
    it is CUDA, else the CPU. Phase reconstruction (MPS lacks some of its FFT operations) and the
    diffusion noise (drawn where the original riffusion drew it, so seeds keep their noise)."""
    return model_device if model_device.type == "cuda" else torch.device("cpu")
