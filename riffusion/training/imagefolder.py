"""The dataset layout: spectrogram PNGs beside a metadata.jsonl, one row per image.

This is the Hugging Face imagefolder layout: ``datasets.load_dataset("imagefolder",
data_dir=DATASET_DIR)`` reads it as it is (an "image" column and one column per row field), and the
folder can be shared or pushed to the Hub unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from riffusion.atomic_files import write_atomically
from riffusion.errors import RiffusionError

METADATA_FILE = "metadata.jsonl"


@dataclass(frozen=True)
class ClipRow:
    """One image of the dataset: a row of metadata.jsonl.

    Attributes:
        file_name: the image's path relative to the dataset folder.
        text: its caption.
        source: the track it was cut from, relative to the audio folder.
        start_seconds: where in the track the clip starts, s.
        bpm: the track's tempo from its tags, beats per minute; None where unknown.
    """

    file_name: str
    text: str
    source: str
    start_seconds: float
    bpm: float | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_dict(cls, row: dict[str, object], where: str) -> ClipRow:
        """A row from its JSON object; where names the line for errors."""
        name, text = row.get("file_name"), row.get("text")
        if not isinstance(name, str) or not name:
            raise RiffusionError(f"{where}: no file_name")
        if not isinstance(text, str):
            raise RiffusionError(f"{where}: no text (caption) for {name}")
        start = row.get("start_seconds", 0.0)
        bpm = row.get("bpm")
        return cls(
            file_name=name,
            text=text,
            source=str(row.get("source", "")),
            start_seconds=float(start) if isinstance(start, (int, float)) else 0.0,
            bpm=float(bpm) if isinstance(bpm, (int, float)) else None,
        )


def write_metadata(dataset_dir: Path, rows: Iterable[ClipRow]) -> Path:
    """Write (whole or not at all) dataset_dir/metadata.jsonl with rows."""
    text = "".join(row.to_json() + "\n" for row in rows)
    return write_atomically(
        dataset_dir / METADATA_FILE, lambda path: path.write_text(text, encoding="utf-8")
    )


def read_metadata(dataset_dir: Path) -> Sequence[ClipRow]:
    """The rows of dataset_dir/metadata.jsonl.

    Raises:
        RiffusionError: the folder or its metadata.jsonl is missing, or a line is malformed.
    """
    if not dataset_dir.is_dir():
        raise RiffusionError(f"{dataset_dir}: no such dataset folder")
    path = dataset_dir / METADATA_FILE
    if not path.is_file():
        raise RiffusionError(
            f"{dataset_dir}: not a dataset (it has no {METADATA_FILE}); make one with "
            "`riffusion dataset AUDIO_DIR -o DATASET_DIR`"
        )
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise RiffusionError(f"{where}: {error.msg}") from None
        if not isinstance(row, dict):
            raise RiffusionError(f"{where}: not a JSON object")
        rows.append(ClipRow.from_dict(row, where))
    return rows
