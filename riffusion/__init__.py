"""Riffusion: real-time music generation with Stable Diffusion on spectrogram images."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from riffusion.audio import Audio
from riffusion.diffusion.inputs import InferenceInput, PromptInput
from riffusion.errors import RiffusionError
from riffusion.render.joins import stitch
from riffusion.spectrogram.converter import SpectrogramImageConverter
from riffusion.spectrogram.params import SpectrogramParams

if TYPE_CHECKING:
    from riffusion.diffusion.pipeline import RiffusionPipeline

__all__ = [
    "Audio",
    "InferenceInput",
    "PromptInput",
    "RiffusionError",
    "RiffusionPipeline",
    "SpectrogramImageConverter",
    "SpectrogramParams",
    "stitch",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The pipeline imports diffusers and transformers (seconds); load it on first use only.
    if name == "RiffusionPipeline":
        from riffusion.diffusion.pipeline import RiffusionPipeline

        return RiffusionPipeline
    raise AttributeError(f"module 'riffusion' has no attribute {name!r}")
