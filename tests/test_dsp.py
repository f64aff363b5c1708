"""The analysis DSP against librosa, an independent implementation of the same definitions."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from riffusion.spectrogram.dsp import (
    hz_to_mel,
    mel_amplitudes_from_waveform,
    mel_filterbank,
    mel_to_hz,
    stft,
)
from riffusion.spectrogram.params import SpectrogramParams


@pytest.mark.parametrize(
    ("params", "librosa_kwargs"),
    [
        (SpectrogramParams(), {"htk": True, "norm": None}),
        (
            SpectrogramParams(
                num_frequencies=128,
                min_frequency=40,
                max_frequency=8000,
                mel_scale_type="slaney",
                mel_scale_norm="slaney",
            ),
            {"htk": False, "norm": "slaney"},
        ),
    ],
)
def test_mel_filterbank_matches_librosa(params: SpectrogramParams, librosa_kwargs: dict) -> None:
    ours = mel_filterbank(params).numpy().T
    reference = librosa.filters.mel(
        sr=params.sample_rate,
        n_fft=params.n_fft,
        n_mels=params.num_frequencies,
        fmin=params.min_frequency,
        fmax=params.max_frequency,
        **librosa_kwargs,
    )
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, atol=2e-4 * reference.max())


def test_mel_scale_round_trip_and_known_values() -> None:
    hz = torch.tensor([0.0, 440.0, 1000.0, 10000.0])
    assert hz_to_mel(1000.0, "htk").item() == pytest.approx(1000.0, abs=0.1)
    assert hz_to_mel(1000.0, "slaney").item() == pytest.approx(15.0)
    for scale in ("htk", "slaney"):
        np.testing.assert_allclose(mel_to_hz(hz_to_mel(hz, scale), scale), hz, atol=1e-6)


def test_stft_matches_librosa() -> None:
    params = SpectrogramParams()
    rng = np.random.default_rng(0)
    signal = rng.standard_normal(params.sample_rate // 2).astype(np.float32)
    ours = stft(torch.from_numpy(signal)[None], params)[0].abs().numpy()
    reference = np.abs(
        librosa.stft(
            signal,
            n_fft=params.n_fft,
            hop_length=params.hop_length,
            win_length=params.win_length,
            window="hann",
            center=True,
            pad_mode="reflect",
        )
    )
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, rtol=1e-3, atol=1e-3 * reference.max())


def test_mel_amplitudes_shape_and_tone_position() -> None:
    params = SpectrogramParams()
    seconds = 1.0
    t = torch.arange(int(params.sample_rate * seconds)) / params.sample_rate
    tone = torch.sin(2 * torch.pi * 1000.0 * t)[None]
    mel = mel_amplitudes_from_waveform(tone, params)
    frames = 1 + tone.shape[-1] // params.hop_length
    assert mel.shape == (1, params.num_frequencies, frames)
    peak_bin = int(mel[0, :, frames // 2].argmax())
    centres = mel_to_hz(
        torch.linspace(0, hz_to_mel(params.max_frequency).item(), params.num_frequencies + 2)
    )[1:-1]
    assert abs(centres[peak_bin].item() - 1000.0) < 15.0


def test_too_short_waveform_is_refused() -> None:
    params = SpectrogramParams()
    with pytest.raises(ValueError, match="too short"):
        mel_amplitudes_from_waveform(torch.zeros(1, params.n_fft // 2), params)
