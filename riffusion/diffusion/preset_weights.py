"""The weights the realtime preset adds to a checkpoint: the LCM-LoRA and the tiny autoencoder.

- LCM-LoRA (latent-consistency/lcm-lora-sdv1-5): LoRA weights that turn Stable Diffusion v1.5's
  UNet into a latent consistency model, sampling in a few steps; fused into a UNet through the
  same path as --lora (checkpoints.fuse_unet_lora).
- TAESD (madebyollin/taesd): a distilled autoencoder for SD v1 latents (diffusers'
  AutoencoderTiny), about 30x lighter than the model's own.

Both come from the Hugging Face Hub on first use (downloaded once into its cache, with the same
progress reporting as the model), or from local paths (--lcm-lora, --tiny-vae) on machines
without network. When neither is possible, one RiffusionError line says what to do.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from riffusion.diffusion.checkpoints import HubWeights, fuse_unet_lora, hub_error, looks_like_path
from riffusion.diffusion.downloads import DownloadProgress, download_snapshot
from riffusion.errors import RiffusionError

if TYPE_CHECKING:
    from diffusers.models.autoencoders.autoencoder_tiny import AutoencoderTiny
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

LCM_LORA_HUB_ID = "latent-consistency/lcm-lora-sdv1-5"
TINY_VAE_HUB_ID = "madebyollin/taesd"
#: The file name the LCM-LoRA is published under (any single .safetensors file is taken too).
LCM_LORA_FILE = "pytorch_lora_weights.safetensors"
#: The files of a diffusers AutoencoderTiny folder that loading reads.
TINY_VAE_FILES = ["config.json", "diffusion_pytorch_model.safetensors"]

LCM_LORA_WEIGHTS = HubWeights(
    "the LCM-LoRA", "--lcm-lora", f"its .safetensors file ({LCM_LORA_FILE}) or a folder holding it"
)
TINY_VAE_WEIGHTS = HubWeights(
    "the tiny autoencoder TAESD",
    "--tiny-vae",
    "a diffusers AutoencoderTiny folder (config.json and diffusion_pytorch_model.safetensors)",
)


@dataclass(frozen=True)
class PresetWeights:
    """Where the realtime preset's extra weights come from.

    Attributes:
        lcm_lora: the LCM-LoRA: a .safetensors file, a folder holding one, or a Hub id.
        tiny_vae: TAESD: a diffusers AutoencoderTiny folder, or a Hub id.
        cache_dir: Hugging Face cache folder for Hub downloads (None: the default).
        local_files_only: never go online; Hub weights must already be in the cache.
    """

    lcm_lora: str = LCM_LORA_HUB_ID
    tiny_vae: str = TINY_VAE_HUB_ID
    cache_dir: str | os.PathLike[str] | None = None
    local_files_only: bool = False


def lcm_unet(
    unet: UNet2DConditionModel,
    weights: PresetWeights,
    *,
    in_place: bool = False,
    download_progress: DownloadProgress | None = None,
) -> UNet2DConditionModel:
    """unet with the LCM-LoRA fused in: a copy, or with in_place unet itself (which then serves
    the LCM presets only). The copy keeps unet's device, dtype and memory format.

    Raises:
        RiffusionError: the LoRA cannot be found, downloaded or fused.
    """
    lora = _lcm_lora_file(weights, download_progress)
    target = unet if in_place else copy.deepcopy(unet)
    fuse_unet_lora(target, lora)
    if target.device.type in ("cpu", "cuda"):
        # Fusing writes new weight tensors; keep the layout load_stable_diffusion chose.
        _to_channels_last(target)
    return target


def load_tiny_vae(
    weights: PresetWeights,
    *,
    device: torch.device,
    dtype: torch.dtype,
    download_progress: DownloadProgress | None = None,
) -> AutoencoderTiny:
    """TAESD on device in dtype (channels-last where that is faster, as the model's VAE).

    Raises:
        RiffusionError: it cannot be found, downloaded or loaded.
    """
    from diffusers.models.autoencoders.autoencoder_tiny import AutoencoderTiny

    folder = _local_or_fetched(
        weights.tiny_vae, TINY_VAE_FILES, TINY_VAE_WEIGHTS, weights, download_progress
    )
    try:
        vae = AutoencoderTiny.from_pretrained(folder, torch_dtype=dtype, local_files_only=True)
    except Exception as error:  # missing files, another model's config, mismatched weights
        first_line = (str(error).strip() or type(error).__name__).splitlines()[0]
        raise RiffusionError(
            f"--tiny-vae {weights.tiny_vae}: could not load TAESD ({type(error).__name__}: "
            f"{first_line}); it takes {TINY_VAE_WEIGHTS.local_forms}, or a Hub id"
        ) from None
    vae.to(device)
    vae.eval()
    if device.type in ("cpu", "cuda"):
        _to_channels_last(vae)
    return vae


def _to_channels_last(module: torch.nn.Module) -> None:
    """Store module's 4-d weights (its convolutions') channels-last, as Module.to(memory_format=
    torch.channels_last) does: oneDNN and cuDNN run such convolutions fastest."""
    for parameter in module.parameters():
        if parameter.dim() == 4:
            parameter.data = parameter.data.contiguous(memory_format=torch.channels_last)


def _lcm_lora_file(weights: PresetWeights, progress: DownloadProgress | None) -> Path:
    """The LCM-LoRA's .safetensors file: the one given, or the one in the folder given or
    fetched from the Hub."""
    path = Path(weights.lcm_lora).expanduser()
    if path.is_file():
        return path
    folder = _local_or_fetched(
        weights.lcm_lora, ["*.safetensors"], LCM_LORA_WEIGHTS, weights, progress
    )
    files = sorted(folder.glob("*.safetensors"))
    named = folder / LCM_LORA_FILE
    if named.is_file():
        return named
    if len(files) == 1:
        return files[0]
    found = ", ".join(file.name for file in files) or "none"
    raise RiffusionError(
        f"--lcm-lora {weights.lcm_lora}: expected {LCM_LORA_FILE} or a single .safetensors file "
        f"in the folder, found {found}"
    )


def _local_or_fetched(
    source: str,
    allow_patterns: list[str],
    kind: HubWeights,
    weights: PresetWeights,
    progress: DownloadProgress | None,
) -> Path:
    """source itself when it is a local folder, else the Hub repository source's files."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise RiffusionError(f"{kind.option} {source}: not a folder; it takes {kind.local_forms}")
    if looks_like_path(source):
        raise RiffusionError(f"{kind.option} {source}: no such file or folder")
    try:
        return download_snapshot(
            source,
            allow_patterns=allow_patterns,
            cache_dir=weights.cache_dir,
            local_files_only=weights.local_files_only,
            report=progress,
        )
    except Exception as error:  # any failure here means: no usable copy of the weights
        raise hub_error(source, None, error, kind) from None
