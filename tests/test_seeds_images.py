"""Seed images: the model's size constraints, tempo tags, wrap-around, users' loops, playback."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from riffusion.audio import Audio
from riffusion.errors import RiffusionError
from riffusion.seeds.builtin import render_loop, render_seed_image, seed_request
from riffusion.seeds.images import (
    ImageTempo,
    fit_loop,
    image_tempo,
    image_timing,
    loop_audio_from_image,
    loop_mel_amplitudes,
    seed_image_from_loop,
)
from riffusion.seeds.patterns import PATTERNS, render_pattern
from riffusion.seeds.tempo import estimate_tempo
from riffusion.seeds.timing import LoopTiming
from riffusion.spectrogram.converter import SpectrogramImageConverter
from riffusion.spectrogram.image import mel_amplitudes_from_image
from riffusion.spectrogram.params import SpectrogramParams

# Few Griffin-Lim iterations: the tests check timing, not sound quality.
QUICK = SpectrogramImageConverter(SpectrogramParams(num_griffin_lim_iters=4))


@pytest.fixture(autouse=True, scope="module")
def seed_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A private image cache, so tests neither read nor fill the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RIFFUSION_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def seed_images() -> dict[str, Image.Image]:
    return {pattern_id: render_seed_image(seed_request(pattern_id)) for pattern_id in PATTERNS}


@pytest.mark.parametrize("pattern_id", list(PATTERNS))
def test_seed_images_meet_the_model_constraints(
    seed_images: dict[str, Image.Image], pattern_id: str
) -> None:
    image = seed_images[pattern_id]
    assert image.mode == "RGB" and image.height == 512 and image.width % 64 == 0
    pattern = PATTERNS[pattern_id]
    tempo = image_tempo(image)
    assert tempo is not None and tempo.bpm == pattern.bpm
    assert tempo.beats % pattern.beats_per_bar == 0  # whole bars
    timing = image_timing(image)
    assert timing is not None and abs(timing.stretch - 1) < 0.065
    assert SpectrogramParams.from_exif(image.getexif()) == SpectrogramParams()
    assert pattern_id in image.getexif()[270]


@pytest.mark.parametrize("pattern_id", ["og_beat", "ambient_pad", "marimba_waltz"])
def test_seed_images_wrap_around(pattern_id: str) -> None:
    # Rotating the loop by half its length rotates the image by half its width: the ends of the
    # image are not special, the spectrogram wraps like the loop does.
    request = seed_request(pattern_id)
    timing = request.timing
    audio = render_pattern(request.pattern, timing.beats, timing.image_num_samples, request.key)
    rotated = Audio(np.roll(audio.samples, timing.image_num_samples // 2, axis=1), 44100)
    image = np.asarray(seed_image_from_loop(audio, timing), dtype=int)
    image_of_rotated = np.asarray(seed_image_from_loop(rotated, timing), dtype=int)
    np.testing.assert_allclose(np.roll(image, timing.width // 2, axis=1), image_of_rotated, atol=1)


def test_a_loop_drawn_to_scale_is_its_own_spectrogram() -> None:
    # At the image tempo the columns are exactly the STFT frames, wrapping at the ends.
    converter = SpectrogramImageConverter()
    request = seed_request("og_beat")
    timing = request.timing
    audio = render_loop(request)  # 93.75 BPM: drawn to scale
    assert audio.num_frames == timing.image_num_samples
    columns = loop_mel_amplitudes(audio, timing.width, converter)
    frames = converter.mel_amplitudes_from_audio(audio)
    # Away from the ends the frames do not see the wrap, so they agree with a plain STFT.
    np.testing.assert_allclose(columns[..., 30:-30], frames[..., 30 : timing.width - 30], rtol=1e-3)
    tripled = Audio(np.tile(audio.samples, 3), audio.sample_rate)
    middle = converter.mel_amplitudes_from_audio(tripled)[..., timing.width : 2 * timing.width]
    np.testing.assert_allclose(columns, middle, rtol=1e-3, atol=1e-3 * middle.max())


def test_the_same_seed_at_any_tempo_has_the_same_image_grid() -> None:
    fast = seed_request("og_beat", 125.0, bars=2)
    slow = seed_request("og_beat", 120.0, bars=2)
    assert fast.timing.width == slow.timing.width == 384
    # Both draw at 125 BPM: same notes and noise, so the same image.
    assert np.array_equal(
        np.asarray(render_seed_image(fast, cache=False)),
        np.asarray(render_seed_image(slow, cache=False)),
    )
    assert image_tempo(render_seed_image(slow)) == ImageTempo(120.0, 8, 4)


def test_keys_and_seeds_change_the_image() -> None:
    base = np.asarray(render_seed_image(seed_request("arpeggio", bars=1)), dtype=float)
    for request in (
        seed_request("arpeggio", bars=1, key="C# major"),
        seed_request("arpeggio", bars=1, seed=7),
    ):
        assert np.abs(np.asarray(render_seed_image(request), dtype=float) - base).mean() > 1.0


def test_playback_stretches_the_image_to_the_asked_tempo() -> None:
    request = seed_request("og_beat", 120.0, bars=1)  # 4 beats in 192 px: drawn at 125 BPM
    image = render_seed_image(request)
    assert request.timing.image_bpm == 125.0
    audio = loop_audio_from_image(image, QUICK)
    assert audio.num_frames == 200 * 441  # 2.0 s: four beats at 120 BPM
    assert estimate_tempo(audio, periodic=True) == pytest.approx(120.0, abs=1.0)
    assert loop_audio_from_image(image, QUICK, bpm=125.0).num_frames == 192 * 441


def test_playback_of_images_without_tempo_tags() -> None:
    converter = SpectrogramImageConverter()
    image = converter.spectrogram_image_from_audio(render_loop(seed_request("og_beat", bars=1)))
    assert image_tempo(image) is None and image_timing(image) is None
    assert loop_audio_from_image(image, QUICK).num_frames == image.width * 441
    with pytest.raises(RiffusionError, match="no tempo tags"):
        loop_audio_from_image(image, QUICK, bpm=100.0)
    with pytest.raises(RiffusionError, match="positive"):
        loop_audio_from_image(image, QUICK, bpm=0.0)


def test_unreadable_tempo_tags() -> None:
    image = render_seed_image(seed_request("og_beat", bars=1))
    assert image_tempo(image.copy()) == image_tempo(image)  # copies keep the tags
    image.getexif()[11110] = "many"
    with pytest.raises(RiffusionError, match="unreadable"):
        image_tempo(image)
    image.getexif()[11110] = 0
    with pytest.raises(RiffusionError, match="impossible"):
        image_tempo(image)


def synthesized(pattern_id: str, bpm: float, bars: int, extra_beats: float = 0.0) -> Audio:
    """A whole-bar loop of a built-in pattern at bpm, with extra_beats more of it after."""
    request = seed_request(pattern_id, bpm, bars=bars)
    loop = render_loop(request)
    length = loop.num_frames + round(extra_beats * 60 / bpm * loop.sample_rate)
    return Audio(np.tile(loop.samples, 2)[:, :length], 44100)


def test_fit_loop_snaps_an_exact_loop_to_whole_beats() -> None:
    audio, timing = fit_loop(synthesized("og_beat", 97.0, bars=2))
    # Exactly the file's tempo: 8 beats in its (whole) number of samples.
    assert timing.beats == 8 and timing.bpm == 8 * 60 * 44100 / audio.num_frames
    assert timing.bpm == pytest.approx(97.0, abs=1e-3)
    assert audio.num_frames == timing.num_samples


def test_fit_loop_trims_to_whole_bars_with_a_crossfade() -> None:
    source = synthesized("four_on_the_floor", 124.0, bars=2, extra_beats=2.6)  # 10.6 beats
    audio, timing = fit_loop(source, bpm=124.0)
    assert timing.beats == 8 and audio.num_frames == timing.num_samples
    np.testing.assert_array_equal(
        audio.samples[:, 5000:], source.samples[:, 5000 : audio.num_frames]
    )
    # The first 20 ms blend in what followed the cut.
    assert not np.array_equal(audio.samples[:, :100], source.samples[:, :100])


def test_fit_loop_stretches_nearly_whole_loops_and_trims_others_to_bars() -> None:
    source = synthesized("og_beat", 110.0, bars=2, extra_beats=-0.2)  # 7.8 beats at 110
    audio, timing = fit_loop(source, bpm=110.0)
    assert timing.beats == 8 and audio.num_frames == source.num_frames  # stretched, not cut
    # 6 beats (a bar and a half) stay whole; 6.5 are trimmed to a whole bar. Both are short, so
    # they are repeated to reach 384 px.
    assert fit_loop(synthesized("og_beat", 110.0, bars=2, extra_beats=-2), 110.0)[1].beats == 12
    audio, timing = fit_loop(synthesized("og_beat", 110.0, bars=2, extra_beats=-1.5), 110.0)
    assert timing.beats == 8 and audio.num_frames == 2 * round(4 * 60 / 110 * 44100)


def test_fit_loop_repeats_short_loops_and_cuts_long_ones() -> None:
    one_bar = synthesized("og_beat", 150.0, bars=1)  # 1.6 s
    audio, timing = fit_loop(one_bar, bpm=150.0)
    assert timing.beats == 12 and audio.num_frames == 3 * one_bar.num_frames
    assert timing.width % 64 == 0 and timing.width >= 384
    long = Audio(np.tile(one_bar.samples, 20), 44100)  # 32 s
    audio, timing = fit_loop(long, bpm=150.0)
    assert timing.width <= 2048 and timing.beats % 4 == 0
    assert audio.duration_s == pytest.approx(timing.duration_s, abs=1e-4)


def test_fit_loop_estimates_the_tempo_of_short_loops() -> None:
    timing = fit_loop(synthesized("og_beat", 130.0, bars=1))[1]  # 1.85 s
    assert timing.bpm == pytest.approx(130.0, abs=0.01) and timing.beats == 12


def test_fit_loop_refusals() -> None:
    with pytest.raises(RiffusionError, match="shorter than one beat"):
        fit_loop(Audio(np.ones((1, 10000), dtype=np.float32), 44100), bpm=120.0)
    with pytest.raises(RiffusionError, match="out of range"):
        fit_loop(synthesized("og_beat", 120.0, bars=1), bpm=200.0)


def test_seed_image_from_a_user_loop_is_stretched_to_its_width() -> None:
    source = synthesized("og_beat", 110.0, bars=2)  # 8 beats, 4.36 s: 436 columns
    audio, timing = fit_loop(source, bpm=110.0)
    assert timing.width == 448 and timing.stretch == pytest.approx(436.36 / 448, rel=1e-3)
    image = seed_image_from_loop(audio, timing)
    assert image.size == (448, 512) and image_tempo(image) == ImageTempo(110.0, 8, 4)
    mel = mel_amplitudes_from_image(image, SpectrogramParams())
    assert np.isfinite(mel).all()


def test_loop_timing_for_user_images() -> None:
    timing = LoopTiming(100.0, 8, 4, 448)
    image = seed_image_from_loop(Audio(np.zeros((1, 44100 * 2), dtype=np.float32), 44100), timing)
    assert image_timing(image) == timing
