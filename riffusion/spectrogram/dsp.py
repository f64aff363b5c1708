"""Analysis DSP in torch: the STFT and mel filterbank that define riffusion's spectrograms.

Everything here reproduces the original's torchaudio-based analysis exactly (Hann window zero-padded
to n_fft, centred frames with reflect padding, triangular mel filters evaluated on the FFT bin
frequencies), written directly on torch so it runs on any device without torchaudio.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from riffusion.spectrogram.params import SpectrogramParams

# The original scaled float samples to the int16 range before the STFT; its images' MAX_VALUE
# (about 4.7e7 for real music) is in these units.
INT16_SCALE = 32768.0


def hz_to_mel(frequency_hz: torch.Tensor | float, mel_scale: str = "htk") -> torch.Tensor:
    """Mel value of frequency_hz (Hz), on the HTK or Slaney scale."""
    frequency_hz = torch.as_tensor(frequency_hz, dtype=torch.float64)
    if mel_scale == "htk":
        return 2595.0 * torch.log10(1.0 + frequency_hz / 700.0)
    # Slaney: linear below 1 kHz, logarithmic above.
    min_log_hz, min_log_mel, log_step = 1000.0, 15.0, math.log(6.4) / 27.0
    linear = 3.0 * frequency_hz / 200.0
    logarithmic = (
        min_log_mel + torch.log(frequency_hz.clamp(min=min_log_hz) / min_log_hz) / log_step
    )
    return torch.where(frequency_hz >= min_log_hz, logarithmic, linear)


def mel_to_hz(mel: torch.Tensor, mel_scale: str = "htk") -> torch.Tensor:
    """Inverse of hz_to_mel, Hz."""
    mel = torch.as_tensor(mel, dtype=torch.float64)
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    min_log_hz, min_log_mel, log_step = 1000.0, 15.0, math.log(6.4) / 27.0
    linear = 200.0 * mel / 3.0
    logarithmic = min_log_hz * torch.exp(log_step * (mel - min_log_mel))
    return torch.where(mel >= min_log_mel, logarithmic, linear)


@lru_cache(maxsize=8)
def _mel_filterbank_cpu(params: SpectrogramParams) -> torch.Tensor:
    num_bins = params.n_fft // 2 + 1
    # As in torchaudio: bin frequencies span 0 .. sample_rate // 2 (integer division).
    bin_hz = torch.linspace(0, params.sample_rate // 2, num_bins, dtype=torch.float32)
    mel_range = hz_to_mel(
        torch.tensor([params.min_frequency, params.max_frequency]), params.mel_scale_type
    ).float()
    mel_points = torch.linspace(mel_range[0], mel_range[1], params.num_frequencies + 2)
    edge_hz = mel_to_hz(mel_points, params.mel_scale_type).float()
    edge_gaps = edge_hz[1:] - edge_hz[:-1]
    slopes = edge_hz.unsqueeze(0) - bin_hz.unsqueeze(1)  # (bins, n_mels + 2)
    rising = -slopes[:, :-2] / edge_gaps[:-1]
    falling = slopes[:, 2:] / edge_gaps[1:]
    filterbank = torch.clamp(torch.minimum(rising, falling), min=0.0)
    if params.mel_scale_norm == "slaney":
        filterbank *= 2.0 / (edge_hz[2:] - edge_hz[:-2]).unsqueeze(0)
    return filterbank.contiguous()


def mel_filterbank(
    params: SpectrogramParams,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Triangular mel filters, shape (n_fft // 2 + 1, num_frequencies): linear bins x mel bins."""
    return _mel_filterbank_cpu(params).to(device=device, dtype=dtype)


def hann_window(
    params: SpectrogramParams,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Periodic Hann window of win_length samples."""
    return torch.hann_window(params.win_length, periodic=True, device=device, dtype=dtype)


def stft(waveform: torch.Tensor, params: SpectrogramParams) -> torch.Tensor:
    """Complex STFT of waveform (channels, samples) -> (channels, n_fft // 2 + 1, frames).

    frames = 1 + samples // hop_length (centred frames, reflect padding).
    """
    return torch.stft(
        waveform,
        n_fft=params.n_fft,
        hop_length=params.hop_length,
        win_length=params.win_length,
        window=hann_window(params, waveform.device, waveform.dtype),
        center=True,
        pad_mode="reflect",
        normalized=False,
        onesided=True,
        return_complex=True,
    )


def unit_phasors(spectrum: torch.Tensor) -> torch.Tensor:
    """spectrum / |spectrum| elementwise (0 where spectrum is 0), same shape, complex.

    torch.sgn returns inf or nan for subnormal coefficients (its |z| underflows), which the decay
    of a sound into silence produces; dividing by |z| floored at the smallest normal number keeps
    those finite (and below unit length, which for coefficients that small does not matter).
    """
    tiny = torch.finfo(spectrum.real.dtype).tiny
    return spectrum / spectrum.abs().clamp(min=tiny)


def mel_amplitudes_from_waveform(waveform: torch.Tensor, params: SpectrogramParams) -> torch.Tensor:
    """Mel amplitudes (channels, num_frequencies, frames) of waveform (channels, samples).

    Units follow the waveform's: pass int16-scaled samples (see INT16_SCALE) for the original's
    amplitude range.
    """
    if waveform.shape[-1] <= params.n_fft // 2:
        raise ValueError(
            f"audio of {waveform.shape[-1]} samples is too short for the spectrogram: "
            f"it needs more than {params.n_fft // 2} samples ({params.padded_duration_ms / 2:g} ms)"
        )
    magnitudes = stft(waveform, params).abs()
    filterbank = mel_filterbank(params, waveform.device, magnitudes.dtype)
    return torch.matmul(magnitudes.transpose(-1, -2), filterbank).transpose(-1, -2)
