"""`riffusion riff --ray`: every track of a folder riffed as its own Ray task, on whichever worker
of the cluster has room, with one progress bar over the tracks.

Each task runs the same code as `riffusion riff` on one track (render_commands.riff_track), with
the folder's one seed, so a track comes out as riff alone would make it. A worker process keeps
the model it loaded for its next track. A track that fails is reported and skipped; the command
exits non-zero at the end if any did.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from riffusion.cli.batch_commands import list_input_files, split_by_stem
from riffusion.cli.model_options import load_model, seed_value
from riffusion.diffusion.model_settings import ModelSettings
from riffusion.errors import RiffusionError
from riffusion.ray_support import require_ray

if TYPE_CHECKING:
    from riffusion.diffusion.pipeline import RiffusionPipeline

#: What riff --ray writes each track as, in the --output folder.
OUTPUT_SUFFIX = ".wav"


def riff_folder_on_ray(values: dict[str, Any]) -> None:
    """riff's options (values, as riff_track takes them) over every track of the folder
    values["input_path"], written to the folder values["output"]."""
    require_ray()
    import ray

    input_dir: Path = values["input_path"]
    output_dir: Path = values["output"]
    tracks, clashes = split_by_stem(list_input_files(input_dir))
    if clashes:
        path, earlier = clashes[0]
        raise RiffusionError(f"{path.name} and {earlier.name} would both write {path.stem}.wav")
    if output_dir.exists() and not output_dir.is_dir():
        raise RiffusionError(f"--output {output_dir}: with --ray, --output is a folder")
    output_dir.mkdir(parents=True, exist_ok=True)
    seed = seed_value(values["seed"], "--seed")
    click.echo(f"Seed {seed}: riffing {len(tracks)} tracks on Ray", err=True)

    if not ray.is_initialized():
        ray.init(log_to_driver=False)
    settings: ModelSettings = values["model_settings"]
    has_gpus = ray.cluster_resources().get("GPU", 0) >= 1
    gpus = 1 if has_gpus and settings.device != "cpu" else 0
    task = ray.remote(riff_one).options(num_cpus=1, num_gpus=gpus)
    pending = {}
    for track in tracks:
        images_dir: Path | None = values["images_dir"]
        track_values = {
            **values,
            "input_path": track,
            "output": output_dir / f"{track.stem}{OUTPUT_SUFFIX}",
            "seed": seed,
            "images_dir": None if images_dir is None else images_dir / track.stem,
        }
        pending[task.remote(track_values)] = track

    failures: list[str] = []
    columns = (TextColumn("Riffing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        bar = progress.add_task("tracks", total=len(tracks))
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            track = pending.pop(done[0])
            try:
                ray.get(done[0])
            except ray.exceptions.RayTaskError as error:
                cause = error.cause if error.cause is not None else error
                failures.append(f"{track.name}: {cause}")
                progress.console.print(f"[red]{track.name}: {cause}[/red]")
            progress.advance(bar)
    written = len(tracks) - len(failures)
    click.echo(f"Wrote {written} of {len(tracks)} tracks to {output_dir}", err=True)
    if failures:
        raise RiffusionError(f"{len(failures)} of {len(tracks)} tracks failed ({failures[0]})")


def riff_one(values: dict[str, Any]) -> None:
    """riff_track on one track, on a Ray worker (in a click context of its own, which the
    render's interrupt handling asks for)."""
    from riffusion.cli.render_commands import riff, riff_track

    with click.Context(riff):
        riff_track(**values, load=cached_model)


@functools.lru_cache(maxsize=1)
def cached_model(settings: ModelSettings) -> RiffusionPipeline:
    """load_model, kept for the worker process's next track with the same settings."""
    return load_model(settings)
