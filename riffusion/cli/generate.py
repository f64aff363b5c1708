"""`riffusion generate`: a prompt in, an audio file (and optionally its spectrogram) out.

Everything that can be checked without the model (parameters, output names, seed image and mask
files) is checked first, so mistakes fail in a second rather than after loading the model.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from riffusion.audio import format_for_extension
from riffusion.cli.common import (
    PATH,
    device_option,
    overwrite_option,
    quality_option,
    refuse_to_overwrite,
)
from riffusion.devices import resolve_device
from riffusion.diffusion.checkpoints import DEFAULT_CHECKPOINT, DTYPE_NAMES
from riffusion.diffusion.inputs import MAX_INFERENCE_STEPS, MAX_SEED, PromptInput
from riffusion.diffusion.schedulers import SCHEDULERS, scheduler_name
from riffusion.errors import RiffusionError
from riffusion.seeds.images import image_tempo, loop_audio_from_image
from riffusion.seeds.registry import load_mask_image, load_seed_image, seed_argument
from riffusion.spectrogram.converter import SpectrogramImageConverter
from riffusion.spectrogram.files import image_extension, save_image
from riffusion.spectrogram.reconstruction import Quality

if TYPE_CHECKING:
    import torch

    from riffusion.diffusion.pipeline import RiffusionPipeline

# Image sides must be multiples of this for Stable Diffusion v1 models (8x VAE, 8x UNet).
SIZE_MULTIPLE = 64

# Options of every command that runs the model (riffusion.cli.render_commands uses them too).
steps_option = click.option(
    "--steps", type=int, default=50, show_default=True, help="Diffusion steps of the schedule."
)
scheduler_option = click.option(
    "--scheduler",
    help=f"Diffusion scheduler: {', '.join(SCHEDULERS)} (default: the model's own).",
)
_MODEL_OPTIONS = (
    click.option(
        "--model",
        default=DEFAULT_CHECKPOINT,
        show_default=True,
        help="Hugging Face Hub id, local diffusers folder, or .ckpt / .safetensors file.",
    ),
    click.option(
        "--model-config",
        help="For a single-file --model: diffusers folder or Hub id with its configs and "
        f"tokenizer (default {DEFAULT_CHECKPOINT}).",
    ),
    click.option("--revision", help="Branch, tag or commit of a Hub --model."),
    click.option("--cache-dir", type=PATH, help="Hugging Face cache folder to download into."),
    click.option(
        "--lora",
        multiple=True,
        help="LoRA weights (file, folder or Hub id) merged into the model; repeatable.",
    ),
    click.option(
        "--lora-scale", type=float, default=1.0, show_default=True, help="Strength of the LoRAs."
    ),
    device_option,
    click.option(
        "--dtype",
        type=click.Choice(DTYPE_NAMES),
        default="auto",
        show_default=True,
        help="Compute precision; auto is float16 on CUDA, bfloat16 on CPUs with native support.",
    ),
)


def model_options(command: Callable) -> Callable:
    """--model, --model-config, --revision, --cache-dir, --lora, --lora-scale, --device, --dtype;
    load_pipeline() takes their values."""
    for option in reversed(_MODEL_OPTIONS):
        command = option(command)
    return command


def load_pipeline(
    model: str,
    model_config: str | None,
    revision: str | None,
    cache_dir: Path | None,
    lora: tuple[str, ...],
    lora_scale: float,
    device: torch.device,
    dtype: str,
) -> RiffusionPipeline:
    """The pipeline the model options describe (device already resolved), announced on stderr."""
    _quiet_model_libraries()
    from riffusion.diffusion.pipeline import RiffusionPipeline

    click.echo(f"Loading {model} ...", err=True)
    return RiffusionPipeline.load_checkpoint(
        model,
        device=device,
        dtype=dtype,
        revision=revision,
        cache_dir=cache_dir,
        lora=list(lora) or None,
        lora_scale=lora_scale,
        config=model_config,
    )


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
@click.option(
    "--seed-images",
    "seed_images_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="A folder of your own seed images; NAME.png becomes id NAME.",
)
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
    steps: int,
    negative: str | None,
    scheduler: str | None,
    width: int,
    model: str,
    model_config: str | None,
    revision: str | None,
    cache_dir: Path | None,
    lora: tuple[str, ...],
    lora_scale: float,
    device: str,
    dtype: str,
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
    outputs = [output]
    if image_path is not None:
        image_extension(image_path.name)
        outputs.append(image_path)
    if image_path is not None and image_path.resolve() == output.resolve():
        raise RiffusionError("--output and --image must be different files")
    refuse_to_overwrite(outputs, overwrite)

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
    if not 1 <= steps <= MAX_INFERENCE_STEPS:
        raise RiffusionError(f"--steps must be between 1 and {MAX_INFERENCE_STEPS}, got {steps}")
    if scheduler is not None:
        scheduler = scheduler_name(scheduler)
    torch_device = resolve_device(device)
    if seed is None:
        seed = secrets.randbelow(2**32)
    elif not 0 <= seed <= MAX_SEED:
        raise RiffusionError(f"--seed must be between 0 and 2**64 - 1, got {seed}")
    prompt_input = PromptInput(
        prompt=prompt,
        seed=seed,
        negative_prompt=negative,
        denoising=denoising,
        guidance=guidance,
    )

    if seed_images_dir is not None and not seed_images_dir.is_dir():
        raise RiffusionError(f"--seed-images {seed_images_dir}: no such folder")
    init_image = mask_image = None
    if seed_image is not None:
        init_image = load_seed_image(seed_argument(seed_image), seed_images_dir)
        if mask is not None:
            mask_image = load_mask_image(seed_argument(mask), seed_images_dir, like=init_image)

    # --- Load the model and generate ---
    pipe = load_pipeline(
        model, model_config, revision, cache_dir, lora, lora_scale, torch_device, dtype
    )
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
            )
        else:
            image = pipe.img2img(
                prompt_input,
                init_image,
                mask_image,
                num_inference_steps=steps,
                scheduler=scheduler,
                callback=progress,
            )

    if image_tempo(image) is not None:
        # A seed with a tempo holds whole beats: play the result as that loop, at that tempo.
        audio = loop_audio_from_image(image, SpectrogramImageConverter(quality=quality))
    else:
        audio = pipe.audio_from_image(image, quality=quality)
    audio.save(output, overwrite=overwrite)
    wrote = f"Wrote {output} ({audio.duration_s:.2f} s)"
    if image_path is not None:
        save_image(image, image_path, overwrite=overwrite)
        wrote += f" and {image_path} ({image.width} x {image.height} pixels)"
    click.echo(f"{wrote}, seed {seed}")


def _quiet_model_libraries() -> None:
    """Keep diffusers' and transformers' warnings and loading bars off the terminal.

    What they would say (optional torchvision, per-component loading bars, "will try the local
    cache") is noise here: real problems reach the user as one-line errors. The Hub's download
    progress bar is huggingface_hub's own and stays.
    """
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for logging in (transformers_logging, diffusers_logging):
        logging.set_verbosity_error()
        logging.disable_progress_bar()
