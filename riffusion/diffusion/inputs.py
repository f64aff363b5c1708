"""The parameters of one riffusion generation, as in the original riffusion API.

Values are checked on construction, so a bad request fails with a one-line RiffusionError before
any model work starts.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

from riffusion.diffusion.presets import PresetName, check_preset_steps
from riffusion.diffusion.prompt_weights import parse_weighted_prompt
from riffusion.errors import RiffusionError

#: Seeds are torch generator seeds: 0 to 2**64 - 1.
MAX_SEED = 2**64 - 1
#: Seeds drawn at random (when none is given) lie below this: short enough to read and retype.
RANDOM_SEED_LIMIT = 1_000_000
MAX_INFERENCE_STEPS = 1000


@dataclass(frozen=True)
class PromptInput:
    """One end of an interpolation: what to generate and how strongly.

    Attributes:
        prompt: text prompt; weights such as ``(piano:1.3)`` and ``[noise]`` are understood
            (within the limits of ``prompt_weights``), and prompts longer than CLIP's 77 tokens
            are encoded in chunks.
        seed: random seed of the diffusion noise, 0 to 2**64 - 1.
        negative_prompt: what to steer away from (replaces the empty prompt of classifier-free
            guidance); None for none.
        denoising: img2img strength in [0, 1]: the fraction of the diffusion schedule that is
            re-run on top of the seed image (0 keeps it, 1 ignores it).
        guidance: classifier-free guidance scale; values of 1 or less turn guidance off.
    """

    prompt: str
    seed: int
    negative_prompt: str | None = None
    denoising: float = 0.75
    guidance: float = 7.0

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise RiffusionError(f"prompt must be text, got {type(self.prompt).__name__}")
        if self.negative_prompt is not None and not isinstance(self.negative_prompt, str):
            raise RiffusionError(
                f"negative prompt must be text, got {type(self.negative_prompt).__name__}"
            )
        for name, text in (("prompt", self.prompt), ("negative prompt", self.negative_prompt)):
            if text is not None:
                check_prompt_weights(name, text)
        check_seed("seed", self.seed)
        check_number("denoising", self.denoising, 0.0, 1.0)
        check_number("guidance", self.guidance, 0.0, math.inf)


@dataclass(frozen=True)
class InferenceInput:
    """A generation: interpolate from start to end at alpha, img2img on a seed image.

    Attributes:
        start, end: the two prompts; alpha = 0 is start alone, 1 is end alone.
        alpha: interpolation position in [0, 1].
        num_inference_steps: steps of the full schedule; img2img runs denoising times as many.
        seed_image_id: name of the seed image (the spectrogram img2img starts from).
        mask_image_id: name of a mask image, or None to repaint everywhere.
        preset: how the diffusion runs (riffusion.diffusion.presets): "quality" is the original
            riffusion's path; "fast" and "realtime" do less work per clip.
        lora: name of a LoRA the pipeline holds apart (named_loras), or None for the model as
            loaded.
    """

    start: PromptInput
    end: PromptInput
    alpha: float
    num_inference_steps: int = 50
    seed_image_id: str = "og_beat"
    mask_image_id: str | None = None
    preset: PresetName = "quality"
    lora: str | None = None

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            if not isinstance(getattr(self, name), PromptInput):
                raise RiffusionError(f"{name} must be a PromptInput")
        check_number("alpha", self.alpha, 0.0, 1.0)
        check_steps("num_inference_steps", self.num_inference_steps)
        check_preset_steps(self.preset, self.num_inference_steps)
        if self.lora is not None and (not isinstance(self.lora, str) or not self.lora):
            raise RiffusionError(f"lora must be a name or None, got {self.lora!r}")


def random_seed() -> int:
    """A seed drawn at random below RANDOM_SEED_LIMIT, for callers that were given none."""
    return secrets.randbelow(RANDOM_SEED_LIMIT)


def check_prompt_weights(name: str, text: str) -> None:
    """RiffusionError naming name when text's weights or nesting are beyond prompt_weights'
    limits."""
    try:
        parse_weighted_prompt(text)
    except RiffusionError as error:
        raise RiffusionError(f"{name}: {error}") from None


def check_number(name: str, value: float, low: float, high: float) -> None:
    """RiffusionError naming name unless value is a finite int or float in [low, high]
    (high may be math.inf)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RiffusionError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and low <= value <= high):
        bounds = f"at least {low:g}" if math.isinf(high) else f"between {low:g} and {high:g}"
        raise RiffusionError(f"{name} must be {bounds}, got {value}")


def check_whole_number(
    name: str, value: int, low: int, high: int, high_text: str | None = None
) -> None:
    """RiffusionError naming name unless value is an int (not a bool) in [low, high]; high_text
    spells high in the message (e.g. "2**64 - 1")."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise RiffusionError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise RiffusionError(f"{name} must be between {low} and {high_text or high}, got {value}")


def check_steps(name: str, steps: int) -> None:
    """RiffusionError naming name unless steps is a whole number from 1 to MAX_INFERENCE_STEPS."""
    check_whole_number(name, steps, 1, MAX_INFERENCE_STEPS)


def check_seed(name: str, seed: int) -> None:
    """RiffusionError naming name unless seed is a whole number from 0 to MAX_SEED."""
    check_whole_number(name, seed, 0, MAX_SEED, "2**64 - 1")
