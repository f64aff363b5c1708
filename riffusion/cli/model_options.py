"""Options and checks shared by the commands that run the model: generate, riff, interpolate and
jam. Which model and how to run it, the diffusion schedule, seeds, and seed images.

Every check here runs before the model loads, so a mistake fails in a second with one line.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from PIL import Image

from riffusion.cli.common import PATH, device_option
from riffusion.devices import resolve_device
from riffusion.diffusion.checkpoints import DEFAULT_CHECKPOINT, DTYPE_NAMES
from riffusion.diffusion.inputs import check_seed, check_steps, random_seed
from riffusion.diffusion.model_settings import ModelSettings
from riffusion.diffusion.schedulers import SCHEDULERS, scheduler_name
from riffusion.errors import RiffusionError
from riffusion.seeds.registry import load_seed_image, seed_argument

if TYPE_CHECKING:
    from riffusion.diffusion.pipeline import RiffusionPipeline

steps_option = click.option(
    "--steps", type=int, default=50, show_default=True, help="Diffusion steps of the schedule."
)
scheduler_option = click.option(
    "--scheduler",
    help=f"Diffusion scheduler: {', '.join(SCHEDULERS)} (default: the model's own).",
)
seed_images_option = click.option(
    "--seed-images",
    "seed_images_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="A folder of your own seed images; NAME.png becomes id NAME.",
)


def load_model(settings: ModelSettings) -> RiffusionPipeline:
    """The pipeline, announced on stderr, without the libraries' own warnings and bars."""
    quiet_model_libraries()
    click.echo(f"Loading {settings.model} ...", err=True)
    return settings.load()


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
_MODEL_PARAMETERS = tuple(field.name for field in fields(ModelSettings))


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --model, --model-config, --revision, --cache-dir, --lora, --lora-scale, --device and
    --dtype to a click command, which gets their values as one argument, model_settings (checked:
    an unusable --device fails here, before any work)."""

    # wraps() also carries over the options already attached below this decorator.
    @functools.wraps(command)
    def with_model_settings(**values: Any) -> Any:
        settings = ModelSettings(**{name: values.pop(name) for name in _MODEL_PARAMETERS})
        resolve_device(settings.device)
        return command(model_settings=settings, **values)

    for option in reversed(_MODEL_OPTIONS):
        with_model_settings = option(with_model_settings)
    return with_model_settings


def check_schedule(steps: int, scheduler: str | None) -> str | None:
    """Check --steps and --scheduler; the scheduler's canonical name (None: the model's own)."""
    check_steps("--steps", steps)
    return None if scheduler is None else scheduler_name(scheduler)


def seed_value(seed: int | None, option: str) -> int:
    """seed, or a random one when None; RiffusionError naming the option when it is not a seed."""
    if seed is None:
        return random_seed()
    check_seed(option, seed)
    return seed


def check_seed_images_dir(seed_images_dir: Path | None) -> None:
    """Refuse a --seed-images folder that does not exist."""
    if seed_images_dir is not None and not seed_images_dir.is_dir():
        raise RiffusionError(f"--seed-images {seed_images_dir}: no such folder")


def seed_image_for(value: str, seed_images_dir: Path | None) -> Image.Image:
    """The seed image a --seed-image value names: an id (looked up in the folder, then among the
    built-ins) or an image file (a value with a separator or an image extension)."""
    return load_seed_image(seed_argument(value), seed_images_dir)


def quiet_model_libraries() -> None:
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
