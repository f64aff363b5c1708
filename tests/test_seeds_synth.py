"""The synthesizer, scores and patterns: sounds, circular mixing, keys, and loops without clicks."""

from __future__ import annotations

import numpy as np
import pytest

from riffusion.errors import RiffusionError
from riffusion.seeds import synth
from riffusion.seeds.harmony import Key, midi_to_hz
from riffusion.seeds.patterns import PATTERNS, get_pattern, render_pattern
from riffusion.seeds.score import Score
from riffusion.seeds.timing import choose_timing

SAMPLE_RATE = 44100


@pytest.fixture(scope="module")
def loops() -> dict[str, np.ndarray]:
    """Every built-in pattern's loop at its default tempo, mono samples."""
    rendered = {}
    for pattern in PATTERNS.values():
        timing = choose_timing(pattern.bpm, pattern.beats_per_bar)
        audio = render_pattern(pattern, timing.beats, timing.num_samples)
        assert audio.num_frames == timing.num_samples
        rendered[pattern.id] = audio.samples[0].astype(np.float64)
    return rendered


def wrap_jump_and_typical_step(samples: np.ndarray) -> tuple[float, float]:
    """|last -> first| sample change, and the 90th percentile of the clip's |sample changes|."""
    return abs(samples[0] - samples[-1]), float(np.percentile(np.abs(np.diff(samples)), 90))


def test_at_least_eight_patterns_with_metadata() -> None:
    assert len(PATTERNS) >= 8
    assert "og_beat" in PATTERNS
    for pattern in PATTERNS.values():
        assert pattern.description and 60 <= pattern.bpm <= 180
        assert pattern.meter in ("3/4", "4/4")
        Key.parse(pattern.key)
    assert {pattern.meter for pattern in PATTERNS.values()} == {"3/4", "4/4"}


@pytest.mark.parametrize("pattern_id", list(PATTERNS))
def test_loops_wrap_without_a_click(loops: dict[str, np.ndarray], pattern_id: str) -> None:
    jump, typical = wrap_jump_and_typical_step(loops[pattern_id])
    assert jump <= typical


def test_the_click_criterion_catches_a_tone_cut_mid_cycle() -> None:
    # A 110 Hz tone cut 0.3 of a cycle past a whole number of cycles clicks at the wrap.
    times = np.arange(round((20 + 0.3) / 110 * SAMPLE_RATE)) / SAMPLE_RATE
    jump, typical = wrap_jump_and_typical_step(np.sin(2 * np.pi * 110 * times))
    assert jump > 10 * typical


def test_loops_are_deterministic(loops: dict[str, np.ndarray]) -> None:
    pattern = get_pattern("og_beat")
    again = render_pattern(pattern, 8, len(loops["og_beat"])).samples[0]
    np.testing.assert_allclose(again, loops["og_beat"], atol=1e-6)
    other_seed = render_pattern(pattern, 8, len(loops["og_beat"]), seed=1).samples[0]
    assert not np.allclose(other_seed, loops["og_beat"], atol=1e-3)


def test_render_pattern_bad_seed_and_unknown_pattern() -> None:
    with pytest.raises(RiffusionError, match="seed"):
        render_pattern(get_pattern("og_beat"), 4, 1000, seed=-1)
    with pytest.raises(RiffusionError, match="og_beat"):
        get_pattern("polka")


@pytest.mark.parametrize(
    "voice",
    [
        lambda rng: synth.kick(SAMPLE_RATE, rng),
        lambda rng: synth.snare(SAMPLE_RATE, rng),
        lambda rng: synth.clap(SAMPLE_RATE, rng),
        lambda rng: synth.hat(SAMPLE_RATE, rng),
        lambda rng: synth.ride(SAMPLE_RATE, rng),
        lambda rng: synth.tom(SAMPLE_RATE, rng),
        lambda rng: synth.rim(SAMPLE_RATE, rng),
        lambda rng: synth.shaker(SAMPLE_RATE, rng),
        lambda rng: synth.bass(SAMPLE_RATE, 55.0, 0.3),
        lambda rng: synth.pad(SAMPLE_RATE, (220.0, 277.2), 0.5, rng),
        lambda rng: synth.keys(SAMPLE_RATE, (261.6, 329.6), 0.3),
        lambda rng: synth.pluck(SAMPLE_RATE, 440.0, 0.2),
        lambda rng: synth.marimba(SAMPLE_RATE, 392.0, 0.2),
        lambda rng: synth.vibraphone(SAMPLE_RATE, 349.2, 1.0),
        lambda rng: synth.lead(SAMPLE_RATE, 659.3, 0.3),
    ],
)
def test_every_voice_starts_and_ends_at_silence(voice) -> None:
    sound = voice(np.random.default_rng(0))
    assert sound.ndim == 1 and len(sound) > 100
    assert np.isfinite(sound).all() and 0.05 < np.abs(sound).max() < 4.0
    assert sound[0] == 0.0 and abs(sound[-1]) < 1e-6


