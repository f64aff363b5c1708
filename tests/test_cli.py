"""The command line end to end: every command, bad input of every kind, and --overwrite.

Test audio is generated in tmp_path. Reconstruction (image-to-audio) mostly runs on small
spectrograms (SMALL: a 640-sample FFT rather than 17640) to keep the suite fast.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from cli_support import failed, failed_matching, run, succeeded
from PIL import Image

from riffusion import Audio, SpectrogramImageConverter, SpectrogramParams
from riffusion.clips import clip_start_times_ms
from riffusion.spectrogram.image import mel_amplitudes_from_image
from riffusion.spectrogram.params import ExifTag

COMMANDS = (
    "audio-to-image",
    "image-to-audio",
    "print-exif",
    "sample-clips",
    "audio-to-images-batch",
    "sample-clips-batch",
)

# Spectrogram flags for quick reconstruction: 16 kHz, 20 ms window in a 40 ms FFT, 64 mel bins.
SMALL = [
    "--sample-rate=16000",
    "--max-frequency=8000",
    "--num-frequencies=64",
    "--window-duration-ms=20",
    "--padded-duration-ms=40",
]


def tone(path: Path, seconds: float = 1.0, rate: int = 44100, channels: int = 1) -> Path:
    """A chord of one sine per channel (330, 440, 550 Hz, ...), written in path's format."""
    times = np.arange(round(seconds * rate)) / rate
    waves = np.stack([0.4 * np.sin(2 * np.pi * (330 + 110 * c) * times) for c in range(channels)])
    return Audio(waves, rate).save(path)


def exif(path: Path) -> dict[str, object]:
    tags = Image.open(path).getexif()
    return {ExifTag(tag).name: value for tag, value in tags.items() if tag in set(ExifTag)}


@pytest.fixture
def small_image(tmp_path: Path) -> Path:
    """A 1 s mono spectrogram with SMALL parameters, written by audio-to-image."""
    path = tmp_path / "small.png"
    succeeded(
        run("audio-to-image", "--audio", tone(tmp_path / "tone.wav"), "--image", path, *SMALL)
    )
    return path


# --- the commands exist, as the original's `python -m riffusion.cli` ----------------------------


def test_python_m_riffusion_cli_runs_as_a_program() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "riffusion.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Usage: python -m riffusion.cli" in done.stdout
    for command in COMMANDS:
        assert command in done.stdout


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        (
            "audio-to-image",
            "--audio --image --step-size-ms --num-frequencies --min-frequency --max-frequency "
            "--window-duration-ms --padded-duration-ms --power-for-image --stereo --device "
            "--sample-rate --overwrite",
        ),
        ("image-to-audio", "--image --audio --device --quality --overwrite"),
        ("print-exif", "--image"),
        (
            "sample-clips",
            "--audio --output-dir --num-clips --duration-ms --mono --extension --seed --overwrite",
        ),
        (
            "audio-to-images-batch",
            "--audio-dir --output-dir --image-extension --step-size-ms --num-frequencies "
            "--min-frequency --max-frequency --power-for-image --mono --sample-rate --device "
            "--num-threads --limit --overwrite",
        ),
        (
            "sample-clips-batch",
            "--audio-dir --output-dir --num-clips-per-file --duration-ms --mono --extension "
            "--num-threads --glob --limit --seed --overwrite",
        ),
    ],
)
def test_commands_take_the_originals_flags(command: str, flags: str) -> None:
    help_text = succeeded(run(command, "--help")).output
    for flag in flags.split():
        assert re.search(rf"{flag}(?![\w-])", help_text), flag


# --- audio-to-image -------------------------------------------------------------------------------


def test_audio_to_image_writes_the_spectrogram_and_its_parameters(tmp_path: Path) -> None:
    image_path = tmp_path / "out" / "spectrogram.png"
    result = succeeded(
        run("audio-to-image", "--audio", tone(tmp_path / "a.wav"), "--image", image_path)
    )
    assert result.stdout.strip() == f"Wrote {image_path} (101 x 512 pixels)"
    image = Image.open(image_path)
    assert image.size == (101, 512)  # one column per 10 ms, plus one
    pixels = np.asarray(image)
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    assert pixels.min() == 0  # the loudest bin is black
    tags = exif(image_path)
    assert tags.pop("MAX_VALUE") > 0
    assert tags == {
        "SAMPLE_RATE": 44100,
        "STEREO": 0,
        "STEP_SIZE_MS": 10,
        "WINDOW_DURATION_MS": 100,
        "PADDED_DURATION_MS": 400,
        "NUM_FREQUENCIES": 512,
        "MIN_FREQUENCY": 0,
        "MAX_FREQUENCY": 10000,
        "POWER_FOR_IMAGE": 0.25,
    }


