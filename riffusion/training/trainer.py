"""The training loop: LoRA (or full UNet) fine-tuning of a riffusion checkpoint on a dataset.

accelerate places the work (one CPU or GPU as it is; data-parallel processes under `accelerate
launch`) and runs mixed precision; peft holds the LoRA adapters; the objective is diffusers'
(objective.py). Every step's randomness (which clips, crops, dropped captions, noise, timesteps)
is drawn from generators seeded by (seed, step, micro-batch, process), so a run resumed from a
checkpoint continues exactly as if it had never stopped. A Ctrl-C lands between operations: the
weights only change inside the optimizer's step, which runs with Ctrl-C held, so the checkpoint
written on the way out is always of a whole step.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch

from riffusion.devices import resolve_device
from riffusion.diffusion.checkpoints import resolve_dtype
from riffusion.diffusion.model_settings import ModelSettings
from riffusion.errors import RiffusionError
from riffusion.interrupts import interrupts_held
from riffusion.spectrogram.params import SpectrogramParams
from riffusion.training.adapters import (
    add_trainable_weights,
    check_text_encoder_lora_support,
    load_trainable_state,
    save_lora,
    trainable_state,
    trained_modules,
)
from riffusion.training.loss_plot import plot_losses
from riffusion.training.memory import (
    GIB,
    available_bytes,
    batch_advice,
    peak_memory,
)
from riffusion.training.model_card import model_card, write_model_card
from riffusion.training.objective import diffusion_loss, training_scheduler, training_target
from riffusion.training.run_folder import (
    FULL_MODEL_DIR,
    LOSS_PLOT,
    LossRecord,
    RunFolder,
)
from riffusion.training.settings import TrainSettings
from riffusion.training.training_data import (
    DatasetSummary,
    Sample,
    SampleDrawer,
    TrainingExample,
    load_examples,
    most_common_captions,
    pixels_of,
)
from riffusion.training.validation import render_validation

#: accelerate's name for each compute dtype.
MIXED_PRECISION = {torch.float32: "no", torch.bfloat16: "bf16", torch.float16: "fp16"}
#: Validation prompts taken from the dataset when none are given.
DEFAULT_VALIDATION_PROMPTS = 2
# Steps averaged for the final loss in the model card.
_FINAL_LOSS_STEPS = 10


class Reporter(Protocol):
    """Where a run reports (the main process only)."""

    def message(self, text: str) -> None: ...

    def progress(self, completed: int, total: int, loss: float | None) -> None: ...


@dataclass(frozen=True)
class TrainingJob:
    """A run to start or resume.

    Attributes:
        run_dir: the run's folder.
        dataset_dir: the dataset (riffusion.training.imagefolder layout).
        settings: how to train.
        model: the checkpoint to start from (its device and dtype: where and in what precision
            to train; trained weights stay float32).
        resume: continue from the run's latest checkpoint.
    """

    run_dir: Path
    dataset_dir: Path
    settings: TrainSettings
    model: ModelSettings
    resume: bool = False


@dataclass(frozen=True)
class TrainingResult:
    """What a finished run left."""

    steps: int
    output: Path
    final_loss: float | None


def check_job(job: TrainingJob) -> tuple[list[TrainingExample], DatasetSummary, torch.dtype]:
    """Everything that can be checked before the model loads: the device and precision, the
    dataset's images, the output folder. Returns the examples, their summary and the dtype."""
    device = resolve_device(job.model.device)
    dtype = resolve_dtype(job.model.dtype, device)
    if dtype == torch.float16 and device.type != "cuda":
        raise RiffusionError(
            f"float16 training needs a CUDA GPU; on {device.type} use --dtype bfloat16 or float32"
        )
    # The format of every riffusion pipeline's images (RiffusionPipeline.spectrogram_params).
    if job.settings.train_text_encoder:
        check_text_encoder_lora_support()
    params = SpectrogramParams()
    examples, summary = load_examples(job.dataset_dir, params, job.settings.width)
    run = RunFolder(job.run_dir)
    if job.resume:
        run.read_record()
    else:
        run.check_new()
    return examples, summary, dtype


