"""Cutting a folder of tracks into a training dataset of captioned spectrogram clips.

Every clip is a PNG in the model's own format (512 rows, one column per 10 ms, the spectrogram
parameters in its EXIF) and a row of metadata.jsonl (riffusion.training.imagefolder). Work is
recorded per finished track in DATASET_DIR/.riffusion/tracks.jsonl, so a run that stops (Ctrl-C,
a crash) resumes where it was: finished tracks are skipped, and so are the clips already written
of the track that was cut short. metadata.jsonl is rewritten from that record at the end.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import re
import signal
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile

from riffusion.audio import Audio
from riffusion.errors import RiffusionError
from riffusion.render.longform import clip_width
from riffusion.spectrogram.converter import SpectrogramImageConverter
from riffusion.spectrogram.image import image_from_mel_amplitudes, save_spectrogram_image
from riffusion.spectrogram.params import SpectrogramParams
from riffusion.training.captions import Caption, CaptionSource, choose_caption
from riffusion.training.imagefolder import ClipRow, write_metadata
from riffusion.training.tags import read_tags

#: A clip whose RMS level (all channels together) is below this, dBFS, counts as silent and is
#: left out unless --keep-silent: -60 dBFS is far below quiet music (about -40 to -20 dBFS RMS)
#: and catches digital silence, fade-out tails and room noise between tracks.
SILENCE_THRESHOLD_DBFS = -60.0

#: Suffixes of the files treated as tracks: what libsndfile reads, and common formats it does
#: not (they are reported as unreadable rather than passed over in silence).
AUDIO_SUFFIXES = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".caf"}
    | {".w64", ".opus", ".m4a", ".mp4", ".aac", ".wma", ".alac"}
)

# The folder of the dataset that records progress and settings (not part of the dataset itself).
STATE_DIR = ".riffusion"
_SETTINGS_FILE = "dataset.json"
_JOURNAL_FILE = "tracks.jsonl"


@dataclass(frozen=True)
class DatasetSettings:
    """How tracks are cut into clips.

    Attributes:
        clip_seconds: clip length, s; a multiple of 0.64 s (64 columns of 10 ms).
        hop_seconds: from one clip's start to the next, s; None: clip_seconds (no overlap).
        stereo: two-channel spectrograms (G left, B right) instead of the mono mixdown.
        keep_silent: keep clips below SILENCE_THRESHOLD_DBFS.
    """

    clip_seconds: float = 5.12
    hop_seconds: float | None = None
    stereo: bool = False
    keep_silent: bool = False

    @property
    def params(self) -> SpectrogramParams:
        return SpectrogramParams(stereo=self.stereo)

    @property
    def width(self) -> int:
        """Columns of one clip's image."""
        return clip_width(self.clip_seconds, self.params)

    @property
    def hop_columns(self) -> int:
        """Columns from one clip's start to the next."""
        if self.hop_seconds is None:
            return self.width
        columns = self.hop_seconds * 1000.0 / self.params.step_size_ms
        step_s = self.params.step_size_ms / 1000.0
        if columns < 1 - 1e-6 or abs(columns - round(columns)) > 1e-6:
            raise RiffusionError(
                f"--hop-seconds must be a positive multiple of {step_s:g} s (one spectrogram "
                f"column), got {self.hop_seconds:g}"
            )
        return round(columns)

    def check(self) -> None:
        """Raise RiffusionError for unusable settings (before any work)."""
        _ = self.width, self.hop_columns

    def to_json(self) -> dict[str, object]:
        return {
            "clip_seconds": self.clip_seconds,
            "hop_seconds": self.hop_seconds,
            "stereo": self.stereo,
            "keep_silent": self.keep_silent,
        }


@dataclass(frozen=True)
class TrackPlan:
    """What will be made of one track.

    Attributes:
        path: the audio file.
        relative_name: its path under the audio folder, with /.
        caption: its caption and the caption's source.
        bpm: tempo from its tags, or None.
        duration_s: its length, s, as its header says.
        clip_names: the image file name of each clip, in order.
        start_columns: where each clip starts, in spectrogram columns.
        signature: (size in bytes, modification time in ns), to tell a changed file.
    """

    path: Path
    relative_name: str
    caption: Caption
    bpm: float | None
    duration_s: float
    clip_names: tuple[str, ...]
    start_columns: tuple[int, ...]
    signature: tuple[int, int]


@dataclass(frozen=True)
class SkippedTrack:
    """A file under the audio folder that gives no clips, and why."""

    relative_name: str
    reason: str


@dataclass
class TrackOutcome:
    """What rendering one track gave: its rows, the silent clips left out, or an error."""

    plan: TrackPlan
    rows: list[ClipRow] = field(default_factory=list)
    silent: int = 0
    error: str | None = None


def find_tracks(audio_dir: Path) -> list[Path]:
    """The audio files under audio_dir (recursively, by suffix), sorted; hidden ones left out.

    Raises:
        RiffusionError: the folder is missing or holds no audio files.
    """
    if not audio_dir.is_dir():
        raise RiffusionError(f"{audio_dir}: no such folder")
    tracks = sorted(
        path
        for path in audio_dir.rglob("*")
        if path.suffix.lower() in AUDIO_SUFFIXES
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(audio_dir).parts)
    )
    if not tracks:
        suffixes = ", ".join(sorted(AUDIO_SUFFIXES))
        raise RiffusionError(f"{audio_dir}: no audio files in it ({suffixes})")
    return tracks


