"""Generation presets: how much work a clip gets, traded against how long it takes.

Each preset is a complete recipe for the diffusion (scheduler, steps, UNet feature caching,
guidance, which UNet and autoencoder weights), defined once here; the CLI (--preset), the API's
`preset` field, the jam's settings and the web app all name them. Importable without diffusers.

- quality: the original riffusion's path, exactly as without a preset: at denoising 0.75, 37 UNet
  calls on two rows (guidance) per clip.
- fast: fewer steps of a better solver, and DeepCache between them: 15 UNet calls on two rows,
  5 of them through the whole UNet and 10 through its shallowest branch (about a tenth of it).
- realtime: a latent consistency model (LCM-LoRA) at one step without guidance, and the tiny
  autoencoder TAESD: one UNet call on one row.

How they sound on riffusion-model-v1 has not been measured here (no weights on this machine):
`riffusion compare-presets` renders the same clips with each, side by side, for whoever has them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from riffusion.errors import RiffusionError

PresetName = Literal["quality", "fast", "realtime"]

#: How img2img picks its timesteps: "truncate" runs the last int(steps * denoising) of a steps
#: schedule (the original riffusion's arithmetic); "strength" spreads steps over the part of
#: the schedule that denoising covers, so every step runs (diffusers' LCM img2img).
Img2ImgSchedule = Literal["truncate", "strength"]


@dataclass(frozen=True)
class DeepCacheSettings:
    """UNet feature caching (riffusion.diffusion.deep_cache).

    Attributes:
        interval: the whole UNet runs every interval-th step; the shallow branch between.
        shallow_layers: up layers (and their skip connections) the shallow branch recomputes.
    """

    interval: int
    shallow_layers: int


@dataclass(frozen=True)
class Preset:
    """A recipe for the diffusion of one clip.

    Attributes:
        name: what the CLI, the API and the web app call it.
        summary: what it trades, in one line (for --help and the web app).
        steps: the step count used when none is given. With the "truncate" schedule img2img runs
            int(steps * denoising) of them, with "strength" all of them.
        max_steps: the most steps it accepts.
        scheduler: the scheduler it runs (a schedulers.SCHEDULERS name); None: the model's own,
            or the one asked for (the scheduler option), as without a preset.
        scheduler_config: settings of that scheduler beyond the model's noise schedule.
        img2img: how img2img picks its timesteps (Img2ImgSchedule).
        deep_cache: UNet feature caching, or None for a UNet call per step.
        guided: whether classifier-free guidance runs; without it the guidance scale and the
            negative prompt play no part, and each request is one UNet row instead of two.
        lcm_lora: whether the UNet carries the latent consistency LoRA (fused).
        tiny_vae: whether TAESD replaces the model's autoencoder for encoding and decoding.
    """

    name: PresetName
    summary: str
    steps: int
    max_steps: int
    scheduler: str | None = None
    scheduler_config: tuple[tuple[str, object], ...] = ()
    img2img: Img2ImgSchedule = "truncate"
    deep_cache: DeepCacheSettings | None = None
    guided: bool = True
    lcm_lora: bool = False
    tiny_vae: bool = False

    @property
    def exact(self) -> bool:
        """Whether this is the original path, untouched (the quality preset)."""
        return self == QUALITY


#: The original riffusion's generation: the model's scheduler (PNDM for riffusion-model-v1) at
#: 50 steps, guidance, the full autoencoder. The reference the others are measured against.
QUALITY = Preset(
    name="quality",
    summary="the original path: 50 steps of the model's scheduler with guidance",
    steps=50,
    max_steps=1000,
)

#: DPM-Solver++ (2M, Karras sigmas) reaches at about 20 steps what first-order schedulers need
#: 50 for; DeepCache then runs the whole UNet on every third step only, and the shallowest branch
#: (the input convolution and the last up layer) in between. Guidance and the full autoencoder
#: stay. Costs: fewer, larger steps and reused deep features smooth away some fine detail.
FAST = Preset(
    name="fast",
    summary="20 steps of DPM-Solver++ with DeepCache (UNet features reused for 3 steps)",
    steps=20,
    max_steps=1000,
    scheduler="DPMSolverMultistep",
    scheduler_config=(
        ("algorithm_type", "dpmsolver++"),
        ("solver_order", 2),
        ("use_karras_sigmas", True),
    ),
    deep_cache=DeepCacheSettings(interval=3, shallow_layers=1),
)

#: A latent consistency model predicts the clean latents from any noise level in one UNet call;
#: the LCM-LoRA makes one of Stable Diffusion v1.5 without retraining the model. It is distilled
#: with guidance built in, so no guidance batch runs (one UNet row per request), and TAESD, a
#: distilled autoencoder about 30x lighter, encodes and decodes. Costs: LCM samples are smoother
#: and less varied than 50-step ones, guidance and negative prompts have no effect, and TAESD
#: blurs the finest spectrogram texture. The LoRA was trained on SD 1.5, not on riffusion's
#: fine-tune: how well it carries over is for compare-presets to tell.
REALTIME = Preset(
    name="realtime",
    summary="1 step of a latent consistency model (LCM-LoRA), no guidance, the tiny TAESD "
    "autoencoder",
    steps=1,
    max_steps=8,
    scheduler="LCM",
    img2img="strength",
    guided=False,
    lcm_lora=True,
    tiny_vae=True,
)

PRESETS: dict[str, Preset] = {preset.name: preset for preset in (QUALITY, FAST, REALTIME)}
PRESET_NAMES: tuple[PresetName, ...] = ("quality", "fast", "realtime")


def get_preset(name: str) -> Preset:
    """The preset called name.

    Raises:
        RiffusionError: for an unknown name.
    """
    preset = PRESETS.get(name) if isinstance(name, str) else None
    if preset is None:
        raise RiffusionError(f"unknown preset {name!r}: use one of {', '.join(PRESET_NAMES)}")
    return preset


def preset_steps(name: str, steps: int | None) -> int:
    """The step count of a generation with preset name: steps when given, else the preset's."""
    return get_preset(name).steps if steps is None else steps


def resolve_preset(
    preset: str | None, steps: int | None, default: str = "quality"
) -> tuple[PresetName, int]:
    """The preset and step count of a request that may leave either out (the API, the jam).

    The preset is the one named, else default. The steps are those given, else the preset's
    own; except that a request naming no preset runs a fast or realtime default at that
    preset's own steps whatever it gives: its step count was meant for the original's schedule
    (the original web app sends 50 with every request).

    Raises:
        RiffusionError: for an unknown preset.
    """
    chosen = get_preset(default if preset is None else preset)
    if steps is None or (preset is None and not chosen.exact):
        return chosen.name, chosen.steps
    return chosen.name, steps


def check_preset_steps(name: str, steps: int, what: str = "num_inference_steps") -> None:
    """RiffusionError naming what unless steps suits preset name (at most its max_steps)."""
    preset = get_preset(name)
    if steps > preset.max_steps:
        raise RiffusionError(
            f"{what} must be at most {preset.max_steps} with the {name} preset, got {steps}"
        )
