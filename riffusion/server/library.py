"""The seed images and masks the server offers, by id, loaded once and kept in memory.

The ids are fixed when the server starts (the registry's built-ins and the --seed-images folder).
A requested id is looked up in that table before anything else happens, so a user's string never
reaches the filesystem: '../x' is just an id that is not in the table.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from riffusion.errors import RiffusionError
from riffusion.seeds.masks import HEIGHT
from riffusion.seeds.registry import (
    DEFAULT_SEED_ID,
    list_masks,
    list_seeds,
    load_mask_image,
    load_seed_image,
)
from riffusion.spectrogram.params import SpectrogramParams


class UnknownId(RiffusionError):
    """A seed image or mask id the server does not offer; the message lists those it does."""


@dataclass(frozen=True)
class SeedEntry:
    """A seed image on offer.

    Attributes:
        id: its name.
        width, height: pixels.
        duration_s: the audio it spans, seconds (one column per spectrogram step).
        bpm: its tempo where known.
        description: one line, None when there is none.
    """

    id: str
    width: int
    height: int
    duration_s: float
    bpm: float | None
    description: str | None


@dataclass(frozen=True)
class MaskEntry:
    id: str
    description: str | None


class SeedLibrary:
    """The registry's seeds and masks, plus those of a folder, served by id. Thread-safe.

    Args:
        seed_images_dir: a folder of NAME.png seed images (mask*.png are masks), or None for the
            built-ins only.
    """

    def __init__(self, seed_images_dir: str | Path | None = None) -> None:
        self.seed_images_dir = seed_images_dir
        step_s = SpectrogramParams().step_size_ms / 1000.0
        self._seeds = {
            info.id: SeedEntry(
                id=info.id,
                width=info.width,
                height=HEIGHT,
                duration_s=round(info.width * step_s, 6),
                bpm=info.bpm,
                description=info.description or None,
            )
            for info in list_seeds(seed_images_dir)
            if info.width is not None  # a folder image that cannot be read is not offered
        }
        self._masks = {
            info.id: MaskEntry(info.id, info.description or None)
            for info in list_masks(seed_images_dir)
        }
        self._lock = threading.Lock()
        self._images: dict[str, Image.Image] = {}
        self._mask_images: dict[tuple[str, str], Image.Image] = {}

    @property
    def default_seed_id(self) -> str:
        return DEFAULT_SEED_ID if DEFAULT_SEED_ID in self._seeds else next(iter(self._seeds))

    def seeds(self) -> list[SeedEntry]:
        return list(self._seeds.values())

    def masks(self) -> list[MaskEntry]:
        return list(self._masks.values())

    def check_seed_id(self, seed_id: str) -> str:
        """seed_id if offered, else UnknownId listing the valid ids."""
        if seed_id not in self._seeds:
            raise UnknownId(f"unknown seed image {seed_id!r}; valid ids: {', '.join(self._seeds)}")
        return seed_id

    def check_mask_id(self, mask_id: str) -> str:
        """mask_id if offered, else UnknownId listing the valid ids."""
        if mask_id not in self._masks:
            raise UnknownId(f"unknown mask {mask_id!r}; valid ids: {', '.join(self._masks)}")
        return mask_id

    def seed_image(self, seed_id: str) -> Image.Image:
        """The seed image, loaded on first use. Callers must not modify it."""
        self.check_seed_id(seed_id)
        with self._lock:
            image = self._images.get(seed_id)
        if image is None:
            # Loading may render a built-in (a second or so); done outside the lock so other
            # ids are not held up. Two first requests may both load it: the result is the same.
            image = load_seed_image(seed_id, self.seed_images_dir)
            with self._lock:
                image = self._images.setdefault(seed_id, image)
        return image

    def mask_image(self, mask_id: str, seed_id: str) -> Image.Image:
        """The mask (grayscale) drawn for the seed image seed_id, loaded on first use."""
        self.check_mask_id(mask_id)
        seed = self.seed_image(seed_id)
        key = (mask_id, seed_id)
        with self._lock:
            mask = self._mask_images.get(key)
        if mask is None:
            mask = load_mask_image(mask_id, self.seed_images_dir, like=seed)
            with self._lock:
                mask = self._mask_images.setdefault(key, mask)
        return mask

    def images(self, seed_id: str, mask_id: str | None) -> tuple[Image.Image, Image.Image | None]:
        """(seed image, mask drawn for it or None): what a generation starts from."""
        seed = self.seed_image(seed_id)
        return seed, (self.mask_image(mask_id, seed_id) if mask_id is not None else None)

    def seed_png(self, seed_id: str) -> bytes:
        """The seed image as PNG bytes, with its EXIF (spectrogram parameters, tempo)."""
        return _png(self.seed_image(seed_id))

    def mask_png(self, mask_id: str, seed_id: str) -> bytes:
        return _png(self.mask_image(mask_id, seed_id))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=image.getexif())
    return buffer.getvalue()
