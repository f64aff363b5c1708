"""Mel-domain refinement of a reconstructed waveform on the analysis STFT's fine frequency grid.

The spectrogram's mel bands are measured on an FFT of n_fft samples (17640 by default: 2.5 Hz
bins), while the reconstruction iterates on an FFT as long as its window (4410 samples: 10 Hz
bins). Below about 1.2 kHz the mel bands are closer together than 10 Hz, so a band's energy
depends on how the spectrum of a frame runs between two reconstruction bins, which the coarse
iterations neither see nor control. Music the model generates, and the seeds, put most of their
energy there (bass, kick drums), so that is where their reconstruction error sits.

Two refinements of Griffin-Lim with a mel-domain magnitude step (each iteration keeps the
iterate's own magnitudes and rescales them, band by band, to the target mel energies):

    refine_low_band: only the bands below that frequency, on the analysis grid of a decimated
        copy of the signal (factor 9 by default: 4900 Hz, an FFT of 1960 samples whose bins are
        exactly the analysis FFT's first 981), so it costs a small fraction of a full-band
        iteration; the change it makes is brought back to the full rate and added.
    refine_full_band: every band on the analysis STFT itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from riffusion.spectrogram.dsp import (
    hann_window,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
    unit_phasors,
)
from riffusion.spectrogram.params import SpectrogramParams

# Bands up to this multiple of the frequency where mel bands become as wide apart as the
# reconstruction grid's bins are refined on the decimated grid: the bands just above that
# frequency are resolved by the coarse grid only barely.
_LOW_BAND_MARGIN = 1.25
# Passband edge of the resampling filter as a fraction of the decimated Nyquist frequency; it
# stops from the Nyquist frequency on, so nothing aliases into the passband.
_PASSBAND = 0.7
# Stopband attenuation of the resampling filter, dB.
_STOPBAND_DB = 80.0
# A band's gain target / iterate is computed against at least this fraction of the target's
# maximum, so silent bands do not divide by zero.
_RATIO_FLOOR = 1e-7


@dataclass(frozen=True)
class _LowBand:
    """Constants of the low-band refinement for one set of parameters, device and dtype.

    Attributes:
        factor: decimation factor (divides n_fft, win_length and hop_length).
        lowpass: resampling filter, (taps,), odd length, unit DC gain, at the full rate.
        window: Hann window of win_length / factor samples.
        num_bins: decimated-grid bins refined (from 0 Hz; same frequencies as the analysis bins).
        num_bands: mel bands refined (from the lowest); each lies wholly below num_bins.
        to_bands: sparse (num_bands, num_bins), magnitudes -> mel amplitudes: the analysis filters
            on those bins (each bin lies in one or two bands, so sparse products cost little).
        to_bins: sparse (num_bins, num_bands), per-band gains -> per-bin gains (filter-weighted
            average of the gains of the bands covering each bin).
    """

    factor: int
    lowpass: torch.Tensor
    window: torch.Tensor
    num_bins: int
    num_bands: int
    to_bands: torch.Tensor
    to_bins: torch.Tensor


def _spread(filters: torch.Tensor) -> torch.Tensor:
    """(bins, bands) filters -> (bands, bins): each bin's gain as the filter-weighted average of
    its bands' gains; bins no band covers get 0."""
    coverage = filters.sum(1, keepdim=True)
    return torch.where(coverage > 0, filters / coverage.clamp(min=1e-30), 0.0).T.contiguous()


def low_band_cutoff_hz(params: SpectrogramParams) -> float:
    """Top of the low band, Hz: where mel bands are the reconstruction grid's bin spacing
    (sample_rate / win_length) apart, times _LOW_BAND_MARGIN; 0 if they never are closer."""
    mel_range = hz_to_mel(
        torch.tensor([params.min_frequency, params.max_frequency], dtype=torch.float64),
        params.mel_scale_type,
    )
    edges = mel_to_hz(
        torch.linspace(float(mel_range[0]), float(mel_range[1]), params.num_frequencies + 2),
        params.mel_scale_type,
    )
    centres, spacing = edges[1:-1], edges[2:] - edges[1:-1]
    dense = (spacing < params.sample_rate / params.win_length).nonzero()
    if not dense.numel():
        return 0.0
    return float(centres[int(dense.max())]) * _LOW_BAND_MARGIN


def _kaiser_lowpass(cutoff: float, transition: float) -> torch.Tensor:
    """Linear-phase low-pass FIR (Kaiser window method), cut-off and transition width in cycles
    per sample; (taps,) float64, odd length, unit DC gain."""
    beta = 0.1102 * (_STOPBAND_DB - 8.7)
    taps = math.ceil((_STOPBAND_DB - 8.0) / (2.285 * 2 * math.pi * transition)) | 1
    n = torch.arange(taps, dtype=torch.float64) - (taps - 1) / 2
    ideal = 2 * cutoff * torch.sinc(2 * cutoff * n)
    shaped = ideal * torch.kaiser_window(taps, periodic=False, beta=beta, dtype=torch.float64)
    return shaped / shaped.sum()


