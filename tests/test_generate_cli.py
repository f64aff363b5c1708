"""`riffusion generate` end to end on the tiny checkpoint, and its one-line errors.

Spectrograms are 512 pixels tall (the model's format) but mostly 128 wide (1.28 s of audio), so
that audio reconstruction stays quick.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import failed, run, succeeded
from click.testing import Result
from PIL import Image

from riffusion import Audio, RiffusionPipeline
from riffusion.cli.common import EXIT_INTERRUPTED
from riffusion.spectrogram.params import SpectrogramParams

FAST = ["--steps", "3", "--dtype", "float32", "--device", "cpu"]


def generate(*args: object) -> Result:
    """`riffusion generate ARGS...` in-process."""
    return run("generate", *args)


@pytest.fixture(scope="module")
def generated(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder with out.wav and out.png from one text-to-music run (seed 3, 128 wide)."""
    folder = tmp_path_factory.mktemp("generated")
    result = generate(
        "jazz piano",
        "-o",
        folder / "out.wav",
        "--image",
        folder / "out.png",
        "--seed",
        3,
        "--width",
        128,
        "--model",
        tiny_checkpoint,
        *FAST,
    )
    succeeded(result)
    assert "seed 3" in result.output
    return folder


def test_text_to_music_writes_audio_and_spectrogram(generated: Path) -> None:
    audio = Audio.load(generated / "out.wav")
    assert audio.sample_rate == 44100
    assert audio.duration_s == pytest.approx(1.28, abs=0.01)
    image = Image.open(generated / "out.png")
    assert image.size == (128, 512)
    assert SpectrogramParams.from_exif(image.getexif()) == SpectrogramParams()


