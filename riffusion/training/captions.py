"""Each track's caption, the text its clips are trained with, and where it came from.

The first of these that exists wins: a sidecar text file beside the track (track.txt for
track.flac), an entry in a captions file (CSV or JSONL mapping file names to text), the caption
template filled from the track's tags, and last the file name itself.
"""

from __future__ import annotations

import csv
import json
import re
import string
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from riffusion.errors import RiffusionError
from riffusion.training.tags import TAG_FIELDS, TrackTags

SIDECAR_SUFFIX = ".txt"


class CaptionSource(str, Enum):
    """Where a caption came from, in the order they are tried."""

    SIDECAR = "sidecar file"
    CAPTIONS_FILE = "captions file"
    TAGS = "tags"
    FILE_NAME = "file name"


@dataclass(frozen=True)
class Caption:
    """A track's caption and its source."""

    text: str
    source: CaptionSource


def template_fields(template: str) -> tuple[str, ...]:
    """The tag fields a caption template names, e.g. ("genre", "artist") for "{genre}, {artist}".

    Raises:
        RiffusionError: for a malformed template or a field that tags do not have.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise RiffusionError(f"--caption-template {template!r}: {error}") from None
    names = tuple(name for _, name, _, _ in parsed if name is not None)
    for name in names:
        if name not in TAG_FIELDS:
            raise RiffusionError(
                f"--caption-template {template!r}: unknown field {{{name}}}; use "
                + ", ".join(f"{{{field}}}" for field in TAG_FIELDS)
            )
    if not names:
        raise RiffusionError(f"--caption-template {template!r} names no tag field")
    return names


def fill_template(template: str, tags: TrackTags) -> str | None:
    """The template filled from tags; None when the tags lack a field it names."""
    known = tags.as_dict()
    if any(name not in known for name in template_fields(template)):
        return None
    return template.format(**known).strip()


def load_captions_file(path: Path) -> dict[str, str]:
    """File name -> caption from a CSV (columns file_name and text, with that header) or a JSONL
    file (objects with "file_name" and "text"); the format follows the suffix.

    Raises:
        RiffusionError: for a missing or malformed file, naming the line.
    """
    if not path.is_file():
        raise RiffusionError(f"--captions {path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise RiffusionError(f"--captions {path}: use a .csv or .jsonl file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise RiffusionError(f"--captions {path}: cannot read it ({error})") from None
    entries: list[tuple[int, object, object]] = []
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        if reader.fieldnames is None or not {"file_name", "text"} <= set(reader.fieldnames):
            raise RiffusionError(
                f"--captions {path}: the first line must name the columns file_name and text"
            )
        entries = [(reader.line_num, row.get("file_name"), row.get("text")) for row in reader]
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise RiffusionError(f"--captions {path}, line {number}: {error.msg}") from None
            if not isinstance(row, dict):
                raise RiffusionError(f"--captions {path}, line {number}: not a JSON object")
            entries.append((number, row.get("file_name"), row.get("text")))
    captions = {}
    for number, name, caption in entries:
        if not isinstance(name, str) or not name.strip():
            raise RiffusionError(f"--captions {path}, line {number}: no file_name")
        if not isinstance(caption, str):
            raise RiffusionError(f"--captions {path}, line {number}: no text")
        captions[name.strip().replace("\\", "/")] = caption.strip()
    return captions


def caption_from_file_name(path: Path) -> str:
    """The file name without its extension, with _ and - read as spaces."""
    return re.sub(r"[\s_\-]+", " ", path.stem).strip() or path.stem


def choose_caption(
    path: Path,
    relative_name: str,
    tags: TrackTags,
    captions: dict[str, str],
    template: str | None,
) -> Caption:
    """The caption of the track at path (relative_name: its path under the audio folder, with /).

    captions: a captions file's entries, matched by relative_name first, then by the bare name.
    """
    sidecar = path.with_suffix(SIDECAR_SUFFIX)
    if sidecar.is_file():
        try:
            text = sidecar.read_text(encoding="utf-8-sig").strip()
        except (OSError, UnicodeDecodeError):
            text = ""
        if text:
            return Caption(" ".join(text.split()), CaptionSource.SIDECAR)
    for key in (relative_name, path.name):
        if captions.get(key):
            return Caption(captions[key], CaptionSource.CAPTIONS_FILE)
    if template is not None:
        filled = fill_template(template, tags)
        if filled:
            return Caption(filled, CaptionSource.TAGS)
    return Caption(caption_from_file_name(path), CaptionSource.FILE_NAME)