def test_loop_mixer_wraps_tails_and_folds_long_sounds() -> None:
    mixer = synth.LoopMixer(10)
    mixer.add(np.arange(1.0, 5.0), start=8)
    np.testing.assert_array_equal(mixer.samples, [3, 4, 0, 0, 0, 0, 0, 0, 1, 2])
    mixer = synth.LoopMixer(4)
    mixer.add(np.ones(10), start=1)
    assert mixer.samples.sum() == 10 and set(mixer.samples) == {2.0, 3.0}


def test_circular_reverb_keeps_a_loop_periodic() -> None:
    rng = np.random.default_rng(0)
    loop = np.zeros(SAMPLE_RATE)
    loop[-100:] = np.hanning(100)  # a blip right before the wrap
    wet = synth.circular_reverb(loop, SAMPLE_RATE, rng, decay_s=0.5, wet=0.5)
    # The blip's tail rings into the start of the loop, not off its end.
    assert np.abs(wet[:2000]).max() > 1e-3


@pytest.mark.parametrize(
    ("text", "tonic", "minor"),
    [
        ("C", 0, False),
        ("A minor", 9, True),
        ("am", 9, True),
        ("F#m", 6, True),
        ("Bb major", 10, False),
        ("bb", 10, False),
        ("Bm", 11, True),
        (" e  min ", 4, True),
    ],
)
def test_key_parse(text: str, tonic: int, minor: bool) -> None:
    assert Key.parse(text) == Key(tonic, minor)


@pytest.mark.parametrize("text", ["", "H", "C minor major", "C##", "do"])
def test_key_parse_refuses_nonsense(text: str) -> None:
    with pytest.raises(RiffusionError, match="key"):
        Key.parse(text)


def test_scales_and_chords() -> None:
    c_major, a_minor = Key(0), Key(9, True)
    assert c_major.midi_note(1, 4) == 60 and c_major.midi_note(8, 4) == 72
    assert c_major.chord(5, 4) == (67, 71, 74, 77)  # G7
    assert a_minor.chord(1) == (69, 72, 76)  # A minor triad
    assert a_minor.midi_note(0, 4) == 67  # degree 0: the seventh below the tonic
    assert midi_to_hz(69) == 440.0


def test_score_grids_place_notes_in_beats() -> None:
    score = Score(Key(0), beats_per_bar=4, beats=8, steps_per_beat=4, progression=(1, 5))
    score.hits("kick", "X...x...o...x...")
    assert [note.beat for note in score.notes] == [0, 1, 2, 3, 4, 5, 6, 7]
    assert [note.velocity for note in score.notes[:4]] == [1.0, 0.7, 0.35, 0.7]
    score.notes.clear()
    score.line("bass", "1-.5............", octave=2)
    # Bar 2's chord is on degree 5 (G), so its "1" is G and its "5" is D.
    assert [(note.beat, note.pitches, note.length) for note in score.notes] == [
        (0.0, (36,), 0.5),
        (0.75, (43,), 0.25),
        (4.0, (43,), 0.5),
        (4.75, (50,), 0.25),
    ]
    score.notes.clear()
    score.chords("keys", "x---............", octave=4)
    assert score.notes[1].pitches == (67, 71, 74) and score.notes[1].length == 1.0


def test_score_swing_and_partial_bars() -> None:
    score = Score(Key(0), beats_per_bar=4, beats=6, steps_per_beat=2, swing=1 / 3)
    score.hits("hat", "xxxxxxxx")
    beats = [note.beat for note in score.notes]
    assert len(beats) == 12  # a bar and a half
    assert beats[:4] == pytest.approx([0, 2 / 3, 1, 5 / 3])
    with pytest.raises(ValueError, match="bars"):
        score.hits("hat", "xxx")