def test_same_seed_same_audio(generated: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.wav"
    args = ["jazz piano", "-o", again, "--seed", 3, "--width", 128, "--model", tiny_checkpoint]
    succeeded(generate(*args, *FAST))
    assert again.read_bytes() == (generated / "out.wav").read_bytes()


def test_seed_image_mask_and_options(
    generated: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    mask = tmp_path / "mask.png"
    Image.new("L", (128, 512), 255).save(mask)
    output = tmp_path / "nested" / "remix.flac"
    result = generate(
        "church bells",
        "-o",
        output,
        "--seed-image",
        generated / "out.png",
        "--mask",
        mask,
        "--denoising",
        0.5,
        "--guidance",
        5,
        "--negative",
        "noise",
        "--scheduler",
        "euler",
        "--model",
        tiny_checkpoint,
        "--quality",
        "fast",
        *FAST,
    )
    succeeded(result)
    assert Audio.load(output).duration_s == pytest.approx(1.28, abs=0.01)


def test_refuses_to_overwrite(generated: Path, tiny_checkpoint: Path) -> None:
    existing = generated / "out.wav"
    before = existing.read_bytes()
    failed(generate("x", "-o", existing, "--model", tiny_checkpoint), "pass --overwrite")
    assert existing.read_bytes() == before
    image = generated / "new.png"
    failed(generate("x", "-o", existing, "--image", image, "--model", "none"), "pass --overwrite")
    assert not image.exists()


def test_overwrite(generated: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    output = tmp_path / "out.ogg"
    output.write_bytes(b"old")
    args = ["x", "-o", output, "--width", 64, "--model", tiny_checkpoint, "--overwrite", *FAST]
    succeeded(generate(*args))
    assert Audio.load(output).duration_s == pytest.approx(0.64, abs=0.01)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--width", "500"], "--width must be a positive multiple of 64"),
        (["--width", "0"], "--width must be a positive multiple of 64"),
        (["--mask", "m.png"], "--mask needs --seed-image"),
        (["--denoising", "0.3"], "--denoising needs --seed-image"),
        (["--steps", "0"], "--steps must be between 1 and 1000"),
        (["--seed", "-5"], "--seed must be between 0 and 2**64 - 1"),
        (["--guidance", "-1"], "guidance must be at least 0"),
        (["--scheduler", "heun"], "unknown scheduler 'heun'"),
        (["--seed-image", "missing.png"], "missing.png: no such file"),
        (["--device", "tpu"], "tpu"),
    ],
)
def test_bad_parameters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    # --model points nowhere: these must fail on their own, before any model loading.
    monkeypatch.chdir(tmp_path)
    failed(generate("jazz", "-o", "out.wav", "--model", "./no-model", *args), message)


def test_bad_output_names(tmp_path: Path) -> None:
    failed(generate("x", "-o", tmp_path / "out.txt"), "unsupported audio format 'txt'")
    failed(generate("x", "-o", tmp_path / "o.wav", "--image", tmp_path / "o.gif"), "'gif'")


def test_seed_image_of_the_wrong_height(tmp_path: Path) -> None:
    image = tmp_path / "small.png"
    Image.new("RGB", (512, 256)).save(image)
    failed(
        generate("x", "-o", tmp_path / "o.wav", "--seed-image", image, "--model", "./none"),
        "must be 512 px tall",
    )


def test_seed_image_of_a_bad_width(tiny_checkpoint: Path, tmp_path: Path) -> None:
    image = tmp_path / "odd.png"
    Image.new("RGB", (100, 512)).save(image)
    failed(
        generate("x", "-o", tmp_path / "o.wav", "--seed-image", image, "--model", tiny_checkpoint),
        "a multiple of 64 px wide",
    )


def test_missing_model_and_bad_paths(tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    failed(generate("x", "-o", out, "--cache-dir", tmp_path / "cache"), "--model")
    failed(generate("x", "-o", out, "--model", tmp_path / "nowhere"), "no such file or folder")
    failed(generate("x", "-o", out, "--model", tmp_path), "not a diffusers model folder")
    assert not out.exists()


@pytest.mark.slow  # two fresh interpreters, each importing torch and diffusers
def test_real_process(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """The installed entry point, in a fresh interpreter: output, quiet stderr, exit codes."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "riffusion.cli", "generate", "lofi beat"]
    output = tmp_path / "beat.mp3"
    args = ["-o", output, "--seed", "7", "--width", "64", "--model", tiny_checkpoint, *FAST]
    done = subprocess.run(
        [*command, *map(str, args)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"Wrote {output} (0.64 s), seed 7"
    # Only our own progress on stderr: no library warnings or loading bars.
    assert done.stderr.splitlines()[0] == f"Loading {tiny_checkpoint} ..."
    assert "Warning" not in done.stderr and "it/s" not in done.stderr
    assert Audio.load(output).duration_s > 0.5

    done = subprocess.run(
        [*command, "-o", str(tmp_path / "x.wav"), "--width", "500"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 1
    assert done.stderr == "Error: --width must be a positive multiple of 64, got 500\n"


def test_built_in_seed_and_mask_ids_play_at_the_seed_tempo(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    from riffusion.seeds.images import image_timing
    from riffusion.seeds.registry import load_seed_image

    seed = load_seed_image("og_beat")
    loop_s = image_timing(seed).duration_s
    output = tmp_path / "beat.wav"
    image = tmp_path / "beat.png"
    args = ["--seed-image", "og_beat", "--mask", "keep-bottom", "--image", image]
    succeeded(generate("drums", "-o", output, *args, "--model", tiny_checkpoint, *FAST))
    # The result keeps the seed's tempo tags and plays as the seed's loop.
    assert Image.open(image).getexif()[11100] == seed.getexif()[11100]
    assert Audio.load(output).duration_s == pytest.approx(loop_s, abs=0.011)


def test_seed_images_folder_ids_and_refusals(tiny_checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "seeds"
    folder.mkdir()
    Image.new("RGB", (128, 512), "white").save(folder / "mine.png")
    output = tmp_path / "mine.wav"
    common = ["--seed-images", folder, "--model", tiny_checkpoint, *FAST]
    succeeded(generate("x", "-o", output, "--seed-image", "mine", *common))
    assert Audio.load(output).duration_s == pytest.approx(1.28, abs=0.01)
    failed(generate("x", "-o", tmp_path / "a.wav", "--seed-image", "nope", *common), "og_beat")
    failed(generate("x", "-o", tmp_path / "b.wav", "--seed-image", "..", *common), "..")


def test_ctrl_c_is_one_line_and_status_130(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted_generation(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(RiffusionPipeline, "txt2img", interrupted_generation)
    output = tmp_path / "never.wav"
    result = generate("jazz", "-o", output, "--width", 128, "--model", tiny_checkpoint, *FAST)
    assert result.exit_code == EXIT_INTERRUPTED, result.output
    assert result.output.strip().splitlines()[-1] == "Interrupted."
    assert "Traceback" not in result.output and "Aborted" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_outputs_that_cannot_be_written_are_refused_before_the_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("ok.wav").write_bytes(b"")
    nowhere = ["--model", "./no-model"]
    failed(generate("x", "-o", "ok.wav/x.wav", *nowhere), "cannot write (ok.wav is a file, not a")
    failed(generate("x", "-o", "o.wav", "--image", "ok.wav/x.png", *nowhere), "ok.wav is a file")
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    failed(generate("x", "-o", "new/o.wav", *nowhere), f"no permission to write in {Path('.')}")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ok.wav"]


def test_prompt_weights_beyond_the_limits_are_refused_before_the_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    failed(
        generate("(a:10000000000000000)", "-o", "o.wav", "--model", "./no-model"),
        "prompt: weight 1e+16 of 'a' is out of range",
    )
    failed(
        generate(
            "jazz", "--negative", "(" * 499 + "x" + ")" * 499, "-o", "o.wav", "--model", "./none"
        ),
        "negative prompt: brackets nest 499 deep",
    )


def test_a_full_disk_leaves_neither_output(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audio used to be written before the image failed: both whole or neither now."""
    save = Image.Image.save

    def disk_full(self: Image.Image, path: Path | str, *args: object, **kwargs: object) -> None:
        save(self, path, *args, **kwargs)
        Path(path).write_bytes(Path(path).read_bytes()[:100])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Image.Image, "save", disk_full)
    audio, image = tmp_path / "g.mp3", tmp_path / "g.png"
    result = generate(
        "jazz", "-o", audio, "--image", image, "--width", 64, "--model", tiny_checkpoint, *FAST
    )
    failed(result, f"{image}: cannot write (No space left on device)")
    assert list(tmp_path.iterdir()) == []
