"""The command group; user mistakes become one-line errors with a non-zero exit, warnings one-line
notices, and Ctrl-C or SIGTERM a clean stop."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import click

from riffusion.cli.audio_commands import (
    audio_to_image,
    image_to_audio,
    print_exif,
    sample_clips_command,
)
from riffusion.cli.batch_commands import audio_to_images_batch, sample_clips_batch
from riffusion.cli.common import exit_status, warn
from riffusion.cli.compare_presets import compare_presets
from riffusion.cli.dataset_command import dataset
from riffusion.cli.generate import generate
from riffusion.cli.render_commands import interpolate, jam, riff
from riffusion.cli.seed_commands import seed_image, seeds
from riffusion.cli.serve import serve
from riffusion.cli.train_command import train
from riffusion.errors import RiffusionError, RiffusionWarning
from riffusion.interrupts import signal_of, sigterm_as_interrupt


class RiffusionGroup(click.Group):
    """A click group that reports RiffusionError as `error: ...` and exit status 1, a
    RiffusionWarning as a `Warning: ...` line, and a Ctrl-C or SIGTERM that no command handled
    itself as one line and exit status 130 or 143 (click's own says "Aborted!" with status 1, as
    for a failure; an unhandled SIGTERM would kill the process before any cleanup)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with sigterm_as_interrupt(), _riffusion_warnings_as_lines():
                return super().invoke(ctx)
        except RiffusionError as error:
            raise click.ClickException(str(error)) from None
        except KeyboardInterrupt as interrupt:
            # Files are written whole or not at all (Audio.save, image saves), so nothing is
            # left half written.
            click.echo("Interrupted.", err=True)
            ctx.exit(exit_status(signal_of(interrupt)))


@contextmanager
def _riffusion_warnings_as_lines() -> Iterator[None]:
    """Within the block, every RiffusionWarning is shown as one `Warning: ...` line on stderr
    (other warnings as Python shows them)."""
    with warnings.catch_warnings():
        show = warnings.showwarning

        def show_warning(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            if issubclass(category, RiffusionWarning):
                warn(str(message))
            else:
                show(message, category, filename, lineno, file, line)

        warnings.simplefilter("always", RiffusionWarning)
        warnings.showwarning = show_warning
        yield


@click.group(cls=RiffusionGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="riffusion")
def cli() -> None:
    """Riffusion: music from Stable Diffusion spectrograms."""


cli.add_command(audio_to_image)
cli.add_command(image_to_audio)
cli.add_command(print_exif)
cli.add_command(sample_clips_command)
cli.add_command(audio_to_images_batch)
cli.add_command(sample_clips_batch)
cli.add_command(generate)
cli.add_command(seed_image)
cli.add_command(seeds)
cli.add_command(serve)
cli.add_command(riff)
cli.add_command(interpolate)
cli.add_command(jam)
cli.add_command(compare_presets)
cli.add_command(dataset)
cli.add_command(train)
