"""`riffusion riff`, `interpolate` and `jam` on the tiny checkpoint: lengths to the sample, stereo,
48 kHz input, interpolation end points, seed image folders, Ctrl-C at any point of a render, and
one-line errors.

Clips are 128 columns (1.28 s) wide and diffusion runs 2 steps, so each command takes seconds.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_support import failed, run, succeeded
from click.testing import Result
from PIL import Image

from riffusion import Audio, InferenceInput, PromptInput
from riffusion.cli.common import EXIT_INTERRUPTED
from riffusion.cli.model_options import ModelSettings
from riffusion.cli.render_commands import ProgressDisplay
from riffusion.render.engine import LoopSource, Renderer, RenderPlan
from riffusion.render.joins import Stitcher
from riffusion.render.longform import interpolation_alphas, plan_interpolation, plan_riff
from riffusion.seeds import load_seed_image
from riffusion.spectrogram.files import load_image
from riffusion.spectrogram.params import SpectrogramParams

FAST = ["--steps", "2", "--dtype", "float32", "--device", "cpu"]
PARAMS = SpectrogramParams()
HOP = PARAMS.hop_length
WIDTH = 128


def write_track(path: Path, seconds: float, sample_rate: int, channels: int) -> Path:
    """Chords and noise, different in each channel."""
    time = np.arange(round(seconds * sample_rate)) / sample_rate
    rng = np.random.default_rng(0)
    tracks = [
        0.3 * np.sin(2 * np.pi * (220.0 * (channel + 1)) * time)
        + 0.05 * rng.standard_normal(len(time))
        for channel in range(channels)
    ]
    Audio(np.stack(tracks).astype(np.float32), sample_rate).save(path)
    return path


@pytest.fixture(scope="module")
def seed_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 128 columns of the og_beat seed as a plain image file: no tempo tags, so it
    plays as drawn, 1.28 s a loop."""
    pixels = np.asarray(load_seed_image("og_beat"))[:, :WIDTH]
    path = tmp_path_factory.mktemp("seed") / "bar.png"
    Image.fromarray(pixels).save(path)
    return path


def test_riff_keeps_a_stereo_track_stereo(tiny_checkpoint: Path, tmp_path: Path) -> None:
    track = write_track(tmp_path / "track.wav", 2.0, 44100, channels=2)
    output, images = tmp_path / "riff.wav", tmp_path / "images"
    result = run(
        "riff", track, "-o", output, "--prompt", "jazz", "--seed", 3, "--clip-duration", 1.28,
        "--overlap", 0.1, "--images-dir", images, "--model", tiny_checkpoint, *FAST,
    )  # fmt: skip
    succeeded(result)
    audio = Audio.load(output)
    assert audio.num_channels == 2 and audio.sample_rate == 44100
    assert audio.num_frames == 2 * 44100  # the input's length, to the sample
    left, right = audio.samples
    assert not np.allclose(left, right)
    plan = plan_riff(2 * 44100, PARAMS, WIDTH, 10, PromptInput("jazz", 3))
    names = sorted(path.name for path in images.iterdir())
    clips = len(plan.clips)
    assert names == [f"clip_{i:04d}.png" for i in range(clips)] + [
        f"source_{i:04d}.png" for i in range(clips)
    ]


def test_riff_a_48_khz_file_along_the_beat(tiny_checkpoint: Path, tmp_path: Path) -> None:
    track = write_track(tmp_path / "track.flac", 3.0, 48000, channels=1)
    output = tmp_path / "riff.ogg"
    result = run(
        "riff", track, "-o", output, "--prompt", "jazz", "--prompt-end", "rock", "--seed-end", 9,
        "--denoising-end", 0.7, "--start-time", 0.25, "--duration", 2.5, "--bpm", 120,
        "--clip-duration", 1.28, "--model", tiny_checkpoint, *FAST,
    )  # fmt: skip
    succeeded(result)
    assert "120.00 BPM" in result.output
    expected = Audio.load(track).slice(0.25, 2.75).resample(44100).num_frames
    audio = Audio.load(output)
    assert (audio.num_channels, audio.sample_rate, audio.num_frames) == (1, 44100, expected)


