"""Seed commands: seed-image (a built-in pattern, your own loop, or a mask) and seeds (the list)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click
from PIL import Image
from rich.console import Console
from rich.table import Table

from riffusion.audio import Audio, format_for_extension
from riffusion.cli.common import (
    PATH,
    check_outputs,
    load_audio,
    overwrite_option,
    save_together,
    warn,
)
from riffusion.errors import RiffusionError
from riffusion.seeds.builtin import render_loop, render_seed_image, seed_request
from riffusion.seeds.images import fit_loop, seed_image_from_loop
from riffusion.seeds.masks import MASKS
from riffusion.seeds.registry import list_masks, list_seeds, mask_grid
from riffusion.seeds.timing import MAX_BAR_STRETCH, WIDTH_MULTIPLE, LoopTiming, choose_timing
from riffusion.spectrogram.files import image_extension

# Options that only make sense with one source; checked so a misplaced one is an error, not
# silently ignored.
_ONLY_FOR = {
    "audio_path": ("--audio", "pattern"),
    "key": ("--key", "pattern"),
    "seed": ("--seed", "pattern"),
    "beats_per_bar": ("--beats-per-bar", "from/mask"),
    "beats": ("--beats", "mask"),
    "fraction": ("--fraction", "mask"),
    "strength": ("--strength", "mask"),
    "width": ("--width", "mask"),
}


@click.command("seed-image")
@click.option("--pattern", help="A built-in pattern (see `riffusion seeds`).")
@click.option("--from", "from_path", type=PATH, help="Your own loop, an audio file.")
@click.option("--mask", "mask_id", help="A built-in mask (see `riffusion seeds`).")
@click.option("-o", "--output", type=PATH, required=True, help="Image to write (png, jpg, jpeg).")
@click.option("--bpm", type=float, help="Tempo, 60-180 BPM. [default: the pattern's; estimated]")
@click.option("--bars", type=int, help="Bars in the loop. [default: whole bars near 512 px]")
@click.option("--key", help="Pattern: key of the bass and chords, e.g. 'A minor', 'F#m', 'Bb'.")
@click.option("--seed", type=int, help="Pattern: random seed of the drum noise and dynamics. [0]")
@click.option("--audio", "audio_path", type=PATH, help="Pattern: also write the loop (wav, ...).")
@click.option("--beats-per-bar", type=int, help="Loop or mask: beats in a bar. [4]")
@click.option("--beats", type=int, help="Mask: beats to keep (keep-first/last-beats).")
@click.option(
    "--fraction",
    type=float,
    help="Mask: fraction of rows kept (keep-bottom/top) or covered from the top (mask_*).",
)
@click.option("--strength", type=float, help="Mask: gray of the repainted parts, 0-1.")
@click.option("--width", type=int, help="Mask: width, px. [as a seed at --bpm and --bars]")
@overwrite_option
def seed_image(
    pattern: str | None,
    from_path: Path | None,
    mask_id: str | None,
    output: Path,
    bpm: float | None,
    bars: int | None,
    key: str | None,
    seed: int | None,
    audio_path: Path | None,
    beats_per_bar: int | None,
    beats: int | None,
    fraction: float | None,
    strength: float | None,
    width: int | None,
    overwrite: bool,
) -> None:
    """Make a seed image from a built-in pattern or your own loop, or draw a mask.

    \b
    riffusion seed-image --pattern og_beat --bpm 120 -o seed.png --audio seed.wav
    riffusion seed-image --from loop.wav -o seed.png          (tempo estimated)
    riffusion seed-image --mask keep-first-beats --bpm 120 --beats 4 -o mask.png
    riffusion seed-image --mask mask_top_third_75 --strength 0.5 -o mask.png

    The image holds whole beats (whole bars where possible) at 10 ms per column and a width that
    is a multiple of 64 px; its EXIF carries the tempo, so playback can stretch it to the asked
    tempo (see docs/seeds.md).
    """
    sources = [
        name
        for name, value in (("pattern", pattern), ("from", from_path), ("mask", mask_id))
        if value
    ]
    if len(sources) != 1:
        raise RiffusionError("give exactly one of --pattern, --from and --mask")
    source = sources[0]
    given = {
        "audio_path": audio_path,
        "key": key,
        "seed": seed,
        "beats_per_bar": beats_per_bar,
        "beats": beats,
        "fraction": fraction,
        "strength": strength,
        "width": width,
    }
    for name, value in given.items():
        flag, allowed = _ONLY_FOR[name]
        if value is not None and source not in allowed.split("/"):
            raise RiffusionError(f"{flag} does not apply to --{source} (only to --{allowed})")
    beats_per_bar = 4 if beats_per_bar is None else beats_per_bar
    image_extension(output.name)
    if audio_path is not None:
        format_for_extension(audio_path.name)
    check_outputs([output, *([audio_path] if audio_path else [])], overwrite)

    # What to write besides the image: the pattern's loop, with --audio.
    outputs: list[tuple[Path, Audio | Image.Image]] = []
    # Exactly one of the three is given (checked above).
    if pattern:
        request = seed_request(pattern, bpm, bars, key, seed or 0)
        timing = request.timing
        if abs(timing.stretch - 1) > MAX_BAR_STRETCH:
            warn(
                f"{timing.beats} beats at {timing.bpm:g} BPM are {timing.duration_s * 100:.0f} "
                f"columns; the nearest width, {timing.width} px, stretches them "
                f"{abs(timing.stretch - 1) * 100:.0f} % (more bars stretch less)"
            )
        image = render_seed_image(request)
        if audio_path is not None:
            outputs.append((audio_path, render_loop(request)))
        summary = f"{pattern}, {_describe(timing)}"
    elif from_path:
        if bars is not None:
            raise RiffusionError("--bars does not apply to --from: the loop's length decides")
        loop = load_audio(from_path)
        loop, timing = fit_loop(loop, bpm, beats_per_bar)
        if bpm is None:
            click.echo(f"Estimated tempo: {timing.bpm:.2f} BPM (pass --bpm to set it)")
        image = seed_image_from_loop(
            loop, timing, description=f"riffusion seed from {from_path.name}"
        )
        summary = f"{from_path.name}, {_describe(timing)}"
    elif mask_id:
        image, summary = _mask(mask_id, bpm, bars, beats_per_bar, beats, fraction, strength, width)
    outputs.insert(0, (output, image))
    save_together(outputs)
    click.echo(f"Wrote {output} ({image.width} x {image.height} px): {summary}")
    if audio_path is not None:
        click.echo(f"Wrote {audio_path} ({timing.duration_s:.3f} s loop at {timing.bpm:g} BPM)")


def _describe(timing: LoopTiming) -> str:
    """One line on a loop's length and tempo, and the stretch its image needs on playback."""
    bars = f"{timing.bars:g} bars of {timing.beats_per_bar}/4"
    text = f"{timing.beats} beats ({bars}) at {timing.bpm:g} BPM"
    if abs(timing.stretch - 1) > 1e-9:
        text += (
            f", drawn at {timing.image_bpm:.2f} BPM (10 ms per column; playback stretches it "
            f"{abs(timing.stretch - 1) * 100:.1f} %)"
        )
    return text


