"""Named LoRAs: adapters kept apart in the UNet (not fused), so that each generation chooses one
by name, or none. This is how a server offers several trained styles at once.

Choosing is state of the pipeline's UNet: generations with different LoRAs must not run at the
same time (the server's single inference thread runs one batch at a time, and a batch shares
one LoRA: it is part of the BatchKey).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from riffusion.diffusion.openvino_unet import NAMED_LORAS_REFUSAL
from riffusion.errors import RiffusionError

if TYPE_CHECKING:
    from riffusion.diffusion.pipeline import RiffusionPipeline

#: What a LoRA's name may be: it travels in JSON and URLs.
LORA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_lora_name(name: str) -> None:
    if not LORA_NAME.match(name):
        raise RiffusionError(
            f"LoRA name {name!r}: use letters, digits, '.', '_' and '-' (at most 64, starting "
            "with a letter or digit)"
        )


def load_named_loras(
    pipeline: RiffusionPipeline, loras: Mapping[str, str | os.PathLike[str]]
) -> None:
    """Load each LoRA file (name -> path) into the pipeline's UNet as an adapter of that name,
    switched off until a generation asks for it.

    Raises:
        RiffusionError: a bad name, a missing or unreadable file, or a LoRA with text-encoder
            weights (named LoRAs adapt the UNet only; fuse such a LoRA with --lora instead), or
            a pipeline whose UNet runs in OpenVINO.
    """
    from safetensors.torch import load_file

    if pipeline.unet_backend != "torch":
        raise RiffusionError(NAMED_LORAS_REFUSAL)
    for name, path in loras.items():
        check_lora_name(name)
        try:
            state = load_file(str(path))
        except Exception as error:  # missing, not safetensors, damaged
            raise RiffusionError(f"LoRA {name}={path}: cannot read it ({error})") from None
        if any(key.startswith("text_encoder.") for key in state):
            raise RiffusionError(
                f"LoRA {name}={path} changes the text encoder too; named LoRAs adapt the UNet "
                "only: pass it as --lora PATH, fused into the model"
            )
        try:
            pipeline.unet.load_lora_adapter(state, prefix="unet", adapter_name=name)
        except Exception as error:  # not a LoRA, or one of another architecture
            raise RiffusionError(
                f"LoRA {name}={path}: not LoRA weights for this model "
                f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
            ) from None
        pipeline.named_loras = (*pipeline.named_loras, name)
    use_lora(pipeline, None)


def use_lora(pipeline: RiffusionPipeline, name: str | None) -> None:
    """Make the UNet run with the named LoRA, or with none (None).

    Raises:
        RiffusionError: the pipeline has no LoRA of that name.
    """
    if name is not None and name not in pipeline.named_loras:
        offered = ", ".join(pipeline.named_loras) or "none"
        raise RiffusionError(f"unknown LoRA {name!r}; this model offers: {offered}")
    if not pipeline.named_loras:
        return
    if name is None:
        pipeline.unet.disable_lora()
    else:
        pipeline.unet.enable_lora()
        pipeline.unet.set_adapters([name])
