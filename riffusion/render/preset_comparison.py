"""Comparing the generation presets by ear and by number: the same clips rendered with each.

A fixed set of clips (prompt, seed, and seed image or none) is rendered with every preset; each
clip gets its seconds (diffusion, decoding and phase reconstruction: seed image to audio) and its
spectral distance to the quality preset's clip of the same inputs. write_listening_page() lays
them out side by side as one static HTML page (no scripts, nothing fetched from elsewhere), with
the spectrograms and players, and the table of figures.

Random weights make noise, so only the timings mean anything on them; the point is for whoever has
the real weights to hear and measure what fast and realtime give up.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from riffusion.diffusion.inputs import InferenceInput, PromptInput
from riffusion.diffusion.presets import PRESETS, PresetName, get_preset
from riffusion.seeds.registry import load_seed_image
from riffusion.spectrogram.image import mel_amplitudes_from_image, save_spectrogram_image
from riffusion.spectrogram.params import SpectrogramParams
from riffusion.spectrogram.reconstruction import Quality

if TYPE_CHECKING:
    from riffusion.diffusion.pipeline import RiffusionPipeline

#: Mel power below the reference clip's peak by more than this is counted as this, dB: silence
#: differs from silence by nothing, whatever the tiny levels in it.
FLOOR_DB = 80.0
#: Denoising and guidance of every clip: the original app's defaults.
DENOISING = 0.75
GUIDANCE = 7.0


@dataclass(frozen=True)
class ComparisonClip:
    """One clip of the comparison.

    Attributes:
        name: a short name, used for its files.
        prompt: what to generate.
        seed: the diffusion seed.
        seed_image_id: a built-in seed image to re-imagine (img2img), or None for text-to-music
            (512 columns, 5.12 s).
    """

    name: str
    prompt: str
    seed: int
    seed_image_id: str | None


#: The fixed set: two seed loops re-imagined as the app does, and one clip from noise.
CLIPS = (
    ComparisonClip("lofi", "lofi hip hop beat with jazzy electric piano", 101, "og_beat"),
    ComparisonClip("swing", "smoky jazz club, upright bass and brushed drums", 202, "swing"),
    ComparisonClip("folk", "acoustic folk guitar strumming, warm and close", 303, None),
)


@dataclass(frozen=True)
class RenderedClip:
    """A clip rendered with one preset.

    Attributes:
        clip: what was rendered.
        preset: the preset's name.
        image: the spectrogram.
        seconds: wall time from inputs to audio, s.
        distance_db: spectral distance to the quality preset's clip, dB (0 for quality).
        image_file, audio_file: where they were written, relative to the page.
    """

    clip: ComparisonClip
    preset: PresetName
    image: Image.Image
    seconds: float
    distance_db: float
    image_file: str
    audio_file: str


def spectral_distance_db(
    image: Image.Image, reference: Image.Image, params: SpectrogramParams
) -> float:
    """Log-spectral distance of two spectrogram images of the same size, dB: the RMS of the
    difference of their mel power in dB, both floored at FLOOR_DB below reference's peak."""
    if image.size != reference.size:
        raise ValueError(f"images of different sizes: {image.size} and {reference.size}")
    power = [mel_amplitudes_from_image(each, params) ** 2 for each in (image, reference)]
    peak = max(float(power[1].max()), np.finfo(np.float32).tiny)
    floor = peak * 10 ** (-FLOOR_DB / 10)
    decibels = [10 * np.log10(np.maximum(each, floor) / peak) for each in power]
    return float(np.sqrt(np.mean((decibels[0] - decibels[1]) ** 2)))


def render_comparison(
    pipeline: RiffusionPipeline,
    folder: Path,
    presets: Sequence[PresetName],
    clips: Sequence[ComparisonClip] = CLIPS,
    quality: Quality = "fast",
    progress: Callable[[str], None] | None = None,
) -> list[RenderedClip]:
    """Render clips with quality and each of presets (quality first: the others are measured
    against it), writing folder/NAME/PRESET.png and .wav. Each preset first runs one short
    warm-up generation, so the timings leave out one-time set-up."""
    order = ["quality", *(name for name in presets if name != "quality")]
    params = pipeline.spectrogram_params
    rendered: list[RenderedClip] = []
    references: dict[str, Image.Image] = {}
    for name in order:
        _warm_up(pipeline, name, clips[0])
        for clip in clips:
            if progress is not None:
                progress(f"{clip.name}: {name}")
            started = time.perf_counter()
            image = _generate(pipeline, clip, name)
            audio = pipeline.audio_from_image(image, quality=quality)
            seconds = time.perf_counter() - started
            references.setdefault(clip.name, image)
            directory = folder / clip.name
            directory.mkdir(parents=True, exist_ok=True)
            save_spectrogram_image(image, directory / f"{name}.png")
            audio.save(directory / f"{name}.wav")
            rendered.append(
                RenderedClip(
                    clip=clip,
                    preset=get_preset(name).name,
                    image=image,
                    seconds=seconds,
                    distance_db=spectral_distance_db(image, references[clip.name], params),
                    image_file=f"{clip.name}/{name}.png",
                    audio_file=f"{clip.name}/{name}.wav",
                )
            )
    return rendered


@dataclass(frozen=True)
class PresetSummary:
    """A preset's figures over the clips: mean seconds per clip, its speed-up over quality, and
    its mean spectral distance to quality (dB)."""

    preset: PresetName
    seconds: float
    speed_up: float
    distance_db: float


