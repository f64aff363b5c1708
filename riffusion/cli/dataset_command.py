"""`riffusion dataset`: a folder of tracks -> a training dataset of captioned spectrogram clips."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from riffusion.cli.common import EXIT_INTERRUPTED, PATH
from riffusion.errors import RiffusionError
from riffusion.ray_support import require_ray
from riffusion.training.captions import load_captions_file, template_fields
from riffusion.training.dataset_builder import (
    SILENCE_THRESHOLD_DBFS,
    DatasetSettings,
    FinishedTrack,
    SkippedTrack,
    TrackPlan,
    append_journal,
    caption_source_counts,
    pending_plans,
    plan_tracks,
    prepare_dataset_dir,
    read_journal,
    render_tracks,
    write_dataset_metadata,
)
from riffusion.training.ray_dataset import render_tracks_on_ray


@click.command("dataset")
@click.argument("audio_dir", type=PATH)
@click.option(
    "-o", "--output", "dataset_dir", type=PATH, required=True, help="Dataset folder (created)."
)
@click.option(
    "--clip-seconds",
    type=float,
    default=5.12,
    show_default=True,
    help="Length of each clip, s, a multiple of 0.64 s (5.12 s: the model's 512 columns).",
)
@click.option(
    "--hop-seconds",
    type=float,
    help="From one clip's start to the next, s (default: the clip length, no overlap).",
)
@click.option("--stereo", is_flag=True, help="Two-channel spectrograms (default: mono mixdown).")
@click.option(
    "--keep-silent",
    is_flag=True,
    help=f"Keep near-silent clips (RMS below {SILENCE_THRESHOLD_DBFS:g} dBFS are left out).",
)
@click.option(
    "--captions",
    "captions_path",
    type=PATH,
    help="CSV (file_name,text) or JSONL file of captions by file name.",
)
@click.option(
    "--caption-template",
    help='Caption from the tags, e.g. "{genre}, {artist}, {title}" (fields: title, artist, '
    "album, genre, year, bpm).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Tracks processed at once, in separate processes.",
)
@click.option("--dry-run", is_flag=True, help="Print what would be made; write nothing.")
@click.option(
    "--ray",
    "on_ray",
    is_flag=True,
    help="Spread the tracks over the Ray cluster of RAY_ADDRESS (a local one when unset), one "
    "task per track; on several machines the dataset folder must be shared (docs/deploy.md).",
)
@click.pass_context
def dataset(
    ctx: click.Context,
    audio_dir: Path,
    dataset_dir: Path,
    clip_seconds: float,
    hop_seconds: float | None,
    stereo: bool,
    keep_silent: bool,
    captions_path: Path | None,
    caption_template: str | None,
    workers: int,
    dry_run: bool,
    on_ray: bool,
) -> None:
    """Cut every track under AUDIO_DIR into captioned spectrogram clips for training.

    Captions, first that exists: a sidecar TRACK.txt beside the track, the --captions file, the
    --caption-template filled from the track's tags, the file name. Re-running continues an
    interrupted run (finished clips are skipped) and adds tracks that are new.
    """
    if on_ray and workers > 1:
        raise RiffusionError("--workers and --ray exclude each other: Ray spreads the tracks")
    if on_ray:
        require_ray()
    settings = DatasetSettings(clip_seconds, hop_seconds, stereo, keep_silent)
    settings.check()
    if caption_template is not None:
        template_fields(caption_template)
    captions = load_captions_file(captions_path) if captions_path is not None else {}
    plans, skipped = plan_tracks(audio_dir, settings, captions, caption_template)
    console = Console(stderr=True)

    def report(message: str, style: str = "") -> None:
        console.print(Text(message, style=style), soft_wrap=True)

    if dry_run:
        for plan in plans:
            report(_plan_line(plan, _count(len(plan.clip_names), "clip")))
        for skip in skipped:
            report(f"{skip.relative_name}: skipped: {skip.reason}", "red")
        clips = sum(len(plan.clip_names) for plan in plans)
        click.echo(
            f"Would make up to {clips} clips ({_hours(clips, settings):.2f} h) from "
            f"{len(plans)} tracks in {dataset_dir} (near-silent clips are left out as they are "
            f"found); {len(skipped)} files skipped. Nothing was written."
        )
        return

    prepare_dataset_dir(dataset_dir, settings)
    finished = read_journal(dataset_dir)
    pending = pending_plans(plans, finished, dataset_dir)
    pending_names = {plan.relative_name for plan in pending}
    for plan in plans:
        if plan.relative_name not in pending_names:
            done = finished[plan.relative_name]
            report(_plan_line(plan, f"{_count(len(done.rows), 'clip')}, done in an earlier run"))
    for skip in skipped:
        report(f"{skip.relative_name}: skipped: {skip.reason}", "red")

    columns = (
        TextColumn("Clips"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    done_tracks = 0
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("clips", total=sum(len(plan.clip_names) for plan in pending))
            outcomes = (
                render_tracks_on_ray(pending, dataset_dir, settings)
                if on_ray
                else render_tracks(pending, dataset_dir, settings, workers)
            )
            for outcome in outcomes:
                progress.advance(task, len(outcome.plan.clip_names))
                done_tracks += 1
                if outcome.error is not None:
                    skipped.append(SkippedTrack(outcome.plan.relative_name, outcome.error))
                    report(f"{outcome.plan.relative_name}: skipped: {outcome.error}", "red")
                    continue
                finished[outcome.plan.relative_name] = append_journal(dataset_dir, outcome)
                silent = f", {outcome.silent} silent left out" if outcome.silent else ""
                report(_plan_line(outcome.plan, _count(len(outcome.rows), "clip") + silent))
    except KeyboardInterrupt:
        write_dataset_metadata(dataset_dir, finished)
        click.echo(
            f"Interrupted after {done_tracks} of {len(pending)} tracks; the clips made are kept. "
            "Run the same command again to continue.",
            err=True,
        )
        ctx.exit(EXIT_INTERRUPTED)
    write_dataset_metadata(dataset_dir, finished)
    click.echo(_summary(dataset_dir, settings, finished, skipped))


def _plan_line(plan: TrackPlan, what: str) -> str:
    return f"{plan.relative_name}: {what}; caption from {plan.caption.source.value}: " + repr(
        plan.caption.text
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _hours(clips: int, settings: DatasetSettings) -> float:
    return clips * settings.clip_seconds / 3600.0


def _summary(
    dataset_dir: Path,
    settings: DatasetSettings,
    finished: dict[str, FinishedTrack],
    skipped: list[SkippedTrack],
) -> str:
    clips = sum(len(track.rows) for track in finished.values())
    silent = sum(track.silent for track in finished.values())
    sources = caption_source_counts([track.caption_source for track in finished.values()])
    lines = [
        f"Dataset {dataset_dir}: {_count(len(finished), 'track')}, {_count(clips, 'clip')} "
        f"({_hours(clips, settings):.2f} h of audio).",
        "Captions: "
        + (", ".join(f"{count} from {source}" for source, count in sources.items()) or "none")
        + ".",
    ]
    skips = [_count(silent, "silent clip")] if silent else []
    reasons = Counter(skip.reason.split(" (")[0] for skip in skipped)
    skips += [f"{_count(count, 'file')} {reason}" for reason, count in reasons.items()]
    lines.append("Skipped: " + ("; ".join(skips) if skips else "nothing") + ".")
    return "\n".join(lines)
