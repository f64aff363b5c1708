"""Where riffusion keeps what it can make again but would rather not: $RIFFUSION_CACHE_DIR, else
$XDG_CACHE_HOME/riffusion, else ~/.cache/riffusion. Each kind of entry has a folder of its own
in it (seed images, OpenVINO conversions)."""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir() -> Path:
    """riffusion's cache folder (not created here)."""
    if "RIFFUSION_CACHE_DIR" in os.environ:
        return Path(os.environ["RIFFUSION_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "riffusion"
