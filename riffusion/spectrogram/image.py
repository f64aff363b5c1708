"""The spectrogram image format: mel amplitudes <-> 8-bit pixels, as the original wrote them.

Encoding: amplitudes / max, raised to power_for_image, times 255, inverted (loud is dark), rows
flipped so low frequencies are at the bottom, truncated to uint8. Mono goes to all three channels;
stereo puts the left channel in G and the right in B (R is zero). The max amplitude travels in EXIF.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image

from riffusion.atomic_files import write_atomically
from riffusion.errors import RiffusionError
from riffusion.spectrogram.params import ExifTag, SpectrogramParams, exif_number

# What the original assumed when an image carries no MAX_VALUE tag.
DEFAULT_MAX_VALUE = 30e6
#: Largest MAX_VALUE accepted (an int16-scaled mel amplitude). Real music gives about 5e7; no
#: 16-bit signal comes near 1e15 at any parameters in range, and reconstruction stays finite
#: far beyond it (it was checked to 1e25; float32 itself overflows at 3.4e38).
MAX_MAX_VALUE = 1e15


def image_from_mel_amplitudes(
    mel_amplitudes: np.ndarray, params: SpectrogramParams, max_value: float | None = None
) -> Image.Image:
    """Spectrogram image of mel amplitudes (channels, num_frequencies, frames), channels 1 or 2.

    The image is frames wide and num_frequencies tall, with params and MAX_VALUE in its EXIF.
    max_value defaults to the largest amplitude.
    """
    mel_amplitudes = np.asarray(mel_amplitudes, dtype=np.float32)
    if mel_amplitudes.ndim != 3 or mel_amplitudes.shape[0] not in (1, 2):
        raise RiffusionError(
            "mel amplitudes must be shaped (1 or 2 channels, mels, frames), "
            f"got {mel_amplitudes.shape}"
        )
    if max_value is None:
        max_value = float(mel_amplitudes.max())
    scale = max_value if max_value > 0 else 1.0
    levels = np.power(mel_amplitudes / scale, params.power_for_image) * 255
    pixels = (255 - levels).astype(np.uint8)[:, ::-1, :]
    if pixels.shape[0] == 1:
        rgb = np.repeat(pixels, 3, axis=0)
    else:
        rgb = np.stack([np.zeros_like(pixels[0]), pixels[0], pixels[1]])
    image = Image.fromarray(np.ascontiguousarray(rgb.transpose(1, 2, 0)), mode="RGB")
    exif = image.getexif()
    exif.update(params.to_exif())
    exif[int(ExifTag.MAX_VALUE)] = float(max_value)
    return image


def max_value_from_image(image: Image.Image) -> float | None:
    """The MAX_VALUE EXIF tag of image, or None when absent.

    Raises:
        RiffusionError: the tag is not a number from 0 to MAX_MAX_VALUE (it scales every
            amplitude, so a wild one turns the image into noise or overflows).
    """
    value = image.getexif().get(int(ExifTag.MAX_VALUE))
    return None if value is None else exif_number(ExifTag.MAX_VALUE, value, 0, MAX_MAX_VALUE)


def mel_amplitudes_from_image(
    image: Image.Image, params: SpectrogramParams, max_value: float | None = None
) -> np.ndarray:
    """Mel amplitudes (channels, height, width) from a spectrogram image; inverse of the above.

    Any mode converts (grayscale, RGB, RGBA, palette; transparency counts as white, silence). Mono
    reads R of an RGB image (all channels are equal in images riffusion writes); stereo reads G
    (left) and B (right). max_value defaults to the image's MAX_VALUE tag, else the original's
    fallback of 3e7.

    Raises:
        RiffusionError: the height is not num_frequencies, or the MAX_VALUE tag is unusable.
    """
    if image.height != params.num_frequencies:
        raise RiffusionError(
            f"spectrogram image is {image.height} pixels tall but the parameters have "
            f"{params.num_frequencies} frequency bins; resize it to {params.num_frequencies} rows "
            "or pass matching --num-frequencies"
        )
    if max_value is None:
        max_value = max_value_from_image(image) or DEFAULT_MAX_VALUE
    rgb = _flatten_to_rgb(image)
    pixels = np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1)[:, ::-1, :]
    pixels = pixels[[1, 2]] if params.stereo else pixels[:1]
    normalized = (255.0 - pixels) / 255.0
    return np.ascontiguousarray(np.power(normalized, 1.0 / params.power_for_image) * max_value)


def _flatten_to_rgb(image: Image.Image) -> Image.Image:
    """RGB version of image; transparent areas become white, i.e. silence."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


def write_spectrogram_image(image: Image.Image, path: Path) -> None:
    """Write image with its EXIF straight to path (Pillow drops EXIF on save unless it is passed
    explicitly); the format follows path's extension."""
    image.save(path, exif=image.getexif())


def save_spectrogram_image(image: Image.Image, path: str | Path) -> Path:
    """write_spectrogram_image, whole or not at all (riffusion.atomic_files.write_atomically)."""
    return write_atomically(Path(path), functools.partial(write_spectrogram_image, image))
