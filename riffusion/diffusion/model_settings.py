"""Which model to load and how to run it: the settings every command that runs the model takes
(`--model`, `--lora`, `--device`, `--preset`, `--unet-backend`, ...), and the server too."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from riffusion.devices import AUTO
from riffusion.diffusion.checkpoints import DEFAULT_CHECKPOINT
from riffusion.diffusion.downloads import DownloadProgress
from riffusion.diffusion.openvino_unet import StatusReport, UnetBackendName
from riffusion.diffusion.preset_weights import LCM_LORA_HUB_ID, TINY_VAE_HUB_ID, PresetWeights
from riffusion.diffusion.presets import PresetName

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
        preset: the generation preset runs use (riffusion.diffusion.presets); its extra weights
            load with the model.
        lcm_lora: where the realtime preset's LCM-LoRA comes from (file, folder or Hub id).
        tiny_vae: where the realtime preset's TAESD comes from (folder or Hub id).
        unet_backend: what runs the UNet: "torch", or "openvino" (on the CPU; see
            riffusion.diffusion.openvino_unet).
    """

    model: str = DEFAULT_CHECKPOINT
    model_config: str | None = None
    revision: str | None = None
    cache_dir: Path | None = None
    lora: tuple[str, ...] = ()
    lora_scale: float = 1.0
    device: str = AUTO
    dtype: str = AUTO
    preset: PresetName = "quality"
    lcm_lora: str = LCM_LORA_HUB_ID
    tiny_vae: str = TINY_VAE_HUB_ID
    unet_backend: UnetBackendName = "torch"

    def load(
        self,
        download_progress: DownloadProgress | None = None,
        *,
        all_presets: bool = False,
        report: StatusReport | None = None,
    ) -> RiffusionPipeline:
        """The pipeline (RiffusionPipeline.load_checkpoint with these settings), with what
        preset needs loaded.

        all_presets: the pipeline may also run the other presets (their extra weights load on
        first use); otherwise it is made for preset alone (the realtime preset's LCM-LoRA then
        fuses into the model's own UNet, which saves a copy of it). report hears of slow steps
        beyond downloads (converting the UNet for OpenVINO).

        Raises:
            RiffusionError: the model or the preset's weights cannot be found, downloaded or
                loaded, or the device is not available.
        """
        from riffusion.diffusion.pipeline import RiffusionPipeline

        pipeline = RiffusionPipeline.load_checkpoint(
            self.model,
            device=self.device,
            dtype=self.dtype,
            revision=self.revision,
            cache_dir=self.cache_dir,
            lora=list(self.lora) or None,
            lora_scale=self.lora_scale,
            config=self.model_config,
            download_progress=download_progress,
            preset_weights=PresetWeights(
                lcm_lora=self.lcm_lora, tiny_vae=self.tiny_vae, cache_dir=self.cache_dir
            ),
            presets=None if all_presets else [self.preset],
            unet_backend=self.unet_backend,
            report=report,
        )
        if all_presets:
            pipeline.prepare_preset(self.preset, download_progress)
        return pipeline
