"""Diffusion schedulers by name, importable without loading diffusers (for the CLI)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from riffusion.errors import RiffusionError

if TYPE_CHECKING:
    import torch

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


class Scheduler(Protocol):
    """What the pipeline uses of a diffusers scheduler (their base classes declare none of it)."""

    config: Any
    timesteps: torch.Tensor
    init_noise_sigma: Any
    order: int

    def set_timesteps(
        self, num_inference_steps: int, device: str | torch.device | None = None
    ) -> None: ...

    def scale_model_input(self, sample: torch.Tensor, timestep: Any) -> torch.Tensor: ...

    def step(
        self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor, **kwargs: Any
    ) -> Any: ...

    def add_noise(
        self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
    ) -> torch.Tensor: ...


def scheduler_name(name: str) -> str:
    """The short name for name, matched case-insensitively, with or without "Scheduler"."""
    key = name.strip().lower()
    for short, class_name in SCHEDULERS.items():
        if key in (short.lower(), class_name.lower()):
            return short
    raise RiffusionError(f"unknown scheduler {name!r}: use one of {', '.join(SCHEDULERS)}")


def scheduler_class(name: str) -> type:
    """The diffusers scheduler class called name (see scheduler_name)."""
    import diffusers

    cls: type = getattr(diffusers, SCHEDULERS[scheduler_name(name)])
    return cls


def make_scheduler(
    name: str | None, model_scheduler: Scheduler, settings: Mapping[str, object] | None = None
) -> Scheduler:
    """A fresh scheduler (they hold per-run state) of class name (None: model_scheduler's own),
    built from model_scheduler's config so that the noise schedule stays the model's; settings
    are further config values of the scheduler (a solver's order, say)."""
    cls: Any = type(model_scheduler) if name is None else scheduler_class(name)
    overrides = dict(settings or {})
    if "clip_sample" in inspect.signature(cls.__init__).parameters:
        # Clipping the predicted sample to [-1, 1] suits pixel-space models, not SD latents.
        # SD v1 configs without the key (riffusion's among them) would get DDIM's default
        # True; diffusers' SD pipelines force it off in the same way.
        overrides["clip_sample"] = False
    scheduler: Scheduler = cls.from_config(model_scheduler.config, **overrides)
    return scheduler
