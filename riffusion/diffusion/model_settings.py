"""Which model to load and how to run it: the settings every command that runs the model takes
(`--model`, `--lora`, `--device`, ...), and the server too."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from riffusion.devices import AUTO
from riffusion.diffusion.checkpoints import DEFAULT_CHECKPOINT
from riffusion.diffusion.downloads import DownloadProgress

if TYPE_CHECKING:
    from riffusion.diffusion.pipeline import RiffusionPipeline


@dataclass(frozen=True)
class ModelSettings:
    """Which model to load, and where and how to run it.

    Attributes:
        model: Hugging Face Hub id, diffusers folder, or single .ckpt / .safetensors file.
        model_config: for a single-file model, where its configs and tokenizer come from.
        revision: branch, tag or commit of a Hub model.
        cache_dir: Hugging Face cache folder.
        lora: LoRA weights merged into the model.
        lora_scale: their strength.
        device: torch device name ("auto", "cpu", "cuda:1", ...).
        dtype: compute precision name ("auto", "float32", ...).
    """

    model: str = DEFAULT_CHECKPOINT
    model_config: str | None = None
    revision: str | None = None
    cache_dir: Path | None = None
    lora: tuple[str, ...] = ()
    lora_scale: float = 1.0
    device: str = AUTO
    dtype: str = AUTO

    def load(self, download_progress: DownloadProgress | None = None) -> RiffusionPipeline:
        """The pipeline (RiffusionPipeline.load_checkpoint with these settings).

        Raises:
            RiffusionError: the model cannot be found, downloaded or loaded, or the device is
                not available.
        """
        from riffusion.diffusion.pipeline import RiffusionPipeline

        return RiffusionPipeline.load_checkpoint(
            self.model,
            device=self.device,
            dtype=self.dtype,
            revision=self.revision,
            cache_dir=self.cache_dir,
            lora=list(self.lora) or None,
            lora_scale=self.lora_scale,
            config=self.model_config,
            download_progress=download_progress,
        )
