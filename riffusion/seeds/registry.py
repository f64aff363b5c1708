"""The seed and mask registry: ids for built-ins and for a folder of user images, and paths.

Ids are names, never paths. An id is looked up first in the seed images folder, if one is given
(NAME.png, or .jpg/.jpeg, becomes id NAME, so the original riffusion's seed_images folder works by
its ids: og_beat, agile, marim, motorway, vibes, mask_beat_lines_80, ...), then among the
built-ins. A name with a path separator, a leading dot or other odd characters is refused, as is a
folder entry that resolves outside the folder (a symlink out). To use a file anywhere, pass a
pathlib.Path: the type, not the spelling, says it is a path. So a server passing on users'
strings can only ever reach the folder and the built-ins. Command lines, where the user owns the
filesystem, can turn an argument into either with seed_argument.

In the folder, names starting with "mask" are listed as masks, the others as seeds; either kind
loads by id with either function.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from riffusion.errors import RiffusionError
from riffusion.seeds.builtin import render_seed_image, seed_request
from riffusion.seeds.images import image_timing
from riffusion.seeds.masks import HEIGHT, MASKS
from riffusion.seeds.patterns import PATTERNS
from riffusion.seeds.timing import WIDTH_MULTIPLE, choose_timing
from riffusion.spectrogram.files import load_image

DEFAULT_SEED_ID = "og_beat"
# Extensions of the images in a seed images folder, in order of preference.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
# Folder names starting with this are masks.
_MASK_PREFIX = "mask"


@dataclass(frozen=True)
class SeedInfo:
    """A seed the registry knows.

    Attributes:
        id: its name.
        description: one line ("" for user images).
        source: "built-in", or the path of the user's image.
        bpm: tempo, BPM (None when a user image has no tempo tags).
        meter: e.g. "4/4" (None when unknown).
        bars: bars the image holds (None when unknown).
        key: e.g. "A minor" (None for user images).
        width: image width, px (None for a user image that cannot be read).
    """

    id: str
    description: str
    source: str
    bpm: float | None = None
    meter: str | None = None
    bars: float | None = None
    key: str | None = None
    width: int | None = None


@dataclass(frozen=True)
class MaskInfo:
    """A mask the registry knows.

    Attributes:
        id: its name.
        description: one line ("" for user images).
        source: "built-in", or the path of the user's image.
        parameters: a built-in's parameters and their defaults.
    """

    id: str
    description: str
    source: str
    parameters: dict[str, Any]


def check_id(seed_id: str) -> str:
    """seed_id if it is a well-formed name, else RiffusionError saying why."""
    if not isinstance(seed_id, str) or not _ID_PATTERN.match(seed_id):
        raise RiffusionError(
            f"{seed_id!r} is not a seed id: ids are names of letters, digits, '_', '-' and '.', "
            "starting with a letter or digit, never paths (pass a pathlib.Path to use a file)"
        )
    if seed_id.lower().endswith(IMAGE_EXTENSIONS):
        stem = seed_id.rsplit(".", 1)[0]
        raise RiffusionError(f"{seed_id!r} is not a seed id: ids have no extension (try {stem!r})")
    return seed_id


def seed_argument(text: str) -> str | Path:
    """A command-line value as an id (a bare name) or a path (a separator or image extension).

    For command lines only, where the user owns the filesystem: "og_beat" is an id,
    "loops/x.png" and "x.png" are paths. A server must pass its users' strings on unchanged, so
    they stay ids.
    """
    if "/" in text or "\\" in text or text.lower().endswith(IMAGE_EXTENSIONS):
        return Path(text)
    return text


def folder_image_path(seed_id: str, seed_images_dir: str | Path) -> Path | None:
    """The file of id in the folder (NAME.png/.jpg/.jpeg), None if there is none.

    Raises RiffusionError for a malformed id, a folder that does not exist, and a file that
    resolves outside the folder.
    """
    check_id(seed_id)
    folder = Path(seed_images_dir)
    if not folder.is_dir():
        raise RiffusionError(f"{folder}: no such seed images folder")
    root = folder.resolve()
    for extension in IMAGE_EXTENSIONS:
        candidate = folder / f"{seed_id}{extension}"
        if not candidate.exists():
            continue
        resolved = candidate.resolve()
        if not resolved.is_relative_to(root):
            raise RiffusionError(
                f"seed id {seed_id!r} refused: {candidate} leads outside the seed images folder"
            )
        return resolved
    return None


def _folder_entries(seed_images_dir: str | Path | None) -> dict[str, Path]:
    """id -> path of every image in the folder that the registry would serve."""
    if seed_images_dir is None:
        return {}
    folder = Path(seed_images_dir)
    if not folder.is_dir():
        raise RiffusionError(f"{folder}: no such seed images folder")
    entries: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        name = path.stem
        if path.suffix.lower() not in IMAGE_EXTENSIONS or not _ID_PATTERN.match(name):
            continue
        try:
            found = folder_image_path(name, folder)
        except RiffusionError:
            continue  # symlinks out of the folder are not listed either
        if found is not None:
            entries.setdefault(name, found)
    return entries


def _check_seed_size(image: Image.Image, source: str) -> Image.Image:
    if image.height != HEIGHT or image.width % WIDTH_MULTIPLE:
        raise RiffusionError(
            f"{source}: a seed image must be {HEIGHT} px tall and a multiple of {WIDTH_MULTIPLE} "
            f"px wide (the model's constraint), but it is {image.width} x {image.height}"
        )
    return image


def load_seed_image(
    id_or_path: str | Path, seed_images_dir: str | Path | None = None
) -> Image.Image:
    """The seed image for an id (str: the folder, then the built-ins) or a file (Path).

    Built-ins render at their defaults (docs/seeds.md); use builtin.render_seed_image for another
    tempo, length, key or random seed. Raises RiffusionError for unknown ids, refused ids and
    images of the wrong size (512 px tall, a multiple of 64 px wide).
    """
    if isinstance(id_or_path, Path):
        return _check_seed_size(load_image(id_or_path), str(id_or_path))
    seed_id = check_id(id_or_path)
    if seed_images_dir is not None:
        path = folder_image_path(seed_id, seed_images_dir)
        if path is not None:
            return _check_seed_size(load_image(path), str(path))
    if seed_id in PATTERNS:
        return render_seed_image(seed_request(seed_id))
    raise RiffusionError(_unknown(seed_id, "seed", list(PATTERNS), seed_images_dir))


def load_mask_image(
    id_or_path: str | Path,
    seed_images_dir: str | Path | None = None,
    like: Image.Image | None = None,
) -> Image.Image:
    """The mask (8-bit grayscale) for an id (str: the folder, then the built-ins) or a file (Path).

    like: the seed image the mask goes with. Built-in masks are drawn at its width and on its beat
    grid (from its tempo tags); a mask file must match its size. Without it, built-ins are 512 px
    wide with beats 64 px apart (the default seed's grid).
    """
    if isinstance(id_or_path, Path):
        return _check_mask_size(load_image(id_or_path).convert("L"), str(id_or_path), like)
    mask_id = check_id(id_or_path)
    if seed_images_dir is not None:
        path = folder_image_path(mask_id, seed_images_dir)
        if path is not None:
            return _check_mask_size(load_image(path).convert("L"), str(path), like)
    if mask_id in MASKS:
        width, beat_px = mask_grid(like)
        return MASKS[mask_id].image(width, beat_px)
    raise RiffusionError(_unknown(mask_id, "mask", list(MASKS), seed_images_dir))


def mask_grid(like: Image.Image | None = None) -> tuple[int, float]:
    """(width px, beat spacing px) for a built-in mask to go with the seed image like."""
    if like is None:
        default = choose_timing(PATTERNS[DEFAULT_SEED_ID].bpm)
        return default.width, default.width / default.beats
    timing = image_timing(like)
    if timing is None:
        # No tempo tags: assume the default seed's tempo at 10 ms per column.
        default = choose_timing(PATTERNS[DEFAULT_SEED_ID].bpm)
        return like.width, default.width / default.beats
    return like.width, like.width / timing.beats


def _check_mask_size(mask: Image.Image, source: str, like: Image.Image | None) -> Image.Image:
    if like is not None and mask.size != like.size:
        raise RiffusionError(
            f"{source}: the mask is {mask.width} x {mask.height} but the seed image is "
            f"{like.width} x {like.height}; they must match"
        )
    if mask.height != HEIGHT:
        raise RiffusionError(f"{source}: a mask must be {HEIGHT} px tall, not {mask.height}")
    return mask


def _unknown(name: str, kind: str, builtins: list[str], folder: str | Path | None) -> str:
    where = f" or in {folder}" if folder is not None else ""
    return f"no {kind} {name!r} among the built-ins{where}; built-in {kind}s: {', '.join(builtins)}"


def list_seeds(seed_images_dir: str | Path | None = None) -> list[SeedInfo]:
    """The seeds an id resolves to: the built-ins at their defaults (unless a folder image of the
    same name takes the id), then the folder's seed images (those not named mask*)."""
    folder = {
        name: path
        for name, path in _folder_entries(seed_images_dir).items()
        if not name.lower().startswith(_MASK_PREFIX)
    }
    seeds = []
    for pattern in PATTERNS.values():
        if pattern.id in folder:
            continue
        timing = choose_timing(pattern.bpm, pattern.beats_per_bar)
        seeds.append(
            SeedInfo(
                pattern.id,
                pattern.description,
                "built-in",
                pattern.bpm,
                pattern.meter,
                timing.bars,
                pattern.key,
                timing.width,
            )
        )
    return seeds + [_user_seed_info(name, path) for name, path in folder.items()]


def _user_seed_info(name: str, path: Path) -> SeedInfo:
    try:
        image = load_image(path)
    except RiffusionError:
        return SeedInfo(name, "", str(path))
    timing = image_timing(image)
    if timing is None:
        return SeedInfo(name, "", str(path), width=image.width)
    meter = f"{timing.beats_per_bar}/4"
    return SeedInfo(name, "", str(path), timing.bpm, meter, timing.bars, width=image.width)


def list_masks(seed_images_dir: str | Path | None = None) -> list[MaskInfo]:
    """The masks an id resolves to: the built-ins with their default parameters (unless a folder
    image of the same name takes the id), then the folder's images named mask*."""
    folder = {
        name: path
        for name, path in _folder_entries(seed_images_dir).items()
        if name.lower().startswith(_MASK_PREFIX)
    }
    masks = [
        MaskInfo(spec.id, spec.description, "built-in", dict(spec.parameters))
        for spec in MASKS.values()
        if spec.id not in folder
    ]
    return masks + [MaskInfo(name, "", str(path), {}) for name, path in folder.items()]
