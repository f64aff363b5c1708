"""The random-weight checkpoints the benchmarks share: written once under TMPDIR, then reused;
with stand-ins for the realtime preset's weights beside them."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from riffusion.diffusion.preset_weights import PresetWeights
from riffusion.testing import make_random_checkpoint


def default_checkpoint_dir(size: str) -> Path:
    """Where the benchmarks keep the random checkpoint of size ("tiny" or "sd15")."""
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"riffusion-bench-{size}"


def random_checkpoint(path: Path, size: str) -> Path:
    """path, holding a random-weight checkpoint of size; written first if it is not there."""
    if not (path / "model_index.json").is_file():
        print(f"writing a random-weight {size} checkpoint to {path} ...", flush=True)
        make_random_checkpoint(path, size=size)
    return path


def add_sd15_checkpoint_argument(parser: argparse.ArgumentParser) -> None:
    """--checkpoint-dir, where the SD 1.5-size checkpoint is kept (default_checkpoint_dir)."""
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=default_checkpoint_dir("sd15"),
        help="where the random SD 1.5-size checkpoint is written once and reused",
    )


def random_preset_weights(checkpoint: Path, size: str) -> PresetWeights:
    """Stand-ins for the realtime preset's LCM-LoRA and TAESD, of their real sizes for "sd15",
    kept beside checkpoint (written first if not there)."""
    from riffusion.testing.presets import make_lcm_lora, make_tiny_vae

    lcm_lora = checkpoint / "lcm-lora" / "pytorch_lora_weights.safetensors"
    tiny_vae = checkpoint / "taesd"
    if not lcm_lora.is_file():
        print(f"writing a random-weight LCM-LoRA to {lcm_lora} ...", flush=True)
        make_lcm_lora(lcm_lora, checkpoint, size=size)
    if not (tiny_vae / "config.json").is_file():
        print(f"writing a random-weight TAESD to {tiny_vae} ...", flush=True)
        make_tiny_vae(tiny_vae, size="taesd" if size == "sd15" else "tiny")
    return PresetWeights(lcm_lora=str(lcm_lora), tiny_vae=str(tiny_vae))
