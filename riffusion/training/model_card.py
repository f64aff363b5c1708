"""The model card (README.md) of a finished run: what was trained on what, how, and how to use
it, with the Hub's metadata header so the folder can be uploaded as it is."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from riffusion.atomic_files import write_atomically
from riffusion.training.adapters import LORA_WEIGHTS_NAME
from riffusion.training.run_folder import FULL_MODEL_DIR, LOSS_PLOT, SAMPLES_DIR
from riffusion.training.settings import TrainSettings
from riffusion.training.training_data import DatasetSummary


def model_card(
    *,
    base_model: str,
    dataset_dir: str,
    summary: DatasetSummary,
    settings: TrainSettings,
    precision: str,
    processes: int,
    validation_prompts: Sequence[str],
    final_loss: float | None,
) -> str:
    """The card's Markdown."""
    kind = "full UNet fine-tune" if settings.full else f"LoRA (rank {settings.rank})"
    effective_batch = settings.batch_size * settings.gradient_accumulation_steps * processes
    output = (
        f"`{FULL_MODEL_DIR}/` (a diffusers folder)" if settings.full else f"`{LORA_WEIGHTS_NAME}`"
    )
    use_option = f"--model {FULL_MODEL_DIR}" if settings.full else f"--lora {LORA_WEIGHTS_NAME}"
    prompt = validation_prompts[0] if validation_prompts else "your caption"
    rows = [
        ("Base model", f"`{base_model}`"),
        ("Trained", kind + (" + text encoder LoRA" if settings.train_text_encoder else "")),
        ("Target modules", ", ".join(f"`{name}`" for name in settings.target_modules)),
        ("LoRA alpha", f"{settings.lora_alpha:g}" if not settings.full else "-"),
        ("Steps", str(settings.steps)),
        (
            "Batch",
            f"{settings.batch_size} x {settings.gradient_accumulation_steps} accumulation x "
            f"{processes} processes = {effective_batch}",
        ),
        (
            "Learning rate",
            f"{settings.learning_rate:g}, AdamW, "
            f"{settings.resolved_warmup_steps} warm-up steps then cosine",
        ),
        ("Weight decay", f"{settings.weight_decay:g}"),
        ("Min-SNR gamma", "-" if settings.snr_gamma is None else f"{settings.snr_gamma:g}"),
        ("Caption dropout", f"{settings.caption_dropout:g}"),
        ("Training width", f"{settings.width} columns ({settings.width / 100:g} s)"),
        ("Precision", precision),
        ("Gradient checkpointing", "yes" if settings.gradient_checkpointing else "no"),
        ("Seed", str(settings.seed)),
        ("Final loss", "-" if final_loss is None else f"{final_loss:.4f} (mean of the last steps)"),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    prompts = "\n".join(f"- {text}" for text in validation_prompts) or "- (none)"
    return f"""---
base_model: {base_model}
library_name: diffusers
tags:
- riffusion
- text-to-audio
- stable-diffusion
- lora
- diffusers
---

# Riffusion {kind}

Fine-tuned from `{base_model}` on {summary.clips} spectrogram clips ({summary.hours:.2f} h of
audio) from {summary.tracks} tracks with {summary.captions} distinct captions
({"stereo" if summary.stereo else "mono"} spectrograms, dataset `{dataset_dir}`). The result is
{output}.

## Use

```
riffusion generate "{prompt}" {use_option} -o clip.wav
riffusion jam --prompt "{prompt}" {use_option} ...
```

With diffusers: `pipe.load_lora_weights("{LORA_WEIGHTS_NAME}")` on a StableDiffusionPipeline
of the base model.

## Training

| Setting | Value |
| --- | --- |
{table}

The loss of every step is in `loss.csv` (curve: `{LOSS_PLOT}`); validation renders of these
prompts are in `{SAMPLES_DIR}/`:

{prompts}
"""


def write_model_card(folder: Path, text: str) -> Path:
    return write_atomically(folder / "README.md", lambda path: path.write_text(text))
