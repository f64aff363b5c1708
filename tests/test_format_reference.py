"""Images made here equal the original riffusion's images of the same clip (../shared)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from riffusion import Audio, SpectrogramImageConverter, SpectrogramParams
from riffusion.spectrogram.image import mel_amplitudes_from_image, save_spectrogram_image


@pytest.mark.parametrize(("stereo", "name"), [(False, "clip_mono.png"), (True, "clip_stereo.png")])
def test_image_matches_the_original_within_one_gray_level(
    reference_dir: Path, stereo: bool, name: str
) -> None:
    reference = Image.open(reference_dir / name)
    audio = Audio.load(reference_dir / "clip.wav")
    image = SpectrogramImageConverter(
        SpectrogramParams(stereo=stereo)
    ).spectrogram_image_from_audio(audio)
    assert image.size == reference.size
    assert image.mode == reference.mode == "RGB"
    difference = np.abs(np.asarray(image, np.int16) - np.asarray(reference, np.int16))
    assert difference.max() <= 1

    ours, theirs = image.getexif(), reference.getexif()
    assert set(ours) == set(theirs)
    for tag, value in theirs.items():
        if tag == 11080:  # MAX_VALUE: float32 analysis on both sides
            assert float(ours[tag]) == pytest.approx(float(value), rel=1e-5)
        else:
            assert ours[tag] == value


def test_saved_image_keeps_exif(reference_dir: Path, tmp_path: Path) -> None:
    audio = Audio.load(reference_dir / "clip.wav").slice(0, 1.0)
    converter = SpectrogramImageConverter()
    path = tmp_path / "spectrogram.png"
    save_spectrogram_image(converter.spectrogram_image_from_audio(audio), path)
    loaded = Image.open(path)
    assert SpectrogramParams.from_exif(loaded.getexif()) == SpectrogramParams()


def test_original_image_decodes_to_its_amplitudes(reference_dir: Path) -> None:
    reference = Image.open(reference_dir / "clip_stereo.png")
    params = SpectrogramParams.from_exif(reference.getexif())
    assert params.stereo
    amplitudes = mel_amplitudes_from_image(reference, params)
    assert amplitudes.shape == (2, 512, 568)
    assert amplitudes.max() == pytest.approx(46801012.0, rel=1e-6)


def test_original_image_converts_to_audio(reference_dir: Path) -> None:
    reference = Image.open(reference_dir / "clip_mono.png")
    audio = SpectrogramImageConverter().audio_from_spectrogram_image(reference)
    assert audio.samples.shape == (1, 568 * 441)
    assert audio.sample_rate == 44100
    peak = np.abs(audio.samples).max()
    assert 0.9 < peak <= 1.0