def clip_file_name(relative_name: str, start_ms: int) -> str:
    """The image name of a clip: the track's path made safe, a hash that keeps distinct tracks
    apart, and the start in ms (sorting by name sorts a track's clips by time)."""
    readable = re.sub(r"[^A-Za-z0-9.-]+", "_", relative_name.replace("/", "__"))[-80:]
    digest = zlib.crc32(relative_name.encode()) & 0xFFFFFFFF
    return f"{readable}-{digest:08x}_{start_ms:08d}.png"


def plan_tracks(
    audio_dir: Path,
    settings: DatasetSettings,
    captions: dict[str, str],
    template: str | None,
) -> tuple[list[TrackPlan], list[SkippedTrack]]:
    """Each track's clips and caption, from file headers and tags only (no audio decoded)."""
    params = settings.params
    width, hop = settings.width, settings.hop_columns
    plans, skipped = [], []
    for path in find_tracks(audio_dir):
        relative_name = path.relative_to(audio_dir).as_posix()
        try:
            info = soundfile.info(str(path))
            duration_s = info.frames / info.samplerate
        except Exception as error:  # libsndfile's errors for unknown or broken files vary
            reason = _first_line(error)
            skipped.append(SkippedTrack(relative_name, f"not a readable audio file ({reason})"))
            continue
        total_columns = math.floor(duration_s * 1000.0 / params.step_size_ms + 1e-9)
        starts = tuple(range(0, total_columns - width + 1, hop))
        if not starts:
            skipped.append(
                SkippedTrack(
                    relative_name,
                    f"shorter than one clip ({duration_s:.2f} s < {settings.clip_seconds:g} s)",
                )
            )
            continue
        tags = read_tags(path)
        stat = path.stat()
        plans.append(
            TrackPlan(
                path=path,
                relative_name=relative_name,
                caption=choose_caption(path, relative_name, tags, captions, template),
                bpm=tags.tempo,
                duration_s=duration_s,
                clip_names=tuple(
                    clip_file_name(relative_name, start * params.step_size_ms) for start in starts
                ),
                start_columns=starts,
                signature=(stat.st_size, stat.st_mtime_ns),
            )
        )
    return plans, skipped


def level_dbfs(audio: Audio) -> float:
    """RMS level of audio over all its channels, dBFS (-inf for digital silence)."""
    rms = float(np.sqrt(np.mean(np.square(audio.samples, dtype=np.float64))))
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


def render_track(plan: TrackPlan, dataset_dir: Path, settings: DatasetSettings) -> TrackOutcome:
    """Decode the track and write the image of each of its clips (those not written yet).

    Never raises for a bad file: the outcome carries the error instead.
    """
    outcome = TrackOutcome(plan)
    params = settings.params
    width = settings.width
    try:
        audio = Audio.load(plan.path).resample(params.sample_rate)
    except RiffusionError as error:
        outcome.error = _without_path(plan.path, str(error))
        return outcome
    except Exception as error:  # an odd file must not end the run
        outcome.error = f"{type(error).__name__}: {_first_line(error)}"
        return outcome
    audio = audio.to_stereo() if params.stereo else audio.to_mono()
    converter = SpectrogramImageConverter(params)
    clip_frames = width * params.hop_length
    for name, start in zip(plan.clip_names, plan.start_columns, strict=True):
        first = start * params.hop_length
        if first + clip_frames > audio.num_frames:
            break  # the header promised more audio than the file holds
        row = ClipRow(
            file_name=name,
            text=plan.caption.text,
            source=plan.relative_name,
            start_seconds=round(start * params.step_size_ms / 1000.0, 3),
            bpm=plan.bpm,
        )
        image_path = dataset_dir / name
        if image_path.exists():
            outcome.rows.append(row)
            continue
        clip = Audio(audio.samples[:, first : first + clip_frames], audio.sample_rate)
        if not settings.keep_silent and level_dbfs(clip) < SILENCE_THRESHOLD_DBFS:
            outcome.silent += 1
            continue
        # width * hop samples analyse to width + 1 centred frames; the last is centred on the
        # clip's end, half of it reflected padding, and the model's images are width wide.
        amplitudes = converter.mel_amplitudes_from_audio(clip)[:, :, :width]
        save_spectrogram_image(image_from_mel_amplitudes(amplitudes, params), image_path)
        outcome.rows.append(row)
    return outcome


# --- Settings and progress records ------------------------------------------------------------