def summarize(rendered: Sequence[RenderedClip]) -> list[PresetSummary]:
    """One PresetSummary per preset in rendered, in the order of PRESETS."""
    summaries = []
    by_preset = {name: [each for each in rendered if each.preset == name] for name in PRESETS}
    quality = by_preset["quality"]
    quality_s = float(np.mean([each.seconds for each in quality])) if quality else float("nan")
    for name, clips in by_preset.items():
        if not clips:
            continue
        seconds = float(np.mean([each.seconds for each in clips]))
        summaries.append(
            PresetSummary(
                preset=get_preset(name).name,
                seconds=seconds,
                speed_up=quality_s / seconds,
                distance_db=float(np.mean([each.distance_db for each in clips])),
            )
        )
    return summaries


def summary_table(summaries: Sequence[PresetSummary]) -> str:
    """The summaries as a Markdown table."""
    lines = [
        "| preset | seconds per clip | speed-up over quality | spectral distance to quality, dB |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {each.preset} | {each.seconds:.2f} | {each.speed_up:.1f}x | {each.distance_db:.2f} |"
        for each in summaries
    ]
    return "\n".join(lines)


def write_listening_page(folder: Path, rendered: Sequence[RenderedClip], description: str) -> Path:
    """folder/index.html: per clip, each preset's spectrogram, player, seconds and distance side
    by side; then the summary table. Everything it shows lies in folder. Returns its path."""
    presets = [name for name in PRESETS if any(each.preset == name for each in rendered)]
    rows = []
    for clip in dict.fromkeys(each.clip for each in rendered):
        cells = []
        for name in presets:
            match = [each for each in rendered if each.clip == clip and each.preset == name]
            if not match:
                cells.append("<td></td>")
                continue
            each = match[0]
            cells.append(
                "<td>"
                f'<img src="{html.escape(each.image_file)}" width="256" height="256" '
                f'alt="{html.escape(name)} spectrogram of {html.escape(clip.name)}">'
                f'<audio controls preload="none" src="{html.escape(each.audio_file)}"></audio>'
                f"<p>{each.seconds:.2f} s · {each.distance_db:.2f} dB</p>"
                "</td>"
            )
        source = clip.seed_image_id or "noise (text to music)"
        rows.append(
            f'<tr><th scope="row">{html.escape(clip.prompt)}<br><small>seed {clip.seed}, '
            f"from {html.escape(source)}</small></th>{''.join(cells)}</tr>"
        )
    summary_rows = "".join(
        f"<tr><td>{each.preset}</td><td>{each.seconds:.2f}</td><td>{each.speed_up:.1f}x</td>"
        f"<td>{each.distance_db:.2f}</td></tr>"
        for each in summarize(rendered)
    )
    headers = "".join(
        f'<th scope="col">{name}<br><small>{html.escape(PRESETS[name].summary)}</small></th>'
        for name in presets
    )
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Riffusion presets compared</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 2rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.5rem; vertical-align: top; text-align: left; }}
td img {{ display: block; image-rendering: pixelated; }}
audio {{ width: 256px; margin-top: 0.4rem; }}
small {{ color: #666; font-weight: normal; }}
</style>
</head>
<body>
<h1>Riffusion presets compared</h1>
<p>{html.escape(description)}</p>
<p>Each cell: the spectrogram, its audio, the seconds from inputs to audio, and the spectral
distance to the quality preset's clip of the same inputs (RMS difference of mel power in dB,
floored {FLOOR_DB:g} dB below the quality clip's peak; 0 for quality itself). Denoising
{DENOISING}, guidance {GUIDANCE}; each preset at its own step count.</p>
<table>
<thead><tr><th scope="col">clip</th>{headers}</tr></thead>
<tbody>{"".join(rows)}</tbody>
</table>
<h2>Summary</h2>
<table>
<thead><tr><th scope="col">preset</th><th scope="col">seconds per clip</th>
<th scope="col">speed-up over quality</th>
<th scope="col">spectral distance to quality, dB</th></tr></thead>
<tbody>{summary_rows}</tbody>
</table>
</body>
</html>
"""
    path = folder / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def _generate(pipeline: RiffusionPipeline, clip: ComparisonClip, preset: str) -> Image.Image:
    recipe = get_preset(preset)
    prompt = PromptInput(clip.prompt, seed=clip.seed, denoising=DENOISING, guidance=GUIDANCE)
    if clip.seed_image_id is None:
        return pipeline.txt2img(prompt, num_inference_steps=recipe.steps, preset=recipe.name)
    inputs = InferenceInput(
        start=prompt,
        end=prompt,
        alpha=0.0,
        num_inference_steps=recipe.steps,
        seed_image_id=clip.seed_image_id,
        preset=recipe.name,
    )
    return pipeline.riffuse(inputs, load_seed_image(clip.seed_image_id))


def _warm_up(pipeline: RiffusionPipeline, preset: str, clip: ComparisonClip) -> None:
    """One generation of the shortest schedule that runs the UNet (see the server's warm-up)."""
    prompt = PromptInput("warm-up", seed=0, denoising=1.0, guidance=GUIDANCE)
    inputs = InferenceInput(
        start=prompt, end=prompt, alpha=0.0, num_inference_steps=2, preset=get_preset(preset).name
    )
    image = pipeline.riffuse(inputs, load_seed_image(clip.seed_image_id or "og_beat"))
    pipeline.audio_from_image(image)