def _mask(
    mask_id: str,
    bpm: float | None,
    bars: int | None,
    beats_per_bar: int,
    beats: int | None,
    fraction: float | None,
    strength: float | None,
    width: int | None,
) -> tuple[Image.Image, str]:
    """(mask image, summary) for the mask command line."""
    if mask_id not in MASKS:
        raise RiffusionError(f"no built-in mask {mask_id!r}; choose one of {', '.join(MASKS)}")
    if bars is not None and bpm is None:
        raise RiffusionError("--bars needs --bpm for a mask (together they set the beat grid)")
    if bpm is not None:
        timing = choose_timing(bpm, beats_per_bar, bars)
        grid_width, beat_px = timing.width, timing.width / timing.beats
    else:
        grid_width, beat_px = mask_grid()
    if width is not None and (width < WIDTH_MULTIPLE or width % WIDTH_MULTIPLE):
        raise RiffusionError(
            f"--width must be a positive multiple of {WIDTH_MULTIPLE}, got {width}"
        )
    overrides = {
        name: value
        for name, value in (("beats", beats), ("fraction", fraction), ("strength", strength))
        if value is not None
    }
    image = MASKS[mask_id].image(width or grid_width, beat_px, **overrides)
    return image, f"mask {mask_id}, beats {beat_px:.2f} px apart"


@click.command("seeds")
@click.option(
    "--seed-images",
    "seed_images_dir",
    type=PATH,
    help="A folder of your own seed images; NAME.png becomes id NAME (mask* are masks).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def seeds(seed_images_dir: Path | None, as_json: bool) -> None:
    """List the built-in seeds and masks (and those in --seed-images) with their metadata."""
    seed_list = list_seeds(seed_images_dir)
    mask_list = list_masks(seed_images_dir)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "seeds": [dataclasses.asdict(info) for info in seed_list],
                    "masks": [dataclasses.asdict(info) for info in mask_list],
                },
                indent=2,
            )
        )
        return
    console = Console()
    table = Table(title="Seeds")
    _id_column(table, [info.id for info in seed_list])
    for column in ("BPM", "meter", "bars", "key", "width", "description / source"):
        table.add_column(column)
    for info in seed_list:
        table.add_row(
            info.id,
            _text(info.bpm),
            info.meter or "",
            _text(info.bars),
            info.key or "",
            _text(info.width),
            info.description if info.source == "built-in" else info.source,
        )
    console.print(table)
    table = Table(title="Masks")
    _id_column(table, [mask.id for mask in mask_list])
    for column in ("parameters", "description / source"):
        table.add_column(column)
    for mask in mask_list:
        parameters = ", ".join(f"{name}={value:g}" for name, value in mask.parameters.items())
        table.add_row(
            mask.id, parameters, mask.description if mask.source == "built-in" else mask.source
        )
    console.print(table)


def _id_column(table: Table, ids: list[str]) -> None:
    """The id column, wide enough for every id: an id is what the user types, never cut short."""
    table.add_column("id", no_wrap=True, min_width=max(map(len, ids), default=2))


def _text(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
