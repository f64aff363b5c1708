"""Loop timing: how many beats a seed image holds, how wide it is, and the tempo it plays at.

The model draws 10 ms per pixel column and takes widths in multiples of 64 pixels, so an image
holds a whole number of beats only at tempos of 6000 * beats / width BPM (93.75 BPM for 8 beats in
512 px). Other tempos are handled by a change of time step on playback: the image is drawn at the
nearest such "image tempo" (natural-sounding audio at exactly 10 ms per column) and its columns are
stretched by image_bpm / bpm before phase reconstruction, so the audio plays at the asked tempo
without a change of pitch. docs/seeds.md has the measurements behind the choices here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from riffusion.errors import RiffusionError

# The model's time step (ms per image column) and width granularity (pixels: 8 latent pixels).
STEP_MS = 10
WIDTH_MULTIPLE = 64

# Tempo range the seed library supports, BPM.
MIN_BPM = 60.0
MAX_BPM = 180.0

# Widths (px) tried when choosing a loop length: 0.75x to 1.5x the model's 512-px training width.
PREFERRED_WIDTHS = tuple(range(384, 768 + 1, WIDTH_MULTIPLE))
# Widest image any loop may have (px), when the user asks for many bars or long audio.
MAX_WIDTH = 2048
# Largest stretch |image_bpm / bpm - 1| accepted to keep whole bars before falling back to whole
# beats. Whole bars of 2/4, 3/4 and 4/4 always fit within it at 60-180 BPM (at most 6.0 %).
MAX_BAR_STRETCH = 0.065
# Weight of the preference for widths near 512 px against the stretch (per unit of log ratio).
_WIDTH_WEIGHT = 0.05


@dataclass(frozen=True)
class LoopTiming:
    """The time layout of a seed loop.

    Attributes:
        bpm: tempo the loop plays at, BPM (quarter-note beats per minute).
        beats: whole number of beats in the loop.
        beats_per_bar: beats in a bar (the meter's numerator over a quarter note).
        width: image width, px, a multiple of 64.
        sample_rate: Hz.
    """

    bpm: float
    beats: int
    beats_per_bar: int
    width: int
    sample_rate: int = 44100

    def __post_init__(self) -> None:
        if not self.bpm > 0:
            raise RiffusionError(f"the tempo must be positive, got {self.bpm} BPM")
        if self.beats < 1:
            raise RiffusionError(f"a loop needs at least one beat, got {self.beats}")
        check_beats_per_bar(self.beats_per_bar)
        if self.width < WIDTH_MULTIPLE or self.width % WIDTH_MULTIPLE:
            raise RiffusionError(
                f"image width must be a positive multiple of {WIDTH_MULTIPLE} px, got {self.width}"
            )

    @property
    def bars(self) -> float:
        """Bars in the loop (fractional when the loop is not whole bars)."""
        return self.beats / self.beats_per_bar

    @property
    def duration_s(self) -> float:
        """Length of the loop at bpm, s."""
        return self.beats * 60.0 / self.bpm

    @property
    def num_samples(self) -> int:
        """Length of the loop at bpm, samples (rounded: the loop is whole samples)."""
        return round(self.duration_s * self.sample_rate)

    @property
    def image_bpm(self) -> float:
        """Tempo of the image at 10 ms per column, BPM: 6000 * beats / width."""
        return self.beats * 60_000.0 / (self.width * STEP_MS)

    @property
    def image_num_samples(self) -> int:
        """Samples of audio the image covers at 10 ms per column: width * hop."""
        return self.width * hop_length(self.sample_rate)

    @property
    def stretch(self) -> float:
        """image_bpm / bpm: how much faster the image is than the loop; 1 means drawn to scale."""
        return self.image_bpm / self.bpm

    @property
    def playback_columns(self) -> int:
        """Columns of 10 ms the image becomes when stretched to play at bpm."""
        return max(round(self.width * self.stretch), 1)


def hop_length(sample_rate: int) -> int:
    """Samples per image column at the model's 10 ms step."""
    return int(STEP_MS / 1000 * sample_rate)


def check_bpm(bpm: float) -> float:
    """bpm if within the supported 60-180 BPM, else RiffusionError."""
    if not (MIN_BPM <= bpm <= MAX_BPM and math.isfinite(bpm)):
        raise RiffusionError(
            f"tempo {bpm:g} BPM is out of range: seeds support {MIN_BPM:g} to {MAX_BPM:g} BPM"
        )
    return float(bpm)


def check_beats_per_bar(beats_per_bar: int) -> int:
    """beats_per_bar if at least 1, else RiffusionError."""
    if beats_per_bar < 1:
        raise RiffusionError(f"a bar needs at least one beat, got {beats_per_bar}")
    return beats_per_bar


def nearest_width(duration_s: float) -> int:
    """The multiple of 64 px nearest to duration_s at 10 ms per column (at least 64)."""
    columns = duration_s * 1000 / STEP_MS
    return max(round(columns / WIDTH_MULTIPLE), 1) * WIDTH_MULTIPLE


def choose_timing(
    bpm: float,
    beats_per_bar: int = 4,
    bars: int | None = None,
    sample_rate: int = 44100,
) -> LoopTiming:
    """Loop timing for bpm (60-180): whole bars, a width that is a multiple of 64 px.

    With bars given, the loop holds exactly that many bars at the nearest width. Otherwise it holds
    the number of whole bars whose nearest width in 384-768 px needs the least stretch (ties go to
    the width nearest 512 px); if no whole number of bars fits within a 6.5 % stretch (meters
    such as 7/4), whole beats are used instead.
    """
    bpm = check_bpm(bpm)
    check_beats_per_bar(beats_per_bar)
    if bars is not None:
        if bars < 1:
            raise RiffusionError(f"the number of bars must be at least 1, got {bars}")
        beats = bars * beats_per_bar
        width = nearest_width(beats * 60.0 / bpm)
        if width > MAX_WIDTH:
            raise RiffusionError(
                f"{bars} bars at {bpm:g} BPM would be {width} px wide; at most {MAX_WIDTH} px "
                f"({MAX_WIDTH * STEP_MS / 1000:g} s) fit, so ask for fewer bars"
            )
        return LoopTiming(bpm, beats, beats_per_bar, width, sample_rate)
    for unit in (beats_per_bar, 1):
        timing = _best_timing(bpm, unit, beats_per_bar, sample_rate)
        if abs(math.log(timing.stretch)) <= math.log1p(MAX_BAR_STRETCH):
            return timing
    return timing


def _best_timing(bpm: float, unit: int, beats_per_bar: int, sample_rate: int) -> LoopTiming:
    """Among loops of whole multiples of unit beats in PREFERRED_WIDTHS, the least stretched."""
    candidates = []
    for width in PREFERRED_WIDTHS:
        # The beat counts whose image tempo brackets bpm at this width.
        exact = bpm * width * STEP_MS / 60_000.0 / unit
        for count in {max(math.floor(exact), 1), max(math.ceil(exact), 1)}:
            timing = LoopTiming(bpm, count * unit, beats_per_bar, width, sample_rate)
            cost = abs(math.log(timing.stretch)) + _WIDTH_WEIGHT * abs(math.log(width / 512))
            candidates.append((cost, width, timing))
    return min(candidates, key=lambda candidate: candidate[:2])[2]


def retime_columns(mel_amplitudes: np.ndarray, num_columns: int) -> np.ndarray:
    """Stretch a loop's spectrogram (..., columns) to num_columns by periodic linear interpolation.

    The input is one period of a loop: column i sits at time i / columns of the period, and the
    column after the last is the first again, so the output is one period too.
    """
    columns = mel_amplitudes.shape[-1]
    positions = np.arange(num_columns) * (columns / num_columns)
    left = np.floor(positions).astype(int)
    weight = positions - left
    right = (left + 1) % columns
    return mel_amplitudes[..., left] * (1 - weight) + mel_amplitudes[..., right] * weight