@pytest.mark.parametrize(
    ("flags", "reference"), [([], "clip_mono.png"), (["--stereo"], "clip_stereo.png")]
)
def test_audio_to_image_matches_the_originals_images(
    tmp_path: Path, reference_dir: Path, flags: list[str], reference: str
) -> None:
    image_path = tmp_path / reference
    succeeded(
        run("audio-to-image", "--audio", reference_dir / "clip.wav", "--image", image_path, *flags)
    )
    ours = np.asarray(Image.open(image_path), dtype=int)
    theirs = np.asarray(Image.open(reference_dir / reference), dtype=int)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() <= 1
    assert exif(image_path)["STEREO"] == exif(reference_dir / reference)["STEREO"]


def test_audio_to_image_resamples_and_writes_stereo(tmp_path: Path) -> None:
    audio = tone(tmp_path / "a48k.wav", rate=48000, channels=2)
    image_path = tmp_path / "stereo.png"
    succeeded(run("audio-to-image", "--audio", audio, "--image", image_path, "--stereo"))
    tags = exif(image_path)
    assert tags["SAMPLE_RATE"] == 44100
    assert tags["STEREO"] == 1
    pixels = np.asarray(Image.open(image_path)).astype(int)
    assert pixels.shape == (512, 101, 3)
    assert (pixels[..., 0] == 0).all()  # left in green, right in blue, red unused
    assert np.abs(pixels[..., 1] - pixels[..., 2]).max() > 50  # 330 Hz left, 440 Hz right


def test_audio_to_image_follows_the_parameter_flags(tmp_path: Path) -> None:
    image_path = tmp_path / "small.png"
    audio = tone(tmp_path / "a.wav")
    succeeded(
        run("audio-to-image", "--audio", audio, "--image", image_path, *SMALL, "--step-size-ms=20")
    )
    assert Image.open(image_path).size == (51, 64)
    tags = exif(image_path)
    assert (tags["SAMPLE_RATE"], tags["STEP_SIZE_MS"], tags["NUM_FREQUENCIES"]) == (16000, 20, 64)
    assert (tags["WINDOW_DURATION_MS"], tags["PADDED_DURATION_MS"]) == (20, 40)


def test_mp3_input_and_jpg_output(tmp_path: Path) -> None:
    image_path = tmp_path / "spectrogram.jpg"
    succeeded(run("audio-to-image", "--audio", tone(tmp_path / "a.mp3"), "--image", image_path))
    assert Image.open(image_path).format == "JPEG"
    assert exif(image_path)["NUM_FREQUENCIES"] == 512


def test_wav_of_unknown_length_is_not_taken_for_truncated(tmp_path: Path) -> None:
    # Writers that stream (ffmpeg to a pipe, recorders) leave the sizes at 0xFFFFFFFF.
    data = bytearray(tone(tmp_path / "a.wav").read_bytes())
    data_size = data.index(b"data") + 4
    data[4:8] = b"\xff" * 4  # RIFF size
    data[data_size : data_size + 4] = b"\xff" * 4
    (tmp_path / "streamed.wav").write_bytes(data)
    result = run(
        "audio-to-image", "--audio", tmp_path / "streamed.wav", "--image", tmp_path / "x.png"
    )
    succeeded(result)


def test_more_than_two_channels_are_mixed_down_with_a_notice(tmp_path: Path) -> None:
    audio = tone(tmp_path / "three.wav", channels=3)
    result = succeeded(run("audio-to-image", "--audio", audio, "--image", tmp_path / "x.png"))
    assert result.stderr.strip() == f"Warning: {audio} has 3 channels; mixing them down to mono"
    assert result.stdout.startswith("Wrote")


# --- image-to-audio -------------------------------------------------------------------------------


@pytest.mark.parametrize("extension", ["wav", "mp3", "flac", "ogg"])
def test_image_to_audio_writes_the_format_of_the_extension(
    tmp_path: Path, small_image: Path, extension: str
) -> None:
    audio_path = tmp_path / f"back.{extension}"
    result = succeeded(run("image-to-audio", "--image", small_image, "--audio", audio_path))
    assert result.stdout.strip() == f"Wrote {audio_path} (1.01 seconds)"
    info = soundfile.info(audio_path)
    assert info.format == {"wav": "WAV", "mp3": "MP3", "flac": "FLAC", "ogg": "OGG"}[extension]
    assert info.samplerate == 16000
    assert info.channels == 1
    assert info.duration == pytest.approx(1.01, abs=0.06)  # MP3 adds encoder padding


