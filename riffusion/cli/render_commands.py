"""Long-form commands: `riffusion riff`, `riffusion interpolate` and `riffusion jam`.

Each builds a plan of clips (riffusion.render.longform), checks everything that does not need the
model, loads it, and renders the clips with a progress bar, joining them seamlessly. Ctrl-C stops
the render wherever it is: a clip still in diffusion is dropped, one being joined is finished
first, and the clips done are written as a complete file (a Ctrl-C while it is written waits for
it); the command then exits with status 130. SIGTERM does the same, with status 143.
"""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from riffusion.audio import format_for_extension
from riffusion.cli.common import (
    PATH,
    check_output_dir,
    check_outputs,
    exit_status,
    load_audio,
    overwrite_option,
    prepare_output_dir,
    quality_option,
)
from riffusion.cli.model_options import (
    check_schedule,
    check_seed_images_dir,
    load_model,
    model_options,
    scheduler_option,
    seed_image_for,
    seed_images_option,
    seed_value,
    steps_option,
)
from riffusion.diffusion.inputs import PromptInput
from riffusion.diffusion.model_settings import ModelSettings
from riffusion.errors import RiffusionError
from riffusion.interrupts import interrupts_held, signal_of
from riffusion.jam import JamSettings
from riffusion.render.engine import ClipSource, LoopSource, Normalization, Renderer, RenderPlan
from riffusion.render.longform import (
    STEREO_MODES,
    StereoMode,
    TrackSource,
    beat_grid,
    clip_width,
    columns_for,
    interpolation_alphas,
    plan_interpolation,
    plan_jam,
    plan_riff,
)
from riffusion.seeds.registry import DEFAULT_SEED_ID
from riffusion.spectrogram.params import SpectrogramParams
from riffusion.spectrogram.reconstruction import Quality

if TYPE_CHECKING:
    from riffusion.diffusion.pipeline import RiffusionPipeline

output_option = click.option(
    "-o", "--output", type=PATH, required=True, help="Audio file to write (wav, flac, ogg, mp3)."
)
images_dir_option = click.option(
    "--images-dir",
    type=PATH,
    help="Folder to keep every spectrogram in (clip_NNNN.png; riff adds source_NNNN.png).",
)
guidance_option = click.option(
    "--guidance",
    type=float,
    default=7.0,
    show_default=True,
    help="How strongly the prompt steers; 1 or less turns guidance off.",
)
negative_option = click.option("--negative", help="Negative prompt: what to steer away from.")
seed_image_option = click.option(
    "--seed-image",
    default=DEFAULT_SEED_ID,
    show_default=True,
    help="Seed image every clip starts from: a seed id (see `riffusion seeds`, and "
    "--seed-images) or an image file.",
)


class ProgressDisplay:
    """A rich progress bar over the clips of a plan, advanced per diffusion step, with an ETA."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self.progress = progress
        self.task = task

    def step(self, index: int, done: int, total: int) -> None:
        """The Renderer's progress callback: clip index has done of total steps."""
        fraction = done / total if total else 1.0
        self.progress.update(self.task, completed=index + fraction, clip=index + 1)


def render_to_file(
    plan: RenderPlan,
    source: ClipSource,
    output: Path,
    images_dir: Path | None,
    load: Callable[[], RiffusionPipeline],
    quality: Quality,
    scheduler: str | None,
    normalize: Normalization,
    description: str,
) -> None:
    """Load the model (load()), render plan with a progress bar, and write output; on Ctrl-C or
    SIGTERM, write what was finished and exit with status 130 or 143."""
    num_clips = len(plan.clips)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("clip {task.fields[clip]}/" + str(num_clips)),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    renderer = None
    # The signal that stopped the render, if one did.
    stopped_by: int | None = None
    try:
        renderer = Renderer(
            load(),
            plan,
            source,
            quality=quality,
            scheduler=scheduler,
            images_dir=images_dir,
            normalize=normalize,
        )
        with Progress(*columns, console=Console(stderr=True)) as progress:
            task = progress.add_task(description, total=num_clips, clip=1)
            display = ProgressDisplay(progress, task)
            for _ in renderer.render(display.step):
                pass
    except KeyboardInterrupt as interrupt:
        stopped_by = signal_of(interrupt)
    context = click.get_current_context()
    if renderer is None or not renderer.clips_done:
        click.echo("Interrupted before the first clip was finished; nothing written.", err=True)
        context.exit(exit_status(signal.SIGINT if stopped_by is None else stopped_by))
    done = renderer.clips_done
    # The last join and the writing take a moment; cut short, they would lose the whole render.
    with interrupts_held(deliver=False) as held:
        audio = renderer.finish()
        audio.save(output)
    wrote = f"{output} ({audio.duration_s:.2f} s, {done} of {num_clips} clips)"
    if stopped_by is None and held.signals:
        stopped_by = held.signals[0]
    if stopped_by is not None:
        click.echo(f"Interrupted: wrote {wrote}.", err=True)
        context.exit(exit_status(stopped_by))
    click.echo(f"Wrote {wrote}")


