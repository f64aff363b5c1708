"""The spectrogram image encoding: pixel layout, modes, sizes and round trips."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from riffusion import RiffusionError, SpectrogramImageConverter, SpectrogramParams
from riffusion.spectrogram.image import (
    DEFAULT_MAX_VALUE,
    image_from_mel_amplitudes,
    mel_amplitudes_from_image,
)
from riffusion.spectrogram.params import ExifTag

PARAMS = SpectrogramParams()


def random_amplitudes(channels: int, frames: int = 64) -> np.ndarray:
    rng = np.random.default_rng(channels)
    return rng.uniform(0, 1e7, (channels, PARAMS.num_frequencies, frames)).astype(np.float32)


def test_encoding_layout() -> None:
    amplitudes = np.zeros((1, 512, 3), np.float32)
    amplitudes[0, 0, 0] = 100.0  # lowest mel bin, first frame: loudest
    amplitudes[0, 511, 2] = 100.0 / 16.0  # highest bin: (1/16) ** 0.25 = 0.5 -> 127.5
    image = image_from_mel_amplitudes(amplitudes, PARAMS)
    pixels = np.asarray(image)
    assert image.size == (3, 512)
    assert tuple(pixels[511, 0]) == (0, 0, 0)  # loud is black, low frequencies at the bottom
    assert tuple(pixels[0, 2]) == (127, 127, 127)  # 255 - 127.5, truncated as the original did
    assert tuple(pixels[100, 1]) == (255, 255, 255)  # silence is white
    assert image.getexif()[11080] == 100.0


def test_stereo_goes_to_green_and_blue() -> None:
    amplitudes = np.zeros((2, 512, 2), np.float32)
    amplitudes[0, :, 0] = 1.0  # left loud in frame 0
    amplitudes[1, :, 1] = 1.0  # right loud in frame 1
    pixels = np.asarray(image_from_mel_amplitudes(amplitudes, PARAMS.with_changes(stereo=True)))
    assert tuple(pixels[10, 0]) == (0, 0, 255)
    assert tuple(pixels[10, 1]) == (0, 255, 0)


@pytest.mark.parametrize("stereo", [False, True])
def test_round_trip_within_quantisation(stereo: bool) -> None:
    params = PARAMS.with_changes(stereo=stereo)
    amplitudes = random_amplitudes(2 if stereo else 1)
    image = image_from_mel_amplitudes(amplitudes, params)
    decoded = mel_amplitudes_from_image(image, params)
    assert decoded.shape == amplitudes.shape
    # One gray level in the power-0.25 domain.
    levels_in = (amplitudes / amplitudes.max()) ** 0.25 * 255
    levels_out = (decoded / amplitudes.max()) ** 0.25 * 255
    assert np.abs(levels_in - levels_out).max() <= 1.0 + 1e-3


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "LA", "I"])
def test_any_mode_decodes(mode: str) -> None:
    gray = np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (512, 1))
    image = Image.fromarray(gray, mode="L").convert(mode)
    decoded = mel_amplitudes_from_image(image, PARAMS)
    assert decoded.shape == (1, 512, 40)
    assert decoded[0, 0, 0] == pytest.approx(DEFAULT_MAX_VALUE)  # black, no EXIF: 3e7
    assert decoded[0, 0, -1] == pytest.approx(0.0, abs=1e-3)


def test_transparent_pixels_are_silence() -> None:
    image = Image.new("RGBA", (16, 512), (0, 0, 0, 0))
    assert mel_amplitudes_from_image(image, PARAMS).max() == 0.0


def test_wrong_height_is_a_clear_error() -> None:
    with pytest.raises(RiffusionError, match="256 pixels tall"):
        mel_amplitudes_from_image(Image.new("RGB", (64, 256)), PARAMS)


def mel_band_hz(first_bin: int, last_bin: int, params: SpectrogramParams) -> tuple[float, float]:
    """The frequencies (Hz) that the triangular mel filters first_bin..last_bin span together, on
    the HTK mel scale of the default parameters."""
    top_mel = 2595.0 * np.log10(1.0 + params.max_frequency / 700.0)
    low_mel = 2595.0 * np.log10(1.0 + params.min_frequency / 700.0)
    edges = np.linspace(low_mel, top_mel, params.num_frequencies + 2)
    low, high = edges[first_bin], edges[last_bin + 2]
    return 700.0 * (10 ** (low / 2595.0) - 1.0), 700.0 * (10 ** (high / 2595.0) - 1.0)


def test_hand_drawn_image_of_any_width_converts_to_audio() -> None:
    image = Image.new("L", (37, 512), 255)
    for row in range(420, 430):  # a low, steady tone drawn in black
        for column in range(37):
            image.putpixel((column, row), 0)
    audio = SpectrogramImageConverter().audio_from_spectrogram_image(image)
    assert audio.samples.shape == (1, 37 * PARAMS.hop_length)
    # Rows count down from the top: rows 420-429 are mel bins 82-91, about 380 to 450 Hz. Nearly
    # all of the audio's energy is there.
    low_hz, high_hz = mel_band_hz(511 - 429, 511 - 420, PARAMS)
    samples = audio.samples[0]
    power = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    frequencies = np.fft.rfftfreq(len(samples), 1 / PARAMS.sample_rate)
    in_band = (frequencies >= low_hz) & (frequencies <= high_hz)
    assert power[in_band].sum() > 0.99 * power.sum()


@pytest.mark.parametrize("max_value", [1e38, 1e308, float("inf"), float("nan"), -1.0, "loud"])
def test_an_unusable_max_value_tag_is_refused_on_every_path(max_value: object) -> None:
    """As /api/image_to_audio reads images: the converter's own parameters, MAX_VALUE from EXIF.
    1e308 overflowed to inf and NaN, and the MP3 encoder aborted the server."""
    image = Image.new("RGB", (40, PARAMS.num_frequencies), "gray")
    image.getexif()[int(ExifTag.MAX_VALUE)] = max_value
    with pytest.raises(RiffusionError, match=r"EXIF tag 11080 \(MAX_VALUE\) must be a number"):
        SpectrogramImageConverter(PARAMS).audio_from_spectrogram_image(image)
