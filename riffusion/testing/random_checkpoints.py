"""Random-weight models in riffusion-model-v1's diffusers folder layout, for tests and benchmarks.

Same architecture family and folder layout as riffusion/riffusion-model-v1 (Stable Diffusion
v1.5): a UNet of 4 blocks with cross-attention in the first three (2 resnets down, 3 up), a VAE
of 4 blocks downsampling 8x with 4 latent channels, a CLIP text encoder over CLIP's real 49408
token vocabulary, the model's own PNDM scheduler config. Only the widths and depths of the "tiny"
size are small, so a 512x512 spectrogram goes through the whole pipeline in well under a second
per step on a CPU; the "sd15" size has the real model's compute.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from riffusion.testing.clip_tokenizer import (
    CLIP_MODEL_MAX_LENGTH,
    CLIP_VOCAB_SIZE,
    write_clip_tokenizer,
)

if TYPE_CHECKING:
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
    from transformers import CLIPTextModel


@dataclass(frozen=True)
class ModelSizes:
    """Widths and depths of a random-weight checkpoint; the block layout is always SD v1's."""

    unet_channels: tuple[int, int, int, int]
    unet_norm_groups: int
    unet_heads: int  # SD v1's config calls the number of heads attention_head_dim
    vae_channels: tuple[int, int, int, int]
    vae_norm_groups: int
    text_hidden_size: int
    text_intermediate_size: int
    text_layers: int
    text_heads: int


# One head keeps the tiny UNet's head_dim at 8 or more, where CPU flash attention is fast (4-wide
# heads are ~30x slower).
TINY = ModelSizes((8, 8, 16, 16), 4, 1, (4, 8, 8, 16), 4, 32, 64, 2, 4)
# Stable Diffusion v1.5's real sizes (UNet 860M, VAE 84M, CLIP ViT-L/14 text encoder 123M): the
# compute of riffusion-model-v1, for benchmarks.
SD15 = ModelSizes((320, 640, 1280, 1280), 32, 8, (128, 256, 512, 512), 32, 768, 3072, 12, 12)
MODEL_SIZES = {"tiny": TINY, "sd15": SD15}

# riffusion-model-v1's scheduler/scheduler_config.json, as published (diffusers fills in defaults).
RIFFUSION_SCHEDULER_CONFIG = {
    "_class_name": "PNDMScheduler",
    "_diffusers_version": "0.4.0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
}

# CLIP's image preprocessing, what the (unused) feature_extractor/ folder of SD v1.5 holds.
_FEATURE_EXTRACTOR_CONFIG = {
    "crop_size": {"height": 224, "width": 224},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "CLIPImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "rescale_factor": 1 / 255,
    "size": {"shortest_edge": 224},
}

_MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline",
    "_diffusers_version": "0.9.0",
    "feature_extractor": ["transformers", "CLIPImageProcessor"],
    "requires_safety_checker": False,
    "safety_checker": [None, None],
    "scheduler": ["diffusers", "PNDMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}


def _random_unet(sizes: ModelSizes) -> UNet2DConditionModel:
    # diffusers' models are imported from the modules that define them: for type checkers its
    # top-level names are the placeholder classes of installs without torch, which lack
    # ModelMixin's methods (save_pretrained among them).
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        block_out_channels=sizes.unet_channels,
        layers_per_block=2,
        norm_num_groups=sizes.unet_norm_groups,
        cross_attention_dim=sizes.text_hidden_size,
        attention_head_dim=sizes.unet_heads,
    )


def _random_vae(sizes: ModelSizes) -> AutoencoderKL:
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=sizes.vae_channels,
        layers_per_block=2,
        latent_channels=4,
        norm_num_groups=sizes.vae_norm_groups,
        sample_size=512,
        scaling_factor=0.18215,
    )


def _random_text_encoder(sizes: ModelSizes) -> CLIPTextModel:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=CLIP_VOCAB_SIZE,
        hidden_size=sizes.text_hidden_size,
        intermediate_size=sizes.text_intermediate_size,
        num_hidden_layers=sizes.text_layers,
        num_attention_heads=sizes.text_heads,
        max_position_embeddings=CLIP_MODEL_MAX_LENGTH,
        hidden_act="quick_gelu",
        projection_dim=sizes.text_hidden_size,
        # The ids SD v1.5's text_encoder/config.json carries (pooling falls back to argmax).
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
    )
    return CLIPTextModel(config)


def make_tiny_checkpoint(path: str | Path, seed: int = 0) -> Path:
    """Write a tiny random-weight model in riffusion-model-v1's diffusers folder layout.

    path/ gets model_index.json (StableDiffusionPipeline, no safety checker), unet/, vae/ and
    text_encoder/ (config.json and safetensors weights), tokenizer/ (CLIP's real BPE tokenizer),
    scheduler/ (the riffusion model's PNDM config) and feature_extractor/. The weights depend only
    on seed; the global torch RNG is left as it was. Returns path.
    """
    return make_random_checkpoint(path, "tiny", seed)


def make_random_checkpoint(path: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """Write a random-weight model of the given size ("tiny" or "sd15") in that layout.

    "sd15" has Stable Diffusion v1.5's real sizes (about 4.3 GB of float32 safetensors): the same
    compute as riffusion-model-v1, for benchmarks on machines that cannot download it.
    """
    sizes = MODEL_SIZES[size]
    import torch

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = _random_unet(sizes)
        vae = _random_vae(sizes)
        text_encoder = _random_text_encoder(sizes)

    unet.save_pretrained(path / "unet", safe_serialization=True)
    vae.save_pretrained(path / "vae", safe_serialization=True)
    text_encoder.save_pretrained(path / "text_encoder", safe_serialization=True)
    write_clip_tokenizer(path / "tokenizer")
    _write_json(path / "scheduler" / "scheduler_config.json", RIFFUSION_SCHEDULER_CONFIG)
    _write_json(path / "feature_extractor" / "preprocessor_config.json", _FEATURE_EXTRACTOR_CONFIG)
    _write_json(path / "model_index.json", _MODEL_INDEX)
    return path


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