def test_interpolation_ends_are_single_riffuse_calls(
    tiny_checkpoint: Path, tiny_pipeline, seed_file: Path, tmp_path: Path
) -> None:
    output, images = tmp_path / "transition.flac", tmp_path / "images"
    result = run(
        "interpolate", "--start", "jazz", "--end", "church bells", "--num-steps", 3,
        "--seed-start", 5, "--seed-end", 6, "--denoising", 0.6, "--seed-image", seed_file,
        "-o", output, "--images-dir", images, "--model", tiny_checkpoint, *FAST,
    )  # fmt: skip
    succeeded(result)
    assert Audio.load(output).num_frames == 3 * WIDTH * HOP
    start = PromptInput("jazz", 5, denoising=0.6)
    end = PromptInput("church bells", 6, denoising=0.6)
    seed = load_image(seed_file)
    for alpha, name in ((0.0, "clip_0000.png"), (1.0, "clip_0002.png")):
        inputs = InferenceInput(start, end, alpha, num_inference_steps=2)
        expected = np.asarray(tiny_pipeline.riffuse(inputs, seed))
        assert np.array_equal(np.asarray(Image.open(images / name)), expected), name


def test_jam_set(tiny_checkpoint: Path, seed_file: Path, tmp_path: Path) -> None:
    output = tmp_path / "set.mp3"
    result = run(
        "jam", "--prompt", "jazz", "--prompt", "techno", "--duration", 3.0, "--velocity", 0.5,
        "--seed", 11, "--seed-image", seed_file, "-o", output, "--model", tiny_checkpoint, *FAST,
    )  # fmt: skip
    succeeded(result)
    assert "3 of 3 clips" in result.output
    # MP3 frames pad the end a little; the plan itself is exact (tests/test_render_plans.py).
    assert Audio.load(output).duration_s == pytest.approx(3.0, abs=0.06)


def test_ctrl_c_writes_what_was_rendered(
    tiny_checkpoint: Path, seed_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = ProgressDisplay.step

    def interrupt_second_clip(self: ProgressDisplay, index: int, done: int, total: int) -> None:
        if index == 1 and done == 1:
            raise KeyboardInterrupt
        step(self, index, done, total)

    monkeypatch.setattr(ProgressDisplay, "step", interrupt_second_clip)
    output = tmp_path / "partial.wav"
    result = run(
        "interpolate", "--start", "jazz", "--end", "rock", "--num-steps", 3, "--seed-start", 1,
        "--seed-image", seed_file, "-o", output, "--model", tiny_checkpoint, *FAST,
    )  # fmt: skip
    assert result.exit_code == EXIT_INTERRUPTED, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"Interrupted: wrote {output} (1.28 s, 1 of 3 clips)."
    )
    assert Audio.load(output).num_frames == WIDTH * HOP


def test_the_renderer_stops_between_clips(tiny_pipeline, seed_file: Path) -> None:
    start, end = PromptInput("jazz", 1), PromptInput("rock", 2)
    plan = plan_interpolation(start, end, [0.0, 0.5, 1.0], WIDTH, PARAMS, num_inference_steps=2)
    renderer = Renderer(tiny_pipeline, plan, LoopSource(load_image(seed_file), PARAMS))

    def progress(index: int, done: int, total: int) -> None:
        if index == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        for _ in renderer.render(progress):
            pass
    assert renderer.clips_done == 2
    audio = renderer.finish()
    assert audio.num_frames == plan.samples_after(2) == 2 * WIDTH * HOP
    assert np.abs(audio.samples).max() == pytest.approx(10 ** (-0.1 / 20), rel=1e-4)


# --- seed image folders ------------------------------------------------------------------------


