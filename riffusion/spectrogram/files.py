"""Spectrogram image files: reading them safely, writing them with EXIF, their parameters.

Every failure a user can cause (a missing file, one that is not an image, EXIF with bad values, an
image whose height does not match its parameters) raises RiffusionError with the file's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image

from riffusion.atomic_files import cannot_write
from riffusion.errors import RiffusionError
from riffusion.spectrogram.image import max_value_from_image, save_spectrogram_image
from riffusion.spectrogram.params import ExifTag, SpectrogramParams

# Extension -> Pillow format, for the formats that carry the EXIF holding the parameters.
IMAGE_FORMATS: dict[str, str] = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG"}

# Tags from_exif needs; MAX_VALUE is optional (the image module falls back to the original's 3e7).
PARAMETER_TAGS = tuple(tag for tag in ExifTag if tag is not ExifTag.MAX_VALUE)


def image_extension(name: str) -> str:
    """The image extension ('png', 'jpg', 'jpeg') of a file name or a bare extension."""
    extension = Path(name).suffix.lstrip(".").lower() or name.lower().lstrip(".")
    if extension not in IMAGE_FORMATS:
        raise RiffusionError(
            f"unsupported image format {extension!r}: use one of {', '.join(IMAGE_FORMATS)} "
            "(formats that keep the spectrogram parameters in EXIF)"
        )
    return extension


def load_image(path: str | Path) -> Image.Image:
    """The decoded image at path."""
    path = Path(path)
    if not path.exists():
        raise RiffusionError(f"{path}: no such file")
    if path.is_dir():
        raise RiffusionError(f"{path}: is a directory, not an image")
    if path.stat().st_size == 0:
        raise RiffusionError(f"{path}: file is empty")
    try:
        image = Image.open(path)
        # Pillow would only warn below twice its limit, and decode gigabytes.
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and image.width * image.height > limit:
            raise RiffusionError(
                f"{path}: the image is too large ({image.width} x {image.height} pixels; at "
                f"most {limit} pixels are read)"
            )
        # Decode now: Pillow opens lazily, and truncated data only fails on load; the same goes
        # for the EXIF, parsed on first use.
        image.load()
        image.getexif()
    except Image.UnidentifiedImageError:
        raise RiffusionError(f"{path}: not an image file (format not recognised)") from None
    except RiffusionError:
        raise
    # Pillow's decoders raise many types for malformed data (OSError, SyntaxError, ValueError,
    # struct.error, DecompressionBombError, ...); all mean the same thing here.
    except Exception as error:
        raise RiffusionError(f"{path}: not a readable image ({error})") from None
    return image


def save_image(image: Image.Image, path: str | Path, overwrite: bool = False) -> Path:
    """Write image with its EXIF to path (.png, .jpg or .jpeg); parent folders are created."""
    path = Path(path)
    image_extension(path.name)
    if path.is_dir():
        raise RiffusionError(f"{path}: is a directory")
    if path.exists() and not overwrite:
        raise RiffusionError(f"{path}: already exists (pass overwrite to replace it)")
    try:
        return save_spectrogram_image(image, path)
    except OSError as error:
        raise cannot_write(path, error) from None


def exif_tag_name(tag: int) -> str:
    """The riffusion name of an EXIF tag (SAMPLE_RATE, ...), else the standard one, or a number."""
    if tag in ExifTag._value2member_map_:
        return ExifTag(tag).name
    return ExifTags.TAGS.get(tag, str(tag))


def exif_items(image: Image.Image) -> list[tuple[str, Any]]:
    """(tag name, value) for every tag in image's EXIF, ordered by tag number."""
    exif = image.getexif()
    return [(exif_tag_name(tag), exif[tag]) for tag in sorted(exif)]


@dataclass(frozen=True)
class SpectrogramImage:
    """A spectrogram image read from a file, with the parameters to turn it back into audio.

    Attributes:
        image: the decoded image.
        params: from the image's EXIF, or the defaults when tags are missing.
        missing_tags: names of the parameter tags the EXIF lacks; empty when params are the image's.
    """

    image: Image.Image
    params: SpectrogramParams
    missing_tags: tuple[str, ...] = field(default=())


def read_spectrogram_image(path: str | Path) -> SpectrogramImage:
    """Read a spectrogram image and its parameters.

    Like the original, an image without (complete) parameters in its EXIF gets the default
    parameters; missing_tags says so. Tags that are present but hold unusable values, and an image
    whose height differs from the parameters' number of frequencies, raise RiffusionError.
    """
    path = Path(path)
    image = load_image(path)
    exif = image.getexif()
    missing_tags = tuple(tag.name for tag in PARAMETER_TAGS if int(tag) not in exif)
    try:
        params = SpectrogramParams() if missing_tags else SpectrogramParams.from_exif(exif)
        max_value_from_image(image)
    except RiffusionError as error:
        raise RiffusionError(f"{path}: {error}") from None
    if image.height != params.num_frequencies:
        source = "the defaults, as its EXIF lacks them" if missing_tags else "from its EXIF"
        raise RiffusionError(
            f"{path}: the image is {image.height} pixels tall, but its spectrogram parameters "
            f"({source}) have {params.num_frequencies} frequency rows"
        )
    return SpectrogramImage(image, params, missing_tags)
