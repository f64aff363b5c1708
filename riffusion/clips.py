"""Sampling fixed-length clips at random positions of a longer piece of audio.

Start times are whole milliseconds drawn from numpy's legacy RandomState, the generator behind the
original's ``np.random.seed(seed)`` and ``np.random.randint``, so a seed picks the same start times
the original riffusion's sample-clips picked with it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from riffusion.audio import Audio
from riffusion.errors import RiffusionError


@dataclass(frozen=True)
class Clip:
    """A clip cut out of a longer recording.

    Attributes:
        index: position in the sampled sequence, from 0.
        start_ms: where the clip starts in the source, ms.
        duration_ms: clip length, ms.
        audio: the clip's samples.
    """

    index: int
    start_ms: int
    duration_ms: int
    audio: Audio


def check_clip_request(num_clips: int, clip_duration_ms: int) -> None:
    """Raise unless num_clips >= 1 and clip_duration_ms (ms) > 0."""
    if num_clips < 1:
        raise RiffusionError(f"the number of clips must be at least 1, got {num_clips}")
    if clip_duration_ms <= 0:
        raise RiffusionError(f"the clip duration must be positive, got {clip_duration_ms} ms")


def clip_start_times_ms(
    audio_duration_ms: int, clip_duration_ms: int, num_clips: int, seed: int | None = None
) -> list[int]:
    """num_clips random start times (ms) of clip_duration_ms-long clips within audio_duration_ms.

    seed: None draws fresh randomness; an integer >= 0 makes the times reproducible.
    """
    check_clip_request(num_clips, clip_duration_ms)
    if clip_duration_ms > audio_duration_ms:
        raise RiffusionError(
            f"the clip duration ({clip_duration_ms} ms) is longer than the audio "
            f"({audio_duration_ms} ms)"
        )
    if seed is not None and not 0 <= seed < 2**32:
        raise RiffusionError(f"the seed must be between 0 and 2**32 - 1, got {seed}")
    random = np.random.RandomState(seed)
    # randint's upper bound is exclusive, as in the original; a clip exactly as long as the audio
    # has one possible start.
    latest_start = audio_duration_ms - clip_duration_ms
    return [
        int(random.randint(0, latest_start)) if latest_start > 0 else 0 for _ in range(num_clips)
    ]


def sample_clips(
    audio: Audio, num_clips: int, duration_ms: int, seed: int | None = None
) -> list[Clip]:
    """num_clips clips of duration_ms (ms) each, at random start times (see clip_start_times_ms).

    Clips may overlap. Every clip has exactly round(duration_ms * sample_rate / 1000) frames.
    """
    audio_duration_ms = audio.num_frames * 1000 // audio.sample_rate
    starts_ms = clip_start_times_ms(audio_duration_ms, duration_ms, num_clips, seed)
    num_frames = round(duration_ms * audio.sample_rate / 1000)
    clips = []
    for index, start_ms in enumerate(starts_ms):
        # Rounding the start to a frame could push the end one frame past the audio.
        start = min(round(start_ms * audio.sample_rate / 1000), audio.num_frames - num_frames)
        samples = audio.samples[:, start : start + num_frames]
        clips.append(Clip(index, start_ms, duration_ms, Audio(samples, audio.sample_rate)))
    return clips


def seed_for_name(seed: int, name: str) -> int:
    """A reproducible per-file seed from a batch's seed and a file name.

    Deriving each file's seed from its name (not from processing order, which threads shuffle)
    keeps a batch reproducible however files are scheduled, and a file's clips the same when
    other files are added to the batch.
    """
    state = np.random.SeedSequence([seed, zlib.crc32(name.encode())]).generate_state(1)
    return int(state[0])
