"""Options and checks shared by the commands that run the model: generate, riff, interpolate and
jam (and serve, for the model options). Which model and how to run it (its preset included), the
diffusion schedule, seeds, and seed images.

Every check here runs before the model loads, so a mistake fails in a second with one line.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
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
from riffusion.diffusion.openvino_unet import (
    UNET_BACKENDS,
    check_openvino_preset,
    check_openvino_use,
)
from riffusion.diffusion.preset_weights import LCM_LORA_HUB_ID, TINY_VAE_HUB_ID
from riffusion.diffusion.presets import (
    PRESET_NAMES,
    PRESETS,
    check_preset_steps,
    get_preset,
    preset_steps,
)
from riffusion.diffusion.schedulers import SCHEDULERS, scheduler_name
from riffusion.errors import RiffusionError
from riffusion.seeds.registry import load_seed_image, seed_argument

if TYPE_CHECKING:
    from riffusion.diffusion.pipeline import RiffusionPipeline

steps_option = click.option(
    "--steps",
    type=int,
    help="Diffusion steps of the schedule (default: the preset's: "
    + ", ".join(f"{preset.steps} for {name}" for name, preset in PRESETS.items())
    + ").",
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
    preset = "" if settings.preset == "quality" else f" for the {settings.preset} preset"
    click.echo(f"Loading {settings.model}{preset} ...", err=True)
    return settings.load(report=lambda message: click.echo(message, err=True))


_PRESET_OPTION = click.option(
    "--preset",
    type=click.Choice(PRESET_NAMES),
    default="quality",
    show_default=True,
    help="How much work each clip gets: "
    + "; ".join(f"{name}: {preset.summary}" for name, preset in PRESETS.items())
    + ".",
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
    _PRESET_OPTION,
    click.option(
        "--lcm-lora",
        default=LCM_LORA_HUB_ID,
        show_default=True,
        help="For --preset realtime: the LCM-LoRA, a .safetensors file, a folder or a Hub id "
        "(downloaded once).",
    ),
    click.option(
        "--tiny-vae",
        default=TINY_VAE_HUB_ID,
        show_default=True,
        help="For --preset realtime: the TAESD autoencoder, a diffusers folder or a Hub id "
        "(downloaded once).",
    ),
    click.option(
        "--unet-backend",
        type=click.Choice(UNET_BACKENDS),
        default="torch",
        show_default=True,
        help="What runs the UNet: torch, or openvino (CPU only, about 2x faster there; the UNet "
        "is converted once per model and LoRA, minutes at full size; not with the fast preset "
        "or named LoRAs; needs riffusion[openvino]).",
    ),
)
_MODEL_PARAMETERS = tuple(field.name for field in fields(ModelSettings))


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --model, --model-config, --revision, --cache-dir, --lora, --lora-scale, --device,
    --dtype, --preset, --lcm-lora, --tiny-vae and --unet-backend to a click command, which gets
    their values as one argument, model_settings (checked: an unusable --device, or a
    --unet-backend that cannot run the rest, fails here, before any work)."""
    return _with_model_options(command, _MODEL_OPTIONS)


def model_options_without_preset(command: Callable[..., Any]) -> Callable[..., Any]:
    """model_options() less --preset, for commands that run several presets (they check with
    check_unet_backend_presets the presets they run)."""
    options = tuple(option for option in _MODEL_OPTIONS if option is not _PRESET_OPTION)
    return _with_model_options(command, options)


def check_unet_backend_presets(settings: ModelSettings, presets: Iterable[str]) -> None:
    """Refuse presets that settings' --unet-backend cannot run."""
    if settings.unet_backend == "openvino":
        for name in presets:
            check_openvino_preset(get_preset(name))


def _with_model_options(
    command: Callable[..., Any], options: tuple[Callable[..., Any], ...]
) -> Callable[..., Any]:
    # wraps() also carries over the options already attached below this decorator.
    @functools.wraps(command)
    def with_model_settings(**values: Any) -> Any:
        settings = ModelSettings(
            **{name: values.pop(name) for name in _MODEL_PARAMETERS if name in values}
        )
        device = resolve_device(settings.device)
        if settings.unet_backend == "openvino":
            check_openvino_use(device, ())
            if _PRESET_OPTION in options:
                check_unet_backend_presets(settings, [settings.preset])
        return command(model_settings=settings, **values)

    for option in reversed(options):
        with_model_settings = option(with_model_settings)
    return with_model_settings


def check_schedule(steps: int | None, scheduler: str | None, preset: str) -> tuple[int, str | None]:
    """Check --steps, --scheduler and the options --preset leaves unused; the step count (the
    preset's when --steps was left out) and the scheduler's canonical name (None: the model's
    own, or the preset's)."""
    recipe = get_preset(preset)
    steps = preset_steps(preset, steps)
    check_steps("--steps", steps)
    check_preset_steps(preset, steps, "--steps")
    if scheduler is not None and recipe.scheduler is not None:
        raise RiffusionError(
            f"--preset {preset} runs its own scheduler ({recipe.scheduler}); --scheduler is for "
            "--preset quality"
        )
    if not recipe.guided:
        context = click.get_current_context()
        unused = [
            f"--{name}"
            for name in ("guidance", "negative")
            if name in context.params
            and context.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
        ]
        if unused:
            raise RiffusionError(
                f"--preset {preset} runs without guidance: {' and '.join(unused)} would have no "
                "effect"
            )
    return steps, None if scheduler is None else scheduler_name(scheduler)


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
