"""Validation renders: fixed prompts and seeds rendered as the run goes, so progress can be
heard. Each render is a spectrogram PNG (with its EXIF) and the audio it plays as, in
RUN_DIR/samples/step-N/."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from riffusion.diffusion.inputs import PromptInput
from riffusion.diffusion.pipeline import RiffusionPipeline
from riffusion.spectrogram.files import save_image

#: Guidance of the renders: the pipeline's usual strength.
VALIDATION_GUIDANCE = 7.0


@dataclass(frozen=True)
class Render:
    """One validation render's files."""

    prompt: str
    seed: int
    image: Path
    audio: Path


def render_name(index: int, prompt: str, seed: int) -> str:
    """The file stem of a render: prompt number, a short form of the prompt, the seed."""
    short = re.sub(r"[^A-Za-z0-9]+", "-", prompt).strip("-")[:40] or "empty"
    return f"{index:02d}-{short}-seed{seed}"


def render_validation(
    pipeline: RiffusionPipeline,
    folder: Path,
    prompts: Sequence[str],
    seeds: Sequence[int],
    steps: int,
    width: int,
) -> list[Render]:
    """Render every prompt with every seed (text to spectrogram, width columns) into folder."""
    renders = []
    for index, prompt in enumerate(prompts):
        for seed in seeds:
            with torch.no_grad():
                image = pipeline.txt2img(
                    PromptInput(prompt=prompt, seed=seed, guidance=VALIDATION_GUIDANCE),
                    width=width,
                    num_inference_steps=steps,
                    use_reweighting=False,
                )
            stem = folder / render_name(index, prompt, seed)
            image_path = save_image(image, stem.with_suffix(".png"), overwrite=True)
            audio_path = pipeline.audio_from_image(image).save(stem.with_suffix(".wav"))
            renders.append(Render(prompt, seed, image_path, audio_path))
    return renders
