"""Plans of the long-form commands, the beat grid and the riff's clip source; no model needed."""

from __future__ import annotations

import numpy as np
import pytest

from riffusion import Audio, PromptInput, RiffusionError
from riffusion.jam import JamSettings
from riffusion.render.engine import LoopSource, loop_plan
from riffusion.render.longform import (
    BeatGrid,
    TrackSource,
    beat_grid,
    clip_width,
    interpolation_alphas,
    jam_inputs,
    plan_interpolation,
    plan_jam,
    plan_riff,
    riff_starts,
)
from riffusion.seeds import load_seed_image
from riffusion.spectrogram.converter import SpectrogramImageConverter
from riffusion.spectrogram.image import mel_amplitudes_from_image
from riffusion.spectrogram.params import SpectrogramParams

PARAMS = SpectrogramParams()
HOP = PARAMS.hop_length
PROMPT = PromptInput("jazz", seed=1, denoising=0.5)


def test_clip_width_takes_multiples_of_64_columns() -> None:
    assert clip_width(5.12, PARAMS) == 512
    assert clip_width(0.64, PARAMS) == 64
    for bad in (5.0, 0.0, -1.28):
        with pytest.raises(RiffusionError, match=r"multiple of 0\.64 s"):
            clip_width(bad, PARAMS)


def test_riff_plan_covers_the_track_to_the_sample() -> None:
    num_samples = 10 * 44100 + 123  # not a whole number of columns
    plan = plan_riff(num_samples, PARAMS, 512, 20, PROMPT)
    starts = [clip.start for clip in plan.clips]
    assert starts == list(range(0, starts[-1] + 1, 492))
    assert plan.clip_end(plan.clips[-1]) * HOP >= num_samples
    assert plan.clip_end(plan.clips[-2]) * HOP < num_samples
    assert plan.num_samples == num_samples
    assert plan.samples_after(len(plan.clips)) == num_samples
    assert plan.samples_after(1) == 512 * HOP
    assert plan.join_samples() == [(start + 10) * HOP for start in starts[1:]]
    assert all(clip.inputs.alpha == 0.0 for clip in plan.clips)
    assert [clip.source_start for clip in plan.clips] == starts


def test_riff_plan_interpolates_along_the_track() -> None:
    end = PromptInput("rock", seed=2, denoising=0.7)
    plan = plan_riff(44100 * 4, PARAMS, 128, 20, PROMPT, end, num_inference_steps=5)
    alphas = [clip.inputs.alpha for clip in plan.clips]
    assert alphas[0] == 0.0 and alphas[-1] == 1.0
    assert np.all(np.diff(alphas) > 0)
    assert all(clip.inputs.end == end for clip in plan.clips)


def test_a_track_shorter_than_a_clip_is_one_clip() -> None:
    plan = plan_riff(1000, PARAMS, 512, 20, PROMPT)
    assert len(plan.clips) == 1 and plan.num_samples == 1000


def test_riff_overlaps_end_on_beats() -> None:
    beats = BeatGrid(bpm=123.0, first_beat_s=0.21)
    period = 6000 / 123.0  # columns
    plan = plan_riff(3000 * HOP, PARAMS, 512, 20, PROMPT, beats=beats)
    for previous, clip in zip(plan.clips, plan.clips[1:], strict=False):
        takeover = plan.clip_end(previous)
        assert takeover - clip.start == 20  # the clip before is cut where the overlap ends
        beat = (takeover - 21) / period
        assert abs(beat - round(beat)) * period <= 0.5 + 1e-9  # on a beat, to the column
        assert previous.start + 512 - period - 1 < takeover <= previous.start + 512
    assert plan.clip_end(plan.clips[-1]) == plan.clips[-1].start + 512 >= 3000


def test_overlap_limits() -> None:
    with pytest.raises(RiffusionError, match="overlap"):
        riff_starts(1000, 128, 65, PARAMS)


def test_beat_grid_finds_the_phase_of_a_click_track() -> None:
    sample_rate, bpm, first = 44100, 120.0, 0.13
    samples = np.zeros(6 * sample_rate, dtype=np.float32)
    for beat in np.arange(first, 6.0, 60.0 / bpm):
        start = round(beat * sample_rate)
        samples[start : start + 200] = np.hanning(200)
    grid = beat_grid(Audio(samples, sample_rate), bpm)
    assert grid.bpm == bpm
    # Spectral flux rises as a click enters the 46 ms analysis window, so the grid sits a little
    # before the clicks: overlaps end just before the transient, which is where they should.
    assert first - 0.025 <= grid.first_beat_s <= first