@lru_cache(maxsize=8)
def _low_band(
    params: SpectrogramParams, device: torch.device, dtype: torch.dtype
) -> _LowBand | None:
    """The low-band constants, or None where no decimation keeps the low band (or there is none)."""
    cutoff = low_band_cutoff_hz(params)
    if cutoff <= 0:
        return None
    common = math.gcd(params.n_fft, params.win_length, params.hop_length)
    factors = [
        factor
        for factor in range(2, common + 1)
        if common % factor == 0 and params.sample_rate / (2 * factor) * _PASSBAND >= cutoff
    ]
    if not factors:
        return None
    factor = max(factors)
    nyquist = 0.5 / factor  # cycles per sample at the full rate
    lowpass = _kaiser_lowpass((1 + _PASSBAND) / 2 * nyquist, (1 - _PASSBAND) * nyquist)

    analysis = mel_filterbank(params, "cpu", torch.float64)  # (analysis bins, mels)
    bin_hz = params.sample_rate / params.n_fft
    num_bins = min(math.floor(cutoff / bin_hz) + 1, params.n_fft // factor // 2 + 1)
    inside = analysis[:num_bins].sum(0)
    outside = analysis[num_bins:].sum(0)
    wholly_inside = ((inside > 0) & (outside == 0)).nonzero()
    if not wholly_inside.numel():
        return None
    num_bands = int(wholly_inside.max()) + 1
    filters = analysis[:num_bins, :num_bands]

    def to(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(device=device, dtype=dtype).contiguous()

    return _LowBand(
        factor=factor,
        lowpass=to(lowpass),
        window=to(torch.hann_window(params.win_length // factor, periodic=True)),
        num_bins=num_bins,
        num_bands=num_bands,
        to_bands=to(filters.T).to_sparse(),
        to_bins=to(_spread(filters).T).to_sparse(),
    )


def low_band_size(params: SpectrogramParams) -> int:
    """How many mel bands (from the lowest) refine_low_band works on; 0 if none."""
    band = _low_band(params, torch.device("cpu"), torch.float64)
    return 0 if band is None else band.num_bands


def _decimate(waveform: torch.Tensor, band: _LowBand) -> torch.Tensor:
    """(channels, samples) -> (channels, ceil(samples / factor)): low-pass, keep every factor-th
    sample (sample m of the result is sample m * factor of the input)."""
    pad = (band.lowpass.numel() - 1) // 2
    mode = "reflect" if waveform.shape[-1] > pad else "constant"
    padded = torch.nn.functional.pad(waveform.unsqueeze(-2), (pad, pad), mode=mode)
    taps = band.lowpass.view(1, 1, -1)
    return torch.nn.functional.conv1d(padded, taps, stride=band.factor).squeeze(-2)


def _interpolate(decimated: torch.Tensor, band: _LowBand, length: int) -> torch.Tensor:
    """Inverse of _decimate for band-limited signals: (channels, m) -> (channels, length).

    Zero-stuffing and filtering, computed polyphase: output sample q * factor + r is the
    decimated signal convolved with every factor-th tap from tap r (a tenth of the work).
    """
    factor, taps = band.factor, band.lowpass.numel()
    pad = (taps - 1) // 2
    per_phase = -(-taps // factor)
    phases = torch.nn.functional.pad(band.lowpass * factor, (0, per_phase * factor - taps))
    # weight[r, 0, j] = tap (per_phase - 1 - j) * factor + r: conv1d correlates, so flip.
    weight = phases.view(per_phase, factor).T.flip(-1).unsqueeze(1)
    # Enough outputs past the input's end to reach pad + length.
    extra = -(-pad // factor) + 1
    padded = torch.nn.functional.pad(decimated.unsqueeze(-2), (per_phase - 1, extra))
    polyphase = torch.nn.functional.conv1d(padded, weight)  # (channels, factor, m + extra)
    upsampled = polyphase.transpose(-1, -2).flatten(-2)[..., pad : pad + length]
    return torch.nn.functional.pad(upsampled, (0, length - upsampled.shape[-1]))


def _centred_stft(
    signal: torch.Tensor, n_fft: int, hop_length: int, win_length: int, window: torch.Tensor
) -> torch.Tensor:
    """torch.stft with centred frames, (channels, samples) -> (channels, n_fft // 2 + 1, frames):
    reflect padding as the analysis pads, or zeros where the signal is too short to reflect."""
    mode = "reflect" if signal.shape[-1] > n_fft // 2 else "constant"
    return torch.stft(
        signal,
        n_fft,
        hop_length,
        win_length,
        window,
        center=True,
        pad_mode=mode,
        return_complex=True,
    )


def _ratio_floor(mel_amplitudes: torch.Tensor) -> torch.Tensor:
    tiny = torch.finfo(mel_amplitudes.dtype).tiny
    return (mel_amplitudes.amax(dim=(-2, -1), keepdim=True) * _RATIO_FLOOR).clamp(min=tiny)


def refine_low_band(
    waveform: torch.Tensor,
    mel_amplitudes: torch.Tensor,
    params: SpectrogramParams,
    num_iters: int,
    momentum: float,
) -> torch.Tensor:
    """Fast Griffin-Lim with a mel-domain magnitude step on the low bands, at a decimated rate.

    waveform: (channels, samples), the reconstruction to refine; mel_amplitudes: its target,
    (channels, mels, frames) with frames <= 1 + samples // hop_length (later frames are free).
    Returns (channels, samples): waveform plus the (low-band) change the iterations made.
    Unchanged where the parameters have no low band to refine.
    """
    band = _low_band(params, waveform.device, waveform.dtype)
    if band is None or num_iters <= 0:
        return waveform
    factor, num_frames = band.factor, mel_amplitudes.shape[-1]
    n_fft, hop = params.n_fft // factor, params.hop_length // factor
    win_length = params.win_length // factor
    start = _decimate(waveform, band)
    samples = start.shape[-1]
    target = mel_amplitudes[..., : band.num_bands, :]  # (channels, bands, frames)
    floor = _ratio_floor(mel_amplitudes)
    channels = waveform.shape[0]

    signal, previous = start, None
    for _ in range(num_iters):
        rebuilt = _centred_stft(signal, n_fft, hop, win_length, band.window)
        direction = (
            rebuilt if previous is None else rebuilt - previous * (momentum / (1 + momentum))
        )
        previous = rebuilt
        magnitudes = rebuilt.abs()
        # Decimated coefficients are 1 / factor of the analysis STFT's for band-limited signals.
        low = magnitudes[:, : band.num_bins, :num_frames]
        # Sparse products take one matrix: channels side by side, (bins, channels * frames).
        flat = low.transpose(0, 1).reshape(band.num_bins, -1) * factor
        reached = torch.sparse.mm(band.to_bands, flat).view(band.num_bands, channels, num_frames)
        gains = target / (reached.transpose(0, 1) + floor)
        flat_gains = gains.transpose(0, 1).reshape(band.num_bands, -1)
        per_bin = torch.sparse.mm(band.to_bins, flat_gains).view(
            band.num_bins, channels, num_frames
        )
        low *= per_bin.transpose(0, 1)
        signal = torch.istft(
            unit_phasors(direction) * magnitudes,
            n_fft,
            hop,
            win_length,
            band.window,
            length=samples,
        )
    return waveform + _interpolate(signal - start, band, waveform.shape[-1])


@lru_cache(maxsize=8)
def _full_band(
    params: SpectrogramParams, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """(filters (bins, mels), spread (mels, bins)) over the analysis bins any band touches."""
    analysis = mel_filterbank(params, "cpu", torch.float64)
    used = (analysis.sum(1) > 0).nonzero()
    num_bins = int(used.max()) + 1 if used.numel() else 1
    filters = analysis[:num_bins]
    return (
        filters.to(device, dtype).contiguous(),
        _spread(filters).to(device, dtype).contiguous(),
    )


def refine_full_band(
    waveform: torch.Tensor,
    mel_amplitudes: torch.Tensor,
    params: SpectrogramParams,
    num_iters: int,
    momentum: float,
) -> torch.Tensor:
    """Fast Griffin-Lim with a mel-domain magnitude step on the analysis STFT itself.

    waveform: (channels, samples); mel_amplitudes: target (channels, mels, frames), frames <=
    1 + samples // hop_length. Bins above every band are silenced. Returns (channels, samples).
    """
    if num_iters <= 0:
        return waveform
    filters, spread = _full_band(params, waveform.device, waveform.dtype)
    num_bins, num_frames = filters.shape[0], mel_amplitudes.shape[-1]
    target = mel_amplitudes.transpose(-1, -2)
    floor = _ratio_floor(mel_amplitudes)
    window = hann_window(params, waveform.device, waveform.dtype)
    signal, previous = waveform, None
    for _ in range(num_iters):
        rebuilt = _centred_stft(signal, params.n_fft, params.hop_length, params.win_length, window)
        direction = (
            rebuilt if previous is None else rebuilt - previous * (momentum / (1 + momentum))
        )
        previous = rebuilt
        magnitudes = rebuilt.abs()
        magnitudes[:, num_bins:] = 0.0
        covered = magnitudes[:, :num_bins, :num_frames].transpose(-1, -2)
        reached = torch.baddbmm(floor, covered, filters.expand(covered.shape[0], -1, -1))
        magnitudes[:, :num_bins, :num_frames] *= ((target / reached) @ spread).transpose(-1, -2)
        signal = torch.istft(
            unit_phasors(direction) * magnitudes,
            n_fft=params.n_fft,
            hop_length=params.hop_length,
            win_length=params.win_length,
            window=window,
            length=waveform.shape[-1],
        )
    return signal
