"""Writing files whole or not at all."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Call write(temporary) for a new file beside path, then rename it into place.

    path then holds its old content or the whole new file, never part of one, however the writing
    stops (a full disk, Ctrl-C, a crash), and readers of path never see it half written. The
    temporary file keeps path's suffix (writers that pick a format by it still can) and is
    removed if write fails. Parent folders are created.

    Raises:
        OSError: from creating the folders, writing or renaming.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its files are private (0600) and would stay so once renamed; the
    # writer creates this one, with the permissions the umask gives any new file.
    temporary = path.with_name(f".{path.stem}.{secrets.token_hex(6)}.partial{path.suffix}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
