"""Riffusion: real-time music generation with Stable Diffusion on spectrogram images."""

from riffusion.audio import Audio
from riffusion.errors import RiffusionError
from riffusion.spectrogram.converter import SpectrogramImageConverter
from riffusion.spectrogram.params import SpectrogramParams

__all__ = ["Audio", "RiffusionError", "SpectrogramImageConverter", "SpectrogramParams"]
__version__ = "0.1.0"
