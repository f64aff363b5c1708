"""Random-weight stand-ins for the realtime preset's extra weights, for tests and benchmarks on
machines that cannot download the real ones (riffusion.diffusion.preset_weights).

- make_lcm_lora(path, checkpoint, size): LoRA weights in the LCM-LoRA's layout (rank 64 on the
  UNet's attention, feed-forward, resnet and resampling layers) for a checkpoint written by
  riffusion.testing; "sd15" is the real file's size (about 135 MB of float16), "tiny" a rank-4
  one for the tiny checkpoint.
- make_tiny_vae(folder, size): an AutoencoderTiny folder; "taesd" has TAESD's real sizes
  (diffusers' defaults, 2.4M parameters), "tiny" is narrower and shallower, for tests.

Random weights give noise, but noise of the right shapes and costs: the code paths and the timings
are those of the real weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diffusers.models.autoencoders.autoencoder_tiny import AutoencoderTiny

#: The UNet modules latent-consistency/lcm-lora-sdv1-5 adapts: everything with weights in the
#: attention and resnet blocks, as diffusers' LCM-LoRA distillation script targets them.
LCM_LORA_TARGETS = [
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "proj_in",
    "proj_out",
    "ff.net.0.proj",
    "ff.net.2",
    "conv1",
    "conv2",
    "conv_shortcut",
    "downsamplers.0.conv",
    "upsamplers.0.conv",
    "time_emb_proj",
]
#: LoRA rank per stand-in size ("sd15": the published LCM-LoRA's).
LCM_LORA_RANKS = {"tiny": 4, "sd15": 64}

#: AutoencoderTiny settings per stand-in size; "taesd" is diffusers' defaults, which are TAESD's.
TINY_VAE_CONFIGS: dict[str, dict[str, Any]] = {
    "taesd": {},
    "tiny": {
        "encoder_block_out_channels": (8, 8, 8, 8),
        "decoder_block_out_channels": (8, 8, 8, 8),
        "num_encoder_blocks": (1, 1, 1, 1),
        "num_decoder_blocks": (1, 1, 1, 1),
    },
}


def make_lcm_lora(
    path: str | Path, checkpoint: str | Path, size: str = "tiny", seed: int = 0
) -> Path:
    """Write random LoRA weights in the LCM-LoRA's layout for checkpoint's UNet.

    path is the .safetensors file to write (in the layout diffusers' save_lora_weights writes;
    float16 for "sd15", as published); checkpoint a folder written by riffusion.testing. The
    LoRA's update is scaled down so that the fused UNet stays close to the original (random
    LoRA factors at full size would swamp it). The global torch RNG is left as it was. Returns
    path.
    """
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    rank = LCM_LORA_RANKS[size]
    path = Path(path)
    unet = UNet2DConditionModel.from_pretrained(Path(checkpoint) / "unet")
    targets = [
        name
        for name in LCM_LORA_TARGETS
        if any(module.endswith(name) for module, _ in unet.named_modules())
    ]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # init_lora_weights=False draws both factors at random (peft's default zeroes B, which
        # would make a LoRA that changes nothing).
        unet.add_adapter(
            LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False, target_modules=targets)
        )
    state = get_peft_model_state_dict(unet)
    dtype = torch.float16 if size == "sd15" else torch.float32
    # B scaled down: the update B @ A stays a small change of each weight.
    layers = {
        name: (tensor * 0.01 if ".lora_B." in name else tensor).to(dtype)
        for name, tensor in state.items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(
        path.parent, unet_lora_layers=layers, weight_name=path.name, safe_serialization=True
    )
    return path


def random_tiny_vae(size: str = "tiny", seed: int = 0) -> AutoencoderTiny:
    """An AutoencoderTiny of size ("taesd" or "tiny") with random weights from seed."""
    import torch
    from diffusers.models.autoencoders.autoencoder_tiny import AutoencoderTiny

    config = TINY_VAE_CONFIGS[size]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoencoderTiny(**config)


def make_tiny_vae(folder: str | Path, size: str = "tiny", seed: int = 0) -> Path:
    """Write a random-weight AutoencoderTiny of size as a diffusers folder (config.json and
    diffusion_pytorch_model.safetensors), loadable by --tiny-vae. Returns folder."""
    folder = Path(folder)
    random_tiny_vae(size, seed).save_pretrained(folder, safe_serialization=True)
    return folder
