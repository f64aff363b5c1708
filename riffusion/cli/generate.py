"""`riffusion generate`: a prompt in, an audio file (and optionally its spectrogram) out.

Everything that can be checked without the model (parameters, output names, seed image and mask
files) is checked first, so mistakes fail in a second rather than after loading the model.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from PIL import Image

from riffusion.audio import Audio, format_for_extension
from riffusion.cli.common import (
    PATH,
    check_outputs,
    overwrite_option,
    quality_option,
    save_together,
)
from riffusion.cli.model_options import (
    check_schedule,
    check_seed_images_dir,
    load_model,
    model_options,
    scheduler_option,
    seed_image_for,
    seed_images_option,
    seed_value,
    steps_option,
)
from riffusion.diffusion.inputs import PromptInput
from riffusion.diffusion.model_settings import ModelSettings
from riffusion.errors import RiffusionError
from riffusion.seeds.registry import load_mask_image, seed_argument
from riffusion.spectrogram.files import image_extension
from riffusion.spectrogram.reconstruction import Quality

# Image sides must be multiples of this for Stable Diffusion v1 models (8x VAE, 8x UNet).
SIZE_MULTIPLE = 64


@click.command("generate")
@click.argument("prompt")
@click.option(
    "-o", "--output", type=PATH, required=True, help="Audio file to write (wav, flac, ogg, mp3)."
)
@click.option("--image", "image_path", type=PATH, help="Also write the spectrogram (png, jpg).")
@click.option("--seed", type=int, help="Random seed; a random one (printed) when omitted.")
@click.option(
    "--seed-image",
    help="Seed image to start from (img2img): an id from `riffusion seeds` or an image file; "
    "without it the music is made from noise.",
)
@click.option(
    "--mask",
    help="Mask over the seed image, an id or an image file: white is repainted, black kept, "
    "grays blend.",
)
@seed_images_option
@click.option(
    "--denoising",
    type=float,
    default=0.75,
    show_default=True,
    help="With --seed-image: how much of it is re-imagined, 0 (none) to 1 (all).",
)
@click.option(
    "--guidance",
    type=float,
    default=7.0,
    show_default=True,
    help="How strongly the prompt steers; 1 or less turns guidance off.",
)
@steps_option
@click.option("--negative", help="Negative prompt: what to steer away from.")
@scheduler_option
@click.option(
    "--width",
    type=int,
    default=512,
    show_default=True,
    help=f"Without --seed-image: image width in pixels, a multiple of {SIZE_MULTIPLE} "
    "(512 is 5.12 s of audio).",
)
@model_options
@quality_option
@overwrite_option
def generate(
    prompt: str,
    output: Path,
    image_path: Path | None,
    seed: int | None,
    seed_image: str | None,
    mask: str | None,
    seed_images_dir: Path | None,
    denoising: float,
    guidance: float,
    steps: int | None,
    negative: str | None,
    scheduler: str | None,
    width: int,
    model_settings: ModelSettings,
    quality: Quality,
    overwrite: bool,
) -> None:
    """Generate music for PROMPT and write it to --output.

    Without --seed-image the spectrogram is made from noise (text-to-music); with one, it is
    re-imagined from that spectrogram as the original riffusion app does.
    """
    context = click.get_current_context()

    def given(name: str) -> bool:
        return context.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT

    # --- Check everything that does not need the model ---
    format_for_extension(output.name)
    if image_path is not None:
        image_extension(image_path.name)
        if image_path.resolve() == output.resolve():
            raise RiffusionError("--output and --image must be different files")
    check_outputs([output, *([] if image_path is None else [image_path])], overwrite)

    if seed_image is None:
        for name in ("mask", "denoising"):
            if given(name):
                raise RiffusionError(f"--{name} needs --seed-image")
        if width < SIZE_MULTIPLE or width % SIZE_MULTIPLE:
            raise RiffusionError(
                f"--width must be a positive multiple of {SIZE_MULTIPLE}, got {width}"
            )
    elif given("width"):
        raise RiffusionError("--width is for text-to-music; with --seed-image its width is used")
    steps, scheduler = check_schedule(steps, scheduler, model_settings.preset)
    seed = seed_value(seed, "--seed")
    prompt_input = PromptInput(
        prompt=prompt,
        seed=seed,
        negative_prompt=negative,
        denoising=denoising,
        guidance=guidance,
    )

    check_seed_images_dir(seed_images_dir)
    init_image = mask_image = None
    if seed_image is not None:
        init_image = seed_image_for(seed_image, seed_images_dir)
        if mask is not None:
            mask_image = load_mask_image(seed_argument(mask), seed_images_dir, like=init_image)

    # --- Load the model and generate ---
    pipe = load_model(model_settings)
    with click.progressbar(length=steps, label="Generating", file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            # img2img runs only part of the schedule; the total is known once it starts.
            bar.length = total
            bar.update(done - bar.pos)

        if init_image is None:
            image = pipe.txt2img(
                prompt_input,
                width=width,
                num_inference_steps=steps,
                scheduler=scheduler,
                callback=progress,
                preset=model_settings.preset,
            )
        else:
            image = pipe.img2img(
                prompt_input,
                init_image,
                mask_image,
                num_inference_steps=steps,
                scheduler=scheduler,
                callback=progress,
                preset=model_settings.preset,
            )

    # A result of a seed with tempo tags plays as that loop, at that tempo.
    audio = pipe.audio_from_image(image, quality=quality)
    outputs: list[tuple[Path, Audio | Image.Image]] = [(output, audio)]
    if image_path is not None:
        outputs.append((image_path, image))
    save_together(outputs)
    wrote = f"Wrote {output} ({audio.duration_s:.2f} s)"
    if image_path is not None:
        wrote += f" and {image_path} ({image.width} x {image.height} pixels)"
    click.echo(f"{wrote}, seed {seed}")
