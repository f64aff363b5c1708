"""Writing files whole or not at all, alone or several together, and what stops a path being
written.

Files are written under a temporary name beside their path (``.NAME.<hex>.partial.EXT``) and
renamed into place. A process killed outright (SIGKILL, a power cut) can leave such temporaries
behind; remove_stale_partials clears them from a folder.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from riffusion.errors import RiffusionError

# A temporary is named ".NAME.<12 hex digits>.partial.EXT".
_TOKEN_BYTES = 6
_PARTIAL = ".partial"
_PARTIAL_GLOB = f".*.{'?' * 2 * _TOKEN_BYTES}{_PARTIAL}*"

#: write(temporary) writes the whole file to the temporary path it is given.
Writer = Callable[[Path], object]


def write_atomically(path: Path, write: Writer) -> Path:
    """Call write(temporary) for a new file beside path, then rename it into place.

    path then holds its old content or the whole new file, never part of one, however the writing
    stops (a full disk, Ctrl-C, a crash), and readers of path never see it half written. The
    temporary file keeps path's suffix (writers that pick a format by it still can) and is
    removed if write fails. Parent folders are created.

    Raises:
        OSError: from creating the folders, writing or renaming.
    """
    write_files_atomically([(path, write)])
    return path


def write_files_atomically(writes: Sequence[tuple[Path, Writer]]) -> list[Path]:
    """Write several files so that either all of them are replaced or none is.

    Every file is first written whole to its temporary (as write_atomically does); only then are
    they renamed into place. A failure before that point (a full disk, Ctrl-C) leaves every path
    as it was. Should a rename fail part way, the paths already renamed get their old content back
    (kept meanwhile as a hard link), or are removed where they did not exist before.

    Returns:
        The paths, in order.

    Raises:
        OSError: from creating folders, writing, keeping the old content or renaming, with the
            path concerned as its filename (not its temporary's); nothing is left changed.
    """
    staged: list[tuple[Path, Path]] = []  # (temporary, path)
    backups: dict[Path, Path] = {}  # path -> its old content, kept until all are renamed
    try:
        for path, write in writes:
            with _naming(path):
                path.parent.mkdir(parents=True, exist_ok=True)
                temporary = _partial_path(path)
                staged.append((temporary, path))
                write(temporary)
        # A lone rename is atomic by itself; backups are only needed to undo one of several.
        if len(staged) > 1:
            for _, path in staged:
                if path.exists():
                    with _naming(path):
                        backups[path] = _partial_path(path)
                        _keep_copy(path, backups[path])
        _rename_all(staged, backups)
    finally:
        for temporary in [*(temporary for temporary, _ in staged), *backups.values()]:
            temporary.unlink(missing_ok=True)
    return [path for path, _ in writes]


def _rename_all(staged: list[tuple[Path, Path]], backups: dict[Path, Path]) -> None:
    """Rename each temporary onto its path; on a failure, put the renamed paths back."""
    renamed: list[Path] = []
    try:
        for temporary, path in staged:
            with _naming(path):
                os.replace(temporary, path)
            renamed.append(path)
    except BaseException:
        for path in renamed:
            if path in backups:
                os.replace(backups[path], path)
            else:
                path.unlink(missing_ok=True)
        raise


def _keep_copy(path: Path, backup: Path) -> None:
    """Keep path's content as backup: a hard link where the file system has them, else a copy."""
    try:
        os.link(path, backup)
    except OSError:
        shutil.copy2(path, backup)


@contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Re-raise an OSError of the block with path as its filename: a temporary's name would only
    puzzle whoever reads the message."""
    try:
        yield
    except OSError as error:
        if error.filename == str(path):
            raise
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error


def _partial_path(path: Path) -> Path:
    # Not tempfile.mkstemp: its files are private (0600) and would stay so once renamed; the
    # writer creates this one, with the permissions the umask gives any new file.
    return path.with_name(f".{path.stem}.{secrets.token_hex(_TOKEN_BYTES)}{_PARTIAL}{path.suffix}")


def remove_stale_partials(folder: Path, older_than_s: float) -> int:
    """Delete temporaries in folder last modified more than older_than_s seconds ago.

    Other processes may be writing into the same folder right now, so only temporaries too old to
    belong to a write in progress are removed. Files that vanish or cannot be removed meanwhile are
    left alone. Returns how many were removed.
    """
    cutoff = time.time() - older_than_s
    removed = 0
    try:
        candidates = list(folder.glob(_PARTIAL_GLOB))
    except OSError:
        return 0
    for candidate in candidates:
        try:
            if candidate.is_file() and candidate.stat().st_mtime < cutoff:
                candidate.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def write_problem(path: Path, folder: bool = False) -> str | None:
    """Why path cannot be written, or None when nothing stands in the way.

    path is a file to write, or with folder=True a folder to write files in (created if need
    be). Checked without writing anything: path is of the wrong kind (a folder for a file; a
    device or pipe; a file for a folder), a parent on the way is a file, or the nearest existing
    folder is not writable (folders still to be created would be created in it).
    """
    if folder:
        if path.exists() and not path.is_dir():
            return "it exists and is not a directory"
        candidates = [path, *path.parents]
    else:
        if path.is_dir():
            return "it is a directory"
        if path.exists() and not path.is_file():
            return "it is not a regular file"
        candidates = list(path.parents)
    for candidate in candidates:
        if candidate.is_dir():
            if not os.access(candidate, os.W_OK | os.X_OK):
                return f"no permission to write in {candidate}"
            return None
        if candidate.exists():
            return f"{candidate} is a file, not a directory"
    return None


def cannot_write(path: Path, error: OSError) -> RiffusionError:
    """The one-line error for an OSError met writing path, with the plainest reason known."""
    reason = write_problem(path) or error.strerror or str(error)
    return RiffusionError(f"{path}: cannot write ({reason})")
