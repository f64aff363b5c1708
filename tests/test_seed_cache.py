"""The seed image cache: entries made once, and leftovers of killed writers cleared."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from PIL import Image

from riffusion.seeds.cache import STALE_PARTIAL_S, cache_dir, cached_image, code_digest


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RIFFUSION_CACHE_DIR", str(tmp_path))
    return cache_dir()


def test_entries_are_made_once(folder: Path) -> None:
    made = []

    def make() -> Image.Image:
        made.append(1)
        return Image.new("RGB", (8, 4), "white")

    first, second = cached_image("blank", make), cached_image("blank", make)
    assert made == [1]
    assert first.tobytes() == second.tobytes()
    assert [path.name for path in folder.iterdir()] == [f"blank-{code_digest()}.png"]


def test_leftovers_of_killed_writers_are_cleared_on_first_use(folder: Path) -> None:
    """A server killed while writing the cache left 0-byte .partial.png files, which piled up."""
    folder.mkdir(parents=True)
    leftovers = [folder / f".og_beat-{code_digest()}.{index:012x}.partial.png" for index in (1, 2)]
    in_progress = folder / f".agile-{code_digest()}.00000000000f.partial.png"
    for path in (*leftovers, in_progress):
        path.write_bytes(b"")
    long_ago = time.time() - 2 * STALE_PARTIAL_S
    for path in leftovers:
        os.utime(path, (long_ago, long_ago))
    cached_image("blank", lambda: Image.new("RGB", (8, 4)))
    # Another process may be writing the recent one right now.
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        [in_progress.name, f"blank-{code_digest()}.png"]
    )
