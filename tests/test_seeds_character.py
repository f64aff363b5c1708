"""The original app's seed ids sound like their names, measured on the rendered loops.

agile is busy, with a bass and a tonal lead; marim is tonal in the marimba register with struck,
decaying notes; motorway has bass chords below 250 Hz on every beat; vibes is sparse, its
vibraphone tones ringing on. Each check is a simple measurement of the audio, compared with
og_beat (a plain rock beat) or with another seed, at two random seeds and two tempos.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import find_peaks

from riffusion.audio import Audio
from riffusion.seeds.builtin import render_loop, seed_request
from riffusion.seeds.harmony import Key
from riffusion.seeds.patterns import PATTERNS
from riffusion.seeds.tempo import onset_envelope

SAMPLE_RATE = 44100
ORIGINAL_APP_SEEDS = ("og_beat", "agile", "marim", "motorway", "vibes")
# Random seeds and tempos (None: the pattern's own) the claims must hold at.
VARIANTS = [(0, None), (7, None), (0, 120.0)]


def loop_samples(pattern_id: str, seed: int = 0, bpm: float | None = None) -> np.ndarray:
    """One period of the pattern's loop, mono float64 samples at 44.1 kHz."""
    return render_loop(seed_request(pattern_id, bpm, seed=seed)).samples[0].astype(np.float64)


def beats_of(pattern_id: str, bpm: float | None = None) -> int:
    return seed_request(pattern_id, bpm).timing.beats


def onsets_per_beat(pattern_id: str, seed: int = 0, bpm: float | None = None) -> float:
    """Peaks of the loop's onset envelope (over a quarter of its range, 50 ms apart), per beat."""
    samples = loop_samples(pattern_id, seed, bpm)
    envelope, rate_hz = onset_envelope(Audio(samples[None], SAMPLE_RATE), periodic=True)
    envelope = envelope - envelope.min()
    peaks, _ = find_peaks(envelope, height=0.25 * envelope.max(), distance=round(0.05 * rate_hz))
    return len(peaks) / beats_of(pattern_id, bpm)