def test_interpolate_and_jam_take_seeds_from_a_folder(
    tiny_checkpoint: Path, seed_file: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "seeds"
    folder.mkdir()
    # Half a bar, 64 columns: a length no built-in seed has.
    Image.fromarray(np.asarray(Image.open(seed_file))[:, :64]).save(folder / "half.png")
    common = ["--seed-images", folder, "--seed-image", "half", "--model", tiny_checkpoint, *FAST]
    output = tmp_path / "transition.wav"
    run_args = ["interpolate", "--start", "jazz", "--end", "rock", "--num-steps", 1, "-o", output]
    succeeded(run(*run_args, *common))
    assert Audio.load(output).num_frames == 64 * HOP
    output = tmp_path / "set.wav"
    succeeded(run("jam", "--prompt", "jazz", "--duration", 0.64, "-o", output, *common))
    assert Audio.load(output).num_frames == 64 * HOP


@pytest.mark.parametrize(
    "command", [["interpolate", "--start", "a", "--end", "b"], ["jam", "--prompt", "a"]]
)
def test_seed_folder_mistakes_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    # --model points nowhere: the mistakes must be reported before the model would load.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "seeds").mkdir()
    base = [*command, "-o", "out.wav", "--model", "./no-model"]
    failed(run(*base, "--seed-images", "missing"), "--seed-images missing: no such folder")
    failed(
        run(*base, "--seed-images", "seeds", "--seed-image", "nope"),
        "no seed 'nope' among the built-ins or in seeds; built-in seeds: og_beat",
    )
    failed(run(*base, "--seed-images", "seeds", "--seed-image", ".."), "'..' is not a seed id")


# --- Ctrl-C at any point ------------------------------------------------------------------------

INTERPOLATION = ["interpolate", "--start", "jazz", "--end", "rock", "--seed-start", 1]


def interpolation(
    model: Path, seed_image: Path, output: Path, clips: int, *more: object
) -> list[object]:
    """Arguments of INTERPOLATION in clips clips of seed_image on the tiny model, to output."""
    return [
        *INTERPOLATION, "--num-steps", clips, "--seed-image", seed_image, "-o", output,
        "--model", model, *FAST, *more,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def first_clip_alone(tiny_pipeline, seed_file: Path) -> np.ndarray:
    """(1, samples) audio of INTERPOLATION's first clip of 3 rendered as a plan of its own: what a
    render stopped after that clip must write."""
    start, end = PromptInput("jazz", 1), PromptInput("rock", 1)
    alphas = interpolation_alphas(3)
    plan = plan_interpolation(start, end, alphas, WIDTH, PARAMS, 2, seed_file.stem)
    alone = RenderPlan(plan.clips[:1], plan.width, plan.overlap, plan.samples_after(1), PARAMS)
    renderer = Renderer(tiny_pipeline, alone, LoopSource(load_image(seed_file), PARAMS))
    for _ in renderer.render():
        pass
    return renderer.finish().samples


def interrupted_after(result: Result, output: Path, clips: int, of: int) -> np.ndarray:
    """The samples written by a render that Ctrl-C stopped after clips clips, checked."""
    assert result.exit_code == EXIT_INTERRUPTED, result.output
    seconds = clips * WIDTH * HOP / PARAMS.sample_rate
    assert result.output.strip().splitlines()[-1] == (
        f"Interrupted: wrote {output} ({seconds:.2f} s, {clips} of {of} clips)."
    )
    audio = Audio.load(output)
    assert audio.num_frames == clips * WIDTH * HOP
    return audio.samples


@pytest.mark.parametrize("joined", ["half", "whole"])
def test_an_interrupt_inside_a_join_drops_that_clip_whole(
    tiny_checkpoint: Path,
    seed_file: Path,
    first_clip_alone: np.ndarray,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    joined: str,
) -> None:
    add = Stitcher.add

    def interrupted_add(self: Stitcher, clip: np.ndarray, start_column: int) -> Audio:
        if self.num_clips == 0:
            return add(self, clip, start_column)
        # The second clip goes into the stitcher, wholly or in part, and its audio is never kept.
        add(self, clip[..., : clip.shape[-1] // 2] if joined == "half" else clip, start_column)
        raise KeyboardInterrupt

    monkeypatch.setattr(Stitcher, "add", interrupted_add)
    output = tmp_path / "partial.wav"
    result = run(*interpolation(tiny_checkpoint, seed_file, output, 3))
    samples = interrupted_after(result, output, clips=1, of=3)
    # Exactly the first clip on its own, to 16-bit rounding: nothing of the clip being joined,
    # and no audio missing.
    np.testing.assert_allclose(samples, first_clip_alone, rtol=0, atol=2 / 32768)


def test_ctrl_c_during_a_join_finishes_that_clip_first(
    tiny_checkpoint: Path, seed_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add = Stitcher.add

    def add_with_ctrl_c(self: Stitcher, clip: np.ndarray, start_column: int) -> Audio:
        if self.num_clips == 1:
            signal.raise_signal(signal.SIGINT)
        return add(self, clip, start_column)

    monkeypatch.setattr(Stitcher, "add", add_with_ctrl_c)
    output, images = tmp_path / "partial.wav", tmp_path / "images"
    result = run(*interpolation(tiny_checkpoint, seed_file, output, 3, "--images-dir", images))
    interrupted_after(result, output, clips=2, of=3)
    assert sorted(path.name for path in images.iterdir()) == ["clip_0000.png", "clip_0001.png"]


def test_ctrl_c_while_writing_waits_for_the_whole_file(
    tiny_checkpoint: Path,
    seed_file: Path,
    first_clip_alone: np.ndarray,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    to_bytes = Audio.to_bytes

    def to_bytes_with_ctrl_c(self: Audio, format: str = "wav") -> bytes:
        signal.raise_signal(signal.SIGINT)
        return to_bytes(self, format)

    # One clip of one: the render itself is complete when Ctrl-C comes.
    monkeypatch.setattr(Audio, "to_bytes", to_bytes_with_ctrl_c)
    output = tmp_path / "whole.wav"
    result = run(*interpolation(tiny_checkpoint, seed_file, output, 1))
    samples = interrupted_after(result, output, clips=1, of=1)
    # Alpha 0 alone is the same clip as the first of three.
    np.testing.assert_allclose(samples, first_clip_alone, rtol=0, atol=2 / 32768)
    assert [path.name for path in tmp_path.iterdir()] == ["whole.wav"]


def test_ctrl_c_while_loading_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted_load(self: ModelSettings, **_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ModelSettings, "load", interrupted_load)
    output = tmp_path / "none.wav"
    result = run(*INTERPOLATION, "-o", output)
    assert result.exit_code == EXIT_INTERRUPTED, result.output
    assert result.output.strip().splitlines()[-1] == (
        "Interrupted before the first clip was finished; nothing written."
    )
    assert not output.exists()


@pytest.mark.slow  # a fresh interpreter that loads the model and renders a clip
def test_a_real_ctrl_c_to_a_running_interpolation(
    tiny_checkpoint: Path, seed_file: Path, tmp_path: Path
) -> None:
    """SIGINT to the installed command in a fresh interpreter, once its first clip is joined."""
    output, images = tmp_path / "live.wav", tmp_path / "images"
    clips = 30  # far more than it renders before the signal lands
    args = interpolation(tiny_checkpoint, seed_file, output, clips, "--images-dir", images)
    process = subprocess.Popen(
        [sys.executable, "-m", "riffusion.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        deadline = time.monotonic() + 300
        # A clip's image is saved as it is joined: the signal lands during the first clip's join
        # or later.
        while not (images / "clip_0000.png").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no clip rendered in 300 s"
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == EXIT_INTERRUPTED, stderr
    pattern = (
        rf"Interrupted: wrote {re.escape(str(output))} \([0-9.]+ s, ([0-9]+) of {clips} clips\)\."
    )
    done = re.fullmatch(pattern, stderr.strip().splitlines()[-1])
    assert done is not None, stderr
    rendered = int(done[1])
    assert 1 <= rendered < clips
    assert Audio.load(output).num_frames == rendered * WIDTH * HOP
    # Every clip with an image is in the audio, and no other.
    expected = [f"clip_{index:04d}.png" for index in range(rendered)]
    assert sorted(path.name for path in images.iterdir()) == expected
    assert sorted(path.name for path in tmp_path.iterdir()) == ["images", "live.wav"]


def test_a_real_sigterm_to_a_running_jam_keeps_what_was_rendered(
    tiny_checkpoint: Path, seed_file: Path, tmp_path: Path
) -> None:
    """SIGTERM (what kill, service managers and timeouts send) used to kill a jam outright: no
    file, no message. It now stops like Ctrl-C, with the shell's status for SIGTERM."""
    output, images = tmp_path / "set.wav", tmp_path / "images"
    args = [
        "jam", "--prompt", "jazz", "--duration", 60, "--seed", 3, "--seed-image", seed_file,
        "-o", output, "--images-dir", images, "--model", tiny_checkpoint, *FAST,
    ]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "riffusion.cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        deadline = time.monotonic() + 300
        while not (images / "clip_0000.png").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no clip rendered in 300 s"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    pattern = (
        rf"Interrupted: wrote {re.escape(str(output))} \([0-9.]+ s, ([0-9]+) of ([0-9]+) clips\)\."
    )
    done = re.fullmatch(pattern, stderr.strip().splitlines()[-1])
    assert done is not None, stderr
    assert 1 <= int(done[1]) < int(done[2])
    assert Audio.load(output).num_frames == int(done[1]) * WIDTH * HOP
    assert sorted(path.name for path in tmp_path.iterdir()) == ["images", "set.wav"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["riff", "missing.wav", "--prompt", "x"], "missing.wav: no such file"),
        (["riff", "in.wav", "--prompt", "x", "--clip-duration", "5"], "multiple of 0.64 s"),
        (["riff", "in.wav", "--prompt", "x", "--overlap", "3"], "at most half the clip"),
        (["riff", "in.wav", "--prompt", "x", "--start-time", "9"], "past the end of in.wav"),
        (["riff", "in.wav", "--prompt", "x", "--duration", "0"], "--duration must be positive"),
        (["riff", "in.wav", "--prompt", "x", "--bpm", "fast"], "--bpm must be a number"),
        (["riff", "in.wav", "--prompt", "x", "--bpm", "500"], "out of range"),
        (["riff", "in.wav", "--prompt", "x", "--denoising", "2"], "denoising must be between"),
        (["riff", "in.wav", "--prompt", "x", "--seed", "-1"], "--seed must be between"),
        (["riff", "in.wav", "--prompt", "x", "--steps", "0"], "--steps must be between"),
        (["riff", "in.txt", "--prompt", "x"], "not a readable audio file"),
        (["interpolate", "--start", "a", "--end", "b", "--num-steps", "0"], "at least 1"),
        (["interpolate", "--start", "a", "--end", "b", "--alpha-power", "0"], "positive"),
        (["interpolate", "--start", "a", "--end", "b", "--seed-image", "nope"], "no seed 'nope'"),
        (["jam", "--prompt", "a", "--velocity", "0"], "alpha_velocity must be greater than 0"),
        (["jam", "--prompt", "a", "--duration", "0"], "--duration must be positive"),
        (["jam", "--prompt", " ", "--duration", "5"], "prompt is empty"),
        (["jam", "--prompt", "a", "--device", "tpu"], "tpu"),
    ],
)
def test_bad_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    # --model points nowhere: every mistake must be reported before the model would load.
    monkeypatch.chdir(tmp_path)
    write_track(tmp_path / "in.wav", 1.0, 44100, channels=1)
    (tmp_path / "in.txt").write_text("not audio")
    failed(run(*args, "-o", "out.wav", "--model", "./no-model"), message)


def test_bad_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_track(tmp_path / "in.wav", 1.0, 44100, channels=1)
    (tmp_path / "taken.wav").write_bytes(b"")
    (tmp_path / "file").write_bytes(b"")
    base = ["riff", "in.wav", "--prompt", "x", "--model", "./no-model"]
    failed(run(*base, "-o", "out.xyz"), "unsupported audio format 'xyz'")
    failed(run(*base, "-o", "taken.wav"), "pass --overwrite")
    failed(run(*base, "-o", "out.wav", "--images-dir", "file"), "not a directory")
    failed(run(*base, "-o", "file/out.wav"), "file/out.wav: cannot write (file is a file, not a")
    failed(run(*base, "-o", "out.wav", "--images-dir", "file/images"), "file is a file, not a")
    assert not Path("out.wav").exists()
