"""Diffusion schedulers by name, importable without loading diffusers (for the CLI)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from riffusion.errors import RiffusionError

if TYPE_CHECKING:
    from diffusers.schedulers.scheduling_utils import SchedulerMixin

#: Short name -> diffusers class name. Every one of them is built from the checkpoint's own
#: scheduler config, so the noise schedule (betas, offsets) stays the model's.
SCHEDULERS: dict[str, str] = {
    "DPMSolverMultistep": "DPMSolverMultistepScheduler",
    "PNDM": "PNDMScheduler",
    "DDIM": "DDIMScheduler",
    "LMSDiscrete": "LMSDiscreteScheduler",
    "Euler": "EulerDiscreteScheduler",
    "EulerAncestral": "EulerAncestralDiscreteScheduler",
    "LCM": "LCMScheduler",
}


def scheduler_name(name: str) -> str:
    """The short name for name, matched case-insensitively, with or without "Scheduler"."""
    key = name.strip().lower()
    for short, class_name in SCHEDULERS.items():
        if key in (short.lower(), class_name.lower()):
            return short
    raise RiffusionError(f"unknown scheduler {name!r}: use one of {', '.join(SCHEDULERS)}")


def scheduler_class(name: str) -> type[SchedulerMixin]:
    """The diffusers scheduler class called name (see scheduler_name)."""
    import diffusers

    return getattr(diffusers, SCHEDULERS[scheduler_name(name)])
