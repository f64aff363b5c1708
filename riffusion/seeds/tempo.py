"""Tempo estimation: an onset-strength envelope, its autocorrelation, and a comb over beat lags.

The onset envelope is the spectral flux of a log-compressed spectrogram pooled into log-spaced
bands (so a kick drum weighs as much as a hi-hat's wide noise). A tempo's comb score is the mean
autocorrelation of the envelope at whole multiples of its beat period. Lags fall between frames,
so the autocorrelation is interpolated, and the comb's teeth reach up to eight beats out; both
make the estimate much finer than one frame.

The comb cannot tell a tempo from half of it (every multiple of two beats is a multiple of one),
and hears eighth notes nearly as well as quarter notes. Like most onset-based estimators (and
librosa's), the score is therefore weighted by a log-normal preference for tempos near 120 BPM,
one octave wide. Loops whose tempo sits near the ends of 60-180 BPM can come out an octave off
(62 BPM as 124); a user who knows the tempo passes it.
"""

from __future__ import annotations

import numpy as np

from riffusion.audio import Audio
from riffusion.errors import RiffusionError
from riffusion.seeds.timing import MAX_BPM, MIN_BPM

# Onset envelope frame rate, Hz (a 5 ms hop).
ENVELOPE_RATE_HZ = 200.0
# Spectrogram window for the envelope, s (~46 ms: 2048 samples at 44.1 kHz).
_WINDOW_S = 0.046
# Band edges for pooling, Hz: log-spaced from 30 Hz to 16 kHz.
_NUM_BANDS = 36
_MIN_BAND_HZ = 30.0
_MAX_BAND_HZ = 16000.0
# Log compression strength, applied to magnitudes normalised to a peak of 1.
_COMPRESSION = 1000.0
# Teeth of the comb: up to this many beat multiples.
_MAX_TEETH = 8
# Tempo grid step, BPM.
_BPM_STEP = 0.02
# The preference among tempos: centre (BPM) and width (octaves) of a log-normal weight.
PREFERRED_BPM = 120.0
_PREFERENCE_OCTAVES = 1.0


def onset_envelope(audio: Audio, periodic: bool = False) -> tuple[np.ndarray, float]:
    """Onset strength of audio, one value per 5 ms frame, and the frame rate (Hz).

    periodic: treat audio as one period of a loop (the analysis wraps around its end); otherwise
    the signal is taken as silent beyond its ends.

    Returns (envelope of shape (frames,), frame rate in Hz). The envelope has zero mean.
    """
    samples = audio.to_mono().samples[0].astype(np.float64)
    sample_rate = audio.sample_rate
    hop = max(round(sample_rate / ENVELOPE_RATE_HZ), 1)
    n_fft = int(2 ** np.round(np.log2(_WINDOW_S * sample_rate)))
    num_frames = -(-len(samples) // hop)
    half = n_fft // 2
    if periodic:
        padded = np.take(samples, np.arange(-half, num_frames * hop + half), mode="wrap")
    else:
        padded = np.pad(samples, (half, num_frames * hop + half - len(samples)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:num_frames]
    magnitudes = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1))
    bands = _pool_bands(magnitudes, sample_rate, n_fft)
    peak = bands.max()
    compressed = np.log1p(_COMPRESSION * bands / peak) if peak > 0 else bands
    previous = (
        np.roll(compressed, 1, axis=0) if periodic else np.vstack([compressed[:1], compressed[:-1]])
    )
    flux = np.maximum(compressed - previous, 0.0).sum(axis=1)
    return flux - flux.mean(), sample_rate / hop


