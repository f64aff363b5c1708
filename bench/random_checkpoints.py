"""The random-weight checkpoints the benchmarks share: written once under TMPDIR, then reused."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from riffusion.testing import make_random_checkpoint


def default_checkpoint_dir(size: str) -> Path:
    """Where the benchmarks keep the random checkpoint of size ("tiny" or "sd15")."""
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"riffusion-bench-{size}"


def random_checkpoint(path: Path, size: str) -> Path:
    """path, holding a random-weight checkpoint of size; written first if it is not there."""
    if not (path / "model_index.json").is_file():
        print(f"writing a random-weight {size} checkpoint to {path} ...", flush=True)
        make_random_checkpoint(path, size=size)
    return path


def add_sd15_checkpoint_argument(parser: argparse.ArgumentParser) -> None:
    """--checkpoint-dir, where the SD 1.5-size checkpoint is kept (default_checkpoint_dir)."""
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=default_checkpoint_dir("sd15"),
        help="where the random SD 1.5-size checkpoint is written once and reused",
    )
