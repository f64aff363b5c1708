"""Tempo estimation: built-in seeds show their claimed tempo; librosa as an independent check."""

from __future__ import annotations

import numpy as np
import pytest

from riffusion.audio import Audio
from riffusion.errors import RiffusionError
from riffusion.seeds.patterns import PATTERNS, get_pattern, render_pattern
from riffusion.seeds.tempo import autocorrelation, estimate_tempo, onset_envelope
from riffusion.seeds.timing import choose_timing

SAMPLE_RATE = 44100


def loop(pattern_id: str, bpm: float | None = None) -> Audio:
    """One period of a built-in pattern's loop at bpm (default: its own)."""
    pattern = get_pattern(pattern_id)
    timing = choose_timing(bpm or pattern.bpm, pattern.beats_per_bar)
    return render_pattern(pattern, timing.beats, timing.num_samples)


def click_track(bpm: float, seconds: float, seed: int = 0) -> Audio:
    """Noise-burst clicks every beat, accented every fourth, over quiet noise: not our synth."""
    rng = np.random.default_rng(seed)
    samples = 0.01 * rng.standard_normal(round(seconds * SAMPLE_RATE))
    burst = rng.standard_normal(600) * np.exp(-np.arange(600) / 80)
    for index, start_s in enumerate(np.arange(0.05, seconds - 0.02, 60 / bpm)):
        start = round(start_s * SAMPLE_RATE)
        piece = burst[: len(samples) - start] * (1.0 if index % 4 == 0 else 0.6)
        samples[start : start + len(piece)] += piece
    return Audio(samples.astype(np.float32), SAMPLE_RATE)


@pytest.mark.parametrize("pattern_id", list(PATTERNS))
def test_every_built_in_seed_shows_its_claimed_tempo(pattern_id: str) -> None:
    # Onset-envelope autocorrelation of one period of the loop, within 1 BPM of its claim.
    claimed = PATTERNS[pattern_id].bpm
    assert estimate_tempo(loop(pattern_id), periodic=True) == pytest.approx(claimed, abs=1.0)


@pytest.mark.parametrize(("pattern_id", "bpm"), [("og_beat", 78), ("swing", 152), ("bossa", 104)])
def test_seeds_at_other_tempos_show_them(pattern_id: str, bpm: float) -> None:
    audio = loop(pattern_id, bpm)
    assert estimate_tempo(audio, periodic=True) == pytest.approx(bpm, abs=1.0)
    # Two periods analysed as an ordinary (non-looping) recording agree.
    twice = Audio(np.tile(audio.samples, 2), audio.sample_rate)
    assert estimate_tempo(twice) == pytest.approx(bpm, abs=1.0)


@pytest.mark.parametrize("bpm", [84.0, 111.0, 137.0])
def test_click_tracks(bpm: float) -> None:
    assert estimate_tempo(click_track(bpm, 8.0)) == pytest.approx(bpm, abs=1.0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: click_track(96.0, 10.0, seed=1),
        lambda: click_track(128.0, 10.0, seed=2),
        lambda: loop("og_beat", 97),
        lambda: loop("four_on_the_floor", 128),
        lambda: loop("swing", 140),
        lambda: loop("marimba_waltz", 97),
        lambda: loop("sparse_percussion", 100),
    ],
)
def test_agrees_with_librosa(make) -> None:
    # librosa's beat tracker is an independent reference; its tempo resolution is one onset
    # frame of its lag (about 2-3 % here), so agreement is judged to 3 %.
    librosa = pytest.importorskip("librosa")
    audio = make()
    # Loops are repeated so librosa, which does not wrap around, sees several periods.
    samples = np.tile(audio.samples[0], max(1, round(12 / audio.duration_s)))
    reference, _ = librosa.beat.beat_track(y=samples, sr=audio.sample_rate)
    ours = estimate_tempo(Audio(samples, audio.sample_rate))
    assert ours == pytest.approx(float(np.atleast_1d(reference)[0]), rel=0.03)


def test_onset_envelope_peaks_at_onsets() -> None:
    envelope, frame_rate = onset_envelope(click_track(120.0, 4.0))
    assert frame_rate == pytest.approx(200.0, rel=0.01)
    assert envelope.mean() == pytest.approx(0.0, abs=1e-9)
    peaks = np.flatnonzero(envelope > 0.5 * envelope.max()) / frame_rate
    # Clicks at 0.05 s + k * 0.5 s; the envelope peaks within a frame or two of each.
    offsets = (peaks - 0.05) % 0.5
    assert np.all(np.minimum(offsets, 0.5 - offsets) < 0.02)


def test_autocorrelation_periodic_and_unbiased() -> None:
    signal = np.sin(2 * np.pi * np.arange(100) / 10)
    periodic = autocorrelation(signal, periodic=True)
    assert len(periodic) == 100 and periodic[10] == pytest.approx(periodic[0])
    linear = autocorrelation(signal)
    assert len(linear) == 51 and linear[20] == pytest.approx(linear[0], rel=1e-6)


def test_too_short_or_silent_audio_is_refused() -> None:
    with pytest.raises(RiffusionError, match="too short"):
        estimate_tempo(click_track(120.0, 1.5))
    with pytest.raises(RiffusionError, match="no onsets"):
        estimate_tempo(Audio(np.zeros(SAMPLE_RATE * 4, dtype=np.float32), SAMPLE_RATE))
