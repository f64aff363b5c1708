"""What a run trains: LoRA adapters (peft) on the UNet and optionally CLIP, or the whole UNet,
and how the result is saved for our --lora and diffusers' load_lora_weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from transformers import CLIPTextModel

from riffusion.errors import RiffusionError
from riffusion.training.settings import TEXT_ENCODER_TARGETS, TrainSettings

#: The LoRA file every loader looks for by default (diffusers' name).
LORA_WEIGHTS_NAME = "pytorch_lora_weights.safetensors"


def add_trainable_weights(
    unet: UNet2DConditionModel, text_encoder: CLIPTextModel, settings: TrainSettings
) -> None:
    """Freeze the model, then add what the run trains: LoRA adapters (B starts at zero, so the
    model is unchanged at step 0; A is drawn from the current torch RNG), or with settings.full
    every UNet weight."""
    from peft import LoraConfig

    unet.requires_grad_(False)
    text_encoder.requires_grad_(False)
    if settings.full:
        unet.requires_grad_(True)
        return
    try:
        unet.add_adapter(
            LoraConfig(
                r=settings.rank,
                lora_alpha=settings.lora_alpha,
                init_lora_weights="gaussian",
                target_modules=list(settings.target_modules),
            )
        )
    except ValueError as error:  # peft's message when no module matches
        raise RiffusionError(
            f"--target-modules {','.join(settings.target_modules)}: {error}"
        ) from None
    if settings.train_text_encoder:
        text_encoder.add_adapter(
            LoraConfig(
                r=settings.rank,
                lora_alpha=settings.lora_alpha,
                init_lora_weights="gaussian",
                target_modules=list(TEXT_ENCODER_TARGETS),
            )
        )


def check_text_encoder_lora_support() -> None:
    """Refuse --train-text-encoder where transformers cannot hold a LoRA on CLIP: its peft
    integration (which diffusers also loads text-encoder LoRAs with) needs a newer peft than
    some installs have, and the LoRA would then load nowhere.

    Raises:
        RiffusionError: naming the versions.
    """
    from importlib.metadata import version

    from packaging.version import Version
    from transformers.integrations import peft as transformers_peft

    needed = getattr(transformers_peft, "MIN_PEFT_VERSION", "0")
    installed = version("peft")
    if Version(installed) < Version(needed):
        raise RiffusionError(
            f"--train-text-encoder needs peft >= {needed} with the installed transformers "
            f"(peft {installed} is installed; a text-encoder LoRA could not be loaded either): "
            "upgrade peft, or train the UNet's LoRA alone"
        )


def trained_modules(
    unet: UNet2DConditionModel, text_encoder: CLIPTextModel, settings: TrainSettings
) -> dict[str, torch.nn.Module]:
    """The modules with trainable weights, by the prefix their weights are saved under."""
    modules: dict[str, torch.nn.Module] = {"unet": unet}
    if settings.train_text_encoder:
        modules["text_encoder"] = text_encoder
    return modules


def trainable_state(modules: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    """Every trainable weight, "prefix.parameter name" -> a detached float32 copy on the CPU."""
    return {
        f"{prefix}.{name}": parameter.detach().float().cpu().contiguous()
        for prefix, module in modules.items()
        for name, parameter in module.named_parameters()
        if parameter.requires_grad
    }


def load_trainable_state(
    modules: dict[str, torch.nn.Module], state: dict[str, torch.Tensor]
) -> None:
    """Set the trainable weights from trainable_state()'s dict, exactly."""
    expected = trainable_state(modules).keys()
    if set(expected) != set(state):
        raise RiffusionError(
            "the checkpoint's weights do not match this run's model (another model, rank or "
            "set of modules)"
        )
    with torch.no_grad():
        for prefix, module in modules.items():
            for name, parameter in module.named_parameters():
                if parameter.requires_grad:
                    parameter.copy_(state[f"{prefix}.{name}"])


def lora_layers(module: torch.nn.Module, settings: TrainSettings) -> dict[str, torch.Tensor]:
    """module's LoRA weights in diffusers' format, with alpha / rank folded into the up weights.

    Folding makes the file mean the same to every loader: ones that read the adapter metadata
    and ones that do not (loading from a state dict drops it) then agree, as scale 1 is what
    both assume without it.
    """
    from diffusers.utils.state_dict_utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    scale = settings.lora_alpha / settings.rank
    state = {}
    for name, tensor in get_peft_model_state_dict(module).items():
        tensor = tensor.detach().float().cpu()
        if ".lora_B." in name:
            tensor = tensor * scale
        state[name] = tensor.contiguous()
    return convert_state_dict_to_diffusers(state)


def save_lora(
    folder: Path,
    unet: UNet2DConditionModel,
    text_encoder: CLIPTextModel,
    settings: TrainSettings,
) -> Path:
    """Write folder/pytorch_lora_weights.safetensors in diffusers' LoRA format; returns it."""
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import (
        StableDiffusionPipeline,
    )

    # Tensors for both: diffusers documents them, though its annotations name modules.
    layers: dict[str, Any] = {"unet_lora_layers": lora_layers(unet, settings)}
    if settings.train_text_encoder:
        layers["text_encoder_lora_layers"] = lora_layers(text_encoder, settings)
    StableDiffusionPipeline.save_lora_weights(
        folder, weight_name=LORA_WEIGHTS_NAME, safe_serialization=True, **layers
    )
    return folder / LORA_WEIGHTS_NAME
