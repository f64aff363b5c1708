"""Atomic writes of several files together, leftovers of killed writers, and unwritable paths."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from riffusion.atomic_files import (
    remove_stale_partials,
    write_atomically,
    write_files_atomically,
    write_problem,
)


def contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def disk_full(temporary: Path) -> None:
    temporary.write_bytes(b"half of it")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_files_written_together(tmp_path: Path) -> None:
    first, second = tmp_path / "a.wav", tmp_path / "sub" / "b.png"
    first.write_bytes(b"old a")
    paths = write_files_atomically(
        [(first, lambda path: path.write_bytes(b"new a")), (second, lambda p: p.write_bytes(b"b"))]
    )
    assert paths == [first, second]
    assert first.read_bytes() == b"new a" and second.read_bytes() == b"b"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.wav", "sub"]
    assert [path.name for path in (tmp_path / "sub").iterdir()] == ["b.png"]


@pytest.mark.parametrize("existing", [False, True])
def test_a_full_disk_on_the_second_file_changes_neither(tmp_path: Path, existing: bool) -> None:
    first, second = tmp_path / "g.mp3", tmp_path / "g.png"
    if existing:
        first.write_bytes(b"old audio")
        second.write_bytes(b"old image")
    before = contents(tmp_path)
    with pytest.raises(OSError, match="No space left") as raised:
        write_files_atomically(
            [(first, lambda path: path.write_bytes(b"audio")), (second, disk_full)]
        )
    # The error names the file, not its temporary.
    assert raised.value.filename == str(second)
    assert contents(tmp_path) == before


def test_a_failed_rename_puts_back_what_was_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = tmp_path / "old.wav", tmp_path / "new.png"
    old.write_bytes(b"old content")
    replace = os.replace
    renames = []

    def second_rename_fails(source: Path, target: Path) -> None:
        renames.append(target)
        if Path(target) == new:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        replace(source, target)

    monkeypatch.setattr(os, "replace", second_rename_fails)
    with pytest.raises(OSError, match="Input/output error"):
        write_files_atomically(
            [
                (old, lambda path: path.write_bytes(b"replaced")),
                (new, lambda p: p.write_bytes(b"x")),
            ]
        )
    monkeypatch.undo()
    assert contents(tmp_path) == {"old.wav": b"old content"}


def test_a_lone_file_needs_no_backup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(b"old")

    def no_links(source: Path, target: Path) -> None:
        raise AssertionError("linked")

    monkeypatch.setattr(os, "link", no_links)
    write_atomically(path, lambda temporary: temporary.write_bytes(b"new"))
    assert contents(tmp_path) == {"a.wav": b"new"}


def test_stale_partials_are_removed_and_fresh_ones_kept(tmp_path: Path) -> None:
    stale = tmp_path / ".og_beat-abc.0123456789ab.partial.png"
    fresh = tmp_path / ".agile-abc.ba9876543210.partial.png"
    kept = [tmp_path / "og_beat-abc.png", tmp_path / ".hidden.partial.png"]
    for path in (stale, fresh, *kept):
        path.write_bytes(b"")
    an_hour_ago = time.time() - 3600
    for path in (stale, kept[1]):
        os.utime(path, (an_hour_ago, an_hour_ago))
    assert remove_stale_partials(tmp_path, older_than_s=600) == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        path.name for path in (fresh, *kept)
    )
    assert remove_stale_partials(tmp_path / "missing", older_than_s=600) == 0


def test_write_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ok.wav").write_bytes(b"")
    (tmp_path / "folder").mkdir()
    assert write_problem(tmp_path / "new" / "deeper" / "x.png") is None
    assert write_problem(tmp_path / "ok.wav") is None
    assert (
        write_problem(tmp_path / "ok.wav" / "x.png")
        == f"{tmp_path / 'ok.wav'} is a file, not a directory"
    )
    assert write_problem(tmp_path / "ok.wav" / "a" / "x.png") == (
        f"{tmp_path / 'ok.wav'} is a file, not a directory"
    )
    assert write_problem(tmp_path / "folder") == "it is a directory"
    assert write_problem(Path("/dev/null")) == "it is not a regular file"
    assert write_problem(tmp_path / "folder", folder=True) is None
    assert write_problem(tmp_path / "ok.wav", folder=True) == "it exists and is not a directory"
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    assert write_problem(tmp_path / "new" / "x.png") == f"no permission to write in {tmp_path}"