def test_interpolation_alphas() -> None:
    assert interpolation_alphas(5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert interpolation_alphas(3, 2.0) == [0.0, 0.25, 1.0]
    assert interpolation_alphas(1) == [0.0]
    with pytest.raises(RiffusionError):
        interpolation_alphas(0)
    with pytest.raises(RiffusionError):
        interpolation_alphas(3, 0.0)


def test_loop_plan_places_whole_loops_with_pre_rolls() -> None:
    end = PromptInput("rock", seed=2)
    plan = plan_interpolation(PROMPT, end, [0.0, 0.5, 1.0], 512, PARAMS)
    assert [clip.start for clip in plan.clips] == [0, 512 - 20, 1024 - 20]
    assert [clip.pre_roll for clip in plan.clips] == [0, 20, 20]
    assert [plan.clip_end(clip) for clip in plan.clips] == [512, 1024, 1536]
    assert plan.num_samples == 1536 * HOP
    assert plan.join_samples() == [502 * HOP, 1014 * HOP]
    assert [clip.inputs.alpha for clip in plan.clips] == [0.0, 0.5, 1.0]
    with pytest.raises(RiffusionError):
        loop_plan([], 512, 20, PARAMS)


def test_jam_spreads_the_prompts_over_the_set() -> None:
    settings = JamSettings(alpha_velocity=0.25)
    inputs = jam_inputs(["a", "b", "c"], 24, seed=5, settings=settings)
    assert len(inputs) == 24
    assert inputs[0].start.prompt == "a" and inputs[0].start.seed == 5
    heading = [clip.end.prompt for clip in inputs]
    first_seen = [heading.index(prompt) for prompt in "abc"]
    assert first_seen == sorted(first_seen)
    assert heading[-1] == "c"


def test_jam_plan_is_as_long_as_asked() -> None:
    plan = plan_jam(["a"], 12.0, 0, JamSettings(), 512, PARAMS)
    assert plan.num_samples == 12 * 44100
    assert len(plan.clips) == 3  # 2 loops of 5.12 s are too short
    with pytest.raises(RiffusionError, match="positive"):
        plan_jam(["a"], 0.0, 0, JamSettings(), 512, PARAMS)


def _stereo_track(seconds: float = 1.5) -> Audio:
    """A tone hard left, noise hard right, a tone in the middle."""
    time = np.arange(round(seconds * 44100)) / 44100
    rng = np.random.default_rng(0)
    centre = 0.2 * np.sin(2 * np.pi * 220 * time)
    left = centre + 0.3 * np.sin(2 * np.pi * 880 * time)
    right = centre + 0.05 * rng.standard_normal(len(time))
    return Audio(np.stack([left, right]).astype(np.float32), 44100)


def test_track_source_gives_back_the_track_when_the_image_is_unchanged() -> None:
    track = _stereo_track()
    plan = plan_riff(track.num_frames, PARAMS, 64, 16, PROMPT)
    source = TrackSource(track, PARAMS, 64, "pan")
    clip = plan.clips[1]
    image = source.init_image(clip)
    mel = source.clip_mel(clip, image)
    assert mel.shape == (2, 512, 64)
    # The track's own left and right spectrograms there, analysed with 20 columns either side.
    piece = track.samples[:, (clip.start - 20) * HOP : (clip.start + 84) * HOP]
    converter = SpectrogramImageConverter(PARAMS.with_changes(stereo=True))
    expected = converter.mel_amplitudes_from_audio(Audio(piece, 44100))[..., 20:84]
    # The 880 Hz tone is in the left channel only, and comes back there.
    row = int(np.argmax(expected[0].mean(axis=1) - expected[1].mean(axis=1)))
    assert mel[0, row].mean() > 10 * mel[1, row].mean()
    assert mel[0, row].mean() == pytest.approx(expected[0, row].mean(), rel=0.1)
    # Read back at the init image's MAX_VALUE, the level is the track's: the mean of left and
    # right is the image's mid channel, to within the 8-bit quantisation.
    mid = mel_amplitudes_from_image(image, PARAMS)
    assert np.allclose(mel.mean(axis=0), mid[0], rtol=1e-4, atol=1e-3 * mid.max())


def test_track_source_mono() -> None:
    track = _stereo_track()
    source = TrackSource(track, PARAMS, 64, "mono")
    plan = plan_riff(track.num_frames, PARAMS, 64, 16, PROMPT)
    clip = plan.clips[1]
    mel = source.clip_mel(clip, source.init_image(clip))
    assert mel.shape == (1, 512, 64)
    # The spectrogram of the track mixed down to mono there (20 columns either side analysed
    # with it), to within the image's 8-bit quantisation: one gray level of power 0.25.
    piece = track.samples[:, (clip.start - 20) * HOP : (clip.start + 84) * HOP]
    mixed = Audio(piece.mean(axis=0, keepdims=True), 44100)
    expected = SpectrogramImageConverter(PARAMS).mel_amplitudes_from_audio(mixed)[..., 20:84]
    levels = [(amplitudes / expected.max()) ** 0.25 * 255 for amplitudes in (mel, expected)]
    assert np.abs(levels[0] - levels[1]).max() <= 1.0 + 1e-3


def test_loops_play_at_their_seed_tempo() -> None:
    # arpeggio: 12 beats at 120 BPM, drawn 576 columns wide at 125 BPM; played 600 columns long.
    seed = load_seed_image("arpeggio")
    source = LoopSource(seed, PARAMS)
    assert (seed.width, source.loop_columns) == (576, 600)
    plan = plan_interpolation(PROMPT, PROMPT, [0.0, 1.0], source.loop_columns, PARAMS)
    first, second = (source.clip_mel(clip, seed) for clip in plan.clips)
    assert first.shape == (1, 512, 600)
    # The second loop comes with its own last 20 columns before it.
    assert second.shape == (1, 512, 620)
    assert np.array_equal(second[..., :20], first[..., -20:])
    assert plan.num_samples == 1200 * HOP
