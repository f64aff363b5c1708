"""Clip sampling: start times, reproducibility, clip contents and refused requests."""

from __future__ import annotations

import numpy as np
import pytest

from riffusion import Audio, RiffusionError
from riffusion.clips import clip_start_times_ms, sample_clips, seed_for_name


def ramp(seconds: float, rate: int = 1000, channels: int = 1) -> Audio:
    """Audio whose sample values are their times in seconds, so a clip shows where it came from."""
    times = np.arange(round(seconds * rate), dtype=np.float32) / rate
    return Audio(np.repeat(times[np.newaxis], channels, axis=0), rate)


def test_seeded_start_times_match_the_originals_numpy_sequence() -> None:
    # The original: np.random.seed(seed); np.random.randint(0, audio_ms - clip_ms) per clip.
    legacy = np.random.RandomState(7)
    expected = [legacy.randint(0, 10_000 - 1_000) for _ in range(5)]
    assert clip_start_times_ms(10_000, 1_000, 5, seed=7) == expected


def test_start_times_are_reproducible_and_in_range() -> None:
    starts = clip_start_times_ms(3_000, 500, 200, seed=1)
    assert starts == clip_start_times_ms(3_000, 500, 200, seed=1)
    assert starts != clip_start_times_ms(3_000, 500, 200, seed=2)
    assert min(starts) >= 0
    assert max(starts) + 500 <= 3_000


def test_unseeded_start_times_vary() -> None:
    draws = {tuple(clip_start_times_ms(100_000, 10, 5)) for _ in range(5)}
    assert len(draws) > 1


def test_a_clip_as_long_as_the_audio_starts_at_zero() -> None:
    assert clip_start_times_ms(1_000, 1_000, 3, seed=0) == [0, 0, 0]


def test_clips_hold_the_samples_from_their_start_time() -> None:
    audio = ramp(4.0, rate=8000, channels=2)
    clips = sample_clips(audio, num_clips=10, duration_ms=250, seed=3)
    assert [clip.index for clip in clips] == list(range(10))
    for clip in clips:
        assert clip.duration_ms == 250
        assert clip.audio.sample_rate == 8000
        assert clip.audio.samples.shape == (2, 2000)
        assert clip.audio.samples[0, 0] == pytest.approx(clip.start_ms / 1000, abs=1e-4)


def test_clip_ending_at_the_last_frame_keeps_its_length() -> None:
    # 1001 frames at 1 kHz is 1001 ms; a 1001 ms clip must take every frame and not run past.
    audio = ramp(1.001)
    (clip,) = sample_clips(audio, num_clips=1, duration_ms=1001, seed=0)
    assert clip.audio.num_frames == 1001


def test_odd_sample_rates_give_equal_clip_lengths() -> None:
    audio = ramp(3.0, rate=44100)
    lengths = {clip.audio.num_frames for clip in sample_clips(audio, 50, 333, seed=5)}
    assert lengths == {round(0.333 * 44100)}


@pytest.mark.parametrize(
    ("num_clips", "duration_ms", "message"),
    [
        (0, 100, "number of clips must be at least 1"),
        (-3, 100, "number of clips must be at least 1"),
        (1, 0, "duration must be positive"),
        (1, -50, "duration must be positive"),
        (1, 2_001, r"clip duration \(2001 ms\) is longer than the audio \(2000 ms\)"),
    ],
)
def test_impossible_requests_are_refused(num_clips: int, duration_ms: int, message: str) -> None:
    with pytest.raises(RiffusionError, match=message):
        sample_clips(ramp(2.0), num_clips, duration_ms, seed=0)


def test_out_of_range_seed_is_refused() -> None:
    with pytest.raises(RiffusionError, match="seed"):
        clip_start_times_ms(1_000, 10, 1, seed=2**32)


def test_per_file_seeds_depend_on_seed_and_name_only() -> None:
    assert seed_for_name(3, "a.wav") == seed_for_name(3, "a.wav")
    assert seed_for_name(3, "a.wav") != seed_for_name(3, "b.wav")
    assert seed_for_name(3, "a.wav") != seed_for_name(4, "a.wav")
    assert 0 <= seed_for_name(2**32 - 1, "x" * 1000) < 2**32
