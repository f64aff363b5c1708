"""Single-file checkpoints (.ckpt / .safetensors) written from an SD v1 diffusers folder.

Single files like riffusion-model-v1.ckpt use the original Stable Diffusion (LDM) parameter
names: model.diffusion_model.*, first_stage_model.* and cond_stage_model.transformer.*. Writing
one from a diffusers folder inverts the renaming that diffusers applies when it loads such a
file; the tables below hold for SD v1's block layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from riffusion.errors import RiffusionError

if TYPE_CHECKING:
    import torch


def _unet_prefix_renames() -> list[tuple[str, str]]:
    """(diffusers prefix, LDM prefix) pairs for SD v1's UNet blocks."""
    renames = []
    for block in range(4):
        for layer in range(2):
            ldm = f"input_blocks.{3 * block + layer + 1}"
            renames.append((f"down_blocks.{block}.resnets.{layer}.", f"{ldm}.0."))
            if block < 3:
                renames.append((f"down_blocks.{block}.attentions.{layer}.", f"{ldm}.1."))
        for layer in range(3):
            ldm = f"output_blocks.{3 * block + layer}"
            renames.append((f"up_blocks.{block}.resnets.{layer}.", f"{ldm}.0."))
            if block > 0:
                renames.append((f"up_blocks.{block}.attentions.{layer}.", f"{ldm}.1."))
        if block < 3:
            renames.append(
                (f"down_blocks.{block}.downsamplers.0.conv.", f"input_blocks.{3 * block + 3}.0.op.")
            )
            # The upsampler follows the resnet, and the attention where the block has one.
            position = 1 if block == 0 else 2
            renames.append(
                (f"up_blocks.{block}.upsamplers.0.", f"output_blocks.{3 * block + 2}.{position}.")
            )
    renames.append(("mid_block.attentions.0.", "middle_block.1."))
    renames += [(f"mid_block.resnets.{layer}.", f"middle_block.{2 * layer}.") for layer in range(2)]
    renames += [
        ("time_embedding.linear_1.", "time_embed.0."),
        ("time_embedding.linear_2.", "time_embed.2."),
        ("conv_in.", "input_blocks.0.0."),
        ("conv_norm_out.", "out.0."),
        ("conv_out.", "out.2."),
    ]
    return renames


_UNET_RESNET_RENAMES = [
    ("norm1.", "in_layers.0."),
    ("conv1.", "in_layers.2."),
    ("norm2.", "out_layers.0."),
    ("conv2.", "out_layers.3."),
    ("time_emb_proj.", "emb_layers.1."),
    ("conv_shortcut.", "skip_connection."),
]


def _vae_prefix_renames() -> list[tuple[str, str]]:
    """(diffusers prefix, LDM prefix) pairs for SD v1's VAE; LDM numbers decoder blocks upwards."""
    renames = []
    for block in range(4):
        for layer in range(2):
            renames.append(
                (
                    f"encoder.down_blocks.{block}.resnets.{layer}.",
                    f"encoder.down.{block}.block.{layer}.",
                )
            )
        for layer in range(3):
            renames.append(
                (
                    f"decoder.up_blocks.{block}.resnets.{layer}.",
                    f"decoder.up.{3 - block}.block.{layer}.",
                )
            )
        if block < 3:
            renames.append(
                (
                    f"encoder.down_blocks.{block}.downsamplers.0.",
                    f"encoder.down.{block}.downsample.",
                )
            )
            renames.append(
                (f"decoder.up_blocks.{block}.upsamplers.0.", f"decoder.up.{3 - block}.upsample.")
            )
    for coder in ("encoder", "decoder"):
        renames += [
            (f"{coder}.mid_block.resnets.{layer}.", f"{coder}.mid.block_{layer + 1}.")
            for layer in range(2)
        ]
        renames.append((f"{coder}.mid_block.attentions.0.", f"{coder}.mid.attn_1."))
        renames.append((f"{coder}.conv_norm_out.", f"{coder}.norm_out."))
    return renames


_VAE_INNER_RENAMES = [
    ("conv_shortcut.", "nin_shortcut."),
    ("group_norm.", "norm."),
    ("to_q.", "q."),
    ("to_k.", "k."),
    ("to_v.", "v."),
    ("to_out.0.", "proj_out."),
]


def _rename(key: str, prefixes: list[tuple[str, str]], inner: list[tuple[str, str]]) -> str:
    for old, new in prefixes:
        if key.startswith(old):
            key = new + key[len(old) :]
            break
    head, _, leaf = key.rpartition(".")
    for old, new in inner:
        head = (head + ".").replace(old, new).rstrip(".")
    return f"{head}.{leaf}"


def ldm_state_dict(folder: str | Path) -> dict[str, torch.Tensor]:
    """The weights of an SD v1 diffusers folder under the original single-file parameter names."""
    from safetensors.torch import load_file

    folder = Path(folder)
    unet = load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")
    vae = load_file(folder / "vae" / "diffusion_pytorch_model.safetensors")
    text_encoder = load_file(folder / "text_encoder" / "model.safetensors")

    state = {}
    unet_prefixes = _unet_prefix_renames()
    for key, value in unet.items():
        inner = _UNET_RESNET_RENAMES if ".resnets." in key else []
        state["model.diffusion_model." + _rename(key, unet_prefixes, inner)] = value
    vae_prefixes = _vae_prefix_renames()
    for key, value in vae.items():
        ldm_key = _rename(key, vae_prefixes, _VAE_INNER_RENAMES)
        if ".mid.attn_1." in ldm_key and value.ndim == 2:
            # LDM's VAE attention uses 1x1 convolutions where diffusers uses linear layers.
            value = value[:, :, None, None]
        state["first_stage_model." + ldm_key] = value
    for key, value in text_encoder.items():
        key = key if key.startswith("text_model.") else "text_model." + key
        state["cond_stage_model.transformer." + key] = value
    return {key: value.contiguous() for key, value in state.items()}


def write_single_file_checkpoint(folder: str | Path, path: str | Path) -> Path:
    """Write the weights of an SD v1 diffusers folder as one original-layout checkpoint file.

    The format follows the suffix: .safetensors, or .ckpt (a torch pickle holding
    {"state_dict": ...}, like riffusion-model-v1.ckpt). Returns path.
    """
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    state = ldm_state_dict(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    elif path.suffix == ".ckpt":
        torch.save({"state_dict": state}, path)
    else:
        raise RiffusionError(f"{path}: single-file checkpoints end in .safetensors or .ckpt")
    return path
