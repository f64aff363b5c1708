"""A disk cache for generated seed images, keyed by their parameters and the code that drew them.

Entries live in $RIFFUSION_CACHE_DIR/seeds, else $XDG_CACHE_HOME/riffusion/seeds, else
~/.cache/riffusion/seeds. Each key includes a digest of the source files that shape the images,
so changing the synthesizer or the spectrogram code never serves a stale image. A cache that
cannot be written is skipped: generation still works, only slower.

Entries are written atomically; a process killed while writing one leaves its temporary file
behind. The first use of the cache in a process removes those older than STALE_PARTIAL_S: other
processes may share the folder and be writing right now, and no write takes anywhere near as long.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from PIL import Image

from riffusion.atomic_files import remove_stale_partials
from riffusion.spectrogram.image import save_spectrogram_image
from riffusion.user_cache import user_cache_dir

#: Age, s, after which a temporary file in the cache is taken for a leftover of a killed writer.
STALE_PARTIAL_S = 600.0
# Folders swept of leftovers by this process.
_swept: set[Path] = set()

# Source files (relative to the riffusion package) whose code decides what a seed image holds.
_SOURCES = (
    "seeds/harmony.py",
    "seeds/synth.py",
    "seeds/score.py",
    "seeds/patterns.py",
    "seeds/timing.py",
    "seeds/images.py",
    "spectrogram/dsp.py",
    "spectrogram/image.py",
    "spectrogram/params.py",
)


def cache_dir() -> Path:
    """The folder holding cached seed images (not created here)."""
    return user_cache_dir() / "seeds"


@lru_cache(maxsize=1)
def code_digest() -> str:
    """12 hex digits identifying the code behind seed images."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for source in _SOURCES:
        digest.update((package / source).read_bytes())
    return digest.hexdigest()[:12]


def cached_image(name: str, make: Callable[[], Image.Image]) -> Image.Image:
    """The image cached as name (a file-name-safe key), else make() stored under it."""
    folder = cache_dir()
    if folder not in _swept:
        _swept.add(folder)
        remove_stale_partials(folder, STALE_PARTIAL_S)
    path = folder / f"{name}-{code_digest()}.png"
    try:
        with Image.open(path) as cached:
            cached.load()
            return cached.copy()
    # A missing, truncated or foreign file is simply made again.
    except (OSError, SyntaxError, ValueError):
        pass
    image = make()
    # A cache that cannot be written (read-only, full) only costs the making next time.
    with contextlib.suppress(OSError):
        save_spectrogram_image(image, path)
    return image
