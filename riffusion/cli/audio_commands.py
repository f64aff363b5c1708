"""Single-file commands: audio-to-image, image-to-audio, print-exif and sample-clips.

Names and flags follow the original riffusion's ``python -m riffusion.cli`` so that its scripts keep
working. Additions: --quality, --sample-rate (audio is resampled to it; the original kept the file's
rate) and --overwrite (outputs are never replaced without it). --device defaults to "auto" rather
than the original's "cuda", so the commands also run on machines without a GPU.
"""

from __future__ import annotations

from pathlib import Path

import click

from riffusion.audio import format_for_extension
from riffusion.cli.common import (
    PATH,
    check_output_dir,
    check_outputs,
    device_option,
    load_audio,
    overwrite_option,
    prepare_output_dir,
    quality_option,
    spectrogram_options,
    warn,
)
from riffusion.clips import sample_clips
from riffusion.devices import resolve_device
from riffusion.spectrogram.converter import SpectrogramImageConverter
from riffusion.spectrogram.files import (
    PARAMETER_TAGS,
    exif_items,
    image_extension,
    load_image,
    read_spectrogram_image,
    save_image,
)
from riffusion.spectrogram.params import SpectrogramParams
from riffusion.spectrogram.reconstruction import Quality


@click.command("audio-to-image")
@click.option("--audio", "audio_path", type=PATH, required=True, help="Audio file to read.")
@click.option("--image", "image_path", type=PATH, required=True, help="Image to write (png, jpg).")
@spectrogram_options(window_options=True)
@click.option("--stereo", is_flag=True, help="Two channels: left in green, right in blue.")
@device_option
@overwrite_option
def audio_to_image(
    audio_path: Path,
    image_path: Path,
    step_size_ms: int,
    num_frequencies: int,
    min_frequency: int,
    max_frequency: int,
    window_duration_ms: int,
    padded_duration_ms: int,
    power_for_image: float,
    sample_rate: int,
    stereo: bool,
    device: str,
    overwrite: bool,
) -> None:
    """Compute a spectrogram image from a waveform."""
    params = SpectrogramParams(
        stereo=stereo,
        sample_rate=sample_rate,
        step_size_ms=step_size_ms,
        window_duration_ms=window_duration_ms,
        padded_duration_ms=padded_duration_ms,
        num_frequencies=num_frequencies,
        min_frequency=min_frequency,
        max_frequency=max_frequency,
        power_for_image=power_for_image,
    )
    image_extension(image_path.name)
    check_outputs([image_path], overwrite)
    converter = SpectrogramImageConverter(params, device=resolve_device(device))
    image = converter.spectrogram_image_from_audio(load_audio(audio_path))
    save_image(image, image_path, overwrite=overwrite)
    click.echo(f"Wrote {image_path} ({image.width} x {image.height} pixels)")


@click.command("image-to-audio")
@click.option("--image", "image_path", type=PATH, required=True, help="Spectrogram image to read.")
@click.option(
    "--audio", "audio_path", type=PATH, required=True, help="Audio to write (wav, mp3, flac, ogg)."
)
@device_option
@quality_option
@overwrite_option
def image_to_audio(
    image_path: Path, audio_path: Path, device: str, quality: Quality, overwrite: bool
) -> None:
    """Reconstruct an audio clip from a spectrogram image.

    The spectrogram parameters come from the image's EXIF; without them the defaults are used.
    """
    format_for_extension(audio_path.name)
    check_outputs([audio_path], overwrite)
    torch_device = resolve_device(device)
    spectrogram = read_spectrogram_image(image_path)
    missing = spectrogram.missing_tags
    if len(missing) == len(PARAMETER_TAGS):
        warn(f"{image_path} has no spectrogram parameters in its EXIF; using the defaults")
    elif missing:
        warn(f"{image_path} lacks {', '.join(missing)} in its EXIF; using the default parameters")
    converter = SpectrogramImageConverter(spectrogram.params, device=torch_device, quality=quality)
    audio = converter.audio_from_spectrogram_image(spectrogram.image)
    audio.save(audio_path, overwrite=overwrite)
    click.echo(f"Wrote {audio_path} ({audio.duration_s:.2f} seconds)")


@click.command("print-exif")
@click.option("--image", "image_path", type=PATH, required=True, help="Image to inspect.")
def print_exif(image_path: Path) -> None:
    """Print the params of a spectrogram image as saved in the EXIF data."""
    items = exif_items(load_image(image_path))
    if not items:
        warn(f"{image_path} has no EXIF data")
    for name, value in items:
        click.echo(f"{name:<20} = {value!s:>15}")


@click.command("sample-clips")
@click.option("--audio", "audio_path", type=PATH, required=True, help="Audio file to cut.")
@click.option("--output-dir", type=PATH, required=True, help="Folder for the clips (created).")
@click.option("--num-clips", type=int, default=1, show_default=True, help="Clips to cut.")
@click.option(
    "--duration-ms", type=int, default=5120, show_default=True, help="Length of each clip, ms."
)
@click.option("--mono", is_flag=True, help="Mix the clips down to one channel.")
@click.option(
    "--extension",
    default="wav",
    show_default=True,
    help="Format of the clips: wav, mp3, flac or ogg.",
)
@click.option(
    "--seed", type=int, default=-1, show_default=True, help="Random seed; negative: unseeded."
)
@overwrite_option
def sample_clips_command(
    audio_path: Path,
    output_dir: Path,
    num_clips: int,
    duration_ms: int,
    mono: bool,
    extension: str,
    seed: int,
    overwrite: bool,
) -> None:
    """Slice an audio file into clips of the given duration at random start times."""
    extension = format_for_extension(extension)
    check_output_dir(output_dir)
    audio = load_audio(audio_path)
    if mono:
        audio = audio.to_mono()
    clips = sample_clips(audio, num_clips, duration_ms, seed=seed if seed >= 0 else None)
    # The original's names.
    paths = [
        output_dir / f"clip_{clip.index}_start_{clip.start_ms}_ms_duration_{duration_ms}_ms"
        f".{extension}"
        for clip in clips
    ]
    check_outputs(paths, overwrite)
    prepare_output_dir(output_dir)
    for clip, path in zip(clips, paths, strict=True):
        clip.audio.save(path, overwrite=overwrite)
        click.echo(f"Wrote {path}")
