"""The jam engine: an endless sequence of generations that wanders within a prompt and moves
smoothly from prompt to prompt, as the original riffusion web app played.

Each clip is one InferenceInput: an interpolation at alpha between a start and an end prompt. alpha
advances by alpha_velocity per clip and rolls over past 1. In SAME_PROMPT the start and end are
the current prompt with seeds s and s + 1, and each rollover moves s on by one, so the music
wanders between the seeds of one prompt. A newly typed prompt waits for the next rollover and then
becomes the end of a TRANSITION (the same seed at both ends); after the transition SAME_PROMPT
continues on the new prompt. Since alpha = 1 of one sweep is alpha = 0 of the next (same prompt,
same seed), consecutive clips join without a jump.

The engine is plain Python: no model, no I/O, no clock. Given the same sequence of calls it yields
the same clips, so the server and an offline renderer can share it, and it can be tested alone.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from riffusion.diffusion.inputs import (
    MAX_SEED,
    InferenceInput,
    PromptInput,
    check_number,
    check_seed,
    check_steps,
)
from riffusion.diffusion.presets import PresetName, check_preset_steps
from riffusion.errors import RiffusionError

#: Jam seeds are the pipeline's seeds; s + 1 wraps around to 0 past the last one.
SEED_MODULUS = MAX_SEED + 1
#: How far alpha may overshoot 1 (from float sums such as 0.1 * 10) and still count as 1; the
#: original app used the same tolerance.
ROLLOVER_TOLERANCE = 1e-3
_ALPHA_DECIMALS = 9
#: Prompts that may wait for their transition at once.
MAX_QUEUED_PROMPTS = 16


class JamState(str, Enum):
    """What the jam is doing: wandering within one prompt, or moving to the next."""

    SAME_PROMPT = "SAME_PROMPT"
    TRANSITION = "TRANSITION"


@dataclass(frozen=True)
class JamSettings:
    """The knobs of a jam; a change applies from the next clip.

    Attributes:
        denoising: img2img strength in [0, 1] (how much of the seed image is re-imagined).
        guidance: classifier-free guidance scale, at least 0.
        num_inference_steps: diffusion steps of the full schedule, 1 to MAX_INFERENCE_STEPS.
        seed_image_id: the seed image every clip starts from.
        mask_image_id: mask over the seed image, or None to repaint everywhere.
        alpha_velocity: how far alpha moves per clip, in (0, 1]; 0.25 gives four clips per sweep.
        preset: how the diffusion runs (riffusion.diffusion.presets).
        lora: name of a LoRA the server offers (its trained style), or None for the model alone.
    """

    denoising: float = 0.75
    guidance: float = 7.0
    num_inference_steps: int = 50
    seed_image_id: str = "og_beat"
    mask_image_id: str | None = None
    alpha_velocity: float = 0.25
    preset: PresetName = "quality"
    lora: str | None = None

    def __post_init__(self) -> None:
        check_number("denoising", self.denoising, 0.0, 1.0)
        check_number("guidance", self.guidance, 0.0, math.inf)
        check_steps("num_inference_steps", self.num_inference_steps)
        check_preset_steps(self.preset, self.num_inference_steps)
        if not isinstance(self.seed_image_id, str) or not self.seed_image_id:
            raise RiffusionError(f"seed_image_id must be a name, got {self.seed_image_id!r}")
        if self.mask_image_id is not None and (
            not isinstance(self.mask_image_id, str) or not self.mask_image_id
        ):
            raise RiffusionError(
                f"mask_image_id must be a name or None, got {self.mask_image_id!r}"
            )
        check_number("alpha_velocity", self.alpha_velocity, 0.0, 1.0)
        if self.alpha_velocity == 0:
            raise RiffusionError("alpha_velocity must be greater than 0")


@dataclass(frozen=True)
class JamClip:
    """One clip of the jam: its position in the sequence and what to generate.

    Attributes:
        index: 0 for the first clip, then consecutive.
        input: the generation's parameters, ready for RiffusionPipeline.riffuse().
        state: what the jam was doing during this clip.
    """

    index: int
    input: InferenceInput
    state: JamState

    @property
    def prompt(self) -> str:
        """The prompt the clip is heading to (its end prompt)."""
        return self.input.end.prompt


class JamEngine:
    """The state machine of an endless jam; iterate over it (or call next_clip()) for clips.

    The first clip plays `prompt` at alpha = alpha_velocity between seeds `seed` and seed + 1.
    Between clips, queue_prompt(), update_settings() and set_seed() steer what comes next.
    """

    def __init__(self, prompt: str, seed: int = 0, settings: JamSettings | None = None) -> None:
        self._settings = settings or JamSettings()
        self._prompt = _clean_prompt(prompt)
        check_seed("seed", seed)
        self._seed = seed
        self._state = JamState.SAME_PROMPT
        # The prompt of the transition under way; None in SAME_PROMPT.
        self._target: str | None = None
        self._queue: deque[str] = deque()
        self._alpha = self._settings.alpha_velocity
        self._index = 0

    # --- What the next clip will be -----------------------------------------------------------

    @property
    def state(self) -> JamState:
        return self._state

    @property
    def prompt(self) -> str:
        """The prompt the next clip starts from."""
        return self._prompt

    @property
    def target(self) -> str | None:
        """The prompt the transition under way is heading to; None in SAME_PROMPT."""
        return self._target

    @property
    def queued_prompts(self) -> tuple[str, ...]:
        """Prompts waiting for a transition of their own, first to play first."""
        return tuple(self._queue)

    @property
    def seed(self) -> int:
        """The start seed of the next clip."""
        return self._seed

    @property
    def alpha(self) -> float:
        """The interpolation position of the next clip, in (0, 1]."""
        return self._alpha

    @property
    def index(self) -> int:
        """The index the next clip will have (the number of clips made so far)."""
        return self._index

    @property
    def settings(self) -> JamSettings:
        return self._settings

    # --- Steering -----------------------------------------------------------------------------

    def queue_prompt(self, prompt: str) -> bool:
        """Queue a prompt to transition to at the next rollover (after those already queued).

        Surrounding whitespace is ignored. A prompt equal to the last one in line (the last
        queued, else the transition's target, else the current prompt) changes nothing and
        returns False; otherwise returns True.

        Raises:
            RiffusionError: for an empty prompt, or when MAX_QUEUED_PROMPTS already wait.
        """
        prompt = _clean_prompt(prompt)
        last_in_line = self._queue[-1] if self._queue else (self._target or self._prompt)
        if prompt == last_in_line:
            return False
        if len(self._queue) >= MAX_QUEUED_PROMPTS:
            raise RiffusionError(
                f"{MAX_QUEUED_PROMPTS} prompts are already waiting; wait for some to play"
            )
        self._queue.append(prompt)
        return True

    def update_settings(self, **changes: Any) -> JamSettings:
        """Change some settings (JamSettings field names) from the next clip on; returns them all.

        A new alpha_velocity takes effect from the next step of alpha; the next clip's alpha
        stays where the previous velocity put it.

        Raises:
            RiffusionError: for an unknown field or a value out of range (nothing changes then).
        """
        unknown = set(changes) - set(JamSettings.__dataclass_fields__)
        if unknown:
            raise RiffusionError(f"unknown jam settings: {', '.join(sorted(unknown))}")
        self._settings = replace(self._settings, **changes)
        return self._settings

    def set_seed(self, seed: int) -> None:
        """Make seed the start seed of the next clip (the sweep goes on from there)."""
        check_seed("seed", seed)
        self._seed = seed

    # --- Producing clips ----------------------------------------------------------------------

    def next_clip(self) -> JamClip:
        """The next clip; then alpha advances and, past 1, rolls over into the next sweep."""
        settings = self._settings
        if self._state is JamState.TRANSITION:
            assert self._target is not None
            end_prompt, end_seed = self._target, self._seed
        else:
            end_prompt, end_seed = self._prompt, (self._seed + 1) % SEED_MODULUS
        inputs = InferenceInput(
            start=self._prompt_input(self._prompt, self._seed),
            end=self._prompt_input(end_prompt, end_seed),
            alpha=min(self._alpha, 1.0),
            num_inference_steps=settings.num_inference_steps,
            seed_image_id=settings.seed_image_id,
            mask_image_id=settings.mask_image_id,
            preset=settings.preset,
            lora=settings.lora,
        )
        clip = JamClip(index=self._index, input=inputs, state=self._state)

        self._index += 1
        # Rounded to 9 decimals so that float sums do not drift: ten steps of 0.1 make exactly 1
        # and the alphas sent to clients read 0.3, not 0.30000000000000004.
        self._alpha = round(self._alpha + settings.alpha_velocity, _ALPHA_DECIMALS)
        if self._alpha > 1.0 + ROLLOVER_TOLERANCE:
            self._alpha = round(self._alpha - 1.0, _ALPHA_DECIMALS)
            self._rollover()
        return clip

    def __iter__(self) -> Iterator[JamClip]:
        return self

    def __next__(self) -> JamClip:
        return self.next_clip()

    def _rollover(self) -> None:
        """A sweep ended at alpha = 1: start the next from where it arrived."""
        if self._state is JamState.SAME_PROMPT:
            # The sweep arrived at seed s + 1, which is where the next one starts.
            self._seed = (self._seed + 1) % SEED_MODULUS
            if self._queue:
                self._target = self._queue.popleft()
                self._state = JamState.TRANSITION
        else:
            # The transition arrived at its target with the same seed.
            assert self._target is not None
            self._prompt = self._target
            if self._queue:
                self._target = self._queue.popleft()
            else:
                self._target = None
                self._state = JamState.SAME_PROMPT

    def _prompt_input(self, prompt: str, seed: int) -> PromptInput:
        return PromptInput(
            prompt=prompt,
            seed=seed,
            denoising=self._settings.denoising,
            guidance=self._settings.guidance,
        )


def _clean_prompt(prompt: str) -> str:
    if not isinstance(prompt, str):
        raise RiffusionError(f"prompt must be text, got {type(prompt).__name__}")
    prompt = prompt.strip()
    if not prompt:
        raise RiffusionError("prompt is empty")
    return prompt