def _pool_bands(magnitudes: np.ndarray, sample_rate: int, n_fft: int) -> np.ndarray:
    """Mean magnitude in each log-spaced band: (frames, bins) -> (frames, bands)."""
    bin_hz = np.arange(magnitudes.shape[1]) * sample_rate / n_fft
    edges = np.geomspace(_MIN_BAND_HZ, min(_MAX_BAND_HZ, sample_rate / 2), _NUM_BANDS + 1)
    band_of_bin = np.searchsorted(edges, bin_hz, side="right") - 1
    inside = (band_of_bin >= 0) & (band_of_bin < _NUM_BANDS)
    sums = np.zeros((magnitudes.shape[0], _NUM_BANDS))
    np.add.at(sums.T, band_of_bin[inside], magnitudes[:, inside].T)
    counts = np.bincount(band_of_bin[inside], minlength=_NUM_BANDS)
    # Low bands narrower than one FFT bin stay empty and are dropped.
    return sums[:, counts > 0] / counts[counts > 0]


def autocorrelation(envelope: np.ndarray, periodic: bool = False) -> np.ndarray:
    """Autocorrelation of envelope at lags 0 .. len - 1 (periodic) or 0 .. len // 2 (not).

    The non-periodic estimate is divided by the overlap at each lag (unbiased), which is why it
    stops at half the length, where the overlap gets too short to trust.
    """
    length = len(envelope)
    if periodic:
        spectrum = np.fft.rfft(envelope)
        return np.fft.irfft(np.abs(spectrum) ** 2, n=length) / length
    spectrum = np.fft.rfft(envelope, n=2 * length)
    full = np.fft.irfft(np.abs(spectrum) ** 2, n=2 * length)[: length // 2 + 1]
    return full / (length - np.arange(len(full)))


def tempo_scores(
    envelope: np.ndarray,
    frame_rate_hz: float,
    periodic: bool = False,
    bpm_range: tuple[float, float] = (MIN_BPM, MAX_BPM),
) -> tuple[np.ndarray, np.ndarray]:
    """Comb score of every tempo on a 0.02-BPM grid: (tempos in BPM, scores).

    A score is the mean autocorrelation (normalised by its value at lag 0) at 1 to 8 beat periods,
    those within the measured lags.
    """
    acf = autocorrelation(envelope, periodic)
    acf = acf / acf[0] if acf[0] > 0 else acf
    max_lag = len(acf) - 1
    tempos = np.arange(bpm_range[0], bpm_range[1] + _BPM_STEP / 2, _BPM_STEP)
    periods = 60.0 * frame_rate_hz / tempos  # frames
    lags = periods[:, None] * np.arange(1, _MAX_TEETH + 1)
    # Only teeth within the measured lags count; every tempo in range needs at least one.
    valid = lags <= max_lag
    if not valid[:, 0].all():
        # The non-periodic autocorrelation is only kept to half the length.
        needed_s = (1 if periodic else 2) * 60.0 / bpm_range[0]
        raise RiffusionError(
            f"the audio is too short to estimate a tempo down to {bpm_range[0]:g} BPM: it needs "
            f"at least {needed_s:.2f} s"
        )
    teeth = np.interp(np.where(valid, lags, 0), np.arange(len(acf)), acf)
    return tempos, (teeth * valid).sum(axis=1) / valid.sum(axis=1)


def estimate_tempo(
    audio: Audio,
    periodic: bool = False,
    bpm_range: tuple[float, float] = (MIN_BPM, MAX_BPM),
) -> float:
    """The tempo of audio, BPM, within bpm_range: the best comb score times the preference.

    periodic: audio is one period of a loop (e.g. a rendered seed), analysed with wrap-around.
    Needs at least two beats of the slowest tempo (one for a periodic loop).
    """
    envelope, frame_rate = onset_envelope(audio, periodic)
    if not np.any(envelope):
        raise RiffusionError("no onsets found: the audio is silent or has no rhythm to measure")
    tempos, scores = tempo_scores(envelope, frame_rate, periodic, bpm_range)
    preference = np.exp(-0.5 * (np.log2(tempos / PREFERRED_BPM) / _PREFERENCE_OCTAVES) ** 2)
    return float(tempos[np.argmax(scores * preference)])
