"""Scores: notes placed in beats from step-grid strings, and their rendering to a loop of samples.

A grid string is one or more bars of steps, one character per step (spaces are ignored):

    drums   "X" accent, "x" normal, "o" ghost note, "." rest
    lines   "1"-"9" scale degree counted from the bar's chord root (1 root, 3 third, 5 fifth,
            8 octave), "-" holds the previous note, "." rest
    chords  "X", "x", "o" strike the bar's chord, "-" holds it, "." rest

A grid shorter than the loop repeats; a loop shorter than the grid uses its beginning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from riffusion.seeds import synth
from riffusion.seeds.harmony import Key, midi_to_hz

_VELOCITIES = {"X": 1.0, "x": 0.7, "o": 0.35}
# Random velocity variation, as a fraction of the velocity (a drummer is not a machine).
_HUMANIZE = 0.08


@dataclass(frozen=True)
class Note:
    """One sound in a score.

    Attributes:
        voice: name of a voice in VOICES.
        beat: onset, beats from the start of the loop.
        velocity: linear gain, about 0-1.
        pitches: MIDI note numbers (empty for drums).
        length: held duration, beats (0 for drums).
    """

    voice: str
    beat: float
    velocity: float
    pitches: tuple[int, ...] = ()
    length: float = 0.0


@dataclass
class Score:
    """Notes of a loop of beats beats in a meter of beats_per_bar beats.

    Attributes:
        key: key the degrees in line and chord grids refer to.
        beats_per_bar: beats per bar.
        beats: beats in the loop; a last, partial bar plays the beginning of the grids' bar.
        steps_per_beat: grid resolution (4: sixteenth notes, 3: eighth-note triplets).
        progression: scale degree of each bar's chord, repeating (1: tonic chord).
        swing: delay of every second step, as a fraction of a step (1/3 gives a triplet feel).
        notes: the notes added so far.
    """

    key: Key
    beats_per_bar: int
    beats: int
    steps_per_beat: int = 4
    progression: tuple[int, ...] = (1,)
    swing: float = 0.0
    notes: list[Note] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return self.beats * self.steps_per_beat

    def _cells(self, grid: str) -> list[tuple[int, str]]:
        """(step, character) for every step of the loop, the grid repeating to fill it."""
        cells = grid.replace(" ", "")
        steps_per_bar = self.beats_per_bar * self.steps_per_beat
        if not cells or len(cells) % steps_per_bar:
            raise ValueError(f"grid {grid!r} is not a whole number of {steps_per_bar}-step bars")
        return [(step, cells[step % len(cells)]) for step in range(self.steps)]

    def _beat(self, step: int) -> float:
        """Beat position of a grid step, with swing on the odd steps."""
        return (step + (self.swing if step % 2 else 0.0)) / self.steps_per_beat

    def _chord_root(self, step: int) -> int:
        """Scale degree of the chord of the bar containing step."""
        bar = step // (self.beats_per_bar * self.steps_per_beat)
        return self.progression[bar % len(self.progression)]

    def _held_steps(self, cells: list[tuple[int, str]], start: int) -> int:
        """Steps from start through the "-" that follow it."""
        length = 1
        while start + length < len(cells) and cells[start + length][1] == "-":
            length += 1
        return length

    def hits(self, voice: str, grid: str, gain: float = 1.0) -> None:
        """Drum hits of voice on grid (X, x, o)."""
        for step, mark in self._cells(grid):
            if mark in _VELOCITIES:
                self.notes.append(Note(voice, self._beat(step), gain * _VELOCITIES[mark]))

    def line(self, voice: str, grid: str, octave: int, gain: float = 1.0) -> None:
        """A melodic line of voice: degrees from the bar's chord root, held by "-"."""
        cells = self._cells(grid)
        for step, mark in cells:
            if mark.isdigit() and mark != "0":
                degree = self._chord_root(step) + int(mark) - 1
                length = self._held_steps(cells, step) / self.steps_per_beat
                pitch = self.key.midi_note(degree, octave)
                self.notes.append(Note(voice, self._beat(step), gain, (pitch,), length))

    def chords(self, voice: str, grid: str, octave: int, size: int = 3, gain: float = 1.0) -> None:
        """Strikes of the bar's chord (size notes: 3 a triad, 4 a seventh chord) on grid."""
        cells = self._cells(grid)
        for step, mark in cells:
            if mark in _VELOCITIES:
                pitches = self.key.chord(self._chord_root(step), size, octave)
                length = self._held_steps(cells, step) / self.steps_per_beat
                velocity = gain * _VELOCITIES[mark]
                self.notes.append(Note(voice, self._beat(step), velocity, pitches, length))