def prepare_dataset_dir(dataset_dir: Path, settings: DatasetSettings) -> None:
    """Create dataset_dir, or check that a dataset already in it was made with settings.

    Raises:
        RiffusionError: the folder holds something else, or a dataset cut another way.
    """
    state = dataset_dir / STATE_DIR
    settings_path = state / _SETTINGS_FILE
    if dataset_dir.exists() and not dataset_dir.is_dir():
        raise RiffusionError(f"{dataset_dir}: exists and is not a folder")
    if settings_path.is_file():
        try:
            earlier = json.loads(settings_path.read_text())
        except (OSError, json.JSONDecodeError):
            earlier = None
        if earlier != settings.to_json():
            raise RiffusionError(
                f"{dataset_dir} holds a dataset made with other settings ({earlier}); "
                "use another output folder, or the same --clip-seconds, --hop-seconds, "
                "--stereo and --keep-silent"
            )
        return
    if dataset_dir.is_dir() and any(dataset_dir.iterdir()):
        raise RiffusionError(
            f"{dataset_dir}: the folder is not empty and holds no riffusion dataset; "
            "choose a new or empty output folder"
        )
    try:
        state.mkdir(parents=True, exist_ok=True)
        settings_path.write_text(json.dumps(settings.to_json(), indent=2) + "\n")
    except OSError as error:
        raise RiffusionError(f"{dataset_dir}: cannot create it ({error.strerror})") from None


@dataclass(frozen=True)
class FinishedTrack:
    """A journal entry: a track whose clips are all written."""

    source: str
    signature: tuple[int, int]
    rows: tuple[ClipRow, ...]
    silent: int
    caption_source: str


def read_journal(dataset_dir: Path) -> dict[str, FinishedTrack]:
    """The finished tracks, by relative name (the latest entry of each). A torn last line (the
    run was killed while writing it) is ignored: that track is simply done again."""
    path = dataset_dir / STATE_DIR / _JOURNAL_FILE
    finished: dict[str, FinishedTrack] = {}
    if not path.is_file():
        return finished
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
            track = FinishedTrack(
                source=entry["source"],
                signature=(int(entry["signature"][0]), int(entry["signature"][1])),
                rows=tuple(ClipRow.from_dict(row, str(path)) for row in entry["rows"]),
                silent=int(entry["silent"]),
                caption_source=str(entry["caption_source"]),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, IndexError):
            continue
        finished[track.source] = track
    return finished


def append_journal(dataset_dir: Path, outcome: TrackOutcome) -> FinishedTrack:
    """Record a track whose clips are all written; returns the entry."""
    track = FinishedTrack(
        source=outcome.plan.relative_name,
        signature=outcome.plan.signature,
        rows=tuple(outcome.rows),
        silent=outcome.silent,
        caption_source=outcome.plan.caption.source.value,
    )
    entry = {
        "source": track.source,
        "signature": list(track.signature),
        "rows": [asdict(row) for row in track.rows],
        "silent": track.silent,
        "caption_source": track.caption_source,
    }
    with (dataset_dir / STATE_DIR / _JOURNAL_FILE).open("a", encoding="utf-8") as journal:
        journal.write(json.dumps(entry, ensure_ascii=False) + "\n")
        journal.flush()
        os.fsync(journal.fileno())
    return track


def write_dataset_metadata(dataset_dir: Path, finished: dict[str, FinishedTrack]) -> int:
    """Write metadata.jsonl for every finished track (by source name); the number of rows."""
    rows = [row for source in sorted(finished) for row in finished[source].rows]
    write_metadata(dataset_dir, rows)
    return len(rows)


def pending_plans(
    plans: Sequence[TrackPlan], finished: dict[str, FinishedTrack], dataset_dir: Path
) -> list[TrackPlan]:
    """The plans still to render. A track that changed since it was finished is done again
    from scratch: the images of its earlier version are removed first."""
    pending = []
    for plan in plans:
        done = finished.get(plan.relative_name)
        if done is not None and done.signature == plan.signature:
            continue
        if done is not None:
            for row in done.rows:
                (dataset_dir / row.file_name).unlink(missing_ok=True)
        pending.append(plan)
    return pending


# --- Running the plans ------------------------------------------------------------------------


def render_tracks(
    plans: Sequence[TrackPlan],
    dataset_dir: Path,
    settings: DatasetSettings,
    workers: int,
) -> Iterator[TrackOutcome]:
    """render_track() for every plan, in worker processes when workers > 1; outcomes arrive as
    tracks finish. Closing the iterator early (Ctrl-C) stops the workers at once: images are
    written whole or not at all, so nothing half made is left behind."""
    if workers <= 1 or len(plans) <= 1:
        for plan in plans:
            yield render_track(plan, dataset_dir, settings)
        return
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(min(workers, len(plans)), initializer=_init_worker)
    try:
        jobs = [(plan, dataset_dir, settings) for plan in plans]
        yield from pool.imap_unordered(_render_job, jobs)
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def _init_worker() -> None:
    """Workers leave Ctrl-C to the main process, which stops them, and use one thread each."""
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


def _render_job(job: tuple[TrackPlan, Path, DatasetSettings]) -> TrackOutcome:
    return render_track(*job)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _without_path(path: Path, message: str) -> str:
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def caption_source_counts(sources: Sequence[str]) -> dict[str, int]:
    """How many tracks took their caption from each source, in CaptionSource order."""
    return {
        source.value: count
        for source in CaptionSource
        if (count := sum(1 for each in sources if each == source.value))
    }
