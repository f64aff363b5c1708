"""Batch commands over a folder of audio files, run on a thread pool with a progress bar.

A file that cannot be processed is reported and skipped; the batch carries on, and the command
exits non-zero at the end if any file failed. Files whose outputs exist are skipped unless
--overwrite is given, so an interrupted batch can be resumed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from riffusion.audio import format_for_extension
from riffusion.cli.common import (
    PATH,
    device_option,
    existing_outputs,
    load_audio,
    overwrite_option,
    prepare_output_dir,
    spectrogram_options,
)
from riffusion.clips import check_clip_request, sample_clips, seed_for_name
from riffusion.devices import resolve_device
from riffusion.errors import RiffusionError
from riffusion.spectrogram.converter import SpectrogramImageConverter
from riffusion.spectrogram.files import image_extension, save_image
from riffusion.spectrogram.params import SpectrogramParams

# process(path, notify) handles one input file: True when it wrote its outputs, False when it left
# them alone because they exist. It raises for a file that cannot be processed.
Process = Callable[[Path, Callable[[str], None]], bool]


def _check_limit(ctx: click.Context, param: click.Parameter, value: int) -> int:
    if value == 0 or value < -1:
        raise click.BadParameter(f"must be positive, or -1 for no limit (got {value})")
    return value


num_threads_option = click.option(
    "--num-threads",
    type=click.IntRange(min=1),
    default=None,
    show_default="the number of CPUs",
    help="Files processed at once.",
)
limit_option = click.option(
    "--limit",
    type=int,
    default=-1,
    show_default=True,
    callback=_check_limit,
    help="Process only the first N files (sorted by name); -1 for all.",
)


def list_input_files(directory: Path, pattern: str = "*", limit: int = -1) -> list[Path]:
    """Files in directory matching the glob pattern, sorted, at most limit (-1: all).

    Hidden files (.DS_Store, ...) are left out, and so are .json sidecars, as the original's
    sample-clips-batch did.
    """
    if not directory.exists():
        raise RiffusionError(f"{directory}: no such directory")
    if not directory.is_dir():
        raise RiffusionError(f"{directory}: is not a directory")
    try:
        matches = sorted(directory.glob(pattern))
    except (ValueError, NotImplementedError) as error:
        raise RiffusionError(f"invalid glob pattern {pattern!r} ({error})") from None
    paths = [
        path
        for path in matches
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() != ".json"
    ]
    if not paths:
        raise RiffusionError(f"{directory}: no files match {pattern!r}")
    return paths if limit < 0 else paths[:limit]


def split_by_stem(paths: list[Path]) -> tuple[list[Path], list[tuple[Path, Path]]]:
    """(paths with distinct stems, [(path, earlier path with its stem)]).

    Outputs are named after the input's stem, so song.wav and song.mp3 would write the same files.
    """
    first_with_stem: dict[str, Path] = {}
    unique: list[Path] = []
    clashes: list[tuple[Path, Path]] = []
    for path in paths:
        if path.stem in first_with_stem:
            clashes.append((path, first_with_stem[path.stem]))
        else:
            first_with_stem[path.stem] = path
            unique.append(path)
    return unique, clashes


@dataclass
class BatchResult:
    """How many input files were written, skipped as already done, and failed."""

    written: int = 0
    existing: int = 0
    failed: int = 0


def run_batch(
    paths: list[Path],
    process: Process,
    num_threads: int | None,
    description: str,
    clashes: Sequence[tuple[Path, Path]] = (),
) -> BatchResult:
    """Run process on every path on a thread pool, with a progress bar and a report on stderr.

    Threads rather than processes: the work is torch and libsndfile calls that release the GIL,
    and a shared converter stays on one device without pickling.
    """
    console = Console(stderr=True)
    result = BatchResult(failed=len(clashes))

    def report(message: str, style: str) -> None:
        # soft_wrap: one line per message whatever the terminal width.
        console.print(Text(message, style=style), soft_wrap=True)

    for path, earlier in clashes:
        report(f"Skipped {path}: its outputs would have the same names as {earlier}'s", "red")
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    pool = ThreadPoolExecutor(max_workers=num_threads or os.cpu_count() or 1)
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(description, total=len(paths))

            def notify(message: str) -> None:
                report(f"Warning: {message}", "yellow")

            futures = {pool.submit(process, path, notify): path for path in paths}
            for future in as_completed(futures):
                path = futures[future]
                try:
                    if future.result():
                        result.written += 1
                    else:
                        result.existing += 1
                except RiffusionError as error:
                    result.failed += 1
                    report(f"Skipped {path}: {_without_path(path, str(error))}", "red")
                # One odd file must not end a long batch, whatever it trips over.
                except Exception as error:
                    result.failed += 1
                    report(f"Skipped {path}: {type(error).__name__}: {error}", "red")
                progress.advance(task)
    finally:
        # On Ctrl-C, drop the files not yet started instead of finishing the whole batch.
        pool.shutdown(wait=True, cancel_futures=True)
    return result


def _without_path(path: Path, message: str) -> str:
    """message without a leading 'path: ', which the report already shows."""
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def finish(result: BatchResult, total: int, what: str) -> None:
    """Print the summary; exit non-zero if any file failed."""
    summary = f"Processed {total} files: {result.written} written"
    if result.existing:
        summary += f", {result.existing} skipped as their {what} exist (--overwrite replaces them)"
    summary += f", {result.failed} failed"
    click.echo(summary)
    if result.failed:
        raise RiffusionError(f"{result.failed} of {total} files failed (see the messages above)")


@click.command("audio-to-images-batch")
@click.option("--audio-dir", type=PATH, required=True, help="Folder of audio files.")
@click.option("--output-dir", type=PATH, required=True, help="Folder for the images (created).")
@click.option(
    "--image-extension",
    "extension",
    default="jpg",
    show_default=True,
    help="Image format: jpg, jpeg or png.",
)
@spectrogram_options(window_options=False)
@click.option("--mono", is_flag=True, help="One-channel spectrograms (the default is stereo).")
@device_option
@num_threads_option
@limit_option
@overwrite_option
def audio_to_images_batch(
    audio_dir: Path,
    output_dir: Path,
    extension: str,
    step_size_ms: int,
    num_frequencies: int,
    min_frequency: int,
    max_frequency: int,
    power_for_image: float,
    sample_rate: int,
    mono: bool,
    device: str,
    num_threads: int | None,
    limit: int,
    overwrite: bool,
) -> None:
    """Process audio clips into spectrogram images in batch, multi-threaded."""
    extension = image_extension(extension)
    params = SpectrogramParams(
        stereo=not mono,
        sample_rate=sample_rate,
        step_size_ms=step_size_ms,
        num_frequencies=num_frequencies,
        min_frequency=min_frequency,
        max_frequency=max_frequency,
        power_for_image=power_for_image,
    )
    converter = SpectrogramImageConverter(params, device=resolve_device(device))
    paths, clashes = split_by_stem(list_input_files(audio_dir, limit=limit))
    prepare_output_dir(output_dir)

    def convert(path: Path, notify: Callable[[str], None]) -> bool:
        image_path = output_dir / f"{path.stem}.{extension}"
        if image_path.exists() and not overwrite:
            return False
        audio = load_audio(path, notify)
        # The original's batch averaged the channels for mono images (a single file's mono image
        # is of the left channel).
        if mono:
            audio = audio.to_mono()
        save_image(converter.spectrogram_image_from_audio(audio), image_path, overwrite=overwrite)
        return True

    result = run_batch(paths, convert, num_threads, "Spectrograms", clashes)
    finish(result, len(paths) + len(clashes), "images")


@click.command("sample-clips-batch")
@click.option("--audio-dir", type=PATH, required=True, help="Folder of audio files.")
@click.option("--output-dir", type=PATH, required=True, help="Folder for the clips (created).")
@click.option(
    "--num-clips-per-file", type=int, default=1, show_default=True, help="Clips cut from each file."
)
@click.option(
    "--duration-ms", type=int, default=5120, show_default=True, help="Length of each clip, ms."
)
@click.option("--mono", is_flag=True, help="Mix the clips down to one channel.")
@click.option(
    "--extension",
    default="mp3",
    show_default=True,
    help="Format of the clips: mp3, wav, flac or ogg.",
)
@num_threads_option
@click.option(
    "--glob", "pattern", default="*", show_default=True, help="Which files of --audio-dir to use."
)
@limit_option
@click.option(
    "--seed",
    type=int,
    default=-1,
    show_default=True,
    help="Random seed (each file's clips depend on it and the file name); negative: unseeded.",
)
@overwrite_option
def sample_clips_batch(
    audio_dir: Path,
    output_dir: Path,
    num_clips_per_file: int,
    duration_ms: int,
    mono: bool,
    extension: str,
    num_threads: int | None,
    pattern: str,
    limit: int,
    seed: int,
    overwrite: bool,
) -> None:
    """Sample short clips from a directory of audio files, multi-threaded."""
    extension = format_for_extension(extension)
    # Once up front rather than failing every file the same way.
    check_clip_request(num_clips_per_file, duration_ms)
    paths, clashes = split_by_stem(list_input_files(audio_dir, pattern, limit))
    prepare_output_dir(output_dir)

    def cut(path: Path, notify: Callable[[str], None]) -> bool:
        audio = load_audio(path, notify)
        if mono:
            audio = audio.to_mono()
        file_seed = seed_for_name(seed, path.name) if seed >= 0 else None
        clips = sample_clips(audio, num_clips_per_file, duration_ms, seed=file_seed)
        # The original's names.
        clip_paths = [
            output_dir / f"{path.stem}_{clip.index}_start_{clip.start_ms}_ms_dur_{duration_ms}_ms"
            f".{extension}"
            for clip in clips
        ]
        if not overwrite and existing_outputs(clip_paths):
            return False
        for clip, clip_path in zip(clips, clip_paths, strict=True):
            clip.audio.save(clip_path, overwrite=overwrite)
        return True

    result = run_batch(paths, cut, num_threads, "Clips", clashes)
    finish(result, len(paths) + len(clashes), "clips")