def train(job: TrainingJob, reporter: Reporter) -> TrainingResult:
    """Run (or resume) the job to its last step; see the module docstring.

    Raises:
        RiffusionError: for unusable input, found before training starts.
        KeyboardInterrupt: after a Ctrl-C, once the checkpoint of the last whole step is saved.
    """
    return _Trainer(job, reporter).run()


class _Trainer:
    def __init__(self, job: TrainingJob, reporter: Reporter) -> None:
        from accelerate import Accelerator

        self.job = job
        self.settings = job.settings
        self.run_folder = RunFolder(job.run_dir)
        self.examples, self.summary, self.dtype = check_job(job)
        device = resolve_device(job.model.device)
        if device.type == "cuda" and device.index is not None:
            torch.cuda.set_device(device)
        self.accelerator = Accelerator(
            cpu=device.type == "cpu", mixed_precision=MIXED_PRECISION[self.dtype]
        )
        self.main = self.accelerator.is_main_process
        self.reporter = reporter if self.main else _Silent()
        self.device = self.accelerator.device

    def run(self) -> TrainingResult:
        settings, accelerator = self.settings, self.accelerator
        record = self._record()
        start_step, checkpoint = self._resume_point()
        if self.summary.stereo:
            self.reporter.message(
                "Warning: the dataset holds stereo spectrograms; riffusion plays generated "
                "images as mono, so renders sound of the left channel only"
            )
        self._load_model(checkpoint)
        drawer = SampleDrawer(
            self.examples,
            seed=settings.seed,
            width=settings.width,
            caption_dropout=settings.caption_dropout,
            batch_size=settings.batch_size,
            accumulation=settings.gradient_accumulation_steps,
            processes=accelerator.num_processes,
        )
        self.drawer = drawer
        self._check_memory(start_step)
        if self.main:
            self.run_folder.write_record(record)
            self.run_folder.start_loss_log(start_step)
        prompts = tuple(record["validation_prompts"])
        if start_step == 0 and settings.validation_every:
            self._validate(0, prompts)

        completed = start_step
        saved = start_step if checkpoint is not None else -1
        started = time.monotonic()
        elapsed_before = self._elapsed_before(start_step)
        try:
            self.reporter.progress(completed, settings.steps, None)
            for step in range(start_step, settings.steps):
                loss = self._step(step)
                completed = step + 1
                seconds = elapsed_before + time.monotonic() - started
                learning_rate = float(self.lr_scheduler.get_last_lr()[0])
                if self.main:
                    self.run_folder.append_loss(LossRecord(completed, loss, learning_rate, seconds))
                self.reporter.progress(completed, settings.steps, loss)
                if settings.checkpoint_every and completed % settings.checkpoint_every == 0:
                    self._checkpoint(completed)
                    saved = completed
                if (
                    settings.validation_every
                    and completed % settings.validation_every == 0
                    and completed < settings.steps
                ):
                    self._validate(completed, prompts)
        except KeyboardInterrupt:
            if self.main and completed > saved and completed > 0:
                with interrupts_held(deliver=False):
                    folder = self._checkpoint(completed)
                self.reporter.message(
                    f"Interrupted after step {completed} of {settings.steps}: saved {folder}; "
                    "continue with the same command and --resume."
                )
            raise
        with interrupts_held():
            if completed > saved:
                self._checkpoint(completed)
            output = self._save_result()
        if settings.validation_every:
            self._validate(completed, prompts)
        final_loss = self._finish(record)
        accelerator.wait_for_everyone()
        accelerator.end_training()
        return TrainingResult(completed, output, final_loss)

    # --- Setting up ---------------------------------------------------------------------------

    def _record(self) -> dict[str, Any]:
        """The run record: settings, model, dataset and validation prompts."""
        settings = self.settings
        prompts = settings.validation_prompts or most_common_captions(
            self.examples, DEFAULT_VALIDATION_PROMPTS
        )
        model = dataclasses.asdict(self.job.model)
        model["cache_dir"] = None if model["cache_dir"] is None else str(model["cache_dir"])
        model["lora"] = list(model["lora"])
        return {
            "dataset_dir": str(self.job.dataset_dir.resolve()),
            "model": model,
            "settings": settings.to_json(),
            "precision": MIXED_PRECISION[self.dtype],
            "processes": self.accelerator.num_processes,
            "dataset": self.summary.to_json(),
            "validation_prompts": list(prompts),
        }

    def _resume_point(self) -> tuple[int, tuple[dict, dict, dict] | None]:
        """(first step to run, the checkpoint to start from or None)."""
        if not self.job.resume:
            return 0, None
        steps = self.run_folder.checkpoint_steps()
        if not steps:
            self.reporter.message("The run has no checkpoint yet; starting it from step 0.")
            return 0, None
        step = steps[-1]
        checkpoint = self.run_folder.load_checkpoint(step)
        if step >= self.settings.steps:
            raise RiffusionError(
                f"{self.job.run_dir}: the run is complete ({step} of {self.settings.steps} steps)"
            )
        self.reporter.message(f"Resuming from the checkpoint of step {step}.")
        return step, checkpoint

    def _load_model(self, checkpoint: tuple[dict, dict, dict] | None) -> None:
        from diffusers.optimization import get_scheduler
        from diffusers.training_utils import cast_training_params

        settings, accelerator = self.settings, self.accelerator
        self.reporter.message(f"Loading {self.job.model.model} ...")
        pipe = dataclasses.replace(self.job.model, device="cpu", dtype="float32").load()
        self.pipe = pipe
        unet, text_encoder, vae = pipe.unet, pipe.text_encoder, pipe.vae
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            add_trainable_weights(unet, text_encoder, settings)
        vae.requires_grad_(False)
        modules = trained_modules(unet, text_encoder, settings)
        if not settings.full:
            # Frozen weights in the compute precision, trained ones in float32.
            for module in (unet, text_encoder, vae):
                module.to(self.dtype)
            cast_training_params(list(modules.values()), dtype=torch.float32)
        if settings.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
            if settings.train_text_encoder:
                text_encoder.gradient_checkpointing_enable()
        if checkpoint is not None:
            load_trainable_state(modules, checkpoint[0])
        self.noise_scheduler = training_scheduler(dict(pipe.scheduler.config))
        parameters = [
            parameter
            for module in modules.values()
            for parameter in module.parameters()
            if parameter.requires_grad
        ]
        optimizer = torch.optim.AdamW(
            parameters, lr=settings.learning_rate, weight_decay=settings.weight_decay
        )
        # Stepped once per optimizer step by this loop (not by accelerate, which would step it
        # once per process).
        self.lr_scheduler = get_scheduler(
            "cosine",
            optimizer,
            num_warmup_steps=settings.resolved_warmup_steps,
            num_training_steps=settings.steps,
        )
        prepared = accelerator.prepare(*modules.values(), optimizer)
        self.models = dict(zip(modules, prepared[:-1], strict=True))
        self.modules = modules
        self.optimizer = prepared[-1]
        if checkpoint is not None:
            self.optimizer.load_state_dict(checkpoint[1]["optimizer"])
            self.lr_scheduler.load_state_dict(checkpoint[1]["lr_scheduler"])
        vae.to(self.device)
        if "text_encoder" not in self.models:
            text_encoder.to(self.device)
        unet.train()
        text_encoder.train(settings.train_text_encoder)

    def _check_memory(self, step: int) -> None:
        """Fail with advice when the batch will not fit: on a GPU by trying it, on the CPU by
        measuring a batch of one and scaling (an out-of-memory kill there cannot be caught)."""
        batch = self.settings.batch_size
        if self.device.type == "cuda":
            probe = batch
        elif self.device.type == "cpu" and batch > 1:
            probe = 1
        else:
            return
        samples = self.drawer.samples(step, 0, self.accelerator.process_index)[:probe]
        try:
            with peak_memory(self.device) as peak:
                model = self.models["unet"]
                with self.accelerator.no_sync(model):
                    loss = self._micro_loss(samples, self._generator(step, 0))
                    self.accelerator.backward(loss)
        except torch.OutOfMemoryError:
            self.optimizer.zero_grad(set_to_none=True)
            raise RiffusionError(
                f"not enough memory on {self.device} for --batch-size {batch} at "
                f"{self.settings.width} columns: {batch_advice(batch)}"
            ) from None
        self.optimizer.zero_grad(set_to_none=True)
        available = available_bytes(self.device)
        if probe == batch or peak.extra_bytes is None or available is None:
            return
        needed = peak.extra_bytes * batch
        if needed > available:
            raise RiffusionError(
                f"not enough memory for --batch-size {batch}: one clip takes about "
                f"{peak.extra_bytes / GIB:.1f} GiB while training, {batch} about "
                f"{needed / GIB:.1f} GiB, and {available / GIB:.1f} GiB are free: "
                + batch_advice(batch)
            )

    # --- A step -------------------------------------------------------------------------------

    def _generator(self, step: int, micro: int) -> torch.Generator:
        """The generator of a micro-batch's noise, and the global seed of everything else in it
        (adapter dropout, say), from (seed, step, micro-batch, process)."""
        state = np.random.SeedSequence(
            [self.settings.seed, 2, step, micro, self.accelerator.process_index]
        ).generate_state(1, dtype=np.uint64)
        value = int(state[0]) % 2**63
        torch.manual_seed(value)
        on = self.device if self.device.type == "cuda" else torch.device("cpu")
        return torch.Generator(device=on).manual_seed(value)

    def _micro_loss(self, samples: Sequence[Sample], generator: torch.Generator) -> torch.Tensor:
        """The loss of one micro-batch (see objective.py), with the graph for backward."""
        vae, tokenizer = self.pipe.vae, self.pipe.tokenizer
        unet = self.models["unet"]
        text_encoder = self.models.get("text_encoder", self.pipe.text_encoder)
        device = self.device
        with self.accelerator.autocast():
            pixels = pixels_of(samples, self.settings.width).to(device, vae.dtype)
            with torch.no_grad():
                posterior = vae.encode(pixels).latent_dist
                latents = posterior.sample(generator=generator).float()
                latents = latents * vae.config.scaling_factor
            noise = torch.randn(latents.shape, generator=generator, device=generator.device)
            timesteps = torch.randint(
                0,
                self.noise_scheduler.config["num_train_timesteps"],
                (latents.shape[0],),
                generator=generator,
                device=generator.device,
            )
            noise, timesteps = noise.to(device), timesteps.to(device)
            noisy = self.noise_scheduler.add_noise(latents, noise, cast(torch.IntTensor, timesteps))
            tokens = tokenizer(
                [sample.text for sample in samples],
                padding="max_length",
                max_length=tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids.to(device)
            trains_text = "text_encoder" in self.models
            with nullcontext() if trains_text else torch.no_grad():
                hidden = text_encoder(tokens)[0]
            base_dtype = self.pipe.unet.conv_in.weight.dtype
            prediction = unet(noisy.to(base_dtype), timesteps, hidden.to(base_dtype)).sample
            target = training_target(self.noise_scheduler, latents, noise, timesteps)
            return diffusion_loss(
                prediction, target, self.noise_scheduler, timesteps, self.settings.snr_gamma
            )

    def _step(self, step: int) -> float:
        """Run optimizer step step (0-based); the mean loss of its micro-batches, over all
        processes."""
        accumulation = self.settings.gradient_accumulation_steps
        process = self.accelerator.process_index
        unet = self.models["unet"]
        total = 0.0
        for micro in range(accumulation):
            samples = self.drawer.samples(step, micro, process)
            generator = self._generator(step, micro)
            # Gradients are averaged across processes once, at the last micro-batch.
            sync = micro == accumulation - 1
            with nullcontext() if sync else self.accelerator.no_sync(unet):
                loss = self._micro_loss(samples, generator)
                self.accelerator.backward(loss / accumulation)
            total += float(loss.detach())
        with interrupts_held():
            if self.settings.max_grad_norm > 0:
                self.accelerator.clip_grad_norm_(
                    [p for p in self.optimizer.param_groups[0]["params"]],
                    self.settings.max_grad_norm,
                )
            self.optimizer.step()
            self.lr_scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        mean = torch.tensor(total / accumulation, device=self.device)
        return float(self.accelerator.reduce(mean, reduction="mean"))

    # --- Saving -------------------------------------------------------------------------------

    def _checkpoint(self, step: int) -> Path:
        """Write the checkpoint of step (main process) and drop old ones."""
        if not self.main:
            return self.run_folder.checkpoints_dir
        modules = {
            name: self.accelerator.unwrap_model(model) for name, model in self.models.items()
        }

        def write_lora(folder: Path) -> None:
            if not self.settings.full:
                save_lora(folder, modules["unet"], self.pipe.text_encoder, self.settings)

        folder = self.run_folder.save_checkpoint(
            step,
            trainable_state(modules),
            {
                "optimizer": self.optimizer.state_dict(),
                "lr_scheduler": self.lr_scheduler.state_dict(),
            },
            {"step": step, "seed": self.settings.seed},
            write_lora,
        )
        self.run_folder.prune_checkpoints(self.settings.keep_checkpoints)
        self._plot_losses()
        return folder

    def _save_result(self) -> Path:
        """The run's product: the LoRA file, or with --full a diffusers model folder."""
        path = self.job.run_dir
        if not self.main:
            return path
        unet = self.accelerator.unwrap_model(self.models["unet"])
        if not self.settings.full:
            return save_lora(path, unet, self.pipe.text_encoder, self.settings)
        from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import (
            StableDiffusionPipeline,
        )

        pipe = self.pipe
        # Riffusion never uses the safety checker (as in checkpoints.load_stable_diffusion).
        without_checker: dict[str, Any] = {"safety_checker": None, "feature_extractor": None}
        model = StableDiffusionPipeline(
            vae=pipe.vae,
            text_encoder=pipe.text_encoder,
            tokenizer=pipe.tokenizer,
            unet=unet,
            scheduler=pipe.scheduler,
            requires_safety_checker=False,
            **without_checker,
        )
        model.save_pretrained(path / FULL_MODEL_DIR, safe_serialization=True)
        return path / FULL_MODEL_DIR

    def _validate(self, step: int, prompts: Sequence[str]) -> None:
        if self.main and prompts:
            self.reporter.message(f"Rendering validation samples of step {step} ...")
            with self.accelerator.autocast():
                render_validation(
                    self.pipe,
                    self.run_folder.samples_dir(step),
                    prompts,
                    self.settings.validation_seeds,
                    self.settings.validation_steps,
                    self.settings.width,
                )
        self.accelerator.wait_for_everyone()

    def _plot_losses(self) -> None:
        records = self.run_folder.read_losses()
        if records:
            plot_losses(
                [record.step for record in records],
                [record.loss for record in records],
                self.job.run_dir / LOSS_PLOT,
            )

    def _elapsed_before(self, step: int) -> float:
        """Training seconds before step, from the loss log (a resumed run's clock goes on)."""
        records = [record for record in self.run_folder.read_losses() if record.step <= step]
        return records[-1].elapsed_s if records else 0.0

    def _finish(self, record: dict[str, Any]) -> float | None:
        """Loss curve and model card; the mean loss of the last steps."""
        if not self.main:
            return None
        self._plot_losses()
        losses = [entry.loss for entry in self.run_folder.read_losses()]
        tail = losses[-_FINAL_LOSS_STEPS:]
        final_loss = sum(tail) / len(tail) if tail and all(map(math.isfinite, tail)) else None
        card = model_card(
            base_model=self.job.model.model,
            dataset_dir=record["dataset_dir"],
            summary=self.summary,
            settings=self.settings,
            precision=record["precision"],
            processes=record["processes"],
            validation_prompts=record["validation_prompts"],
            final_loss=final_loss,
        )
        write_model_card(self.job.run_dir, card)
        return final_loss


class _Silent:
    """The reporter of processes other than the main one."""

    def message(self, text: str) -> None:
        pass

    def progress(self, completed: int, total: int, loss: float | None) -> None:
        pass
