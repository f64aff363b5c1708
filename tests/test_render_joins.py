"""Seamless joins (riffusion.stitch, Stitcher) and the boundary artefact figure measuring them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import riffusion
from riffusion import Audio, RiffusionError, SpectrogramImageConverter
from riffusion.render.joins import MARGIN_COLUMNS, Stitcher, stitch, with_pre_roll
from riffusion.spectrogram.image import image_from_mel_amplitudes
from riffusion.testing.join_metrics import (
    join_artefacts,
    looped_concatenation,
    plain_concatenation,
    uncut_reconstruction,
)

CONVERTER = SpectrogramImageConverter()
HOP = CONVERTER.params.hop_length
# How much better than plain concatenation the joins must be, dB.
TARGET_DB = 10.0
# Loops as interpolate and jam place them: each after the first with a pre-roll of its own end.
LOOP_COLUMNS = 64
PRE_ROLL = 20


def _cut(audio: Audio, width: int, overlap: int) -> tuple[list[np.ndarray], list[int]]:
    """Overlapping clips of audio, each turned into a spectrogram from its own samples."""
    starts = list(range(0, audio.num_frames // HOP - width + 1, width - overlap))
    clips = [
        CONVERTER.mel_amplitudes_from_audio(
            Audio(audio.samples[:, start * HOP : (start + width) * HOP], audio.sample_rate)
        )[..., :width]
        for start in starts
    ]
    return clips, starts


def _chord(seconds: float, amplitude: float = 0.2) -> Audio:
    time = np.arange(round(seconds * 44100)) / 44100
    samples = sum(np.sin(2 * np.pi * f * time) for f in (220.0, 277.2, 329.6, 440.0))
    return Audio((amplitude / 4 * samples).astype(np.float32), 44100)


def test_stitch_is_exported() -> None:
    assert riffusion.stitch is stitch


def test_the_figure_hears_a_click() -> None:
    audio = _chord(2.0)
    clicked = audio.samples.copy()
    clicked[:, 44100:] *= -1  # a phase flip: a step in the waveform
    joins = [44100]
    smooth = join_artefacts(audio, joins)
    assert abs(smooth.mean_db) < 3
    assert join_artefacts(Audio(clicked, 44100), joins).mean_db > smooth.mean_db + 30


def test_the_figure_after_a_place_hears_only_what_follows_it() -> None:
    # A click 5 ms after a place: the 10 ms starting there hear it, the 10 ms ending there do not.
    audio = _chord(2.0)
    clicked = audio.samples.copy()
    clicked[:, 44100 + 220 :] *= -1
    clicked_audio = Audio(clicked, 44100)
    after = join_artefacts(clicked_audio, [44100], window_s=0.01, after=True)
    before = join_artefacts(clicked_audio, [44100 - 441], window_s=0.01, after=True)
    assert after.mean_db > 30
    assert abs(before.mean_db) < 3
    assert abs(join_artefacts(audio, [44100], window_s=0.01, after=True).mean_db) < 3


def test_the_figure_refuses_what_it_cannot_measure() -> None:
    audio = _chord(1.0)
    with pytest.raises(RiffusionError, match="no joins"):
        join_artefacts(audio, [])
    with pytest.raises(RiffusionError, match="inside the audio"):
        join_artefacts(audio, [10])
    with pytest.raises(RiffusionError, match="before the end"):
        join_artefacts(audio, [audio.num_frames - 500], after=True)


def test_stitch_beats_concatenation_on_real_music(reference_dir: Path) -> None:
    # The reference clip cut into consecutive clips of 0.64 s, each a spectrogram of its own.
    music = Audio.load(reference_dir / "clip.wav").to_mono()
    clips, starts = _cut(music, width=64, overlap=0)
    assert len(starts) == 8
    concatenated, joins = plain_concatenation(clips, starts)
    stitched = stitch(clips, starts)
    assert stitched.num_frames == concatenated.num_frames == 8 * 64 * HOP
    naive = join_artefacts(concatenated, joins)
    joined = join_artefacts(stitched, joins)
    assert joined.mean_db <= naive.mean_db - TARGET_DB, (joined, naive)
    # As good as no join at all: the music reconstructed in one piece, measured at the same places.
    whole = CONVERTER.mel_amplitudes_from_audio(music)[..., : 8 * 64]
    uncut = join_artefacts(CONVERTER.audio_from_mel_amplitudes(whole), joins)
    assert joined.mean_db <= uncut.mean_db + 1.5, (joined, uncut)


def test_stitch_joins_different_sounds_without_clicks() -> None:
    # Two unrelated sounds back to back (as generated clips can be): no overlap to hide in.
    rng = np.random.default_rng(1)
    noise = Audio((0.05 * rng.standard_normal(64 * HOP)).astype(np.float32), 44100)
    clips = [CONVERTER.mel_amplitudes_from_audio(_chord(0.64))[..., :64]]
    clips.append(CONVERTER.mel_amplitudes_from_audio(noise)[..., :64])
    clips.append(clips[0])
    concatenated, joins = plain_concatenation(clips, [0, 64, 128])
    stitched = stitch(clips)
    assert join_artefacts(stitched, joins).mean_db <= (
        join_artefacts(concatenated, joins).mean_db - TARGET_DB
    )


def _loop(frequencies: tuple[float, ...], seed: int) -> np.ndarray:
    """A 0.64 s loop as mel amplitudes (1, 512, 64): a chord over faint noise with a tick on each
    of its 4 beats (an eighth after the beat, so none sits on the boundary), analysed as it
    repeats, so that its spectrogram wraps around seamlessly."""
    rng = np.random.default_rng(seed)
    length = LOOP_COLUMNS * HOP
    time = np.arange(length) / 44100
    samples = 0.003 * rng.standard_normal(length)
    for frequency in frequencies:
        samples += 0.05 * np.sin(2 * np.pi * frequency * time + rng.uniform(0, 2 * np.pi))
    tick = 0.1 * rng.standard_normal(2000) * np.exp(-np.arange(2000) / 300)
    for beat in range(4):
        at = beat * length // 4 + length // 8
        samples[at : at + tick.size] += tick
    repeated = Audio(np.tile(samples, 3)[None].astype(np.float32), 44100)
    return CONVERTER.mel_amplitudes_from_audio(repeated)[..., LOOP_COLUMNS : 2 * LOOP_COLUMNS]


def _placed_as_loops(loops: list[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
    """The loops with their pre-rolls and start columns, as riffusion.render.engine.loop_plan
    places them: every crossfade ends on the next loop's first column."""
    clips = [with_pre_roll(loop, PRE_ROLL if index else 0) for index, loop in enumerate(loops)]
    starts = [index * LOOP_COLUMNS - (PRE_ROLL if index else 0) for index in range(len(loops))]
    return clips, starts