def check_render_outputs(
    output: Path, images_dir: Path | None, num_clips: int, overwrite: bool
) -> None:
    """Refuse bad or existing outputs before any work: the audio file and its format, the images
    folder (created here) and the images in it."""
    format_for_extension(output.name)
    outputs = [output]
    if images_dir is not None:
        check_output_dir(images_dir)
        outputs += [images_dir / f"clip_{index:04d}.png" for index in range(num_clips)]
    check_outputs(outputs, overwrite)
    if images_dir is not None:
        prepare_output_dir(images_dir)


# --- riff -------------------------------------------------------------------------------------


@click.command("riff")
@click.argument("input_path", metavar="INPUT", type=PATH)
@output_option
@click.option("--prompt", required=True, help="What to turn the track into.")
@click.option(
    "--denoising",
    type=float,
    default=0.55,
    show_default=True,
    help="How much of the track is re-imagined, 0 (none) to 1 (all).",
)
@click.option("--seed", type=int, help="Random seed of every clip; a random one when omitted.")
@guidance_option
@steps_option
@negative_option
@scheduler_option
@click.option("--start-time", type=float, default=0.0, show_default=True, help="Where to start, s.")
@click.option("--duration", type=float, help="How much of the track to use, s (default: all).")
@click.option(
    "--clip-duration",
    type=float,
    default=5.12,
    show_default=True,
    help="Length of each clip, s, a multiple of 0.64 s.",
)
@click.option(
    "--overlap",
    type=float,
    default=0.2,
    show_default=True,
    help="Overlap of consecutive clips, s; the joins are crossfaded over it.",
)
@click.option("--prompt-end", help="Interpolate along the track towards this prompt.")
@click.option("--seed-end", type=int, help="Interpolate along the track towards this seed.")
@click.option(
    "--denoising-end", type=float, help="Interpolate along the track towards this denoising."
)
@click.option(
    "--bpm",
    help="Tempo of the track (a number, or 'auto' to estimate it): overlaps then end on beats.",
)
@click.option(
    "--stereo",
    type=click.Choice(STEREO_MODES),
    default="pan",
    show_default=True,
    help="Stereo input: 'pan' re-imagines the mid channel (the model is mono) and puts the "
    "track's panning back per frequency and time, so sounds stay where they were (width from "
    "room or phase effects narrows); 'mono' writes mono.",
)
@images_dir_option
@model_options
@quality_option
@overwrite_option
@click.option(
    "--ray",
    "on_ray",
    is_flag=True,
    help="INPUT and --output are folders: riff every track of INPUT, spread over the Ray "
    "cluster of RAY_ADDRESS (a local one when unset) as OUTPUT/NAME.wav, each as riff would "
    "alone, with one seed (the riffusion[ray] extra; docs/deploy.md).",
)
def riff(on_ray: bool, **values: Any) -> None:
    """Re-imagine the track INPUT, of any length, as --prompt, and write it to --output.

    The track is cut into overlapping clips; each clip's spectrogram is re-imagined (img2img) and
    the clips are joined without clicks or jumps in level. The output is as long as the input
    (or --duration), at 44.1 kHz. With --prompt-end, --seed-end or --denoising-end the clips move
    from one setting to the other along the track.
    """
    if on_ray:
        from riffusion.cli.ray_riff import riff_folder_on_ray

        riff_folder_on_ray(values)
    else:
        riff_track(**values)


