"""Keys, scales and diatonic chords: just enough music theory to voice the built-in patterns."""

from __future__ import annotations

import re
from dataclasses import dataclass

from riffusion.errors import RiffusionError

# Semitones above the tonic of each scale step.
_MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)
_MINOR_STEPS = (0, 2, 3, 5, 7, 8, 10)

_PITCH_CLASSES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_KEY_PATTERN = re.compile(
    r"^\s*([a-g])\s*([#b]?)\s*(m|min|minor|maj|major)?\s*$", flags=re.IGNORECASE
)


@dataclass(frozen=True)
class Key:
    """A major or natural minor key.

    Attributes:
        tonic: pitch class of the tonic, 0 (C) to 11 (B).
        minor: natural minor instead of major.
    """

    tonic: int
    minor: bool = False

    @classmethod
    def parse(cls, text: str) -> Key:
        """Key from text such as "C", "A minor", "Am", "F#m", "Bb major"."""
        match = _KEY_PATTERN.match(text)
        if match is None:
            raise RiffusionError(
                f"unreadable key {text!r}: write a note A-G, optionally # or b, then an optional "
                "'major' or 'minor' (e.g. 'C', 'A minor', 'F#m', 'Bb major')"
            )
        letter, accidental, quality = match.groups()
        # "b" right after the letter is a flat: "Bb" is B flat; "bm" is B minor.
        tonic = _PITCH_CLASSES[letter.lower()] + {"#": 1, "b": -1, "": 0}[accidental]
        minor = quality is not None and quality.lower() in ("m", "min", "minor")
        return cls(tonic % 12, minor)

    @property
    def name(self) -> str:
        names = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
        return f"{names[self.tonic]} {'minor' if self.minor else 'major'}"

    def midi_note(self, degree: int, octave: int = 4) -> int:
        """MIDI note of scale degree (1 = tonic, 8 = tonic an octave up, 0 or less go down).

        octave: the octave of the tonic in scientific pitch notation (C4 = MIDI 60).
        """
        steps = _MINOR_STEPS if self.minor else _MAJOR_STEPS
        octaves, index = divmod(degree - 1, 7)
        return 12 * (octave + 1 + octaves) + self.tonic + steps[index]

    def chord(self, degree: int, size: int = 3, octave: int = 4) -> tuple[int, ...]:
        """MIDI notes of the diatonic chord on scale degree: root, third, fifth (, seventh, ...)."""
        return tuple(self.midi_note(degree + 2 * voice, octave) for voice in range(size))


def midi_to_hz(note: float) -> float:
    """Frequency (Hz) of a MIDI note number in equal temperament, A4 = 69 = 440 Hz."""
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)
