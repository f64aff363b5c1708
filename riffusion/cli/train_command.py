"""`riffusion train`: fine-tune the model on a dataset made by `riffusion dataset`."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from riffusion.cli.common import PATH
from riffusion.cli.model_options import model_options, quiet_model_libraries
from riffusion.diffusion.model_settings import ModelSettings
from riffusion.errors import RiffusionError
from riffusion.training.run_folder import RunFolder
from riffusion.training.settings import (
    DEFAULT_UNET_TARGETS,
    REPORT_SETTINGS,
    TrainSettings,
)

DEFAULTS = TrainSettings()

# TrainSettings field -> its option's parameter name, where they differ.
_PARAMETER_NAMES = {
    "alpha": "lora_alpha",
    "validation_prompts": "validation_prompt",
    "validation_seeds": "validation_seed",
}
# Model options a resumed run may change: where it runs, not what it trains.
_MOVABLE_MODEL_SETTINGS = frozenset({"device"})


def _modules(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    if not names:
        raise click.BadParameter("name at least one module")
    return names


@click.command("train")
@click.argument("dataset_dir", type=PATH)
@click.option("-o", "--output", "run_dir", type=PATH, required=True, help="Run folder (created).")
@click.option(
    "--resume", is_flag=True, help="Continue the run in --output from its last checkpoint."
)
@click.option(
    "--steps", type=int, default=DEFAULTS.steps, show_default=True, help="Optimizer steps."
)
@click.option(
    "--batch-size",
    type=int,
    default=DEFAULTS.batch_size,
    show_default=True,
    help="Clips per micro-batch (per process).",
)
@click.option(
    "--gradient-accumulation-steps",
    type=int,
    default=DEFAULTS.gradient_accumulation_steps,
    show_default=True,
    help="Micro-batches per optimizer step.",
)
@click.option(
    "--learning-rate",
    type=float,
    default=DEFAULTS.learning_rate,
    show_default=True,
    help="Peak learning rate (AdamW, linear warm-up, cosine decay).",
)
@click.option("--warmup-steps", type=int, help="Warm-up steps (default: 5% of --steps).")
@click.option(
    "--weight-decay",
    type=float,
    default=DEFAULTS.weight_decay,
    show_default=True,
    help="AdamW weight decay.",
)
@click.option(
    "--max-grad-norm",
    type=float,
    default=DEFAULTS.max_grad_norm,
    show_default=True,
    help="Clip gradients to this norm; 0: no clipping.",
)
@click.option("--rank", type=int, default=DEFAULTS.rank, show_default=True, help="LoRA rank.")
@click.option(
    "--lora-alpha",
    type=int,
    help="LoRA alpha; the update scales by alpha / rank (default: the rank).",
)
@click.option(
    "--target-modules",
    default=",".join(DEFAULT_UNET_TARGETS),
    show_default=True,
    callback=_modules,
    help="UNet modules that get LoRA adapters, comma separated.",
)
@click.option("--train-text-encoder", is_flag=True, help="Add LoRA adapters to CLIP's attention.")
@click.option(
    "--full",
    is_flag=True,
    help="Fine-tune every UNet weight (needs far more memory); writes RUN_DIR/model.",
)
@click.option(
    "--snr-gamma", type=float, help="Min-SNR loss weighting with this gamma (5 is usual)."
)
@click.option(
    "--caption-dropout",
    type=float,
    default=DEFAULTS.caption_dropout,
    show_default=True,
    help="Fraction of clips trained with an empty caption.",
)
@click.option(
    "--width",
    type=int,
    default=DEFAULTS.width,
    show_default=True,
    help="Columns per training crop; wider clips are cropped at random places.",
)
@click.option(
    "--gradient-checkpointing",
    is_flag=True,
    help="Recompute activations in the backward pass: less memory, slower steps.",
)
@click.option(
    "--seed",
    type=int,
    default=DEFAULTS.seed,
    show_default=True,
    help="Seed of every random choice of the run.",
)
@click.option(
    "--checkpoint-every",
    type=int,
    default=DEFAULTS.checkpoint_every,
    show_default=True,
    help="Steps between checkpoints; 0: only at the end.",
)
@click.option(
    "--keep-checkpoints",
    type=int,
    default=DEFAULTS.keep_checkpoints,
    show_default=True,
    help="Recent checkpoints kept; 0: all.",
)
@click.option(
    "--validation-every",
    type=int,
    default=DEFAULTS.validation_every,
    show_default=True,
    help="Steps between validation renders; 0: none.",
)
@click.option(
    "--validation-prompt",
    multiple=True,
    help="Prompt to render (repeatable; default: the dataset's 2 most common captions).",
)
@click.option(
    "--validation-seed",
    type=int,
    multiple=True,
    help=f"Seed to render each prompt with (repeatable; default {DEFAULTS.validation_seeds[0]}).",
)
@click.option(
    "--validation-steps",
    type=int,
    default=DEFAULTS.validation_steps,
    show_default=True,
    help="Diffusion steps of each validation render.",
)
@model_options
@click.pass_context
def train(
    ctx: click.Context,
    dataset_dir: Path,
    run_dir: Path,
    resume: bool,
    model_settings: ModelSettings,
    **options: Any,
) -> None:
    """Fine-tune the model on DATASET_DIR (made by `riffusion dataset`) into RUN_DIR.

    The result is RUN_DIR/pytorch_lora_weights.safetensors, for --lora of every command. --dtype
    picks the compute precision (trained weights stay float32). Under `accelerate launch -m
    riffusion.cli train ...` it runs data-parallel on several GPUs or processes.
    """
    if model_settings.unet_backend != "torch":
        raise RiffusionError(
            f"--unet-backend {model_settings.unet_backend} runs a converted UNet, which cannot "
            "be trained: train with --unet-backend torch"
        )
    settings = _settings(options)
    if resume:
        dataset_dir, settings, model_settings = _resumed(
            ctx, RunFolder(run_dir), dataset_dir, settings, model_settings
        )
    from riffusion.training.trainer import TrainingJob
    from riffusion.training.trainer import train as run_training

    quiet_model_libraries()
    job = TrainingJob(run_dir, dataset_dir, settings, model_settings, resume)
    with _ProgressReporter() as reporter:
        result = run_training(job, reporter)
    loss = "" if result.final_loss is None else f"; final loss {result.final_loss:.4f}"
    click.echo(f"Trained {result.steps} steps{loss}: {result.output}")


def _settings(options: dict[str, Any]) -> TrainSettings:
    values = {}
    for field in fields(TrainSettings):
        value = options[_PARAMETER_NAMES.get(field.name, field.name)]
        if field.name in ("validation_prompts", "validation_seeds") and not value:
            continue
        values[field.name] = value
    return TrainSettings(**values)


def _resumed(
    ctx: click.Context,
    run: RunFolder,
    dataset_dir: Path,
    settings: TrainSettings,
    model_settings: ModelSettings,
) -> tuple[Path, TrainSettings, ModelSettings]:
    """The run's own dataset, settings and model, checked against what the command line says:
    a resumed run is the same run, so only the report cadence and the device may change."""
    record = run.read_record()
    stored_dataset = Path(record["dataset_dir"])
    if dataset_dir.resolve() != stored_dataset:
        raise RiffusionError(
            f"{run.path} was trained on {stored_dataset}; resume it with that dataset"
        )
    stored = TrainSettings.from_json(record["settings"])
    changes = {}
    for field in fields(TrainSettings):
        parameter = _PARAMETER_NAMES.get(field.name, field.name)
        if ctx.get_parameter_source(parameter) != click.core.ParameterSource.COMMANDLINE:
            continue
        given, kept = getattr(settings, field.name), getattr(stored, field.name)
        if field.name in REPORT_SETTINGS:
            changes[field.name] = given
        elif given != kept:
            raise RiffusionError(
                f"--{parameter.replace('_', '-')} {_shown(given)} differs from the run's "
                f"{_shown(kept)}; a resumed run keeps its settings"
            )
    stored_model = dict(record["model"])
    stored_model["lora"] = tuple(stored_model.get("lora") or ())
    if stored_model.get("cache_dir") is not None:
        stored_model["cache_dir"] = Path(stored_model["cache_dir"])
    model = ModelSettings(**stored_model)
    for field in fields(ModelSettings):
        if ctx.get_parameter_source(field.name) != click.core.ParameterSource.COMMANDLINE:
            continue
        given, kept = getattr(model_settings, field.name), getattr(model, field.name)
        if field.name in _MOVABLE_MODEL_SETTINGS:
            model = ModelSettings(**{**model.__dict__, field.name: given})
        elif given != kept:
            raise RiffusionError(
                f"--{field.name.replace('_', '-')} {_shown(given)} differs from the run's "
                f"{_shown(kept)}; a resumed run keeps its model"
            )
    return stored_dataset, stored.replace(**changes), model


def _shown(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "(none)"
    return str(value)


class _ProgressReporter:
    """The run's progress bar (loss and ETA) and messages, on stderr."""

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self.bar = Progress(
            TextColumn("Training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.task: TaskID | None = None

    def __enter__(self) -> _ProgressReporter:
        self.bar.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.bar.stop()

    def message(self, text: str) -> None:
        self.console.print(Text(text), soft_wrap=True)

    def progress(self, completed: int, total: int, loss: float | None) -> None:
        shown = "-" if loss is None else f"{loss:.4f}"
        if self.task is None:
            self.task = self.bar.add_task("train", total=total, completed=completed, loss=shown)
        else:
            self.bar.update(self.task, completed=completed, loss=shown)