# Voice name -> function of (sample rate Hz, generator, note, seconds per beat) -> samples.
Voice = Callable[[int, np.random.Generator, Note, float], np.ndarray]


def _pitched(function: Callable[..., np.ndarray]) -> Voice:
    """A voice playing each pitch of the note with function(sample_rate, hz, seconds, velocity)."""

    def voice(sample_rate: int, rng: np.random.Generator, note: Note, beat_s: float) -> np.ndarray:
        sounds = [
            function(sample_rate, midi_to_hz(pitch), note.length * beat_s, note.velocity)
            for pitch in note.pitches
        ]
        mixed = np.zeros(max(len(sound) for sound in sounds))
        for sound in sounds:
            mixed[: len(sound)] += sound
        return mixed

    return voice


def _pad(sample_rate: int, rng: np.random.Generator, note: Note, beat_s: float) -> np.ndarray:
    frequencies = tuple(midi_to_hz(pitch) for pitch in note.pitches)
    return synth.pad(sample_rate, frequencies, note.length * beat_s, rng, note.velocity)


def _keys(sample_rate: int, rng: np.random.Generator, note: Note, beat_s: float) -> np.ndarray:
    frequencies = tuple(midi_to_hz(pitch) for pitch in note.pitches)
    return synth.keys(sample_rate, frequencies, note.length * beat_s, note.velocity)


VOICES: dict[str, Voice] = {
    "kick": lambda sr, rng, note, beat_s: synth.kick(sr, rng, note.velocity),
    "snare": lambda sr, rng, note, beat_s: synth.snare(sr, rng, note.velocity),
    "clap": lambda sr, rng, note, beat_s: synth.clap(sr, rng, note.velocity),
    "hat": lambda sr, rng, note, beat_s: synth.hat(sr, rng, note.velocity),
    "open_hat": lambda sr, rng, note, beat_s: synth.hat(sr, rng, note.velocity, length_s=0.4),
    "ride": lambda sr, rng, note, beat_s: synth.ride(sr, rng, note.velocity),
    "low_tom": lambda sr, rng, note, beat_s: synth.tom(sr, rng, note.velocity, 90.0),
    "high_tom": lambda sr, rng, note, beat_s: synth.tom(sr, rng, note.velocity, 160.0),
    "conga": lambda sr, rng, note, beat_s: synth.tom(sr, rng, note.velocity, 260.0),
    "rim": lambda sr, rng, note, beat_s: synth.rim(sr, rng, note.velocity),
    "shaker": lambda sr, rng, note, beat_s: synth.shaker(sr, rng, note.velocity),
    "bass": _pitched(synth.bass),
    "pluck": _pitched(synth.pluck),
    "marimba": _pitched(synth.marimba),
    "vibraphone": _pitched(synth.vibraphone),
    "lead": _pitched(synth.lead),
    "pad": _pad,
    "keys": _keys,
}


def render_score(
    score: Score,
    num_samples: int,
    sample_rate: int,
    rng: np.random.Generator,
    reverb_wet: float = 0.15,
    reverb_decay_s: float = 1.2,
) -> np.ndarray:
    """The score as one period of a loop of num_samples samples, peak 0.9.

    The tempo follows from the length: score.beats beats in num_samples samples.
    """
    beat_s = num_samples / sample_rate / score.beats
    samples_per_beat = num_samples / score.beats
    mixer = synth.LoopMixer(num_samples)
    for note in score.notes:
        velocity = note.velocity * (1.0 - _HUMANIZE * rng.uniform())
        humanized = Note(note.voice, note.beat, velocity, note.pitches, note.length)
        sound = VOICES[note.voice](sample_rate, rng, humanized, beat_s)
        mixer.add(sound, round(note.beat * samples_per_beat))
    mix = mixer.samples
    if reverb_wet > 0:
        mix = synth.circular_reverb(mix, sample_rate, rng, reverb_decay_s, reverb_wet)
    peak = np.max(np.abs(mix))
    return mix * (0.9 / peak) if peak > 0 else mix
