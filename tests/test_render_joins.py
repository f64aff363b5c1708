"""Seamless joins (riffusion.stitch, Stitcher) and the boundary artefact figure measuring them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import riffusion
from riffusion import Audio, RiffusionError, SpectrogramImageConverter
from riffusion.render.joins import MARGIN_COLUMNS, Stitcher, stitch
from riffusion.render.metrics import join_artefacts, plain_concatenation
from riffusion.spectrogram.image import image_from_mel_amplitudes

CONVERTER = SpectrogramImageConverter()
HOP = CONVERTER.params.hop_length
# How much better than plain concatenation the joins must be, dB.
TARGET_DB = 10.0


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


def test_the_figure_refuses_what_it_cannot_measure() -> None:
    audio = _chord(1.0)
    with pytest.raises(RiffusionError, match="no joins"):
        join_artefacts(audio, [])
    with pytest.raises(RiffusionError, match="inside the audio"):
        join_artefacts(audio, [10])


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
    assert step_db(unmatched, join) > 4.0
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