def tone_share(audio: Audio, low_hz: float, high_hz: float) -> float:
    """The fraction of audio's energy between low_hz and high_hz (first channel)."""
    samples = audio.samples[0]
    power = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    frequencies = np.fft.rfftfreq(len(samples), 1 / audio.sample_rate)
    return float(power[(frequencies >= low_hz) & (frequencies <= high_hz)].sum() / power.sum())


def spectrogram_mismatch(audio: Audio, image_path: Path) -> float:
    """How far audio's mel spectrogram is from the one image_path holds: the relative error
    after the best scaling (the audio is peak-normalised)."""
    image = Image.open(image_path)
    params = SpectrogramParams.from_exif(image.getexif())
    target = mel_amplitudes_from_image(image, params).astype(np.float64)
    heard = SpectrogramImageConverter(params).mel_amplitudes_from_audio(audio)
    heard = heard[..., : target.shape[-1]].astype(np.float64)
    scale = (heard * target).sum() / (heard * heard).sum()
    return float(np.linalg.norm(scale * heard - target) / np.linalg.norm(target))


def test_image_to_audio_qualities(tmp_path: Path, small_image: Path) -> None:
    mismatch = {}
    for quality in ("fast", "high", "original"):
        audio_path = tmp_path / f"{quality}.wav"
        args = ["--image", small_image, "--audio", audio_path, "--quality", quality]
        succeeded(run("image-to-audio", *args))
        audio = Audio.load(audio_path)
        assert audio.num_frames == 16160
        # Every quality plays the 330 Hz tone the image was made from.
        assert tone_share(audio, 300, 360) > 0.95, quality
        mismatch[quality] = spectrogram_mismatch(audio, small_image)
    # The mode is what the flag says: "high" iterates further than "fast", and both beat the
    # original's algorithm (docs/benchmarks.md).
    assert mismatch["high"] < mismatch["fast"] < mismatch["original"], mismatch


def test_stereo_image_gives_stereo_audio(tmp_path: Path) -> None:
    image_path = tmp_path / "stereo.png"
    audio = tone(tmp_path / "a.wav", channels=2)
    succeeded(run("audio-to-image", "--audio", audio, "--image", image_path, "--stereo", *SMALL))
    succeeded(run("image-to-audio", "--image", image_path, "--audio", tmp_path / "back.flac"))
    assert Audio.load(tmp_path / "back.flac").num_channels == 2


def test_image_without_parameters_uses_the_defaults_with_a_warning(tmp_path: Path) -> None:
    # The original's fallback; 30 columns of noise keep the full-size reconstruction short.
    image_path = tmp_path / "plain.png"
    noise = np.random.default_rng(0).integers(0, 256, (512, 30), dtype=np.uint8)
    Image.fromarray(noise, mode="L").save(image_path)
    result = succeeded(run("image-to-audio", "--image", image_path, "--audio", tmp_path / "x.wav"))
    assert result.stderr.strip() == (
        f"Warning: {image_path} has no spectrogram parameters in its EXIF; using the defaults"
    )
    assert soundfile.info(tmp_path / "x.wav").samplerate == 44100


# --- print-exif -----------------------------------------------------------------------------------


def test_print_exif_lists_the_parameters(small_image: Path) -> None:
    lines = succeeded(run("print-exif", "--image", small_image)).stdout.splitlines()
    assert len(lines) == len(ExifTag)
    assert lines[0] == f"{'SAMPLE_RATE':<20} = {16000:>15}"
    assert lines[1] == f"{'STEREO':<20} = {0:>15}"
    assert lines[-1].startswith("MAX_VALUE            = ")


def test_print_exif_of_an_image_without_exif(tmp_path: Path) -> None:
    Image.new("RGB", (4, 4)).save(tmp_path / "plain.png")
    result = succeeded(run("print-exif", "--image", tmp_path / "plain.png"))
    assert result.stdout == ""
    assert "has no EXIF data" in result.stderr


# --- sample-clips ---------------------------------------------------------------------------------


