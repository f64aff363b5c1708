"""A reference for the pipeline's tests: the original riffusion's riffuse, written out plainly.

It follows the published algorithm step by step with diffusers' building blocks (tokenizer, text
encoder, VAE, UNet, scheduler) and none of riffusion.diffusion's own code, so the pipeline's
results can be checked against something other than themselves.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from riffusion import InferenceInput
from riffusion.diffusion.schedulers import scheduler_class


def original_slerp(t: float, v0: torch.Tensor, v1: torch.Tensor) -> torch.Tensor:
    """riffusion-hobby's slerp: numpy, float32 inputs, linear above |cos| 0.9995."""
    a, b = v0.numpy(), v1.numpy()
    dot = np.sum(a * b / (np.linalg.norm(a) * np.linalg.norm(b)))
    if np.abs(dot) > 0.9995:
        return torch.from_numpy((1 - t) * a + t * b)
    theta = np.arccos(dot)
    mixed = np.sin(theta - theta * t) / np.sin(theta) * a + np.sin(theta * t) / np.sin(theta) * b
    return torch.from_numpy(mixed)


@torch.no_grad()
def original_riffuse(pipe, inputs: InferenceInput, image: Image.Image) -> torch.Tensor:
    """The original riffusion's riffuse on CPU in float32, final latents: classifier-free guidance
    against the empty prompt (no negative prompts), no mask, no prompt weights, prompts of at
    most 75 tokens, the checkpoint's (PNDM) scheduler."""
    start, end, alpha = inputs.start, inputs.end, inputs.alpha
    steps = inputs.num_inference_steps

    def embed(text: str) -> torch.Tensor:
        ids = pipe.tokenizer(
            text, padding="max_length", max_length=77, truncation=True, return_tensors="pt"
        ).input_ids
        return pipe.text_encoder(ids)[0]

    start_embedding, end_embedding = embed(start.prompt), embed(end.prompt)
    text = start_embedding + alpha * (end_embedding - start_embedding)
    text = torch.cat([embed(""), text])
    guidance = start.guidance * (1 - alpha) + end.guidance * alpha

    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)
    pixels = 2.0 * pixels.permute(2, 0, 1)[None] - 1.0
    posterior = pipe.vae.encode(pixels).latent_dist
    init_latents = 0.18215 * posterior.sample(generator=torch.Generator().manual_seed(start.seed))

    scheduler = scheduler_class("PNDM").from_config(pipe.scheduler.config)
    scheduler.set_timesteps(steps)
    offset = scheduler.config.steps_offset
    strength = (1 - alpha) * start.denoising + alpha * end.denoising
    init_timestep = min(int(steps * strength) + offset, steps)
    noise_a = torch.randn(init_latents.shape, generator=torch.Generator().manual_seed(start.seed))
    noise_b = torch.randn(init_latents.shape, generator=torch.Generator().manual_seed(end.seed))
    noise = original_slerp(alpha, noise_a, noise_b)
    timestep = scheduler.timesteps[-init_timestep]
    latents = scheduler.add_noise(init_latents, noise, torch.tensor([timestep]))
    for t in scheduler.timesteps[max(steps - init_timestep + offset, 0) :]:
        model_input = scheduler.scale_model_input(torch.cat([latents] * 2), t)
        prediction = pipe.unet(model_input, t, encoder_hidden_states=text).sample
        uncond, cond = prediction.chunk(2)
        latents = scheduler.step(uncond + guidance * (cond - uncond), t, latents).prev_sample
    return latents
