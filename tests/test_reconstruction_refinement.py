"""The analysis-grid refinement of "fast" and "high": its grid, its reach, and what it buys on a
spectrogram no signal has (as the model's are)."""

from __future__ import annotations

import statistics

import numpy as np
import torch
from test_reconstruction import PARAMS, mel_of, spectral_convergence, synth

from riffusion.spectrogram.dsp import stft, unit_phasors
from riffusion.spectrogram.reconstruction import fast_griffin_lim, reconstruct_waveform
from riffusion.spectrogram.refinement import (
    _decimate,
    _interpolate,
    _low_band,
    low_band_cutoff_hz,
    low_band_size,
    refine_low_band,
)

CPU = torch.device("cpu")


def bass_line(seconds: float, sample_rate: int = 44100) -> np.ndarray:
    """Four low tones (41-73 Hz) with slow, different tremolos: mono, peak 0.5."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    out = np.zeros_like(t)
    for index, frequency in enumerate((41.2, 55.0, 61.7, 73.4)):
        tremolo = 0.6 + 0.4 * np.sin(2 * np.pi * (0.7 + 0.3 * index) * t)
        out += np.sin(2 * np.pi * frequency * t + index) * tremolo
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def inconsistent_target() -> torch.Tensor:
    """A bass-heavy spectrogram with 2 dB of independent noise on every amplitude: like the
    model's output, close to music but the spectrogram of no signal. (1, mels, 150)."""
    target = mel_of(bass_line(1.5) + synth(1.5), 150)
    noise = np.random.default_rng(0).normal(0.0, 2.0, target.shape)
    return (target * torch.from_numpy(10 ** (noise / 20)).float()).contiguous()


def test_low_band_of_the_default_parameters() -> None:
    # Mel bands come closer together than the 10 Hz reconstruction bins below ~1.2 kHz.
    assert 1400 < low_band_cutoff_hz(PARAMS) < 1600
    band = _low_band(PARAMS, CPU, torch.float64)
    assert band is not None and band.factor == 9
    assert 150 < low_band_size(PARAMS) < 250


def test_decimated_stft_is_the_analysis_stft_of_the_low_band() -> None:
    # A signal inside the passband: the decimated grid's bins are the analysis bins, 1 / factor.
    band = _low_band(PARAMS, CPU, torch.float64)
    assert band is not None
    samples = torch.from_numpy(bass_line(1.0).astype(np.float64)).unsqueeze(0)
    decimated = _decimate(samples, band)
    coarse = torch.stft(
        decimated,
        PARAMS.n_fft // band.factor,
        PARAMS.hop_length // band.factor,
        PARAMS.win_length // band.factor,
        band.window,
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    fine = stft(samples, PARAMS)[:, : band.num_bins]
    # Away from the ends, where the two reflections differ.
    inner = slice(25, -25)
    error = (coarse[:, : band.num_bins, inner] * band.factor - fine[..., inner]).norm()
    assert float(error / fine[..., inner].norm()) < 1e-3
    restored = _interpolate(decimated, band, samples.shape[-1])
    middle = slice(2000, -2000)
    assert float((restored - samples)[:, middle].norm() / samples[:, middle].norm()) < 1e-3


def test_low_band_refinement_changes_only_the_low_band() -> None:
    target = inconsistent_target()
    start = reconstruct_waveform(target, PARAMS, "fast")
    refined = refine_low_band(start, target, PARAMS, num_iters=4, momentum=0.99)
    change = stft(refined - start, PARAMS).abs().square().sum(dim=(0, 2))
    bin_hz = PARAMS.sample_rate / PARAMS.n_fft
    above = change[int(3000 / bin_hz) :].sum()
    assert float(change.sum()) > 0
    assert float(above / change.sum()) < 1e-4


def test_refinement_is_a_no_op_without_iterations() -> None:
    target = mel_of(synth(1.0), 100)
    start = reconstruct_waveform(target, PARAMS, "fast")
    assert torch.equal(refine_low_band(start, target, PARAMS, 0, 0.99), start)


def test_inconsistent_spectrogram_fast_and_high_against_the_original() -> None:
    # On such a target, the coarse grid alone fell behind the original (fast 1.20x its median
    # SC, high 1.09x); refined on the analysis grid, fast matches it and high beats it.
    target = inconsistent_target()
    original = statistics.median(
        spectral_convergence(
            reconstruct_waveform(target, PARAMS, "original", torch.Generator().manual_seed(seed)),
            target,
        )
        for seed in range(4)
    )
    fast = spectral_convergence(reconstruct_waveform(target, PARAMS, "fast"), target)
    high = spectral_convergence(reconstruct_waveform(target, PARAMS, "high"), target)
    assert fast <= 1.03 * original
    assert high <= 0.97 * original


def test_unit_phasors_of_subnormal_coefficients_are_finite() -> None:
    spectrum = torch.tensor([1e-45 + 1e-45j, 1e-40 + 0j, 0j, 3 + 4j], dtype=torch.complex64)
    phasors = unit_phasors(spectrum)
    assert torch.isfinite(phasors).all()
    assert torch.allclose(phasors[-1], torch.tensor(0.6 + 0.8j))
    assert phasors[2] == 0


def test_griffin_lim_on_a_decay_into_subnormals_stays_finite() -> None:
    # Audio fading into silence reaches subnormal floats, where torch.sgn gives inf and nan.
    waveform = torch.full((1, 20 * PARAMS.hop_length), 1e-42)
    waveform[:, ::2] = -1e-42
    result = fast_griffin_lim(waveform, PARAMS, lambda magnitudes: magnitudes, 2)
    assert torch.isfinite(result).all()