def _at_loop_joins(audio: Audio, num_loops: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-join figures (dB) at the loop boundaries and at the middle of the crossfades before
    them, against one set of reference windows."""
    boundaries = [index * LOOP_COLUMNS * HOP for index in range(1, num_loops)]
    middles = [boundary - PRE_ROLL // 2 * HOP for boundary in boundaries]
    per_join = np.array(join_artefacts(audio, boundaries + middles).per_join_db)
    return per_join[: num_loops - 1], per_join[num_loops - 1 :]


def test_loops_join_at_the_no_join_floor() -> None:
    # Three different chords, as an interpolation or a jam changes from loop to loop: their
    # waveforms cannot meet at the boundaries, so concatenation clicks whatever the reconstruction.
    chords = [(220.0, 277.2, 329.6), (246.9, 311.1, 370.0), (196.0, 246.9, 293.7)]
    loops = [_loop(chord, index) for index, chord in enumerate(chords)]
    butted = [index * LOOP_COLUMNS for index in range(len(loops))]
    clips, starts = _placed_as_loops(loops)
    stitched = _at_loop_joins(stitch(clips, starts), len(loops))
    concatenated = _at_loop_joins(plain_concatenation(loops, butted)[0], len(loops))
    floor = _at_loop_joins(uncut_reconstruction(loops, butted)[0], len(loops))
    own_floor = _at_loop_joins(uncut_reconstruction(clips, starts, crossfade=True)[0], len(loops))
    # Every method is measured at both places: where the loops meet, and in stitch's crossfade.
    worst = [np.maximum(*figures) for figures in (stitched, concatenated, floor)]
    assert worst[1].mean() - worst[0].mean() >= TARGET_DB, (stitched, concatenated)
    # Near the butted loops uncut (the crossfade mixes two chords where they change at once)...
    assert worst[0].mean() <= worst[2].mean() + 3.0, (stitched, floor)
    # ...and as clean as its own spectrogram reconstructed in one piece, at both places.
    for place in (0, 1):
        assert stitched[place].mean() <= own_floor[place].mean() + 1.0, (stitched, own_floor)


def test_a_loop_on_repeat_is_as_seamless_as_uncut() -> None:
    loop = _loop((220.0, 277.2, 329.6), 0)
    clips, starts = _placed_as_loops([loop] * 3)
    butted = [0, LOOP_COLUMNS, 2 * LOOP_COLUMNS]
    at_boundary = _at_loop_joins(stitch(clips, starts), 3)[0]
    uncut = _at_loop_joins(uncut_reconstruction([loop] * 3, butted)[0], 3)[0]
    concatenated = _at_loop_joins(plain_concatenation([loop] * 3, butted)[0], 3)[0]
    assert at_boundary.max() <= uncut.max() + 1.0, (at_boundary, uncut)
    assert concatenated.mean() >= at_boundary.mean() + TARGET_DB, (concatenated, at_boundary)


def test_the_floor_and_the_baselines_join_where_the_clips_do() -> None:
    loop = _loop((220.0, 277.2, 329.6), 0)
    audio, joins = uncut_reconstruction([loop, loop], [0, 54])
    assert joins == [59 * HOP] and audio.num_frames == 118 * HOP
    audio, joins = uncut_reconstruction([loop, loop], [0, 54], crossfade=True)
    assert joins == [59 * HOP] and audio.num_frames == 118 * HOP
    audio, joins = looped_concatenation([loop, loop[..., :32]])
    assert joins == [64 * HOP] and audio.num_frames == 96 * HOP
    # Cut as plain concatenation cuts: the same join positions.
    assert plain_concatenation([loop, loop], [0, 54])[1] == [59 * HOP]


def test_loudness_is_matched_at_the_join() -> None:
    chord = CONVERTER.mel_amplitudes_from_audio(_chord(1.28))[..., :128]
    quiet, loud = chord, chord * 2.0  # 6 dB apart
    window = 5 * HOP

    def step_db(audio: Audio, join: int) -> float:
        before = np.sqrt(np.mean(audio.samples[:, join - window - 2 * HOP : join - 2 * HOP] ** 2))
        after = np.sqrt(np.mean(audio.samples[:, join + 2 * HOP : join + window + 2 * HOP] ** 2))
        return 20 * np.log10(after / before)

    matched = stitch([quiet, loud], [0, 108])
    unmatched = stitch([quiet, loud], [0, 108], match_loudness=False)
    join = 118 * HOP
    # Measured inside the 20-column crossfade, the 6 dB step shows as about 4 dB.
    assert step_db(unmatched, join) > 3.5
    assert abs(step_db(matched, join)) < 1.0
    # The loud clip relaxes to its own level by its end.
    end = matched.samples[:, -30 * HOP : -10 * HOP]
    reference = unmatched.samples[:, -30 * HOP : -10 * HOP]
    assert np.sqrt(np.mean(end**2)) == pytest.approx(np.sqrt(np.mean(reference**2)), rel=0.1)


def test_stereo_channels_stay_coherent() -> None:
    # A chord panned left: the right channel at half the left's amplitude, in phase.
    chord = CONVERTER.mel_amplitudes_from_audio(_chord(0.64))[..., :64]
    panned = np.concatenate([chord, 0.5 * chord])
    audio = stitch([panned, panned, panned], [0, 54, 108])
    left, right = audio.samples[:, 10 * HOP : -10 * HOP].astype(np.float64)
    assert np.sum(left * right) / np.sqrt(np.sum(left**2) * np.sum(right**2)) > 0.99
    assert np.sqrt(np.mean(left**2) / np.mean(right**2)) == pytest.approx(2.0, rel=0.05)


def test_the_stitcher_delivers_as_it_goes() -> None:
    clip = CONVERTER.mel_amplitudes_from_audio(_chord(0.64))[..., :64]
    stitcher = Stitcher(max_overlap_columns=10)
    first = stitcher.add(clip)
    # All but the part the next clip may change, and a margin before it.
    assert first.num_frames == (64 - 10 - MARGIN_COLUMNS) * HOP
    second = stitcher.add(clip, 54)
    assert second.num_frames == 54 * HOP
    rest = stitcher.finish()
    assert first.num_frames + second.num_frames + rest.num_frames == 118 * HOP
    assert stitcher.joins == (59 * HOP,)
    assert stitcher.num_clips == 2 and stitcher.num_columns == 118
    with pytest.raises(RiffusionError, match="finished"):
        stitcher.add(clip)


def test_stitch_takes_images() -> None:
    mel = CONVERTER.mel_amplitudes_from_audio(_chord(0.64))[..., :64]
    image = image_from_mel_amplitudes(mel, CONVERTER.params)
    audio = stitch([image, image])
    assert audio.num_frames == 128 * HOP and audio.sample_rate == 44100


@pytest.mark.parametrize(
    ("start", "clip", "message"),
    [
        (70, np.ones((1, 512, 64), np.float32), "gap"),
        (40, np.ones((1, 512, 64), np.float32), "at most 10"),
        (60, np.ones((2, 512, 64), np.float32), "channels"),
        (60, np.ones((1, 256, 64), np.float32), "shaped"),
        (60, -np.ones((1, 512, 64), np.float32), "non-negative"),
    ],
)
def test_bad_clips(start: int, clip: np.ndarray, message: str) -> None:
    stitcher = Stitcher(max_overlap_columns=10)
    stitcher.add(np.ones((1, 512, 64), np.float32))
    with pytest.raises(RiffusionError, match=message):
        stitcher.add(clip, start)


def test_nothing_to_stitch() -> None:
    with pytest.raises(RiffusionError, match="no clips"):
        stitch([])
    assert Stitcher().finish().num_frames == 0


@pytest.mark.parametrize("as_tensor", [False, True])
def test_the_stitcher_leaves_its_clips_alone(as_tensor: bool) -> None:
    # Clips so short that the second is blended in before any audio is delivered.
    mel = CONVERTER.mel_amplitudes_from_audio(_chord(0.3))[..., :30]
    clips = [mel.copy(), 0.5 * mel]
    given = [torch.from_numpy(clip) for clip in clips] if as_tensor else clips
    audio = stitch(given, [0, 15], match_loudness=False)
    assert audio.num_frames == 45 * HOP
    assert np.array_equal(clips[0], mel) and np.array_equal(clips[1], 0.5 * mel)
