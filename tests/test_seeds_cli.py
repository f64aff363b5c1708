"""`riffusion seed-image` and `riffusion seeds` end to end, and their bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cli_support import error_line, run, succeeded
from click.testing import Result
from PIL import Image

from riffusion.audio import Audio
from riffusion.seeds.builtin import render_loop, seed_request
from riffusion.seeds.images import image_tempo, image_timing
from riffusion.seeds.registry import load_mask_image, load_seed_image

# The ids the original web app (riffusion-app) asks for.
ORIGINAL_APP_SEEDS = ("og_beat", "agile", "marim", "motorway", "vibes")
ORIGINAL_APP_MASKS = (
    "mask_beat_lines_80",
    "mask_gradient_dark",
    "mask_gradient_top_70",
    "mask_gradient_top_fifth_75",
    "mask_top_third_75",
    "mask_top_third_95",
)


@pytest.fixture(autouse=True, scope="module")
def seed_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A private image cache, so tests neither read nor fill the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RIFFUSION_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


def single_error_line(result: Result) -> str:
    """The error line of a failed command that wrote nothing else to stderr."""
    line = error_line(result)
    assert result.stderr.strip() == line, result.stderr
    return line


def test_seed_image_from_a_pattern_with_its_loop(tmp_path: Path) -> None:
    image_path, audio_path = tmp_path / "seed.png", tmp_path / "seed.wav"
    result = succeeded(
        run(
            "seed-image",
            "--pattern",
            "og_beat",
            "--bpm",
            120,
            "-o",
            image_path,
            "--audio",
            audio_path,
        )
    )
    assert "drawn at 125.00 BPM" in result.output
    image = Image.open(image_path)
    assert image.size == (576, 512) and image_tempo(image).bpm == 120.0
    audio = Audio.load(audio_path)
    timing = image_timing(image)
    # 12 beats at 120 BPM, to the sample, and looping: it ends where it starts.
    assert audio.num_frames == timing.num_samples == 6 * 44100
    samples = audio.samples[0]
    assert abs(samples[0] - samples[-1]) <= np.percentile(np.abs(np.diff(samples)), 90)


def test_seed_image_options(tmp_path: Path) -> None:
    path = tmp_path / "seed.jpg"
    args = ("--pattern", "marimba_waltz", "--bars", 2, "--key", "F#m", "--seed", 5)
    result = succeeded(run("seed-image", *args, "-o", path))
    assert "6 beats (2 bars of 3/4) at 140 BPM" in result.output
    image = Image.open(path)
    assert image.height == 512 and image.width % 64 == 0
    assert "F# minor, seed 5" in image.getexif()[270]


def test_a_short_loop_that_must_stretch_far_is_warned_about(tmp_path: Path) -> None:
    result = succeeded(
        run(
            "seed-image",
            "--pattern",
            "og_beat",
            "--bpm",
            150,
            "--bars",
            1,
            "-o",
            tmp_path / "s.png",
        )
    )
    assert "Warning: 4 beats at 150 BPM are 160 columns" in result.stderr
    assert Image.open(tmp_path / "s.png").width == 128


@pytest.mark.parametrize("bpm", [82.0, 97.0, 113.0, 131.0, 146.0])
def test_seed_image_from_a_loop_recovers_its_tempo(tmp_path: Path, bpm: float) -> None:
    # Two bars of a synthesized loop, as a user would save it; the tempo is estimated from the
    # onsets, then pinned by the file's length (whole beats).
    loop_path, image_path = tmp_path / "loop.wav", tmp_path / "seed.png"
    render_loop(seed_request("og_beat", bpm, bars=2)).save(loop_path)
    result = succeeded(run("seed-image", "--from", loop_path, "-o", image_path))
    assert "Estimated tempo" in result.output
    tempo = image_tempo(Image.open(image_path))
    assert tempo.bpm == pytest.approx(bpm, abs=0.01)
    # Two bars, repeated when shorter than 3.84 s (384 px).
    assert tempo.beats == (8 if 8 * 60 / bpm >= 3.84 else 16)


def test_seed_image_from_a_loop_with_a_tail_and_a_given_tempo(tmp_path: Path) -> None:
    loop = render_loop(seed_request("breakbeat", 134.0, bars=2))
    tail = loop.samples[:, : loop.num_frames // 3]  # a bar and a third too long
    loop_path, image_path = tmp_path / "loop.flac", tmp_path / "seed.png"
    Audio(np.concatenate([loop.samples, tail], axis=1), loop.sample_rate).save(loop_path)
    estimated = succeeded(run("seed-image", "--from", loop_path, "-o", image_path))
    assert image_tempo(Image.open(image_path)).bpm == pytest.approx(134.0, abs=1.0)
    # Trimmed to the two whole bars (3.6 s), then repeated to reach 384 px.
    assert "16 beats (4 bars of 4/4)" in estimated.output
    succeeded(run("seed-image", "--from", loop_path, "--bpm", 134, "-o", image_path, "--overwrite"))
    assert image_tempo(Image.open(image_path)).bpm == 134.0


def test_seed_image_draws_masks(tmp_path: Path) -> None:
    path = tmp_path / "mask.png"
    args = ("--mask", "keep-first-beats", "--bpm", 120, "--bars", 2, "--beats", 2)
    result = succeeded(run("seed-image", *args, "-o", path))
    assert "48.00 px apart" in result.output
    mask = np.asarray(Image.open(path))
    assert mask.shape == (512, 384) and (mask[:, :96] == 0).all() and (mask[:, 96:] == 255).all()
    args = ("--mask", "keep-bottom", "--fraction", 0.5, "--strength", 0.5, "--width", 256)
    succeeded(run("seed-image", *args, "-o", path, "--overwrite"))
    mask = np.asarray(Image.open(path))
    assert mask.shape == (512, 256) and set(np.unique(mask)) == {0, 128}


def test_seeds_lists_seeds_and_masks(tmp_path: Path) -> None:
    Image.new("RGB", (512, 512)).save(tmp_path / "vibes.png")
    Image.new("L", (512, 512)).save(tmp_path / "mask_top_third_75.png")
    table = succeeded(run("seeds", "--seed-images", tmp_path)).output
    for name in ("og_beat", "ambient_pad", "keep-first-beats", "vibes", "mask_top_third_75"):
        assert name in table
    listing = json.loads(succeeded(run("seeds", "--json")).output)
    assert len(listing["seeds"]) >= 8 and {"id", "bpm", "meter", "bars"} <= set(listing["seeds"][0])
    assert {mask["id"] for mask in listing["masks"]} >= {"keep-bottom", "beat-lines"}


def test_seeds_lists_the_original_app_ids_as_built_ins() -> None:
    table = succeeded(run("seeds")).output
    for name in ORIGINAL_APP_SEEDS + ORIGINAL_APP_MASKS:
        assert name in table
    listing = json.loads(succeeded(run("seeds", "--json")).output)
    seeds = {seed["id"]: seed for seed in listing["seeds"]}
    masks = {mask["id"]: mask for mask in listing["masks"]}
    for seed_id in ORIGINAL_APP_SEEDS:
        seed = seeds[seed_id]
        assert seed["source"] == "built-in" and seed["width"] == 512 and seed["description"]
    for mask_id in ORIGINAL_APP_MASKS:
        assert masks[mask_id]["source"] == "built-in" and masks[mask_id]["description"]
    assert masks["mask_top_third_75"]["parameters"] == {"fraction": 1 / 3, "strength": 0.75}
    assert masks["mask_beat_lines_80"]["parameters"] == {"fraction": 0.5, "strength": 0.8}


def test_seed_image_renders_the_original_app_seeds_and_masks(tmp_path: Path) -> None:
    path = tmp_path / "agile.png"
    result = succeeded(run("seed-image", "--pattern", "agile", "-o", path))
    assert "12 beats (3 bars of 4/4) at 140.625 BPM" in result.output
    assert Image.open(path).size == (512, 512)
    args = ("--mask", "mask_top_third_75", "--strength", 0.5, "--fraction", 0.25)
    succeeded(run("seed-image", *args, "-o", tmp_path / "band.png"))
    band = np.asarray(Image.open(tmp_path / "band.png"))
    assert (band[:128] == 128).all() and (band[128:] == 0).all()
    args = ("--mask", "mask_beat_lines_80", "--bpm", 120, "--bars", 3)
    succeeded(run("seed-image", *args, "-o", tmp_path / "lines.png"))
    lines = np.asarray(Image.open(tmp_path / "lines.png"))
    assert lines.shape == (512, 576) and (lines[0, ::48] == 204).all() and lines[0, 24] == 0


class RecordingPipeline:
    """Stands in for the model: records the images generate hands it, returns the seed."""

    def __init__(self) -> None:
        self.calls: list[tuple[Image.Image, Image.Image | None]] = []

    def img2img(self, prompt, init_image, mask_image, **options):
        self.calls.append((init_image, mask_image))
        return init_image

    def audio_from_image(self, image, **options) -> Audio:
        return Audio(np.zeros((1, 4410), dtype=np.float32), 44100)


def test_generate_takes_every_original_app_seed_and_mask_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = RecordingPipeline()
    monkeypatch.setattr("riffusion.cli.generate.load_model", lambda settings: pipeline)
    pairs = list(zip(ORIGINAL_APP_SEEDS * 2, ORIGINAL_APP_MASKS, strict=False))
    for index, (seed_id, mask_id) in enumerate(pairs):
        output = tmp_path / f"{index}.wav"
        args = ("x", "-o", output, "--seed-image", seed_id, "--mask", mask_id, "--seed", 1)
        succeeded(run("generate", *args))
    for (seed_id, mask_id), (seed, mask) in zip(pairs, pipeline.calls, strict=True):
        assert f"seed {seed_id}:" in seed.getexif()[270] and seed.size == (512, 512)
        expected = load_mask_image(mask_id, like=load_seed_image(seed_id))
        assert mask is not None and np.array_equal(np.asarray(mask), np.asarray(expected))


def test_generate_from_agile_with_mask_top_third_75(tiny_checkpoint: Path, tmp_path: Path) -> None:
    output, image = tmp_path / "agile.wav", tmp_path / "agile.png"
    args = ("--seed-image", "agile", "--mask", "mask_top_third_75", "--image", image)
    model = ("--model", tiny_checkpoint, "--steps", 3, "--dtype", "float32", "--device", "cpu")
    succeeded(run("generate", "fast drums", "-o", output, *args, *model))
    assert Image.open(image).size == (512, 512)
    # Drawn to scale, so the loop plays in exactly the image's 5.12 s.
    assert Audio.load(output).duration_s == pytest.approx(5.12, abs=0.011)


def test_no_overwrite_without_the_flag(tmp_path: Path) -> None:
    image_path, audio_path = tmp_path / "seed.png", tmp_path / "seed.wav"
    image_path.write_bytes(b"precious")
    line = single_error_line(run("seed-image", "--pattern", "og_beat", "-o", image_path))
    assert "already exists" in line and "--overwrite" in line
    assert image_path.read_bytes() == b"precious"
    # Nothing is written when any output exists: the image is not made either.
    audio_path.write_bytes(b"precious")
    other = tmp_path / "other.png"
    run("seed-image", "--pattern", "og_beat", "-o", other, "--audio", audio_path)
    assert not other.exists() and audio_path.read_bytes() == b"precious"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "exactly one of --pattern, --from and --mask"),
        (("--pattern", "og_beat", "--mask", "keep-top"), "exactly one"),
        (("--pattern", "polka"), "no built-in pattern 'polka'"),
        (("--pattern", "og_beat", "--bpm", 200), "out of range"),
        (("--pattern", "og_beat", "--bpm", 40), "out of range"),
        (("--pattern", "og_beat", "--bpm", 0), "out of range"),
        (("--pattern", "og_beat", "--key", ""), "unreadable key"),
        (("--pattern", "og_beat", "--bars", 0), "at least 1"),
        (("--pattern", "og_beat", "--bpm", 60, "--bars", 9), "fewer bars"),
        (("--pattern", "og_beat", "--key", "H#"), "unreadable key"),
        (("--pattern", "og_beat", "--seed", -3), "seed"),
        (("--pattern", "og_beat", "--beats", 2), "--beats does not apply to --pattern"),
        (("--pattern", "og_beat", "--audio", "x.xyz"), "unsupported audio format"),
        (("--mask", "keep-top", "--audio", "x.wav"), "--audio does not apply to --mask"),
        (("--mask", "polka-dots"), "no built-in mask"),
        (("--mask", "keep-top", "--beats", 2), "takes no beats"),
        (("--mask", "keep-top", "--width", 100), "multiple of 64"),
        (("--mask", "keep-top", "--bars", 2), "--bars needs --bpm"),
        (("--mask", "keep-top", "--fraction", 2), "fraction"),
        (("--mask", "beat-lines", "--bpm", 120, "--beats-per-bar", 0), "at least one beat"),
        (("--from", "missing.wav"), "no such file"),
        (("--from", "missing.wav", "--key", "C"), "--key does not apply to --from"),
        (("--from", "missing.wav", "--bars", 2), "--bars does not apply to --from"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: tuple, message: str) -> None:
    line = single_error_line(run("seed-image", *args, "-o", tmp_path / "out.png"))
    assert message in line


def test_bad_output_and_bad_loops(tmp_path: Path) -> None:
    line = single_error_line(run("seed-image", "--pattern", "og_beat", "-o", tmp_path / "seed.gif"))
    assert "unsupported image format" in line
    not_audio = tmp_path / "loop.wav"
    not_audio.write_text("hello")
    assert "not a readable audio file" in single_error_line(
        run("seed-image", "--from", not_audio, "-o", tmp_path / "seed.png")
    )
    silent = tmp_path / "silent.wav"
    Audio(np.zeros((1, 44100 * 3), dtype=np.float32), 44100).save(silent)
    line = single_error_line(run("seed-image", "--from", silent, "-o", tmp_path / "s.png"))
    assert "no onsets" in line
    blip = tmp_path / "blip.wav"
    Audio(np.ones((1, 4410), dtype=np.float32) * 0.1, 44100).save(blip)
    line = single_error_line(
        run("seed-image", "--from", blip, "--bpm", 120, "-o", tmp_path / "s.png")
    )
    assert "shorter than one beat" in line
    loop = tmp_path / "loop.wav"
    render_loop(seed_request("og_beat", bars=1)).save(loop)
    line = single_error_line(
        run("seed-image", "--from", loop, "--beats-per-bar", 0, "-o", tmp_path / "x.png")
    )
    assert "at least one beat" in line
    line = single_error_line(run("seeds", "--seed-images", tmp_path / "nope"))
    assert "no such seed images folder" in line
