"""Fuzzing the readers: damaged and hostile audio and image files, and wild EXIF values.

Hypothesis mutates small valid WAV, FLAC, MP3, Ogg, PNG and JPEG files (flipped bits, cut and
spliced bytes, most of them in the headers) and makes up files behind valid signatures. Every
reader must either return something sound (finite samples, the parameters' shape) or raise
RiffusionError: no other exception, no crash of the native decoders, no hang. Each test is bounded
to a few seconds (max_examples, deadline).
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from riffusion import Audio, RiffusionError, SpectrogramParams
from riffusion.spectrogram.converter import SpectrogramImageConverter
from riffusion.spectrogram.files import load_image, read_spectrogram_image
from riffusion.spectrogram.image import mel_amplitudes_from_image
from riffusion.spectrogram.params import ExifTag

# RIFFUSION_FUZZ_EXAMPLES=5000 makes a longer campaign of the same tests.
EXAMPLES = int(os.environ.get("RIFFUSION_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=2000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Damaged files make Pillow warn (corrupt EXIF, decompression bombs) and Audio.load too (files
# cut short): expected here, and beside the point.
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),
]

# Small parameters: 32 rows, 8 kHz, so that an image of a few dozen columns is a whole clip.
SMALL = SpectrogramParams(
    sample_rate=8000, num_frequencies=32, max_frequency=4000, num_griffin_lim_iters=4
)


def _audio_file(extension: str) -> bytes:
    rng = np.random.default_rng(0)
    time = np.arange(4000) / 8000
    samples = 0.4 * np.sin(2 * np.pi * 440 * time) + 0.05 * rng.standard_normal(time.size)
    return Audio(samples.astype(np.float32), 8000).to_bytes(extension)


def _image_file(format: str) -> bytes:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(SMALL.num_frequencies, 48, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif.update(SMALL.to_exif())
    exif[int(ExifTag.MAX_VALUE)] = 1e6
    buffer = io.BytesIO()
    image.save(buffer, format=format, exif=exif)
    return buffer.getvalue()


AUDIO_FILES = {extension: _audio_file(extension) for extension in ("wav", "flac", "mp3", "ogg")}
IMAGE_FILES = {"png": _image_file("PNG"), "jpg": _image_file("JPEG")}

# Starts of files that make a decoder believe it has its format, followed by anything.
SIGNATURES = {
    "wav": b"RIFF\xff\xff\xff\x7fWAVEfmt ",
    "flac": b"fLaC\x00\x00\x00\x22",
    "mp3": b"\xff\xfb\x90\xc4",
    "ogg": b"OggS\x00\x02",
    "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "jpg": b"\xff\xd8\xff\xe1",
}


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """original with up to eight edits, half of them within its first 64 bytes (the headers)."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            break
        end = draw(st.sampled_from([min(64, len(data)), len(data)]))
        at = draw(st.integers(0, end - 1))
        edit = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        if edit == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == "set":
            data[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF]) | st.integers(0, 255))
        elif edit == "cut":
            del data[at:]
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


def damaged(files: dict[str, bytes]) -> st.SearchStrategy[tuple[str, bytes]]:
    """(extension, bytes): a mutated valid file, or random bytes behind a valid signature."""
    return st.one_of(
        *(st.tuples(st.just(name), mutated(data)) for name, data in files.items()),
        *(
            st.tuples(
                st.just(name), st.binary(max_size=2048).map(lambda tail, s=signature: s + tail)
            )
            for name, signature in SIGNATURES.items()
            if name in files
        ),
    )


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="riffusion-fuzz-") as folder:
        yield Path(folder)


@FUZZ
@given(damaged(AUDIO_FILES))
def test_damaged_audio_files_load_or_raise_riffusion_errors(
    scratch: Path, file: tuple[str, bytes]
) -> None:
    extension, data = file
    path = scratch / f"input.{extension}"
    path.write_bytes(data)
    try:
        audio = Audio.load(path)
    except RiffusionError as error:
        assert str(error).startswith(str(path))
        return
    assert audio.num_frames > 0
    assert np.isfinite(audio.samples).all()
    # What was read can be written again, in every format.
    for format in ("wav", "mp3"):
        audio.to_bytes(format)


@FUZZ
@given(damaged(IMAGE_FILES))
def test_damaged_images_load_or_raise_riffusion_errors(
    scratch: Path, file: tuple[str, bytes]
) -> None:
    extension, data = file
    path = scratch / f"input.{extension}"
    path.write_bytes(data)
    try:
        spectrogram = read_spectrogram_image(path)
    except RiffusionError as error:
        assert str(error).startswith(str(path))
        return
    amplitudes = mel_amplitudes_from_image(spectrogram.image, spectrogram.params)
    assert amplitudes.shape[1] == spectrogram.params.num_frequencies
    assert np.isfinite(amplitudes).all()


@FUZZ
@given(damaged(IMAGE_FILES))
def test_damaged_images_open_as_seeds_or_raise_riffusion_errors(
    scratch: Path, file: tuple[str, bytes]
) -> None:
    """load_image alone, as seed images, masks and print-exif use it."""
    extension, data = file
    path = scratch / f"input.{extension}"
    path.write_bytes(data)
    try:
        image = load_image(path)
    except RiffusionError:
        return
    image.convert("RGB").load()


# EXIF values as files may hold them: numbers of every size and kind, and things that are not.
exif_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**31), max_value=2**32 - 1),
    st.sampled_from([0, 1, 1e38, 1e308, -1e308, 1e15, 1e16, 44100, 512, 0.25]),
    st.text(max_size=12),
)


@settings(FUZZ, max_examples=max(1, EXAMPLES // 6), deadline=5000)
@given(
    st.dictionaries(st.sampled_from(list(ExifTag)), exif_values, min_size=1, max_size=4),
    st.sampled_from(["PNG", "JPEG"]),
)
def test_wild_exif_values_are_refused_or_give_finite_audio(
    scratch: Path, changes: dict[ExifTag, Any], format: str
) -> None:
    """The whole path of image-to-audio and /api/image_to_audio: read, reconstruct, encode."""
    image = Image.open(io.BytesIO(IMAGE_FILES["png"]))
    exif = image.getexif()
    for tag, value in changes.items():
        exif[int(tag)] = value
    path = scratch / f"wild.{format.lower()}"
    try:
        image.save(path, format=format, exif=exif)
    # Pillow cannot write every value (struct.error for an int beyond its field, ...): such
    # files cannot be made, so there is nothing to read.
    except Exception:
        assume(False)
    try:
        spectrogram = read_spectrogram_image(path)
        converter = SpectrogramImageConverter(spectrogram.params)
        audio = converter.audio_from_spectrogram_image(spectrogram.image, apply_filters=False)
    except RiffusionError:
        return
    assert np.isfinite(audio.samples).all()
    assert math.isclose(audio.sample_rate, spectrogram.params.sample_rate)
    audio.to_bytes("mp3")
