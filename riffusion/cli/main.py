"""The command group; user mistakes become one-line errors with a non-zero exit."""

from __future__ import annotations

from typing import Any

import click

from riffusion.cli.audio_commands import (
    audio_to_image,
    image_to_audio,
    print_exif,
    sample_clips_command,
)
from riffusion.cli.batch_commands import audio_to_images_batch, sample_clips_batch
from riffusion.cli.common import EXIT_INTERRUPTED
from riffusion.cli.dataset_command import dataset
from riffusion.cli.generate import generate
from riffusion.cli.render_commands import interpolate, jam, riff
from riffusion.cli.seed_commands import seed_image, seeds
from riffusion.cli.serve import serve
from riffusion.cli.train_command import train
from riffusion.errors import RiffusionError


class RiffusionGroup(click.Group):
    """A click group that reports RiffusionError as `error: ...` and exit status 1, and a Ctrl-C
    that no command handled itself as one line and exit status 130 (click's own says "Aborted!"
    with status 1, as for a failure)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RiffusionError as error:
            raise click.ClickException(str(error)) from None
        except KeyboardInterrupt:
            # Files are written whole or not at all (Audio.save, image saves), so nothing is
            # left half written.
            click.echo("Interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)


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
cli.add_command(dataset)
cli.add_command(train)
