"""Options and helpers shared by the audio and spectrogram commands."""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import click
from PIL import Image

from riffusion.atomic_files import Writer, cannot_write, write_files_atomically, write_problem
from riffusion.audio import Audio, format_for_extension
from riffusion.devices import AUTO
from riffusion.errors import RiffusionError
from riffusion.spectrogram.image import write_spectrogram_image
from riffusion.spectrogram.params import SpectrogramParams
from riffusion.spectrogram.reconstruction import QUALITIES

DEFAULTS = SpectrogramParams()


def exit_status(signum: int) -> int:
    """Exit status of a command stopped by signal signum: 128 + its number, as shells report it."""
    return 128 + signum


# Exit status of a command stopped by Ctrl-C (130).
EXIT_INTERRUPTED = exit_status(signal.SIGINT)

# Options take plain paths: the library checks them and says what is wrong in one line, where
# click.Path(exists=True) would print a usage screen.
PATH = click.Path(path_type=Path)

device_option = click.option(
    "--device",
    default=AUTO,
    show_default=True,
    help="Torch device: auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps.",
)
quality_option = click.option(
    "--quality",
    type=click.Choice(QUALITIES),
    default="fast",
    show_default=True,
    help="Phase reconstruction: fast, high, or the original riffusion's algorithm.",
)
overwrite_option = click.option(
    "--overwrite", is_flag=True, help="Replace output files that already exist."
)


def spectrogram_options(*, window_options: bool) -> Callable[[Callable], Callable]:
    """The spectrogram parameter options, with the original's defaults.

    window_options adds --window-duration-ms and --padded-duration-ms, which the original offered
    for single files but not for batches.
    """
    options = [
        click.option(
            "--step-size-ms",
            type=int,
            default=DEFAULTS.step_size_ms,
            show_default=True,
            help="Duration of one pixel in the X axis of the spectrogram image, ms.",
        ),
        click.option(
            "--num-frequencies",
            type=int,
            default=DEFAULTS.num_frequencies,
            show_default=True,
            help="Number of Y axes (mel bins) in the spectrogram image.",
        ),
        click.option(
            "--min-frequency",
            type=int,
            default=DEFAULTS.min_frequency,
            show_default=True,
            help="Lowest frequency of the mel scale, Hz.",
        ),
        click.option(
            "--max-frequency",
            type=int,
            default=DEFAULTS.max_frequency,
            show_default=True,
            help="Highest frequency of the mel scale, Hz.",
        ),
    ]
    if window_options:
        options += [
            click.option(
                "--window-duration-ms",
                type=int,
                default=DEFAULTS.window_duration_ms,
                show_default=True,
                help="Length of the STFT window, ms.",
            ),
            click.option(
                "--padded-duration-ms",
                type=int,
                default=DEFAULTS.padded_duration_ms,
                show_default=True,
                help="FFT length the window is zero-padded to, ms.",
            ),
        ]
    options += [
        click.option(
            "--power-for-image",
            type=float,
            default=DEFAULTS.power_for_image,
            show_default=True,
            help="Exponent applied to amplitudes before quantising them to pixels.",
        ),
        click.option(
            "--sample-rate",
            type=int,
            default=DEFAULTS.sample_rate,
            show_default=True,
            help="Audio is resampled to this rate, Hz, before the spectrogram is computed.",
        ),
    ]

    def decorate(command: Callable) -> Callable:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def warn(message: str) -> None:
    """A warning on stderr, leaving stdout to results."""
    click.echo(f"Warning: {message}", err=True)


def load_audio(path: Path, notify: Callable[[str], None] = warn) -> Audio:
    """Audio from path; more than two channels are mixed down to mono, with a notice."""
    audio = Audio.load(path)
    if audio.num_channels > 2:
        notify(f"{path} has {audio.num_channels} channels; mixing them down to mono")
        audio = audio.to_mono()
    return audio


def existing_outputs(paths: Iterable[Path]) -> list[Path]:
    """The paths that already exist."""
    return [path for path in paths if path.exists()]


def check_outputs(paths: Iterable[Path], overwrite: bool) -> None:
    """Refuse, before any work is done, output files that could not be written (see
    write_problem) or that exist while overwrite is not set."""
    paths = list(paths)
    for path in paths:
        problem = write_problem(path)
        if problem is not None:
            raise RiffusionError(f"{path}: cannot write ({problem})")
    existing = [] if overwrite else existing_outputs(paths)
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise RiffusionError(f"{existing[0]} already exists{more}; pass --overwrite to replace it")


def check_output_dir(path: Path) -> None:
    """Refuse, before any work is done, an output folder that could not be created or written
    in (see write_problem)."""
    problem = write_problem(path, folder=True)
    if problem is not None:
        raise RiffusionError(f"{path}: cannot write there ({problem})")


def prepare_output_dir(path: Path) -> None:
    """Create the output folder (and its parents) unless it exists, after check_output_dir."""
    check_output_dir(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RiffusionError(f"{path}: cannot create the directory ({error.strerror})") from None


def save_together(outputs: Sequence[tuple[Path, Audio | Image.Image]]) -> None:
    """Write each (path, audio or spectrogram image), all whole or none: a failure part way (a
    full disk, Ctrl-C) leaves every path as it was. Formats follow the paths' extensions."""
    writes: list[tuple[Path, Writer]] = []
    for path, content in outputs:
        if isinstance(content, Audio):
            data = content.to_bytes(format_for_extension(path.name))
            writes.append((path, functools.partial(_write_bytes, data=data)))
        else:
            writes.append((path, functools.partial(write_spectrogram_image, content)))
    try:
        write_files_atomically(writes)
    except OSError as error:
        failed = Path(error.filename) if error.filename else outputs[0][0]
        raise cannot_write(failed, error) from None


def _write_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)
