"""The Audio type: construction, channels, resampling, slicing and file formats."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile

from riffusion import Audio, RiffusionError
from riffusion.errors import RiffusionWarning


def sine(frequency_hz: float = 440.0, seconds: float = 1.0, rate: int = 44100) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)


def test_samples_are_float32_channels_by_frames() -> None:
    audio = Audio(sine().astype(np.float64), 44100)
    assert audio.samples.dtype == np.float32
    assert audio.samples.shape == (1, 44100)
    assert audio.num_channels == 1
    assert audio.duration_s == pytest.approx(1.0)


def test_invalid_construction_is_refused() -> None:
    with pytest.raises(RiffusionError, match="shaped"):
        Audio(np.zeros((1, 2, 3)), 44100)
    with pytest.raises(RiffusionError, match="sample rate"):
        Audio(np.zeros((1, 10)), 0)


def test_mono_and_stereo() -> None:
    left, right = sine(440), sine(660)
    stereo = Audio(np.stack([left, right]), 44100)
    np.testing.assert_allclose(stereo.to_mono().samples[0], (left + right) / 2, atol=1e-7)
    doubled = Audio(left, 44100).to_stereo()
    assert doubled.num_channels == 2
    np.testing.assert_array_equal(doubled.samples[0], doubled.samples[1])
    three = Audio(np.stack([left, right, left]), 44100)
    assert three.to_stereo().num_channels == 2


def test_slicing_in_seconds() -> None:
    audio = Audio(np.arange(44100, dtype=np.float32)[None] / 44100, 44100)
    part = audio[0.25:0.5]
    assert part.num_frames == 11025
    assert part.samples[0, 0] == pytest.approx(0.25)
    assert audio.slice(0.9, 5.0).num_frames == 4410
    assert audio.slice(2.0).num_frames == 0
    with pytest.raises(TypeError):
        audio[3]


@pytest.mark.parametrize(("source", "target"), [(48000, 44100), (22050, 44100), (44100, 16000)])
def test_resample_keeps_duration_and_pitch(source: int, target: int) -> None:
    audio = Audio(sine(1000.0, 1.0, source), source).resample(target)
    assert audio.sample_rate == target
    assert audio.num_frames == target
    spectrum = np.abs(np.fft.rfft(audio.samples[0]))
    assert np.argmax(spectrum) * target / audio.num_frames == pytest.approx(1000.0, abs=2.0)


@pytest.mark.parametrize("extension", ["wav", "flac", "ogg", "mp3"])
def test_save_and_load_each_format(tmp_path: Path, extension: str) -> None:
    original = Audio(np.stack([sine(440), sine(550)]), 44100)
    path = original.save(tmp_path / f"tone.{extension}")
    loaded = Audio.load(path)
    assert loaded.sample_rate == 44100
    assert loaded.num_channels == 2
    assert abs(loaded.num_frames - original.num_frames) <= 2048
    frames = min(loaded.num_frames, original.num_frames)
    if extension in ("wav", "flac"):
        np.testing.assert_allclose(loaded.samples, original.samples, atol=1 / 16384)
    else:
        # Lossy codecs keep the level.
        assert np.abs(loaded.samples[:, :frames]).max() == pytest.approx(0.5, abs=0.08)


def test_to_bytes_matches_format() -> None:
    audio = Audio(sine(), 44100)
    assert audio.to_bytes("wav")[:4] == b"RIFF"
    assert audio.to_bytes("flac")[:4] == b"fLaC"
    assert audio.to_bytes("ogg")[:4] == b"OggS"
    mp3 = audio.to_bytes("mp3")
    assert mp3[:3] == b"ID3" or mp3[0] == 0xFF
    with pytest.raises(RiffusionError, match="unsupported audio format"):
        audio.to_bytes("aac")


def test_saving_clips_instead_of_wrapping(tmp_path: Path) -> None:
    loud = Audio(np.array([[2.0, -2.0, 0.5]], np.float32), 44100)
    loaded, _ = soundfile.read(loud.save(tmp_path / "loud.wav"), dtype="float32")
    assert loaded[0] > 0.99 and loaded[1] < -0.99


def test_peak_normalized() -> None:
    audio = Audio(sine() * 0.1, 44100).peak_normalized(headroom_db=0.1)
    assert np.abs(audio.samples).max() == pytest.approx(10 ** (-0.1 / 20), rel=1e-5)


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), (b"", "empty"), (b"not audio at all" * 20, "not a readable audio")],
)
def test_load_errors(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "input.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(RiffusionError, match=message):
        Audio.load(path)


def test_load_truncated_wav(tmp_path: Path) -> None:
    path = Audio(sine(), 44100).save(tmp_path / "full.wav")
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(path.read_bytes()[:30])
    with pytest.raises(RiffusionError, match=str(truncated.name)):
        Audio.load(truncated)


def test_save_refuses_to_overwrite_when_asked(tmp_path: Path) -> None:
    path = Audio(sine(), 44100).save(tmp_path / "a.wav")
    with pytest.raises(RiffusionError, match="already exists"):
        Audio(sine(), 44100).save(path, overwrite=False)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "kept.wav"
    output.write_bytes(b"old")
    write_bytes = Path.write_bytes

    def disk_full(self: Path, data: bytes) -> int:
        write_bytes(self, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    audio = Audio(np.zeros((1, 4410), dtype=np.float32), 44100)
    with pytest.raises(RiffusionError, match=f"{output}: cannot write \\(No space left"):
        audio.save(output)
    assert output.read_bytes() == b"old"
    assert [path.name for path in tmp_path.iterdir()] == ["kept.wav"]


def test_saved_files_get_the_usual_permissions(tmp_path: Path) -> None:
    reference = tmp_path / "plain"
    reference.write_bytes(b"")
    saved = Audio(np.zeros((1, 441), dtype=np.float32), 44100).save(tmp_path / "saved.wav")
    assert saved.stat().st_mode == reference.stat().st_mode


# --- what reaches the encoders, and what the decoders are given --------------------------------


def run_apart(code: str) -> subprocess.CompletedProcess[str]:
    """code in a fresh interpreter: a crash in a native encoder must not take the tests along."""
    return subprocess.run(
        [sys.executable, "-c", "import numpy as np\nfrom riffusion import Audio\n" + code],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("value", ["np.nan", "np.inf", "-np.inf"])
@pytest.mark.parametrize("extension", ["mp3", "wav"])
def test_non_finite_samples_are_refused_by_every_encoder(value: str, extension: str) -> None:
    """NaN made LAME abort the process (`calc_energy: el >= 0`); WAV wrote it as silence."""
    done = run_apart(
        "samples = np.zeros((2, 4410), np.float32)\n"
        f"samples[0, 100] = {value}\n"
        "try:\n"
        f"    Audio(samples, 44100).to_bytes({extension!r})\n"
        "except ValueError as error:\n"
        "    print(error)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "the audio has NaN or infinite samples; it cannot be encoded\n"


def test_rates_and_channels_the_encoders_crash_on_are_not_handed_to_them() -> None:
    """libvorbis crashed (SIGSEGV) above 200 kHz and beyond 255 channels."""
    done = run_apart(
        "import io, soundfile\n"
        "ogg = Audio(np.zeros((1, 38400), np.float32), 384000).to_bytes('ogg')\n"
        "print(soundfile.info(io.BytesIO(ogg)).samplerate)\n"
        "try:\n"
        "    Audio(np.zeros((256, 100), np.float32), 44100).to_bytes('ogg')\n"
        "except ValueError as error:\n"
        "    print(error)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "192000",
        "ogg holds at most 255 channels, the audio has 256; mix down first",
    ]


def test_high_rates_are_resampled_for_formats_that_cannot_hold_them(tmp_path: Path) -> None:
    audio = Audio(sine(1000.0, 0.1, 384000), 384000)
    # Ogg Vorbis, which crashed, is tested apart above.
    for extension, rate in (("flac", 384000), ("mp3", 48000), ("wav", 384000)):
        saved = Audio.load(audio.save(tmp_path / f"high.{extension}"))
        assert saved.sample_rate == rate, extension


def test_loud_samples_are_clipped_not_refused(tmp_path: Path) -> None:
    loud = Audio(np.array([[0.5, 3.0, -1e30]], dtype=np.float32), 44100)
    samples = Audio.load(loud.save(tmp_path / "loud.wav")).samples
    np.testing.assert_allclose(samples, [[0.5, 32767 / 32768, -1.0]], atol=1 / 32768)


def test_a_cut_mp3_is_read_as_far_as_it_goes_with_a_warning(tmp_path: Path) -> None:
    whole = Audio(sine(seconds=2.0), 44100).save(tmp_path / "whole.mp3").read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.warns(RiffusionWarning, match=r"cut\.mp3 seems cut short: .* announces 2\.00 s"):
        audio = Audio.load(cut)
    assert 0.8 < audio.duration_s < 1.1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Audio.load(tmp_path / "whole.mp3").duration_s == pytest.approx(2.0)


def test_a_header_announcing_billions_of_frames_is_not_believed(tmp_path: Path) -> None:
    """soundfile.read allocated what the header announced: 256 GiB, a MemoryError."""
    data = bytearray(Audio(sine(), 44100).to_bytes("flac"))
    # STREAMINFO's total sample count: the low 4 bits of byte 21 and bytes 22 to 25.
    data[21] |= 0x0F
    data[22:26] = b"\xff\xff\xff\xff"
    path = tmp_path / "liar.flac"
    path.write_bytes(data)
    try:
        audio = Audio.load(path)
    except RiffusionError as error:
        assert str(error).startswith(f"{path}: not a readable audio file")
    else:
        assert audio.num_frames == 44100


@pytest.mark.parametrize("rate", [1, 999, 1_000_000])
def test_implausible_sample_rates_are_refused(tmp_path: Path, rate: int) -> None:
    path = tmp_path / "odd.wav"
    soundfile.write(path, np.zeros(100), rate)
    with pytest.raises(RiffusionError, match=f"sample rate {rate} Hz is outside the 1000-768000"):
        Audio.load(path)


def test_an_mp3_without_one_whole_frame_says_so(tmp_path: Path) -> None:
    path = tmp_path / "tiny.mp3"
    path.write_bytes(Audio(sine(), 44100).to_bytes("mp3")[:64])
    with pytest.raises(RiffusionError) as raised:
        Audio.load(path)
    assert str(raised.value) == f"{path}: not a readable audio file (no decodable audio found)"


def test_a_duration_bound_refuses_long_files_before_decoding_them(tmp_path) -> None:
    path = tmp_path / "long.flac"
    Audio(np.zeros((1, 44100 * 30), dtype=np.float32), 44100).save(path)
    with pytest.raises(RiffusionError, match="longer than 10 s"):
        Audio.load(path, max_duration_s=10)
    assert Audio.load(path, max_duration_s=30).num_frames == 44100 * 30


def test_block_reading_stops_past_the_bound(tmp_path) -> None:
    """For streams whose header announces no (or a wrong) length, the decoding itself stops."""
    from riffusion.audio import _read_blocks

    path = tmp_path / "long.wav"
    Audio(np.zeros((1, 44100 * 30), dtype=np.float32), 44100).save(path)
    with soundfile.SoundFile(path) as file:
        assert _read_blocks(file, max_frames=44100 * 10) is None
    with soundfile.SoundFile(path) as file:
        assert _read_blocks(file, max_frames=44100 * 30).shape == (44100 * 30, 1)
