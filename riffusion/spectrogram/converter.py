"""Audio <-> spectrogram image, the format the riffusion model was trained on."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from riffusion.audio import Audio
from riffusion.errors import RiffusionError
from riffusion.spectrogram.dsp import INT16_SCALE, mel_amplitudes_from_waveform
from riffusion.spectrogram.image import image_from_mel_amplitudes, mel_amplitudes_from_image
from riffusion.spectrogram.params import SpectrogramParams
from riffusion.spectrogram.reconstruction import QUALITIES, Quality, reconstruct_waveform


class SpectrogramImageConverter:
    """Turns audio into spectrogram images and back.

    Args:
        params: spectrogram parameters; the original's defaults when omitted.
        device: torch device for the DSP ("cpu", "cuda", "mps", ...).
        quality: phase reconstruction, "fast" (default), "high" or "original".
    """

    def __init__(
        self,
        params: SpectrogramParams | None = None,
        device: str | torch.device = "cpu",
        quality: Quality = "fast",
    ) -> None:
        if quality not in QUALITIES:
            raise RiffusionError(f"quality must be one of {', '.join(QUALITIES)}, got {quality!r}")
        self.params = params or SpectrogramParams()
        self.device = torch.device(device)
        self.quality = quality

    def mel_amplitudes_from_audio(self, audio: Audio) -> np.ndarray:
        """Mel amplitudes (channels, num_frequencies, frames) in int16-scaled units.

        Audio is resampled to params.sample_rate. For a mono spectrogram, stereo audio contributes
        its left channel (the original's behaviour, which its reference images show) and audio with
        more than two channels is mixed down; for stereo, mono audio is duplicated.
        """
        params = self.params
        audio = audio.resample(params.sample_rate)
        if params.stereo:
            audio = audio.to_stereo()
        elif audio.num_channels == 2:
            audio = Audio(audio.samples[:1], audio.sample_rate)
        else:
            audio = audio.to_mono()
        minimum = params.n_fft // 2 + 1
        if audio.num_frames < minimum:
            raise RiffusionError(
                f"audio is {audio.duration_s * 1000:.1f} ms long; a spectrogram needs at least "
                f"{minimum / params.sample_rate * 1000:.1f} ms"
            )
        waveform = torch.from_numpy(audio.samples).to(self.device) * INT16_SCALE
        return mel_amplitudes_from_waveform(waveform, params).cpu().numpy()

    def spectrogram_image_from_audio(self, audio: Audio) -> Image.Image:
        """Spectrogram image, one column per hop (10 ms by default), with params in its EXIF."""
        return image_from_mel_amplitudes(self.mel_amplitudes_from_audio(audio), self.params)

    def audio_from_mel_amplitudes(
        self, mel_amplitudes: np.ndarray | torch.Tensor, apply_filters: bool = True
    ) -> Audio:
        """Audio of frames * hop_length samples from mel amplitudes (channels, mels, frames).

        apply_filters peak-normalises to -0.1 dBFS as the original did. Without it the level is
        kept (int16 full scale maps to 1.0), scaled down only if it would clip.
        """
        amplitudes = torch.as_tensor(mel_amplitudes, dtype=torch.float32).to(self.device)
        # Griffin-Lim's STFT reflect-pads by n_fft // 2, which needs a longer signal than that.
        params = self.params
        minimum = params.n_fft // 2 // params.hop_length + 2
        if amplitudes.shape[-1] < minimum:
            raise RiffusionError(
                f"the spectrogram has {amplitudes.shape[-1]} frames (image columns), too few: "
                f"reconstruction needs at least {minimum} ({minimum * params.step_size_ms} ms)"
            )
        waveform = reconstruct_waveform(amplitudes, self.params, self.quality)
        audio = Audio(waveform.cpu().numpy() / INT16_SCALE, self.params.sample_rate)
        if apply_filters or np.abs(audio.samples).max(initial=0.0) > 1.0:
            return audio.peak_normalized(headroom_db=0.1 if apply_filters else 0.0)
        return audio

    def audio_from_spectrogram_image(
        self, image: Image.Image, apply_filters: bool = True, max_value: float | None = None
    ) -> Audio:
        """Audio from a spectrogram image of any width; its height must be num_frequencies.

        max_value (int16-scaled mel amplitude of white-to-black) defaults to the image's EXIF
        MAX_VALUE; only matters when apply_filters is off.
        """
        amplitudes = mel_amplitudes_from_image(image, self.params, max_value)
        return self.audio_from_mel_amplitudes(amplitudes, apply_filters=apply_filters)
