"""Spectrogram image files (reading, writing, EXIF parameters) and device selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from riffusion import RiffusionError, SpectrogramParams
from riffusion.devices import resolve_device
from riffusion.spectrogram.files import (
    PARAMETER_TAGS,
    exif_items,
    image_extension,
    load_image,
    read_spectrogram_image,
    save_image,
)
from riffusion.spectrogram.params import ExifTag

SMALL = SpectrogramParams(num_frequencies=32, sample_rate=16000, max_frequency=8000)


def spectrogram_image(params: SpectrogramParams = SMALL, width: int = 40) -> Image.Image:
    image = Image.fromarray(np.full((params.num_frequencies, width, 3), 128, dtype=np.uint8))
    image.getexif().update(params.to_exif())
    image.getexif()[int(ExifTag.MAX_VALUE)] = 1e6
    return image


@pytest.mark.parametrize("extension", ["png", "jpg", "jpeg"])
def test_saved_images_keep_their_parameters(tmp_path: Path, extension: str) -> None:
    path = save_image(spectrogram_image(), tmp_path / "deep" / f"spec.{extension}")
    read = read_spectrogram_image(path)
    assert read.params == SMALL
    assert read.missing_tags == ()
    assert read.image.size == (40, 32)


def test_save_refuses_to_replace_unless_asked(tmp_path: Path) -> None:
    path = save_image(spectrogram_image(), tmp_path / "spec.png")
    before = path.read_bytes()
    with pytest.raises(RiffusionError, match="already exists"):
        save_image(spectrogram_image(width=10), path)
    assert path.read_bytes() == before
    save_image(spectrogram_image(width=10), path, overwrite=True)
    assert Image.open(path).width == 10


@pytest.mark.parametrize("name", ["spec.bmp", "spec.gif", "spec"])
def test_formats_without_exif_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(RiffusionError, match="unsupported image format"):
        save_image(spectrogram_image(), tmp_path / name)
    assert not (tmp_path / name).exists()


def test_image_extension_accepts_names_and_bare_extensions() -> None:
    assert image_extension("a/b.PNG") == "png"
    assert image_extension(".jpeg") == "jpeg"
    assert image_extension("jpg") == "jpg"


def test_saving_onto_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "taken.png").mkdir()
    with pytest.raises(RiffusionError, match="is a directory"):
        save_image(spectrogram_image(), tmp_path / "taken.png", overwrite=True)


def test_write_failures_are_riffusion_errors(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(RiffusionError, match="cannot write"):
        save_image(spectrogram_image(), tmp_path / "file" / "spec.png")


def test_a_write_cut_short_leaves_the_old_file_and_no_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "kept.png"
    save_image(spectrogram_image(width=10), output)
    old = output.read_bytes()
    save = Image.Image.save

    def interrupted(self: Image.Image, path: Path | str, *args: object, **kwargs: object) -> None:
        save(self, path, *args, **kwargs)
        Path(path).write_bytes(Path(path).read_bytes()[:50])
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_image(spectrogram_image(width=40), output, overwrite=True)
    assert output.read_bytes() == old
    assert [path.name for path in tmp_path.iterdir()] == ["kept.png"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "file is empty"),
        (b"GIF89a but not really" * 3, r"not a readable image|not an image file"),
        (b"plain text, not an image" * 10, "not an image file"),
    ],
)
def test_unreadable_images_are_refused(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(RiffusionError, match=message):
        load_image(path)


def test_truncated_and_directory_images_are_refused(tmp_path: Path) -> None:
    whole = save_image(spectrogram_image(SpectrogramParams(), width=200), tmp_path / "whole.png")
    data = whole.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(RiffusionError, match="not a readable image"):
        load_image(tmp_path / "cut.png")
    with pytest.raises(RiffusionError, match="is a directory"):
        load_image(tmp_path)


def test_images_without_parameters_get_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    Image.new("L", (30, 512), 255).save(path)
    read = read_spectrogram_image(path)
    assert read.params == SpectrogramParams()
    assert read.missing_tags == tuple(tag.name for tag in PARAMETER_TAGS)


def test_partial_parameters_name_the_missing_tags(tmp_path: Path) -> None:
    image = spectrogram_image(SpectrogramParams(), width=30)
    del image.getexif()[int(ExifTag.STEREO)]
    path = save_image(image, tmp_path / "partial.png")
    assert read_spectrogram_image(path).missing_tags == ("STEREO",)


def test_height_must_match_the_parameters(tmp_path: Path) -> None:
    path = save_image(spectrogram_image(), tmp_path / "spec.png")
    original = Image.open(path)
    original.resize((40, 33)).save(tmp_path / "resized.png", exif=original.getexif())
    with pytest.raises(RiffusionError, match=r"33 pixels tall.*from its EXIF.*32 frequency rows"):
        read_spectrogram_image(tmp_path / "resized.png")
    Image.new("RGB", (30, 100)).save(tmp_path / "plain.png")
    with pytest.raises(RiffusionError, match=r"100 pixels tall.*the defaults.*512"):
        read_spectrogram_image(tmp_path / "plain.png")


@pytest.mark.parametrize(
    ("tag", "value", "message"),
    [
        (ExifTag.MIN_FREQUENCY, 9000, "min_frequency < max_frequency"),
        (ExifTag.STEP_SIZE_MS, -10, r"11010 \(STEP_SIZE_MS\) must be a whole number from 1 to"),
        (ExifTag.MAX_VALUE, -5.0, "MAX_VALUE"),
        (ExifTag.MAX_VALUE, "loud", "MAX_VALUE"),
        (ExifTag.SAMPLE_RATE, "fast", "SAMPLE_RATE"),
        # Values that made noise, or aborted the MP3 encoder, before they were bounded.
        (ExifTag.MAX_VALUE, 1e38, r"11080 \(MAX_VALUE\) must be a number from 0 to 1e\+15"),
        (ExifTag.MAX_VALUE, 1e308, "MAX_VALUE"),
        (ExifTag.MAX_VALUE, float("inf"), "MAX_VALUE"),
        (ExifTag.MAX_VALUE, float("nan"), "MAX_VALUE"),
        (
            ExifTag.SAMPLE_RATE,
            4_000_000_000,
            r"SAMPLE_RATE\) must be a whole number from 1000 to 768000",
        ),
        (ExifTag.SAMPLE_RATE, 16000.5, "SAMPLE_RATE"),
        (ExifTag.WINDOW_DURATION_MS, float("inf"), "WINDOW_DURATION_MS"),
        (ExifTag.PADDED_DURATION_MS, 10**6, "PADDED_DURATION_MS"),
        (ExifTag.NUM_FREQUENCIES, 2**31, "NUM_FREQUENCIES"),
        (ExifTag.POWER_FOR_IMAGE, float("nan"), "POWER_FOR_IMAGE"),
        (ExifTag.POWER_FOR_IMAGE, 1e300, "POWER_FOR_IMAGE"),
        (ExifTag.STEREO, 7, r"STEREO\) must be a whole number from 0 to 1"),
        (ExifTag.MAX_FREQUENCY, "x" * 100, r"got 'xxx.*\.\.\.$"),
    ],
)
def test_unusable_exif_values_are_refused(
    tmp_path: Path, tag: ExifTag, value: object, message: str
) -> None:
    image = spectrogram_image()
    image.getexif()[int(tag)] = value
    path = save_image(image, tmp_path / "spec.png")
    with pytest.raises(RiffusionError, match=message):
        read_spectrogram_image(path)


def test_exif_items_name_riffusion_and_standard_tags() -> None:
    image = spectrogram_image()
    image.getexif()[305] = "riffusion test"  # Software
    image.getexif()[54321] = 1
    names = [name for name, _ in exif_items(image)]
    # Ordered by tag number.
    assert names == ["Software", *(tag.name for tag in ExifTag), "54321"]
    assert exif_items(Image.new("RGB", (2, 2))) == []


def test_devices() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ".lower()) == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert resolve_device(None).type in ("cpu", "cuda", "mps")
    with pytest.raises(RiffusionError, match="unknown device"):
        resolve_device("quantum")
    if not torch.cuda.is_available():
        with pytest.raises(RiffusionError, match="CUDA is not available"):
            resolve_device("cuda")
    else:
        with pytest.raises(RiffusionError, match="GPU"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    if not torch.backends.mps.is_available():
        with pytest.raises(RiffusionError, match="MPS is not available"):
            resolve_device("mps")
