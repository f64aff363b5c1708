"""Masked riffuse: this package's schedule for the kept region against the original riffusion's.

After each diffusion step the kept (black) part of the mask is set back to the seed image's
latents, noised. The original noised them to the timestep the step started from (one level
noisier than the latents the step produced), also after the last step, so kept regions end with
the noise of the last timestep left in them. Here they are noised to the level the step reached,
and after the last step they are the seed's latents themselves.

This prints, for the tiny random-weight model on the riffusion checkpoint's PNDM schedule:
- kept: RMS of (final latents - seed latents) over the kept half (0 means the kept half is
  exactly the seed image); the real model's scaled latents have unit variance, the tiny model's
  far less, so the figure is given absolute and relative to the seed latents' RMS there;
- repainted: RMS of (ours - original) over the repainted half, relative to ours there.
The kept figure is a property of the noise schedule, not of the weights; the repainted one shows
how far the different kept context moves the rest (random weights: an indication only).

    python bench/bench_mask_schedule.py [--steps 50] [--denoising 0.75]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from riffusion.diffusion.inputs import InferenceInput, PromptInput
from riffusion.diffusion.pipeline import RiffusionPipeline
from riffusion.diffusion.schedulers import make_scheduler
from riffusion.testing import make_tiny_checkpoint

SIZE = 64


@torch.no_grad()
def original_masked_latents(
    pipe: RiffusionPipeline, inputs: InferenceInput, image: Image.Image, keep: torch.Tensor
) -> torch.Tensor:
    """The original's masked img2img (one prompt, guidance), final latents, float32 on the CPU."""
    prompt, steps = inputs.start, inputs.num_inference_steps
    text = pipe.prompt_embedder.embed(["", prompt.prompt]).float()
    init_latents = pipe.encode_image(image, prompt.seed)
    scheduler = make_scheduler(None, pipe.scheduler)
    scheduler.set_timesteps(steps)
    offset = scheduler.config.steps_offset
    init_timestep = min(int(steps * prompt.denoising) + offset, steps)
    noise = torch.randn(init_latents.shape, generator=torch.Generator().manual_seed(prompt.seed))
    start = torch.tensor([scheduler.timesteps[-init_timestep]])
    latents = scheduler.add_noise(init_latents, noise, start)
    for t in scheduler.timesteps[max(steps - init_timestep + offset, 0) :]:
        model_input = scheduler.scale_model_input(torch.cat([latents] * 2), t)
        uncond, cond = pipe.unet(model_input, t, encoder_hidden_states=text).sample.chunk(2)
        guided = uncond + prompt.guidance * (cond - uncond)
        latents = scheduler.step(guided, t, latents).prev_sample
        known = scheduler.add_noise(init_latents, noise, torch.tensor([t]))
        latents = keep * known + (1 - keep) * latents
    return latents


def rms(values: torch.Tensor) -> float:
    return float(values.pow(2).mean().sqrt())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--denoising", type=float, default=0.75)
    args = parser.parse_args()
    print(f"CPU: {platform.processor() or platform.machine()}; torch {torch.__version__}")

    with tempfile.TemporaryDirectory() as folder:
        checkpoint = make_tiny_checkpoint(Path(folder) / "tiny")
        pipe = RiffusionPipeline.load_checkpoint(checkpoint, device="cpu", dtype="float32")
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), "RGB")
    mask = np.full((SIZE, SIZE), 255, dtype=np.uint8)
    mask[:, : SIZE // 2] = 0  # keep the left half
    mask_image = Image.fromarray(mask, "L")
    keep = torch.zeros(1, 1, SIZE // 8, SIZE // 8)
    keep[..., : SIZE // 16] = 1

    prompt = PromptInput("lofi beat", seed=3, denoising=args.denoising, guidance=7.0)
    inputs = InferenceInput(prompt, prompt, alpha=0.0, num_inference_steps=args.steps)
    ours = pipe.riffuse(inputs, image, mask_image, output_type="latent")
    original = original_masked_latents(pipe, inputs, image, keep)
    seed_latents = pipe.encode_image(image, prompt.seed)

    kept, repainted = keep.bool().expand_as(ours), ~keep.bool().expand_as(ours)
    for name, latents in (("ours", ours), ("original", original)):
        residual = rms((latents - seed_latents)[kept])
        relative = residual / rms(seed_latents[kept])
        print(f"{name:>8}: kept half off the seed latents by RMS {residual:.4f} ({relative:.4f})")
    moved = rms((ours - original)[repainted]) / rms(ours[repainted])
    print(f"repainted half, ours vs original: {moved:.4f} (relative RMS)")


if __name__ == "__main__":
    main()
