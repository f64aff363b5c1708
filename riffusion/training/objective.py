"""The latent-diffusion training objective, as diffusers' training scripts define it.

Clean latents are noised to a random timestep of the checkpoint's training schedule; the UNet
predicts the noise ("epsilon") or the velocity ("v_prediction"), whichever the scheduler config
names, and is scored by mean squared error, optionally weighted by Min-SNR.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
from diffusers.training_utils import compute_snr

from riffusion.errors import RiffusionError

PREDICTION_TYPES = ("epsilon", "v_prediction")


def training_scheduler(config: dict) -> DDPMScheduler:
    """The noise schedule the checkpoint was trained with (its scheduler's betas and
    prediction type), as a DDPM scheduler."""
    scheduler = DDPMScheduler.from_config(config)
    if scheduler.config["prediction_type"] not in PREDICTION_TYPES:
        raise RiffusionError(
            f"the model's scheduler predicts {scheduler.config['prediction_type']!r}; training "
            f"supports {' and '.join(PREDICTION_TYPES)}"
        )
    return scheduler


def training_target(
    scheduler: DDPMScheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """What the UNet should output for latents noised with noise at timesteps."""
    if scheduler.config["prediction_type"] == "v_prediction":
        return scheduler.get_velocity(latents, noise, cast(torch.IntTensor, timesteps))
    return noise


def diffusion_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    scheduler: DDPMScheduler,
    timesteps: torch.Tensor,
    snr_gamma: float | None,
) -> torch.Tensor:
    """The batch's loss: per-sample mean squared error (over channels and pixels), weighted by
    min(SNR, gamma) / SNR (epsilon) or / (SNR + 1) (v-prediction) when snr_gamma is set, then
    averaged. Computed in float32."""
    errors = F.mse_loss(prediction.float(), target.float(), reduction="none")
    per_sample = errors.mean(dim=tuple(range(1, errors.ndim)))
    if snr_gamma is None:
        return per_sample.mean()
    snr = compute_snr(scheduler, timesteps).float()
    clipped = torch.clamp(snr, max=snr_gamma)
    if scheduler.config["prediction_type"] == "v_prediction":
        weights = clipped / (snr + 1)
    else:
        weights = clipped / snr
    return (per_sample * weights).mean()
