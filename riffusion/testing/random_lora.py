"""Random LoRA weights for a tiny random-weight checkpoint (see random_checkpoints)."""

from __future__ import annotations

from pathlib import Path


def make_tiny_lora(path: str | Path, checkpoint: str | Path, seed: int = 0) -> Path:
    """Write random LoRA weights (rank 2, on the UNet's attention projections) for checkpoint.

    checkpoint is a folder written by make_tiny_checkpoint(); path is the .safetensors file to
    write, in the format diffusers' load_lora_weights() reads. Returns path.
    """
    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    path = Path(path)
    unet = UNet2DConditionModel.from_pretrained(Path(checkpoint) / "unet")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # init_lora_weights=False draws both factors at random (peft's default zeroes B, which
        # would make a LoRA that changes nothing).
        unet.add_adapter(
            LoraConfig(
                r=2,
                lora_alpha=2,
                init_lora_weights=False,
                target_modules=["to_q", "to_k", "to_v", "to_out.0"],
            )
        )
    StableDiffusionPipeline.save_lora_weights(
        path.parent,
        unet_lora_layers=get_peft_model_state_dict(unet),
        weight_name=path.name,
        safe_serialization=True,
    )
    return path
