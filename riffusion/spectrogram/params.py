"""Spectrogram parameters, with the original riffusion's defaults and EXIF tags."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from enum import IntEnum
from typing import Any

from riffusion.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from riffusion.errors import RiffusionError


class ExifTag(IntEnum):
    """EXIF tag numbers the original riffusion wrote into spectrogram images."""

    SAMPLE_RATE = 11000
    STEREO = 11005
    STEP_SIZE_MS = 11010
    WINDOW_DURATION_MS = 11020
    PADDED_DURATION_MS = 11030
    NUM_FREQUENCIES = 11040
    MIN_FREQUENCY = 11050
    MAX_FREQUENCY = 11060
    POWER_FOR_IMAGE = 11070
    MAX_VALUE = 11080


# Tag -> (field name, type it is stored and read as).
_EXIF_FIELDS: dict[ExifTag, tuple[str, type]] = {
    ExifTag.SAMPLE_RATE: ("sample_rate", int),
    ExifTag.STEREO: ("stereo", int),
    ExifTag.STEP_SIZE_MS: ("step_size_ms", int),
    ExifTag.WINDOW_DURATION_MS: ("window_duration_ms", int),
    ExifTag.PADDED_DURATION_MS: ("padded_duration_ms", int),
    ExifTag.NUM_FREQUENCIES: ("num_frequencies", int),
    ExifTag.MIN_FREQUENCY: ("min_frequency", int),
    ExifTag.MAX_FREQUENCY: ("max_frequency", int),
    ExifTag.POWER_FOR_IMAGE: ("power_for_image", float),
}

#: Field -> (lowest, highest) value accepted, inclusive. Wide enough for any spectrogram worth
#: making (the defaults sit well inside), narrow enough that no combination asks for absurd sizes
#: (an FFT of a billion samples) or arithmetic that overflows. Values read from EXIF are held to
#: them too, so a damaged or hostile image is refused with the tag named.
PARAMETER_RANGES: dict[str, tuple[float, float]] = {
    "sample_rate": (MIN_SAMPLE_RATE, MAX_SAMPLE_RATE),
    "step_size_ms": (1, 1000),
    "window_duration_ms": (1, 1000),
    "padded_duration_ms": (1, 1000),
    "num_frequencies": (1, 4096),
    "min_frequency": (0, MAX_SAMPLE_RATE // 2),
    "max_frequency": (1, MAX_SAMPLE_RATE // 2),
    "power_for_image": (0.01, 10.0),
}
# The stereo flag is stored as the integer 0 or 1.
_EXIF_RANGES = {**PARAMETER_RANGES, "stereo": (0, 1)}


@dataclass(frozen=True)
class SpectrogramParams:
    """How audio maps to a spectrogram image and back.

    Attributes:
        stereo: two channels (image G = left, B = right) instead of one.
        sample_rate: Hz.
        step_size_ms: hop between STFT frames, ms; one image column per step.
        window_duration_ms: Hann window length, ms.
        padded_duration_ms: FFT length, ms (the window is zero-padded to it).
        num_frequencies: mel bins, one image row each.
        min_frequency, max_frequency: mel filterbank range, Hz.
        mel_scale_norm: None or "slaney" (area normalisation of the mel filters).
        mel_scale_type: "htk" or "slaney".
        max_mel_iters: iterations of the original's iterative inverse mel (kept for compatibility).
        num_griffin_lim_iters: Griffin-Lim iterations of the original algorithm.
        power_for_image: exponent applied to normalised amplitudes before quantising to pixels.

    Numeric fields must lie within PARAMETER_RANGES; RiffusionError lists every problem.
    """

    stereo: bool = False
    sample_rate: int = 44100
    step_size_ms: int = 10
    window_duration_ms: int = 100
    padded_duration_ms: int = 400
    num_frequencies: int = 512
    min_frequency: int = 0
    max_frequency: int = 10000
    mel_scale_norm: str | None = None
    mel_scale_type: str = "htk"
    max_mel_iters: int = 200
    num_griffin_lim_iters: int = 32
    power_for_image: float = 0.25

    def __post_init__(self) -> None:
        problems = []
        for name, (low, high) in PARAMETER_RANGES.items():
            value = getattr(self, name)
            if not low <= value <= high:
                problems.append(f"{name} must be between {low:g} and {high:g} (got {value})")
        if self.padded_duration_ms < self.window_duration_ms:
            problems.append(
                f"padded_duration_ms ({self.padded_duration_ms}) must be at least "
                f"window_duration_ms ({self.window_duration_ms})"
            )
        if not 0 <= self.min_frequency < self.max_frequency <= self.sample_rate / 2:
            problems.append(
                "frequencies must satisfy 0 <= min_frequency < max_frequency <= sample_rate / 2 "
                f"(got {self.min_frequency}, {self.max_frequency} at {self.sample_rate} Hz)"
            )
        if self.mel_scale_norm not in (None, "slaney"):
            problems.append(
                f"mel_scale_norm must be None or 'slaney' (got {self.mel_scale_norm!r})"
            )
        if self.mel_scale_type not in ("htk", "slaney"):
            problems.append(
                f"mel_scale_type must be 'htk' or 'slaney' (got {self.mel_scale_type!r})"
            )
        if problems:
            raise RiffusionError("invalid spectrogram parameters: " + "; ".join(problems))

    @property
    def n_fft(self) -> int:
        """FFT length, samples (17640 by default)."""
        return int(self.padded_duration_ms / 1000.0 * self.sample_rate)

    @property
    def win_length(self) -> int:
        """Window length, samples (4410 by default)."""
        return int(self.window_duration_ms / 1000.0 * self.sample_rate)

    @property
    def hop_length(self) -> int:
        """Hop between frames, samples (441 by default)."""
        return int(self.step_size_ms / 1000.0 * self.sample_rate)

    def with_changes(self, **changes: Any) -> SpectrogramParams:
        return replace(self, **changes)

    def to_exif(self) -> dict[int, Any]:
        """EXIF tag -> value, as the original wrote them (MAX_VALUE is added per image)."""
        # The original stored the stereo flag as the integer 0 or 1.
        return {int(tag): kind(getattr(self, name)) for tag, (name, kind) in _EXIF_FIELDS.items()}

    @classmethod
    def from_exif(cls, exif: Mapping[int, Any]) -> SpectrogramParams:
        """Parameters from an image's EXIF.

        Raises:
            RiffusionError: naming any missing tag, any tag whose value is not a finite number
                (a whole one where the field is an integer) within PARAMETER_RANGES, and
                values that do not fit together.
        """
        missing = [tag.name for tag in _EXIF_FIELDS if int(tag) not in exif]
        if missing:
            raise RiffusionError(
                "image has no riffusion spectrogram parameters in its EXIF (missing "
                + ", ".join(missing)
                + ")"
            )
        values: dict[str, Any] = {
            name: _exif_number(tag, exif[int(tag)], whole=kind is int)
            for tag, (name, kind) in _EXIF_FIELDS.items()
        }
        values["stereo"] = bool(values["stereo"])
        try:
            return cls(**values)
        except RiffusionError as error:
            raise RiffusionError(f"EXIF: {error}") from None


def _exif_number(tag: ExifTag, value: Any, whole: bool) -> int | float:
    """value of a parameter tag as a number within its PARAMETER_RANGES (an int when whole)."""
    low, high = _EXIF_RANGES[_EXIF_FIELDS[tag][0]]
    number = exif_number(tag, value, low, high, whole)
    return int(number) if whole else number


def exif_number(tag: ExifTag, value: Any, low: float, high: float, whole: bool = False) -> float:
    """value, as read from EXIF tag, as a finite number from low to high (a whole one when whole).

    Raises:
        RiffusionError: naming the tag and showing the value, for anything else.
    """
    try:
        number = float(value)
    # Pillow hands over ints, floats, rationals, strings, bytes or tuples, as the file says.
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if math.isfinite(number) and low <= number <= high and (number.is_integer() or not whole):
        return number
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    kind = "a whole number" if whole else "a number"
    raise RiffusionError(
        f"EXIF tag {int(tag)} ({tag.name}) must be {kind} from {low:g} to {high:g}, got {shown}"
    )


FIELD_NAMES = tuple(field.name for field in fields(SpectrogramParams))
