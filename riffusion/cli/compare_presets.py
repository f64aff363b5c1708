"""`riffusion compare-presets`: the same clips rendered with every preset, for listening and
measuring (riffusion.render.preset_comparison)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from riffusion.cli.common import (
    PATH,
    check_output_dir,
    check_outputs,
    existing_outputs,
    overwrite_option,
    prepare_output_dir,
    quality_option,
)
from riffusion.cli.model_options import (
    check_unet_backend_presets,
    model_options_without_preset,
    quiet_model_libraries,
)
from riffusion.diffusion.model_settings import ModelSettings
from riffusion.diffusion.presets import PRESET_NAMES, PresetName, get_preset
from riffusion.errors import RiffusionError
from riffusion.spectrogram.reconstruction import Quality


@click.command("compare-presets")
@model_options_without_preset
@click.option(
    "-o",
    "--output",
    "output_dir",
    type=PATH,
    required=True,
    help="Folder for the listening page (index.html), its clips and results.json.",
)
@click.option(
    "--presets",
    "preset_list",
    default=",".join(PRESET_NAMES),
    show_default=True,
    help="Comma-separated presets to compare; quality always runs (the others are measured "
    "against it).",
)
@quality_option
@overwrite_option
def compare_presets(
    model_settings: ModelSettings,
    output_dir: Path,
    preset_list: str,
    quality: Quality,
    overwrite: bool,
) -> None:
    """Render a fixed set of clips with every preset and write a listening page to --output.

    Each clip is rendered from the same prompt, seed and seed image with each preset; the page
    shows their spectrograms and players side by side with the seconds each took and its
    spectral distance to the quality preset's clip. Nothing on the page is fetched from
    elsewhere: open DIR/index.html in a browser.
    """
    from riffusion.render.preset_comparison import (
        CLIPS,
        render_comparison,
        summarize,
        summary_table,
        write_listening_page,
    )

    names = [name.strip() for name in preset_list.split(",") if name.strip()]
    if not names:
        raise RiffusionError("--presets names no preset")
    chosen: list[PresetName] = [get_preset(name).name for name in dict.fromkeys(names)]
    check_unet_backend_presets(model_settings, chosen)
    check_outputs([output_dir / "index.html", output_dir / "results.json"], overwrite)
    clip_dirs = [output_dir / clip.name for clip in CLIPS]
    for clip_dir in clip_dirs:
        check_output_dir(clip_dir)
    existing = [] if overwrite else existing_outputs(clip_dirs)
    if existing:
        raise RiffusionError(f"{existing[0]} already exists; pass --overwrite to replace it")
    prepare_output_dir(output_dir)

    quiet_model_libraries()
    click.echo(f"Loading {model_settings.model} ...", err=True)
    pipeline = model_settings.load(
        all_presets=True, report=lambda message: click.echo(message, err=True)
    )
    for name in chosen:
        pipeline.prepare_preset(name)

    rendered = render_comparison(
        pipeline,
        output_dir,
        chosen,
        CLIPS,
        quality=quality,
        progress=lambda what: click.echo(f"Rendering {what} ...", err=True),
    )
    description = (
        f"Model {model_settings.model} on {pipeline.device} in {str(pipeline.unet.dtype)[6:]}, "
        f"UNet run by {pipeline.unet_backend}, phase reconstruction quality {quality!r}."
    )
    page = write_listening_page(output_dir, rendered, description)
    summaries = summarize(rendered)
    results = {
        "model": model_settings.model,
        "device": str(pipeline.device),
        "dtype": str(pipeline.unet.dtype),
        "unet_backend": pipeline.unet_backend,
        "clips": [
            {
                "clip": each.clip.name,
                "preset": each.preset,
                "seconds": round(each.seconds, 3),
                "distance_db": round(each.distance_db, 3),
                "image": each.image_file,
                "audio": each.audio_file,
            }
            for each in rendered
        ],
        "summary": [
            {
                "preset": each.preset,
                "seconds": round(each.seconds, 3),
                "speed_up": round(each.speed_up, 2),
                "distance_db": round(each.distance_db, 3),
            }
            for each in summaries
        ],
    }
    (output_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    click.echo(summary_table(summaries))
    click.echo(f"Wrote {page}")
