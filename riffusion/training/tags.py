"""The tags of an audio file (ID3, Vorbis comments, MP4 atoms, ...), read with mutagen."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import mutagen
from mutagen.id3 import ID3

# ID3 frames, for files whose tags mutagen's "easy" interface does not cover (ID3 in WAV, AIFF).
_ID3_FRAMES = {
    "title": "TIT2",
    "artist": "TPE1",
    "album": "TALB",
    "genre": "TCON",
    "year": "TDRC",
    "bpm": "TBPM",
}
# mutagen's easy keys (EasyID3, EasyMP4, Vorbis comments, APEv2) for each field.
_EASY_KEYS = {
    "title": ("title",),
    "artist": ("artist", "albumartist"),
    "album": ("album",),
    "genre": ("genre",),
    "year": ("date", "year"),
    "bpm": ("bpm", "tempo"),
}


@dataclass(frozen=True)
class TrackTags:
    """What a track's tags say about it; None where they say nothing.

    Attributes:
        title, artist, album, genre: as tagged (the first value of multi-valued tags).
        year: the year part of the date tag.
        bpm: the tempo tag, beats per minute (as written; not checked against the audio).
    """

    title: str | None = None
    artist: str | None = None
    album: str | None = None
    genre: str | None = None
    year: str | None = None
    bpm: str | None = None

    def as_dict(self) -> dict[str, str]:
        """The known fields, name -> value."""
        return {
            field.name: value
            for field in fields(self)
            if (value := getattr(self, field.name)) is not None
        }

    @property
    def tempo(self) -> float | None:
        """bpm as a number, when it is a positive one."""
        try:
            value = float(self.bpm) if self.bpm is not None else None
        except ValueError:
            return None
        return value if value is not None and value > 0 else None


TAG_FIELDS = tuple(field.name for field in fields(TrackTags))


def read_tags(path: Path) -> TrackTags:
    """The tags of the audio file at path; empty when it has none or mutagen cannot read it
    (tags only feed captions, and a file without them is captioned another way)."""
    try:
        tagged = mutagen.File(path, easy=True)
    except Exception:  # mutagen raises its own error types, and OSError, for unreadable files
        return TrackTags()
    tags = getattr(tagged, "tags", None)
    if not tags:
        return TrackTags()
    if isinstance(tags, ID3):
        values = {name: _text(tags.get(frame)) for name, frame in _ID3_FRAMES.items()}
    else:
        values = {name: _first(tags, keys) for name, keys in _EASY_KEYS.items()}
    if values["year"]:
        values["year"] = values["year"][:4]
    return TrackTags(**values)


def _first(tags: Any, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        try:
            value = tags.get(key)
        except (KeyError, ValueError):
            continue
        text = _text(value)
        if text:
            return text
    return None


def _text(value: Any) -> str | None:
    """The first non-empty text of a tag value (a list, an ID3 frame, a string, a number)."""
    if value is None:
        return None
    items = getattr(value, "text", value)
    if isinstance(items, (str, bytes, int, float)) or not hasattr(items, "__iter__"):
        items = [items]
    for item in items:
        text = item.decode(errors="replace") if isinstance(item, bytes) else str(item)
        if text.strip():
            return text.strip()
    return None