def test_sample_clips_cuts_seeded_clips_named_like_the_original(tmp_path: Path) -> None:
    audio = tone(tmp_path / "song.wav", seconds=2.0, channels=2)
    out = tmp_path / "clips"
    args = ["--audio", audio, "--num-clips", 3, "--duration-ms", 500, "--seed", 7]
    result = succeeded(run("sample-clips", *args, "--output-dir", out))
    legacy = np.random.RandomState(7)  # what the original's np.random.seed(7) gives
    starts = [legacy.randint(0, 1500) for _ in range(3)]
    names = [f"clip_{i}_start_{start}_ms_duration_500_ms.wav" for i, start in enumerate(starts)]
    assert result.stdout.splitlines() == [f"Wrote {out / name}" for name in names]
    for name in names:
        clip = Audio.load(out / name)
        assert (clip.num_channels, clip.num_frames) == (2, 22050)
    succeeded(run("sample-clips", *args, "--output-dir", tmp_path / "again"))
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == sorted(names)


def test_sample_clips_mono_mp3(tmp_path: Path) -> None:
    audio = tone(tmp_path / "song.flac", seconds=1.5, rate=48000, channels=2)
    out = tmp_path / "clips"
    args = ["--audio", audio, "--output-dir", out, "--duration-ms", 1000, "--num-clips", 2]
    succeeded(run("sample-clips", *args, "--mono", "--extension", "mp3"))
    clips = sorted(out.glob("clip_*_duration_1000_ms.mp3"))
    assert len(clips) == 2
    assert {soundfile.info(clip).channels for clip in clips} == {1}
    assert {soundfile.info(clip).samplerate for clip in clips} == {48000}


def test_sample_clips_whole_length_and_many_channels(tmp_path: Path) -> None:
    audio = tone(tmp_path / "four.wav", seconds=0.5, channels=4)
    out = tmp_path / "clips"
    result = succeeded(
        run("sample-clips", "--audio", audio, "--output-dir", out, "--duration-ms", 500)
    )
    assert "4 channels; mixing them down to mono" in result.stderr
    (clip,) = out.iterdir()
    assert clip.name == "clip_0_start_0_ms_duration_500_ms.wav"
    assert soundfile.info(clip).channels == 1


# --- batches --------------------------------------------------------------------------------------