def power_spectrum(samples: np.ndarray, size: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies Hz, power) of a Hann-windowed stretch of samples, zero-padded to size."""
    power = np.abs(np.fft.rfft(samples * np.hanning(len(samples)), n=size)) ** 2
    return np.fft.rfftfreq(size, 1 / SAMPLE_RATE), power


def band_share(samples: np.ndarray, low_hz: float, high_hz: float) -> float:
    """Fraction of the energy of samples between low_hz and high_hz."""
    frequencies, power = power_spectrum(samples, size=len(samples))
    return float(power[(frequencies >= low_hz) & (frequencies < high_hz)].sum() / power.sum())


def band_flatness(samples: np.ndarray, low_hz: float, high_hz: float) -> float:
    """Spectral flatness within the band (geometric over arithmetic mean of the power), averaged
    over 93-ms frames weighted by their band energy: ~0.5 for noise, near 0 for tones."""
    frames = np.lib.stride_tricks.sliding_window_view(samples, 4096)[::1024]
    power = np.abs(np.fft.rfft(frames * np.hanning(4096), axis=1)) ** 2
    frequencies = np.fft.rfftfreq(4096, 1 / SAMPLE_RATE)
    band = power[:, (frequencies >= low_hz) & (frequencies < high_hz)] + 1e-20
    flatness = np.exp(np.log(band).mean(axis=1)) / band.mean(axis=1)
    weights = band.sum(axis=1)
    return float((flatness * weights).sum() / weights.sum())


def median_decay_db(samples: np.ndarray, low_hz: float, high_hz: float, after_s: float) -> float:
    """How far the band's level falls (dB) after_s after each of its peaks, the median over
    peaks: large for struck notes that die away, small for tones that ring on."""
    hop, size = SAMPLE_RATE // 100, 2048
    wrapped = np.concatenate([samples[-size:], samples, samples[:size]])
    frames = np.lib.stride_tricks.sliding_window_view(wrapped, size)[::hop]
    power = np.abs(np.fft.rfft(frames * np.hanning(size), axis=1)) ** 2
    frequencies = np.fft.rfftfreq(size, 1 / SAMPLE_RATE)
    level_db = 10 * np.log10(power[:, (frequencies >= low_hz) & (frequencies < high_hz)].sum(1))
    peaks, _ = find_peaks(level_db, prominence=3.0, distance=5)
    lag = round(after_s * 100)
    return float(np.median(level_db[peaks] - level_db[(peaks + lag) % len(level_db)]))


@pytest.mark.parametrize("pattern_id", ORIGINAL_APP_SEEDS)
def test_the_original_app_seeds_are_512_px_loops_of_whole_bars(pattern_id: str) -> None:
    timing = seed_request(pattern_id).timing
    assert timing.width == 512 and timing.beats % timing.beats_per_bar == 0
    # Drawn to scale: the image tempo is the tempo, so clips last 5.12 s, as the app expects.
    assert timing.image_bpm == PATTERNS[pattern_id].bpm


@pytest.mark.parametrize(("seed", "bpm"), VARIANTS)
def test_agile_is_busy_with_a_bass_and_a_tonal_lead(seed: int, bpm: float | None) -> None:
    assert onsets_per_beat("agile", seed, bpm) >= 3.0
    assert onsets_per_beat("agile", seed, bpm) >= 1.8 * onsets_per_beat("og_beat", seed, bpm)
    samples = loop_samples("agile", seed, bpm)
    assert band_share(samples, 30, 250) >= 0.3  # kick and bass
    # The lead: tones, not noise, where it plays (C5-G6, 523-1568 Hz).
    plain = loop_samples("og_beat", seed, bpm)
    assert band_flatness(samples, 300, 2000) < 0.05 < band_flatness(plain, 300, 2000)


@pytest.mark.parametrize(("seed", "bpm"), VARIANTS)
def test_marim_is_tonal_in_the_marimba_register_with_struck_notes(
    seed: int, bpm: float | None
) -> None:
    samples = loop_samples("marim", seed, bpm)
    # Most of its energy is the marimba's (D3-G5, 147-784 Hz, and the bars' overtones).
    assert band_share(samples, 140, 2000) >= 0.8
    assert band_flatness(samples, 250, 1200) < 0.03
    # Struck bars die away: 150 ms after a peak the register is 8 dB down or more, where the
    # vibraphone's tones have fallen by less than 6 dB.
    assert median_decay_db(samples, 250, 1200, 0.15) >= 8.0
    assert median_decay_db(loop_samples("vibes", seed, bpm), 250, 1200, 0.15) < 6.0


@pytest.mark.parametrize(("seed", "bpm"), VARIANTS)
def test_motorway_has_bass_chords_on_every_beat(seed: int, bpm: float | None) -> None:
    samples = loop_samples("motorway", seed, bpm)
    beats = beats_of("motorway", bpm)
    beat_length = len(samples) / beats
    for beat in range(beats):
        window = samples[round(beat * beat_length) : round((beat + 0.5) * beat_length)]
        assert band_share(window, 30, 250) >= 0.7, f"beat {beat}"
    # Chords, not single notes: in each bar, the three strongest pitch classes below 250 Hz
    # (between the kicks, on the off-beats) are the bar's triad. og_beat's bass is single notes.
    assert _bars_whose_low_pitch_classes_are_triads("motorway", seed, bpm) == beats // 4
    assert _bars_whose_low_pitch_classes_are_triads("og_beat", seed, bpm) == 0


def _bars_whose_low_pitch_classes_are_triads(pattern_id: str, seed: int, bpm: float | None) -> int:
    """Bars whose three strongest pitch classes (65-250 Hz, off-beat halves) are their triad."""
    pattern = PATTERNS[pattern_id]
    samples = loop_samples(pattern_id, seed, bpm)
    beats = beats_of(pattern_id, bpm)
    beat_length = len(samples) / beats
    key = Key.parse(pattern.key)
    matches = 0
    for bar in range(beats // pattern.beats_per_bar):
        power = 0.0
        for beat in range(bar * pattern.beats_per_bar, (bar + 1) * pattern.beats_per_bar):
            start = round((beat + 0.5) * beat_length)
            frequencies, beat_power = power_spectrum(
                samples[start : round(start + beat_length / 2)]
            )
            power = power + beat_power
        low = (frequencies >= 65) & (frequencies < 250)
        pitch_classes = np.round(69 + 12 * np.log2(frequencies[low] / 440)).astype(int) % 12
        chroma = np.bincount(pitch_classes, weights=power[low], minlength=12)
        degree = pattern.progression[bar % len(pattern.progression)]
        triad = {note % 12 for note in key.chord(degree, 3)}
        matches += set(np.argsort(chroma)[-3:].tolist()) == triad
    return matches


@pytest.mark.parametrize(("seed", "bpm"), VARIANTS)
def test_vibes_is_sparse_with_ringing_tones(seed: int, bpm: float | None) -> None:
    density = {name: onsets_per_beat(name, seed, bpm) for name in ORIGINAL_APP_SEEDS}
    assert density["vibes"] <= 1.25
    assert density["vibes"] == min(density.values())
    samples = loop_samples("vibes", seed, bpm)
    assert band_flatness(samples, 250, 1500) < 0.03
    # Tones ring: the vibraphone register stays within 6 dB over the 150 ms after its peaks.
    assert median_decay_db(samples, 250, 1500, 0.15) < 6.0