def riff_track(
    input_path: Path,
    output: Path,
    prompt: str,
    denoising: float,
    seed: int | None,
    guidance: float,
    steps: int | None,
    negative: str | None,
    scheduler: str | None,
    start_time: float,
    duration: float | None,
    clip_duration: float,
    overlap: float,
    prompt_end: str | None,
    seed_end: int | None,
    denoising_end: float | None,
    bpm: str | None,
    stereo: StereoMode,
    images_dir: Path | None,
    model_settings: ModelSettings,
    quality: Quality,
    overwrite: bool,
    load: Callable[[ModelSettings], RiffusionPipeline] = load_model,
) -> None:
    """`riffusion riff` on one track, its options as arguments; load loads the model."""
    params = SpectrogramParams()
    steps, scheduler = check_schedule(steps, scheduler, model_settings.preset)
    if start_time < 0:
        raise RiffusionError(f"--start-time must be at least 0, got {start_time:g}")
    if duration is not None and duration <= 0:
        raise RiffusionError(f"--duration must be positive, got {duration:g}")
    width = clip_width(clip_duration, params)
    if overlap < 0:
        raise RiffusionError(f"--overlap must be at least 0, got {overlap:g}")
    overlap_columns = round(columns_for(overlap, params))
    if overlap_columns > width // 2:
        raise RiffusionError(
            f"--overlap must be at most half the clip duration ({clip_duration / 2:g} s), "
            f"got {overlap:g}"
        )
    seed = seed_value(seed, "--seed")
    start = PromptInput(prompt, seed, negative, denoising, guidance)
    end = None
    if prompt_end is not None or seed_end is not None or denoising_end is not None:
        end = PromptInput(
            prompt if prompt_end is None else prompt_end,
            seed if seed_end is None else seed_value(seed_end, "--seed-end"),
            negative,
            denoising if denoising_end is None else denoising_end,
            guidance,
        )

    track = load_audio(input_path)
    if start_time >= track.duration_s:
        raise RiffusionError(
            f"--start-time {start_time:g} s is past the end of {input_path} "
            f"({track.duration_s:.2f} s)"
        )
    track = track.slice(start_time, None if duration is None else start_time + duration)
    track = track.resample(params.sample_rate)
    beats = None
    if bpm is not None:
        beats = beat_grid(track, None if bpm.strip().lower() == "auto" else _bpm_number(bpm))
        click.echo(f"Joins on the beat at {beats.bpm:.2f} BPM", err=True)
    plan = plan_riff(
        track.num_frames,
        params,
        width,
        overlap_columns,
        start,
        end,
        steps,
        beats,
        preset=model_settings.preset,
    )
    check_render_outputs(output, images_dir, len(plan.clips), overwrite)
    if track.num_channels == 2 and stereo == "mono":
        click.echo("Stereo input: writing mono (--stereo mono)", err=True)

    click.echo(f"Seed {seed}: {len(plan.clips)} clips for {plan.duration_s:.2f} s", err=True)
    render_to_file(
        plan,
        TrackSource(track, params, width, stereo),
        output,
        images_dir,
        functools.partial(load, model_settings),
        quality,
        scheduler,
        normalize="keep",
        description="Riffing",
    )


def _bpm_number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise RiffusionError(f"--bpm must be a number or 'auto', got {text!r}") from None


# --- interpolate ------------------------------------------------------------------------------


