"""The settings of a training run: what is trained, how, and how often it reports.

A run's settings are written to its folder when it starts; `--resume` reads them back, so a
resumed run is the same run. Only the report cadence (checkpoints, validation renders) may change.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from riffusion.errors import RiffusionError

#: The UNet's attention projections (self- and cross-attention), where LoRA adapts SD v1.
DEFAULT_UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
#: CLIP's attention projections, for --train-text-encoder.
TEXT_ENCODER_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")

#: Settings a resumed run may change: they decide what is reported, not what is learned.
REPORT_SETTINGS = frozenset(
    {"checkpoint_every", "keep_checkpoints", "validation_every", "validation_steps"}
)


@dataclass(frozen=True)
class TrainSettings:
    """How a run trains.

    Attributes:
        steps: optimizer steps in all.
        batch_size: clips per micro-batch on each process.
        gradient_accumulation_steps: micro-batches per optimizer step.
        learning_rate: peak learning rate of AdamW, reached after warmup_steps.
        warmup_steps: linear warm-up steps; None: 5% of steps. A cosine decay to 0 follows.
        weight_decay: AdamW's decoupled weight decay.
        max_grad_norm: gradients are clipped to this norm; 0 turns clipping off.
        rank: LoRA rank.
        alpha: LoRA alpha (the update is scaled by alpha / rank); None: rank.
        target_modules: UNet module names that get LoRA adapters.
        train_text_encoder: add LoRA adapters to CLIP's attention too.
        full: fine-tune every UNet weight instead of a LoRA.
        snr_gamma: Min-SNR loss weighting with this gamma (5 is usual); None: unweighted.
        caption_dropout: probability of training a clip with the empty caption, which keeps
            classifier-free guidance working.
        width: columns of the training crop (512: 5.12 s); wider clips are cropped at a random
            place each time they are drawn (time-shift augmentation).
        gradient_checkpointing: recompute activations in the backward pass to save memory.
        seed: every random choice of the run derives from it and the step number.
        checkpoint_every: steps between checkpoints (0: only at the end).
        keep_checkpoints: how many recent checkpoints to keep.
        validation_every: steps between validation renders (0: none).
        validation_prompts: prompts rendered; () uses the dataset's most common captions.
        validation_seeds: seeds rendered for each prompt.
        validation_steps: diffusion steps of each render.
    """

    steps: int = 1000
    batch_size: int = 1
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    warmup_steps: int | None = None
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    rank: int = 16
    alpha: int | None = None
    target_modules: tuple[str, ...] = DEFAULT_UNET_TARGETS
    train_text_encoder: bool = False
    full: bool = False
    snr_gamma: float | None = None
    caption_dropout: float = 0.1
    width: int = 512
    gradient_checkpointing: bool = False
    seed: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    validation_every: int = 250
    validation_prompts: tuple[str, ...] = ()
    validation_seeds: tuple[int, ...] = (42,)
    validation_steps: int = 25

    def __post_init__(self) -> None:
        problems = []
        for name in ("steps", "batch_size", "gradient_accumulation_steps", "rank"):
            if getattr(self, name) < 1:
                problems.append(f"--{_option(name)} must be at least 1, got {getattr(self, name)}")
        for name in ("checkpoint_every", "validation_every", "keep_checkpoints"):
            if getattr(self, name) < 0:
                problems.append(f"--{_option(name)} must be 0 or more, got {getattr(self, name)}")
        if self.warmup_steps is not None and not 0 <= self.warmup_steps <= self.steps:
            problems.append(f"--warmup-steps must be between 0 and --steps ({self.steps})")
        if not self.learning_rate > 0:
            problems.append(f"--learning-rate must be positive, got {self.learning_rate:g}")
        if not 0 <= self.caption_dropout < 1:
            problems.append(f"--caption-dropout must be in [0, 1), got {self.caption_dropout:g}")
        if self.snr_gamma is not None and not self.snr_gamma > 0:
            problems.append(f"--snr-gamma must be positive, got {self.snr_gamma:g}")
        if self.alpha is not None and not self.alpha > 0:
            problems.append(f"--lora-alpha must be positive, got {self.alpha}")
        if self.width < 64 or self.width % 64:
            problems.append(f"--width must be a positive multiple of 64 columns, got {self.width}")
        if self.validation_steps < 1:
            problems.append(f"--validation-steps must be at least 1, got {self.validation_steps}")
        if not self.target_modules:
            problems.append("--target-modules names no module")
        if self.full and self.train_text_encoder:
            problems.append("--full trains the UNet only; leave out --train-text-encoder")
        if problems:
            raise RiffusionError("; ".join(problems))

    @property
    def lora_alpha(self) -> int:
        return self.rank if self.alpha is None else self.alpha

    @property
    def resolved_warmup_steps(self) -> int:
        return round(0.05 * self.steps) if self.warmup_steps is None else self.warmup_steps

    def to_json(self) -> dict[str, Any]:
        return {field.name: _jsonable(getattr(self, field.name)) for field in fields(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainSettings:
        known = {field.name for field in fields(cls)}
        values: dict[str, Any] = {
            name: tuple(value) if isinstance(value, list) else value
            for name, value in data.items()
            if name in known
        }
        return cls(**values)

    def replace(self, **changes: Any) -> TrainSettings:
        return dataclasses.replace(self, **changes)


def _option(name: str) -> str:
    return name.replace("_", "-")


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
