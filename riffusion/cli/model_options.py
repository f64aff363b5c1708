"""Options and checks shared by the commands that run the model: generate, riff, interpolate and
jam. Which model and how to run it, the diffusion schedule, seeds, and seed images.

Every check here runs before the model loads, so a mistake fails in a second with one line.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from PIL import Image

from riffusion.cli.common import PATH, device_option
from riffusion.devices import resolve_device
from riffusion.diffusion.checkpoints import DEFAULT_CHECKPOINT, DTYPE_NAMES
from riffusion.diffusion.inputs import MAX_INFERENCE_STEPS, MAX_SEED
from riffusion.diffusion.schedulers import SCHEDULERS, scheduler_name
from riffusion.errors import RiffusionError
from riffusion.seeds.registry import load_seed_image, seed_argument

if TYPE_CHECKING:
    from riffusion.diffusion.pipeline import RiffusionPipeline

# Random seeds, when none is given, are drawn below this (and printed): short enough to retype.
RANDOM_SEED_LIMIT = 2**32

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


@dataclass(frozen=True)
class ModelSettings:
    """The values of the model options: which model to load, and where and how to run it.

    Attributes:
        model: Hugging Face Hub id, diffusers folder, or single .ckpt / .safetensors file.
        model_config: for a single-file model, where its configs and tokenizer come from.
        revision: branch, tag or commit of a Hub model.
        cache_dir: Hugging Face cache folder.
        lora: LoRA weights merged into the model.
        lora_scale: their strength.
        device: torch device name, as given ("auto", "cpu", "cuda:1", ...).
        dtype: compute precision name ("auto", "float32", ...).
    """

    model: str
    model_config: str | None
    revision: str | None
    cache_dir: Path | None
    lora: tuple[str, ...]
    lora_scale: float
    device: str
    dtype: str

    def load(self) -> RiffusionPipeline:
        """The pipeline, announced on stderr, without the libraries' own warnings and bars."""
        _quiet_model_libraries()
        from riffusion.diffusion.pipeline import RiffusionPipeline

        click.echo(f"Loading {self.model} ...", err=True)
        return RiffusionPipeline.load_checkpoint(
            self.model,
            device=resolve_device(self.device),
            dtype=self.dtype,
            revision=self.revision,
            cache_dir=self.cache_dir,
            lora=list(self.lora) or None,
            lora_scale=self.lora_scale,
            config=self.model_config,
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
_MODEL_PARAMETERS = tuple(field.name for field in fields(ModelSettings))


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --model, --model-config, --revision, --cache-dir, --lora, --lora-scale, --device and
    --dtype to a click command, which gets their values as one argument, model_settings."""

    # wraps() also carries over the options already attached below this decorator.
    @functools.wraps(command)
    def with_model_settings(**values: Any) -> Any:
        settings = ModelSettings(**{name: values.pop(name) for name in _MODEL_PARAMETERS})
        return command(model_settings=settings, **values)

    for option in reversed(_MODEL_OPTIONS):
        with_model_settings = option(with_model_settings)
    return with_model_settings


def check_model_settings(steps: int, scheduler: str | None, device: str) -> str | None:
    """Check --steps, --scheduler and --device; the scheduler's canonical name (None: the
    model's own)."""
    if not 1 <= steps <= MAX_INFERENCE_STEPS:
        raise RiffusionError(f"--steps must be between 1 and {MAX_INFERENCE_STEPS}, got {steps}")
    name = None if scheduler is None else scheduler_name(scheduler)
    resolve_device(device)
    return name


def seed_value(seed: int | None, option: str, limit: int = MAX_SEED + 1) -> int:
    """seed, or a random one when None; RiffusionError naming the option when it is not in
    [0, limit)."""
    if seed is None:
        return secrets.randbelow(min(limit, RANDOM_SEED_LIMIT))
    if not 0 <= seed < limit:
        highest = "2**64 - 1" if limit == MAX_SEED + 1 else str(limit - 1)
        raise RiffusionError(f"{option} must be between 0 and {highest}, got {seed}")
    return seed


def check_seed_images_dir(seed_images_dir: Path | None) -> None:
    """Refuse a --seed-images folder that does not exist."""
    if seed_images_dir is not None and not seed_images_dir.is_dir():
        raise RiffusionError(f"--seed-images {seed_images_dir}: no such folder")


def seed_image_for(value: str, seed_images_dir: Path | None) -> Image.Image:
    """The seed image a --seed-image value names: an id (looked up in the folder, then among the
    built-ins) or an image file (a value with a separator or an image extension)."""
    return load_seed_image(seed_argument(value), seed_images_dir)


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