@click.command("interpolate")
@click.option("--start", "start_prompt", required=True, help="Prompt at the start (alpha 0).")
@click.option("--end", "end_prompt", required=True, help="Prompt at the end (alpha 1).")
@output_option
@click.option(
    "--num-steps",
    type=int,
    default=10,
    show_default=True,
    help="Clips, one per alpha from 0 to 1.",
)
@click.option("--seed-start", type=int, help="Seed at the start; a random one when omitted.")
@click.option("--seed-end", type=int, help="Seed at the end (default: --seed-start).")
@seed_image_option
@seed_images_option
@click.option(
    "--denoising",
    type=float,
    default=0.75,
    show_default=True,
    help="How much of the seed image is re-imagined, 0 (none) to 1 (all).",
)
@guidance_option
@negative_option
@click.option(
    "--alpha-power",
    type=float,
    default=1.0,
    show_default=True,
    help="Alphas are (i / (num_steps - 1)) ** power: above 1 lingers near the start.",
)
@steps_option
@scheduler_option
@images_dir_option
@model_options
@quality_option
@overwrite_option
def interpolate(
    start_prompt: str,
    end_prompt: str,
    output: Path,
    num_steps: int,
    seed_start: int | None,
    seed_end: int | None,
    seed_image: str,
    seed_images_dir: Path | None,
    denoising: float,
    guidance: float,
    negative: str | None,
    alpha_power: float,
    steps: int | None,
    scheduler: str | None,
    images_dir: Path | None,
    model_settings: ModelSettings,
    quality: Quality,
    overwrite: bool,
) -> None:
    """A transition from --start to --end: one seed-image loop per alpha, joined seamlessly.

    As the original riffusion's interpolation page: each clip is the seed image re-imagined at
    its alpha between the two prompts and seeds; clip 1 is the start alone, the last the end.
    """
    params = SpectrogramParams()
    steps, scheduler = check_schedule(steps, scheduler, model_settings.preset)
    alphas = interpolation_alphas(num_steps, alpha_power)
    seed_start = seed_value(seed_start, "--seed-start")
    seed_end = seed_start if seed_end is None else seed_value(seed_end, "--seed-end")
    start = PromptInput(start_prompt, seed_start, negative, denoising, guidance)
    end = PromptInput(end_prompt, seed_end, negative, denoising, guidance)
    check_seed_images_dir(seed_images_dir)
    source = LoopSource(seed_image_for(seed_image, seed_images_dir), params)
    plan = plan_interpolation(
        start,
        end,
        alphas,
        source.loop_columns,
        params,
        steps,
        _seed_id(seed_image),
        preset=model_settings.preset,
    )
    check_render_outputs(output, images_dir, len(plan.clips), overwrite)

    click.echo(
        f"Seeds {seed_start} to {seed_end}: {len(plan.clips)} clips for {plan.duration_s:.2f} s",
        err=True,
    )
    render_to_file(
        plan,
        source,
        output,
        images_dir,
        functools.partial(load_model, model_settings),
        quality,
        scheduler,
        normalize="peak",
        description="Interpolating",
    )


# --- jam --------------------------------------------------------------------------------------


@click.command("jam")
@click.option(
    "--prompt",
    "prompts",
    multiple=True,
    required=True,
    help="A prompt of the set; repeat it for more, played in order, evenly spread.",
)
@click.option(
    "--duration", type=float, default=120.0, show_default=True, help="Length of the set, s."
)
@output_option
@seed_image_option
@seed_images_option
@click.option(
    "--velocity",
    type=float,
    default=0.25,
    show_default=True,
    help="How far alpha moves per clip, in (0, 1]: 0.25 sweeps between seeds every 4 clips.",
)
@click.option(
    "--denoising",
    type=float,
    default=0.75,
    show_default=True,
    help="How much of the seed image is re-imagined, 0 (none) to 1 (all).",
)
@guidance_option
@click.option("--seed", type=int, help="First seed of the jam; a random one when omitted.")
@steps_option
@scheduler_option
@images_dir_option
@model_options
@quality_option
@overwrite_option
def jam(
    prompts: tuple[str, ...],
    duration: float,
    output: Path,
    seed_image: str,
    seed_images_dir: Path | None,
    velocity: float,
    denoising: float,
    guidance: float,
    seed: int | None,
    steps: int | None,
    scheduler: str | None,
    images_dir: Path | None,
    model_settings: ModelSettings,
    quality: Quality,
    overwrite: bool,
) -> None:
    """An offline jam set of --duration seconds, from the same engine as the live jam.

    The set starts on the first --prompt and wanders between seeds; each further prompt is queued
    at its share of the set and, as in the live jam, takes over after a transition.
    """
    params = SpectrogramParams()
    steps, scheduler = check_schedule(steps, scheduler, model_settings.preset)
    if not duration > 0:
        raise RiffusionError(f"--duration must be positive, got {duration:g}")
    seed = seed_value(seed, "--seed")
    check_seed_images_dir(seed_images_dir)
    source = LoopSource(seed_image_for(seed_image, seed_images_dir), params)
    settings = JamSettings(
        denoising=denoising,
        guidance=guidance,
        num_inference_steps=steps,
        seed_image_id=_seed_id(seed_image),
        alpha_velocity=velocity,
        preset=model_settings.preset,
    )
    plan = plan_jam(prompts, duration, seed, settings, source.loop_columns, params)
    check_render_outputs(output, images_dir, len(plan.clips), overwrite)

    click.echo(f"Seed {seed}: {len(plan.clips)} clips for {plan.duration_s:.2f} s", err=True)
    render_to_file(
        plan,
        source,
        output,
        images_dir,
        functools.partial(load_model, model_settings),
        quality,
        scheduler,
        normalize="peak",
        description="Jamming",
    )


def _seed_id(value: str) -> str:
    """A name for the seed image in the clips' inputs: the id, or a file's stem."""
    return Path(value).stem or value
