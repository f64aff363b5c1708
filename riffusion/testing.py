"""Test fixtures that need no network: a real CLIP tokenizer and tiny random-weight checkpoints.

- write_clip_tokenizer(folder): CLIP's BPE tokenizer in Hugging Face format.
- make_tiny_checkpoint(path, seed): a small model in riffusion-model-v1's diffusers layout.
- write_single_file_checkpoint(folder, path): the same weights as one original-layout file.
- make_tiny_lora(path, checkpoint): random LoRA weights for a tiny checkpoint.

The CLIP tokenizer is rebuilt from CLIP's own BPE vocabulary file, which open_clip_torch's wheel
ships as bpe_simple_vocab_16e6.txt.gz (install it with --no-deps: only that file is needed, and
open_clip itself is never imported). The result has the same 49408 token ids as
openai/clip-vit-large-patch14, the tokenizer of Stable Diffusion v1.5 and riffusion-model-v1.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from riffusion.errors import RiffusionError

if TYPE_CHECKING:
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
CLIP_MODEL_MAX_LENGTH = 77
CLIP_VOCAB_SIZE = 49408
# CLIP keeps the first 49152 - 256 - 2 merges of its BPE file: with 256 byte symbols, 256
# end-of-word byte symbols and the 2 special tokens that makes 49408 ids.
_NUM_MERGES = 49152 - 256 - 2


def clip_bpe_file() -> Path:
    """Path of CLIP's bpe_simple_vocab_16e6.txt.gz inside the installed open_clip_torch wheel."""
    spec = importlib.util.find_spec("open_clip")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / "bpe_simple_vocab_16e6.txt.gz"
        if path.is_file():
            return path
    raise RiffusionError(
        "CLIP's BPE vocabulary (bpe_simple_vocab_16e6.txt.gz) was not found: install it with "
        "`pip install --no-deps open_clip_torch==3.3.0`"
    )


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's (and GPT-2's) reversible map from the 256 byte values to printable characters.

    Printable Latin-1 bytes map to themselves; the others (control characters, space, ...) are
    moved to code points 256 and up, in byte order, so BPE never sees whitespace or controls. The
    dict's insertion order is the order of the first 256 vocabulary ids.
    """
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    mapping = {byte: chr(byte) for byte in printable}
    shifted = 0
    for byte in range(256):
        if byte not in mapping:
            mapping[byte] = chr(256 + shifted)
            shifted += 1
    return mapping


def write_clip_tokenizer(folder: str | Path) -> Path:
    """Write CLIP's BPE tokenizer in Hugging Face format (as in a diffusers tokenizer/ folder).

    Writes vocab.json, merges.txt, special_tokens_map.json and tokenizer_config.json, loadable with
    transformers.CLIPTokenizer.from_pretrained(folder). Returns the folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(clip_bpe_file(), "rt", encoding="utf-8") as file:
        # Line 0 is a version header; merges are "left right" pairs, most frequent first.
        merges = file.read().split("\n")[1 : _NUM_MERGES + 1]

    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [symbol + "</w>" for symbol in symbols]
    tokens += ["".join(merge.split()) for merge in merges]
    tokens += [BOS_TOKEN, EOS_TOKEN]
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != CLIP_VOCAB_SIZE:
        raise RiffusionError(
            f"{clip_bpe_file()}: expected {CLIP_VOCAB_SIZE} tokens, got {len(vocab)}"
        )

    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8"
    )
    special_tokens = {
        "bos_token": BOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "pad_token": EOS_TOKEN,
        "unk_token": EOS_TOKEN,
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special_tokens, indent=2))
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": CLIP_MODEL_MAX_LENGTH,
        "do_lower_case": True,
        "errors": "replace",
        "add_prefix_space": False,
        **special_tokens,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return folder


# --- Tiny random-weight checkpoints -----------------------------------------------------------
#
# Same architecture family and folder layout as riffusion/riffusion-model-v1 (Stable Diffusion
# v1.5): a UNet of 4 blocks with cross-attention in the first three (2 resnets down, 3 up), a VAE
# of 4 blocks downsampling 8x with 4 latent channels, a CLIP text encoder over CLIP's real 49408
# token vocabulary, the model's own PNDM scheduler config. Only the widths and depths are tiny, so
# a 512x512 spectrogram goes through the whole pipeline in well under a second per step on a CPU.


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
    from diffusers import UNet2DConditionModel

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
    from diffusers import AutoencoderKL

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


# --- Single-file checkpoints ------------------------------------------------------------------
#
# Single .ckpt / .safetensors files (like riffusion-model-v1.ckpt) use the original Stable
# Diffusion (LDM) parameter names: model.diffusion_model.*, first_stage_model.* and
# cond_stage_model.transformer.*. Writing one from a diffusers folder inverts the renaming that
# diffusers applies when it loads such a file; the tables below hold for SD v1's block layout.


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


def make_tiny_lora(path: str | Path, checkpoint: str | Path, seed: int = 0) -> Path:
    """Write random LoRA weights (rank 2, on the UNet's attention projections) for checkpoint.

    checkpoint is a folder written by make_tiny_checkpoint(); path is the .safetensors file to
    write, in the format diffusers' load_lora_weights() reads. Returns path.
    """
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
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
