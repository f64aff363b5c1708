"""The parameters of one riffusion generation, as in the original riffusion API.

Values are checked on construction, so a bad request fails with a one-line RiffusionError before
any model work starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from riffusion.errors import RiffusionError

MAX_SEED = 2**64 - 1
MAX_INFERENCE_STEPS = 1000


@dataclass(frozen=True)
class PromptInput:
    """One end of an interpolation: what to generate and how strongly.

    Attributes:
        prompt: text prompt; weights such as ``(piano:1.3)`` and ``[noise]`` are understood, and
            prompts longer than CLIP's 77 tokens are encoded in chunks.
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
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise RiffusionError(f"seed must be an integer, got {self.seed!r}")
        if not 0 <= self.seed <= MAX_SEED:
            raise RiffusionError(f"seed must be between 0 and 2**64 - 1, got {self.seed}")
        _check_range("denoising", self.denoising, 0.0, 1.0)
        _check_range("guidance", self.guidance, 0.0, math.inf)


@dataclass(frozen=True)
class InferenceInput:
    """A generation: interpolate from start to end at alpha, img2img on a seed image.

    Attributes:
        start, end: the two prompts; alpha = 0 is start alone, 1 is end alone.
        alpha: interpolation position in [0, 1].
        num_inference_steps: steps of the full schedule; img2img runs denoising times as many.
        seed_image_id: name of the seed image (the spectrogram img2img starts from).
        mask_image_id: name of a mask image, or None to repaint everywhere.
    """

    start: PromptInput
    end: PromptInput
    alpha: float
    num_inference_steps: int = 50
    seed_image_id: str = "og_beat"
    mask_image_id: str | None = None

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            if not isinstance(getattr(self, name), PromptInput):
                raise RiffusionError(f"{name} must be a PromptInput")
        _check_range("alpha", self.alpha, 0.0, 1.0)
        steps = self.num_inference_steps
        if isinstance(steps, bool) or not isinstance(steps, int):
            raise RiffusionError(f"num_inference_steps must be an integer, got {steps!r}")
        if not 1 <= steps <= MAX_INFERENCE_STEPS:
            raise RiffusionError(
                f"num_inference_steps must be between 1 and {MAX_INFERENCE_STEPS}, got {steps}"
            )


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RiffusionError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and low <= value <= high):
        bounds = f"at least {low:g}" if math.isinf(high) else f"between {low:g} and {high:g}"
        raise RiffusionError(f"{name} must be {bounds}, got {value}")
