"""Seed images: loops drawn as spectrogram images that wrap around, their tempo, and playback.

A seed image is one period of a loop: its spectrogram is computed with the audio wrapped around at
both ends, so the column after the last would be the first again. Its tempo travels in EXIF tags
beside the spectrogram parameters: the tempo the loop plays at (BPM), the beats it holds and the
beats per bar. The image tempo (at 10 ms per column) follows from the beats and the width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from PIL import Image

from riffusion.audio import Audio
from riffusion.errors import RiffusionError
from riffusion.seeds.tempo import estimate_tempo
from riffusion.seeds.timing import (
    MAX_BPM,
    MAX_WIDTH,
    MIN_BPM,
    STEP_MS,
    LoopTiming,
    check_beats_per_bar,
    check_bpm,
    nearest_width,
    retime_columns,
)
from riffusion.spectrogram.converter import SpectrogramImageConverter
from riffusion.spectrogram.image import image_from_mel_amplitudes, mel_amplitudes_from_image

# A loop shorter or longer than whole beats by at most this much (beats) is stretched to whole
# beats; by more, it is trimmed to whole beats (whole bars if it holds one).
STRETCH_TOLERANCE_BEATS = 0.25
# Shortest loop made into an image, s (384 px); shorter loops are repeated.
MIN_LOOP_S = 3.84
# Crossfade at the cut of a trimmed loop, s: the audio after the cut fades into the loop's start.
_CROSSFADE_S = 0.02
# EXIF ImageDescription, a standard tag image viewers show.
_IMAGE_DESCRIPTION = 270


class TempoTag(IntEnum):
    """EXIF tags of a seed image's tempo, after the original's 11000-11080."""

    BPM = 11100
    BEATS = 11110
    BEATS_PER_BAR = 11120


def loop_mel_amplitudes(
    audio: Audio, num_columns: int, converter: SpectrogramImageConverter
) -> np.ndarray:
    """Mel amplitudes (channels, mels, num_columns) of one period of a loop.

    Column i is the spectrum at time i / num_columns of the period, the analysis window wrapping
    around the loop's ends. When the loop is exactly num_columns hops long the columns are the
    STFT frames themselves; otherwise they are interpolated between frames (a time stretch).
    """
    params = converter.params
    audio = audio.resample(params.sample_rate)
    hop = params.hop_length
    frames = math.ceil(audio.num_frames / hop)
    margin = params.n_fft // 2
    # Enough wrapped audio before and after that every frame up to `frames` sees a full window.
    indices = np.arange(-margin, frames * hop + hop + margin)
    wrapped = Audio(np.take(audio.samples, indices, axis=1, mode="wrap"), audio.sample_rate)
    mel = converter.mel_amplitudes_from_audio(wrapped)
    first = margin // hop
    offset = margin / hop - first  # frame times are whole hops from the wrapped start
    positions = np.arange(num_columns) * (audio.num_frames / hop / num_columns) + offset
    left = np.floor(positions).astype(int)
    weight = positions - left
    return mel[..., first + left] * (1 - weight) + mel[..., first + left + 1] * weight


def seed_image_from_loop(
    audio: Audio,
    timing: LoopTiming,
    converter: SpectrogramImageConverter | None = None,
    description: str | None = None,
) -> Image.Image:
    """The seed image of a loop holding timing.beats beats, timing.width columns wide.

    audio is one period of the loop at any tempo: drawn to scale when it is exactly
    timing.image_num_samples long (a built-in pattern rendered at the image tempo), stretched to
    timing.width columns otherwise. The tempo tags record timing.bpm.
    """
    converter = converter or SpectrogramImageConverter()
    image = image_from_mel_amplitudes(
        loop_mel_amplitudes(audio, timing.width, converter), converter.params
    )
    exif = image.getexif()
    exif[int(TempoTag.BPM)] = float(timing.bpm)
    exif[int(TempoTag.BEATS)] = int(timing.beats)
    exif[int(TempoTag.BEATS_PER_BAR)] = int(timing.beats_per_bar)
    if description:
        exif[_IMAGE_DESCRIPTION] = description
    # Pillow's copy() keeps info but not the parsed EXIF; with the bytes there, copies keep tags.
    image.info["exif"] = exif.tobytes()
    return image


@dataclass(frozen=True)
class ImageTempo:
    """The tempo tags of a seed image.

    Attributes:
        bpm: tempo the loop plays at, BPM.
        beats: beats the image holds.
        beats_per_bar: beats per bar.
    """

    bpm: float
    beats: int
    beats_per_bar: int


def image_tempo(image: Image.Image) -> ImageTempo | None:
    """The tempo tags of image, or None when it has none (not a seed image, or an old one)."""
    exif = image.getexif()
    if any(int(tag) not in exif for tag in TempoTag):
        return None
    try:
        tempo = ImageTempo(
            float(exif[int(TempoTag.BPM)]),
            int(exif[int(TempoTag.BEATS)]),
            int(exif[int(TempoTag.BEATS_PER_BAR)]),
        )
    except (TypeError, ValueError):
        raise RiffusionError("the image's tempo tags (EXIF 11100-11120) are unreadable") from None
    if not (tempo.bpm > 0 and tempo.beats > 0 and tempo.beats_per_bar > 0):
        raise RiffusionError(f"the image's tempo tags hold impossible values: {tempo}")
    return tempo


def image_timing(image: Image.Image, sample_rate: int = 44100) -> LoopTiming | None:
    """The LoopTiming of a seed image from its tempo tags and width, or None without tags."""
    tempo = image_tempo(image)
    if tempo is None:
        return None
    return LoopTiming(tempo.bpm, tempo.beats, tempo.beats_per_bar, image.width, sample_rate)


def loop_audio_from_image(
    image: Image.Image,
    converter: SpectrogramImageConverter | None = None,
    bpm: float | None = None,
) -> Audio:
    """The loop an image holds, played at bpm (default: its BPM tag, else as drawn).

    The change of time step: the image's columns are stretched by image_bpm / bpm (periodic
    linear interpolation) before phase reconstruction, so the audio plays at bpm with its pitch
    unchanged, about loop-length = beats * 60 / bpm long (to the nearest 10 ms column). The image
    is reconstructed with a wrapped margin on both sides so the loop also wraps smoothly.
    """
    converter = converter or SpectrogramImageConverter()
    params = converter.params
    mel = mel_amplitudes_from_image(image, params)
    tempo = image_tempo(image)
    if bpm is not None and not bpm > 0:
        raise RiffusionError(f"the tempo must be positive, got {bpm} BPM")
    if tempo is None and bpm is not None:
        raise RiffusionError("the image has no tempo tags, so it cannot be played at another tempo")
    columns = image.width
    if tempo is not None:
        timing = LoopTiming(
            tempo.bpm if bpm is None else bpm,
            tempo.beats,
            tempo.beats_per_bar,
            image.width,
            params.sample_rate,
        )
        columns = timing.playback_columns
        mel = retime_columns(mel, columns)
    margin = min(math.ceil(params.n_fft / params.hop_length), columns)
    wrapped = np.concatenate([mel[..., -margin:], mel, mel[..., :margin]], axis=-1)
    audio = converter.audio_from_mel_amplitudes(wrapped)
    hop = params.hop_length
    return Audio(audio.samples[:, margin * hop : (margin + columns) * hop], audio.sample_rate)


def play_spectrogram_image(
    image: Image.Image, converter: SpectrogramImageConverter | None = None
) -> Audio:
    """The audio of a spectrogram image as riffusion plays it, peak-normalised to -0.1 dBFS as
    the original did: an image with tempo tags (a seed image, or one generated from a seed) as
    its loop at that tempo (loop_audio_from_image), any other image as drawn."""
    converter = converter or SpectrogramImageConverter()
    if image_tempo(image) is not None:
        return loop_audio_from_image(image, converter)
    return converter.audio_from_spectrogram_image(image)


def fit_loop(
    audio: Audio, bpm: float | None = None, beats_per_bar: int = 4
) -> tuple[Audio, LoopTiming]:
    """A user's loop made into whole beats: (one period of audio, its LoopTiming).

    bpm: the loop's tempo; estimated when None (and then snapped so the file holds whole beats
    when it nearly does). A file within 0.25 beat of whole beats is kept whole and stretched to
    them; a longer remainder is trimmed, to whole bars when the loop holds at least one, with the
    audio after the cut crossfaded into the start. A loop shorter than 3.84 s (384 px) is repeated
    until it is not; one too long for a 2048-px image is cut to the whole bars that fit. The image
    is as wide as the loop at 10 ms per column, rounded to a multiple of 64 px.
    """
    check_beats_per_bar(beats_per_bar)
    duration_s = audio.duration_s
    if bpm is None:
        # A loop too short for an ordinary analysis down to 60 BPM is analysed as the loop it is.
        periodic = duration_s < 2 * 60 / MIN_BPM
        bpm = _snapped(estimate_tempo(audio, periodic=periodic), duration_s)
    bpm = check_bpm(bpm)
    beat_s = 60.0 / bpm
    beats_in_file = duration_s / beat_s
    beats = round(beats_in_file)
    if beats < 1 or abs(beats_in_file - beats) > STRETCH_TOLERANCE_BEATS:
        beats = math.floor(beats_in_file)
        if beats >= beats_per_bar:
            beats -= beats % beats_per_bar
    max_beats = math.floor(MAX_WIDTH * STEP_MS / 1000 / beat_s)
    if beats > max_beats:
        beats = max_beats - max_beats % beats_per_bar
    if beats < 1:
        raise RiffusionError(
            f"the audio is {duration_s:.2f} s long, shorter than one beat at {bpm:g} BPM"
        )
    if beats * beat_s < duration_s - STRETCH_TOLERANCE_BEATS * beat_s:
        audio = _trimmed(audio, round(beats * beat_s * audio.sample_rate))
    repeats = math.ceil(MIN_LOOP_S / (beats * beat_s))
    if repeats > 1:
        audio = Audio(np.tile(audio.samples, repeats), audio.sample_rate)
        beats *= repeats
    timing = LoopTiming(bpm, beats, beats_per_bar, nearest_width(beats * beat_s), audio.sample_rate)
    return audio, timing


def _snapped(bpm: float, duration_s: float) -> float:
    """bpm moved to the nearest tempo at which duration_s holds whole beats, when within 0.1 beat.

    A file cut as a loop holds whole beats; its length pins the tempo far more precisely than the
    onsets do. Otherwise bpm is returned unchanged.
    """
    beats = duration_s * bpm / 60.0
    snapped = round(beats) * 60.0 / duration_s
    if round(beats) >= 1 and abs(beats - round(beats)) <= 0.1 and MIN_BPM <= snapped <= MAX_BPM:
        return snapped
    return bpm


def _trimmed(audio: Audio, length: int) -> Audio:
    """The first length samples of audio, with what follows the cut crossfaded into the start."""
    samples = audio.samples[:, :length].copy()
    fade = min(round(_CROSSFADE_S * audio.sample_rate), audio.num_frames - length, length)
    if fade > 0:
        # Equal-power crossfade: the loop's start fades in while the continuation fades out.
        ramp = np.sin(0.5 * np.pi * (np.arange(fade) + 0.5) / fade)
        continuation = audio.samples[:, length : length + fade]
        samples[:, :fade] = samples[:, :fade] * ramp + continuation * ramp[::-1]
    return Audio(samples, audio.sample_rate)