@pytest.fixture
def audio_dir(tmp_path: Path) -> Path:
    """Good, bad and ignored files: a 44.1 kHz WAV, a 48 kHz stereo MP3, a 3-channel FLAC, a
    non-audio file, a 50 ms WAV, a truncated WAV, a JSON sidecar and a hidden file."""
    folder = tmp_path / "audio"
    folder.mkdir()
    tone(folder / "a.wav")
    tone(folder / "b.mp3", rate=48000, channels=2)
    tone(folder / "c.flac", channels=3)
    (folder / "d_not_audio.wav").write_bytes(b"RIFF but not really" * 20)
    tone(folder / "e_short.wav", seconds=0.05)
    whole = tone(tmp_path / "whole.wav").read_bytes()
    (folder / "f_truncated.wav").write_bytes(whole[: len(whole) // 3])
    (folder / "a.json").write_text("{}")
    (folder / ".DS_Store").write_bytes(b"\0" * 10)
    return folder


def test_audio_to_images_batch_converts_good_files_and_reports_bad_ones(
    tmp_path: Path, audio_dir: Path
) -> None:
    out = tmp_path / "images"
    result = run("audio-to-images-batch", "--audio-dir", audio_dir, "--output-dir", out)
    failed(result, "3 of 6 files failed")
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "b.jpg", "c.jpg"]
    for image in out.iterdir():
        assert Image.open(image).format == "JPEG"
        assert exif(image)["STEREO"] == 1  # the original's batch default
        assert Image.open(image).size == (101, 512)
    assert "Processed 6 files: 3 written, 3 failed" in result.stdout
    skipped = [line for line in result.stderr.splitlines() if line.startswith("Skipped")]
    assert len(skipped) == 3
    assert any("d_not_audio.wav: not a readable audio file" in line for line in skipped)
    assert any("e_short.wav: audio is 50.0 ms long" in line for line in skipped)
    assert any("f_truncated.wav: file is truncated" in line for line in skipped)
    assert "c.flac has 3 channels; mixing them down to mono" in result.stderr
    assert "json" not in result.stderr and "DS_Store" not in result.stderr


def test_audio_to_images_batch_mono_png_limit_and_threads(tmp_path: Path, audio_dir: Path) -> None:
    out = tmp_path / "images"
    args = ["--audio-dir", audio_dir, "--output-dir", out, "--image-extension", "png"]
    succeeded(run("audio-to-images-batch", *args, "--mono", "--limit", 2, "--num-threads", 1))
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    pixels = np.asarray(Image.open(out / "b.png"))
    assert (pixels[..., 0] == pixels[..., 2]).all()
    assert exif(out / "b.png")["STEREO"] == 0


def test_audio_to_images_batch_skips_existing_images_unless_overwriting(tmp_path: Path) -> None:
    folder = tmp_path / "audio"
    folder.mkdir()
    tone(folder / "a.wav")
    tone(folder / "b.wav")
    out = tmp_path / "images"
    out.mkdir()
    (out / "a.jpg").write_bytes(b"keep me")
    args = ["--audio-dir", folder, "--output-dir", out]
    result = succeeded(run("audio-to-images-batch", *args))
    assert "1 written, 1 skipped as their images exist" in result.stdout
    assert (out / "a.jpg").read_bytes() == b"keep me"
    assert exif(out / "b.jpg")["NUM_FREQUENCIES"] == 512
    result = succeeded(run("audio-to-images-batch", *args, "--overwrite"))
    assert "2 written, 0 failed" in result.stdout
    assert exif(out / "a.jpg")["NUM_FREQUENCIES"] == 512


def test_batch_inputs_with_the_same_stem_are_not_both_written(tmp_path: Path) -> None:
    folder = tmp_path / "audio"
    folder.mkdir()
    tone(folder / "song.flac")
    tone(folder / "song.wav", seconds=2.0)
    out = tmp_path / "images"
    result = run("audio-to-images-batch", "--audio-dir", folder, "--output-dir", out)
    failed(result, "1 of 2 files failed")
    assert f"Skipped {folder / 'song.wav'}: its outputs would have the same names as" in (
        result.stderr
    )
    assert Image.open(out / "song.jpg").width == 101  # from the 1 s song.flac


def test_sample_clips_batch(tmp_path: Path, audio_dir: Path) -> None:
    out = tmp_path / "clips"
    args = ["--audio-dir", audio_dir, "--duration-ms", 40, "--num-clips-per-file", 2, "--seed", 3]
    result = run("sample-clips-batch", *args, "--output-dir", out, "--extension", "wav")
    # The 50 ms file is long enough for 40 ms clips; the broken ones are reported.
    failed(result, "2 of 6 files failed")
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 8
    assert all(re.fullmatch(r"[a-e]\w*_[01]_start_\d+_ms_dur_40_ms\.wav", name) for name in names)
    assert {soundfile.info(out / name).frames for name in names} == {1764, 1920}  # 44.1, 48 kHz
    # Seeded per file name: the same clips again, whatever the thread scheduling.
    run("sample-clips-batch", *args, "--output-dir", tmp_path / "again", "--extension", "wav")
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == names


def test_sample_clips_batch_glob_mono_and_short_files(tmp_path: Path, audio_dir: Path) -> None:
    out = tmp_path / "clips"
    args = ["--audio-dir", audio_dir, "--output-dir", out, "--glob", "[abe]*", "--mono"]
    result = run("sample-clips-batch", *args, "--duration-ms", 500)
    failed(result, "1 of 3 files failed")
    assert "e_short.wav: the clip duration (500 ms) is longer than the audio (50 ms)" in (
        result.stderr
    )
    clips = sorted(out.iterdir())
    assert [clip.name[:2] for clip in clips] == ["a_", "b_"]
    assert all(clip.suffix == ".mp3" for clip in clips)  # the original's batch default
    assert {soundfile.info(clip).channels for clip in clips} == {1}


def test_sample_clips_batch_skips_files_whose_clips_exist(tmp_path: Path) -> None:
    folder = tmp_path / "audio"
    folder.mkdir()
    tone(folder / "a.wav")
    out = tmp_path / "clips"
    args = ["--audio-dir", folder, "--output-dir", out, "--duration-ms", 100, "--seed", 1]
    succeeded(run("sample-clips-batch", *args))
    (clip,) = out.iterdir()
    clip.write_bytes(b"keep me")
    assert "1 skipped as their clips exist" in succeeded(run("sample-clips-batch", *args)).stdout
    assert clip.read_bytes() == b"keep me"
    succeeded(run("sample-clips-batch", *args, "--overwrite"))
    assert soundfile.info(clip).duration == pytest.approx(0.1, abs=0.06)


# --- bad input: one line that says what is wrong, a non-zero exit, no traceback -----------------


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_image: Path) -> Path:
    """tmp_path as the working directory, holding good and bad files of each kind."""
    monkeypatch.chdir(tmp_path)
    tone(tmp_path / "good.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    whole = (tmp_path / "good.wav").read_bytes()
    (tmp_path / "truncated.wav").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "header_only.wav").write_bytes(whole[:10])
    soundfile.write(tmp_path / "zero_length.wav", np.zeros((0, 1)), 44100)
    tone(tmp_path / "short.wav", seconds=0.1)
    soundfile.write(tmp_path / "nan.wav", np.full(44100, np.nan, np.float32), 44100, "FLOAT")
    (tmp_path / "text.wav").write_text("this is not audio\n" * 50)
    (tmp_path / "tiny.mp3").write_bytes(tone(tmp_path / "whole.mp3").read_bytes()[:64])
    (tmp_path / "text.png").write_text("this is not an image\n" * 50)
    png = small_image.read_bytes()
    (tmp_path / "truncated.png").write_bytes(png[: len(png) // 2])
    Image.new("RGB", (50, 300), "white").save(tmp_path / "wrong_height.png")
    Image.open(small_image).crop((0, 0, 3, 64)).save(
        tmp_path / "narrow.png", exif=Image.open(small_image).getexif()
    )
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder.wav").mkdir()
    (tmp_path / "audio_folder").mkdir()
    tone(tmp_path / "audio_folder" / "a.wav")
    return tmp_path


A2I = ["audio-to-image", "--image", "out.png", "--audio"]
I2A = ["image-to-audio", "--audio", "out.wav", "--image"]
CLIPS = ["sample-clips", "--output-dir", "clips", "--audio"]
IMAGES_BATCH = ["audio-to-images-batch", "--output-dir", "images", "--audio-dir"]
CLIPS_BATCH = ["sample-clips-batch", "--output-dir", "clips", "--audio-dir"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # unreadable audio
        ([*A2I, "missing.wav"], r"^Error: missing\.wav: no such file$"),
        ([*A2I, "empty.wav"], r"empty\.wav: file is empty"),
        ([*A2I, "truncated.wav"], r"truncated\.wav: file is truncated: its header declares"),
        ([*A2I, "header_only.wav"], r"header_only\.wav: not a readable audio file"),
        ([*A2I, "zero_length.wav"], r"zero_length\.wav: contains no audio frames"),
        ([*A2I, "text.wav"], r"text\.wav: not a readable audio file"),
        ([*A2I, "folder"], r"folder: is a directory"),
        ([*A2I, "nan.wav"], r"nan\.wav: contains NaN or infinite samples"),
        # libsndfile says "File does not exist or is not a regular file" of such a file
        ([*A2I, "tiny.mp3"], r"tiny\.mp3: not a readable audio file \(no decodable audio found\)$"),
        ([*A2I, "short.wav"], r"audio is 100\.0 ms long; a spectrogram needs at least 200\.0 ms"),
        ([*CLIPS, "truncated.wav"], r"file is truncated"),
        ([*CLIPS, "text.wav"], r"not a readable audio file"),
        # parameters out of range
        (
            [*A2I, "good.wav", "--step-size-ms", -10],
            r"step_size_ms must be between 1 and 1000 \(got -10\)",
        ),
        (
            [*A2I, "good.wav", "--window-duration-ms", 0],
            r"window_duration_ms must be between 1 and",
        ),
        ([*A2I, "good.wav", "--padded-duration-ms", 50], r"padded_duration_ms \(50\) must be at"),
        ([*A2I, "good.wav", "--min-frequency", 5000, "--max-frequency", 500], r"min_frequency <"),
        ([*A2I, "good.wav", "--min-frequency", -1], r"0 <= min_frequency"),
        ([*A2I, "good.wav", "--max-frequency", 30000], r"max_frequency <= sample_rate / 2"),
        ([*A2I, "good.wav", "--num-frequencies", 0], r"num_frequencies must be between 1 and 4096"),
        (
            [*A2I, "good.wav", "--power-for-image", 0],
            r"power_for_image must be between 0.01 and 10",
        ),
        ([*A2I, "good.wav", "--sample-rate", 0], r"sample_rate must be between 1000 and 768000"),
        ([*A2I, "good.wav", "--step-size-ms", 5000], r"step_size_ms must be between 1 and 1000"),
        ([*A2I, "good.wav", "--device", "quantum"], r"unknown device 'quantum'"),
        (["audio-to-image", "--audio", "good.wav", "--image", "out.gif"], r"image format 'gif'"),
        (["audio-to-image", "--audio", "good.wav", "--image", "folder"], r"image format 'folder'"),
        ([*CLIPS, "good.wav", "--num-clips", 0], r"number of clips must be at least 1, got 0"),
        ([*CLIPS, "good.wav", "--duration-ms", -100], r"duration must be positive, got -100 ms"),
        ([*CLIPS, "good.wav", "--duration-ms", 0], r"duration must be positive, got 0 ms"),
        ([*CLIPS, "good.wav", "--duration-ms", 1001], r"\(1001 ms\) is longer than the audio"),
        ([*CLIPS, "good.wav", "--extension", "aac"], r"unsupported audio format 'aac'"),
        (
            [*CLIPS, "good.wav", "--duration-ms", 500, "--seed", 2**40],
            r"seed must be between 0 and 2\*\*32 - 1",
        ),
        ([*CLIPS, "good.wav", "--duration-ms", 500, "--output-dir", "good.wav"], r"not a direc"),
        # unreadable or unusable images
        ([*I2A, "missing.png"], r"missing\.png: no such file"),
        ([*I2A, "text.png"], r"text\.png: not an image file"),
        ([*I2A, "truncated.png"], r"truncated\.png: not a readable image \(image file is trunc"),
        ([*I2A, "folder"], r"folder: is a directory"),
        ([*I2A, "wrong_height.png"], r"300 pixels tall, but .* have 512 frequency rows"),
        ([*I2A, "narrow.png"], r"3 frames \(image columns\), too few: .* at least 4"),
        ([*I2A, "small.png", "--device", "cuda:x"], r"unknown device"),
        (["image-to-audio", "--image", "small.png", "--audio", "x.aac"], r"audio format 'aac'"),
        (["image-to-audio", "--image", "small.png", "--audio", "x"], r"audio format 'x'"),
        (["print-exif", "--image", "text.png"], r"text\.png: not an image file"),
        # outputs that cannot be written, found before any work
        (
            ["audio-to-image", "--audio", "good.wav", "--image", "good.wav/x.png"],
            r"^Error: good\.wav/x\.png: cannot write \(good\.wav is a file, not a directory\)$",
        ),
        ([*I2A[:2], "good.wav/x/y.wav", "--image", "small.png"], r"good\.wav is a file, not a"),
        (
            [*I2A[:2], "folder.wav", "--image", "small.png"],
            r"folder\.wav: cannot write \(it is a dir",
        ),
        (
            ["sample-clips", "--output-dir", "good.wav/clips", "--audio", "good.wav"],
            r"good\.wav/clips: cannot write there \(good\.wav is a file, not a directory\)",
        ),
        ([*IMAGES_BATCH[:2], "good.wav/x", "--audio-dir", "audio_folder"], r"good\.wav is a file"),
        (["print-exif", "--image", "missing.png"], r"missing\.png: no such file"),
        # batches: problems that concern every file stop before any work
        ([*IMAGES_BATCH, "nowhere"], r"nowhere: no such directory"),
        ([*IMAGES_BATCH, "good.wav"], r"good\.wav: is not a directory"),
        ([*IMAGES_BATCH, "folder"], r"folder: no files match '\*'"),
        ([*IMAGES_BATCH, "audio_folder", "--image-extension", "tiff"], r"image format 'tiff'"),
        ([*IMAGES_BATCH, "audio_folder", "--max-frequency", 0], r"min_frequency < max_freq"),
        ([*IMAGES_BATCH, "audio_folder", "--device", "gpu"], r"unknown device 'gpu'"),
        ([*CLIPS_BATCH, "audio_folder", "--extension", "wma"], r"audio format 'wma'"),
        ([*CLIPS_BATCH, "audio_folder", "--num-clips-per-file", 0], r"number of clips must be"),
        ([*CLIPS_BATCH, "audio_folder", "--duration-ms", -5], r"duration must be positive"),
        ([*CLIPS_BATCH, "audio_folder", "--glob", "/etc/*"], r"invalid glob pattern '/etc/\*'"),
        ([*CLIPS_BATCH, "audio_folder", "--glob", "*.mp3"], r"no files match '\*\.mp3'"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(
    workdir: Path, args: list[object], message: str
) -> None:
    before = sorted(path.name for path in workdir.iterdir())
    failed_matching(run(*args), message)
    # Nothing was written, not even an output folder.
    assert sorted(path.name for path in workdir.iterdir()) == before


@pytest.mark.parametrize(
    "args",
    [
        [*IMAGES_BATCH, "audio_folder", "--limit", 0],
        [*CLIPS_BATCH, "audio_folder", "--limit", -2],
        [*CLIPS_BATCH, "audio_folder", "--num-threads", 0],
        [*I2A, "small.png", "--quality", "best"],
        [*A2I, "good.wav", "--step-size-ms", "ten"],
        [*CLIPS, "good.wav", "--num-clips", 1.5],
    ],
)
def test_malformed_options_are_usage_errors(workdir: Path, args: list[object]) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert "Error: Invalid value for" in result.stderr


def test_missing_required_options_are_usage_errors() -> None:
    for command in COMMANDS:
        result = run(command)
        assert result.exit_code == 2
        assert "Error: Missing option" in result.stderr


# --- nothing on disk is replaced without --overwrite ----------------------------------------------


def test_audio_to_image_refuses_to_overwrite(tmp_path: Path) -> None:
    audio, image = tone(tmp_path / "a.wav"), tmp_path / "taken.png"
    image.write_bytes(b"precious")
    failed_matching(
        run("audio-to-image", "--audio", audio, "--image", image),
        rf"^Error: {re.escape(str(image))} already exists; pass --overwrite to replace it$",
    )
    assert image.read_bytes() == b"precious"
    succeeded(run("audio-to-image", "--audio", audio, "--image", image, "--overwrite"))
    assert Image.open(image).size == (101, 512)


def test_image_to_audio_refuses_to_overwrite(tmp_path: Path, small_image: Path) -> None:
    audio = tmp_path / "taken.wav"
    audio.write_bytes(b"precious")
    failed(run("image-to-audio", "--image", small_image, "--audio", audio), "already exists")
    assert audio.read_bytes() == b"precious"
    succeeded(run("image-to-audio", "--image", small_image, "--audio", audio, "--overwrite"))
    assert soundfile.info(audio).frames == 16160


def test_sample_clips_refuses_before_writing_any_clip(tmp_path: Path) -> None:
    audio = tone(tmp_path / "a.wav", seconds=2.0)
    out = tmp_path / "clips"
    out.mkdir()
    second_start = clip_start_times_ms(2000, 1000, 2, seed=0)[1]
    taken = out / f"clip_1_start_{second_start}_ms_duration_1000_ms.wav"
    taken.write_bytes(b"precious")
    args = ["--audio", audio, "--output-dir", out, "--num-clips", 2, "--duration-ms", 1000]
    refused = run("sample-clips", *args, "--seed", 0)
    failed_matching(refused, r"clip_1_.* already exists; pass --overwrite")
    assert list(out.iterdir()) == [taken]
    assert taken.read_bytes() == b"precious"
    succeeded(run("sample-clips", *args, "--seed", 0, "--overwrite"))
    assert len(list(out.iterdir())) == 2
    assert soundfile.info(taken).frames == 44100


# --- hostile and damaged files ------------------------------------------------------------------


@pytest.mark.parametrize(("max_value", "extension"), [(1e308, "mp3"), (1e38, "wav")])
def test_an_overflowing_max_value_is_refused_not_played(
    tmp_path: Path, small_image: Path, max_value: float, extension: str
) -> None:
    """Such images aborted the process in the MP3 encoder (status 134), or made noise."""
    image = Image.open(small_image)
    exif = image.getexif()
    exif[int(ExifTag.MAX_VALUE)] = max_value
    hostile = tmp_path / "hostile.png"
    image.save(hostile, exif=exif)
    output = tmp_path / f"out.{extension}"
    # A separate process: an abort in the encoder would otherwise take the test run with it.
    command = [sys.executable, "-m", "riffusion.cli", "image-to-audio", "--device", "cpu"]
    done = subprocess.run(
        [*command, "--image", str(hostile), "--audio", str(output)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr == (
        f"Error: {hostile}: EXIF tag 11080 (MAX_VALUE) must be a number from 0 to 1e+15, "
        f"got {max_value!r}\n"
    )
    assert not output.exists()


def test_an_mp3_cut_short_is_read_with_a_warning(tmp_path: Path) -> None:
    whole = tone(tmp_path / "whole.mp3", seconds=2.0).read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(whole[: len(whole) // 2])
    result = succeeded(run("audio-to-image", "--audio", cut, "--image", tmp_path / "x.png"))
    assert re.fullmatch(
        rf"Warning: {re.escape(str(cut))} seems cut short: its header announces 2\.00 s, but only "
        r"0\.\d\d s could be decoded; using that",
        result.stderr.strip(),
    ), result.stderr
