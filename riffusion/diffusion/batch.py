"""Requests of RiffusionPipeline.riffuse_batch(): what each brings, what they must share to run
through one UNet call per step (BatchKey), and each one's state in the diffusion loop."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import torch
from PIL import Image

from riffusion.diffusion.inputs import InferenceInput
from riffusion.diffusion.schedulers import Scheduler

#: Called with (steps done, steps in total): once with 0 before the first step, then per step.
ProgressCallback = Callable[[int, int], None]


class Cancelled(Exception):
    """A generation was cancelled between two diffusion steps."""


@dataclass(frozen=True)
class RiffuseRequest:
    """One generation of a riffuse_batch() call: riffuse()'s arguments that belong to a request.

    Attributes:
        inputs: prompts, seeds, alpha and step count.
        init_image: seed spectrogram; sides must be multiples of size_multiple (64).
        mask_image: white = repaint, black = keep the seed image (see riffuse()).
        callback: this request's progress callback; it may raise Cancelled to stop the request.
        cancel: an event that, once set, stops this request before its next step.
    """

    inputs: InferenceInput
    init_image: Image.Image
    mask_image: Image.Image | None = None
    callback: ProgressCallback | None = None
    cancel: threading.Event | None = None


@dataclass(frozen=True)
class BatchKey:
    """What requests must share to run through one UNet call per step: the same timesteps, the
    same latent size, the same rows per request and the same preset (its UNet, its caching, its
    autoencoder). Requests with equal keys can be batched.

    Attributes:
        scheduler: the scheduler class's name.
        num_inference_steps: steps of the full schedule (for a preset with the "strength"
            img2img schedule: the steps that run).
        denoising_steps: with the schedule, what sets the timestep img2img starts from:
            int(num_inference_steps * denoising), img2img's step count, for the original's
            arithmetic; int(original_inference_steps * denoising) for the "strength" schedule.
        latent_size: (height, width) of the latents, pixels / 8.
        guided: whether guidance runs (two UNet rows per request, else one).
        preset: the preset's name.
        lora: the named LoRA the UNet runs with (riffusion.diffusion.named_loras), or None.
    """

    scheduler: str
    num_inference_steps: int
    denoising_steps: int
    latent_size: tuple[int, int]
    guided: bool
    preset: str = "quality"
    lora: str | None = None

    def difference(self, other: BatchKey) -> str:
        """The fields in which other differs, as "name self != other; ...", for error messages."""
        return "; ".join(
            f"{field.name} {getattr(self, field.name)} != {getattr(other, field.name)}"
            for field in fields(self)
            if getattr(self, field.name) != getattr(other, field.name)
        )


@dataclass(frozen=True, eq=False)
class Conditioning:
    """What one request's diffusion is conditioned on. Tensors are float32 on the pipeline's
    device unless said otherwise; latents are (1, 4, h, w).

    Attributes:
        noise: the request's (interpolated) noise.
        text_embeddings: (2 or 1, tokens, hidden) in the UNet's dtype, [negative, prompt] when
            guided.
        guidance: classifier-free guidance scale.
        generator: drives the scheduler's per-step noise, if it draws any.
        init_latents: the seed image's latents (img2img), or None to start from noise.
        keep: (1, 1, h, w) mask weights of init_latents (1 = keep), or None.
        callback, cancel: as in RiffuseRequest.
    """

    noise: torch.Tensor
    text_embeddings: torch.Tensor
    guidance: float
    generator: torch.Generator
    init_latents: torch.Tensor | None = None
    keep: torch.Tensor | None = None
    callback: ProgressCallback | None = None
    cancel: threading.Event | None = None


@dataclass(eq=False)
class Member:
    """One request in the diffusion loop: its conditioning, its own scheduler (they hold per-run
    state) and its latents, the final ones once the loop is done; outcome is the Cancelled of a
    request that stopped early."""

    conditioning: Conditioning
    scheduler: Scheduler
    latents: torch.Tensor
    outcome: Cancelled | None = None

    def report(self, done: int, total: int) -> None:
        """Call the callback; a Cancelled it raises stops this member only."""
        callback = self.conditioning.callback
        if callback is not None and self.outcome is None:
            try:
                callback(done, total)
            except Cancelled as cancelled:
                self.outcome = cancelled

    def check_cancel(self, message: str) -> None:
        """Stop this member (outcome Cancelled(message)) if its cancel event is set."""
        cancel = self.conditioning.cancel
        if self.outcome is None and cancel is not None and cancel.is_set():
            self.outcome = Cancelled(message)


def batched_text_embeddings(
    conditionings: Sequence[Conditioning],
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The text embeddings as one UNet batch, and its cross-attention mask or None.

    Embeddings of different token lengths are zero-padded to the longest; the mask (rows, tokens;
    1 = attend, 0 = padding) then keeps the padding out of the attention. With equal lengths
    there is no mask, so a request's rows are exactly what it would give alone.
    """
    embeddings = [conditioning.text_embeddings for conditioning in conditionings]
    length = max(embedding.shape[1] for embedding in embeddings)
    if all(embedding.shape[1] == length for embedding in embeddings):
        return torch.cat(embeddings), None
    padded, masks = [], []
    for embedding in embeddings:
        rows, tokens = embedding.shape[:2]
        padded.append(torch.nn.functional.pad(embedding, (0, 0, 0, length - tokens)))
        mask = embedding.new_zeros((rows, length))
        mask[:, :tokens] = 1
        masks.append(mask)
    return torch.cat(padded), torch.cat(masks)
