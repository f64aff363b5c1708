"""The riffusion pipeline: Stable Diffusion on spectrogram images, with interpolation.

riffuse() is the original riffusion's generation: img2img from a seed spectrogram, with the
prompt, seed, guidance and denoising strength interpolated between a start and an end at alpha.
txt2img() makes a spectrogram from noise alone; img2img() is riffuse() without interpolation.
riffuse_batch() runs several riffuse() requests that share a schedule through one UNet call per
step (batch_key() tells which can share; riffusion.diffusion.batch holds the request types);
riffuse() is its batch of one. audio_from_image() plays a generated spectrogram.

Every generation runs with a preset (riffusion.diffusion.presets; InferenceInput.preset, the
preset argument of txt2img and img2img): "quality", the default, is the original's path exactly;
"fast" and "realtime" change the scheduler, cache UNet features (DeepCache), drop guidance, or
use the LCM-LoRA's UNet and the tiny autoencoder TAESD, which load on first use
(prepare_preset()).

The UNet runs in PyTorch, or with use_openvino() in OpenVINO on the CPU
(riffusion.diffusion.openvino_unet): each UNet a preset runs is then converted when the preset is
prepared, and the converted one runs in its place.

Numerics: the UNet and VAE run in the pipeline's dtype (float16 / bfloat16 where fast), while the
latents, the noise, the guidance combination and the scheduler arithmetic stay in float32, so that
fifty steps of scheduler updates do not accumulate half-precision rounding.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import re
import threading
from collections.abc import Hashable, Sequence
from typing import Literal, overload

import numpy as np
import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.autoencoders.autoencoder_tiny import AutoencoderTiny
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from PIL import Image
from transformers import CLIPTextModel, CLIPTokenizer

from riffusion.audio import Audio
from riffusion.devices import cuda_or_cpu, resolve_device
from riffusion.diffusion.batch import (
    BatchKey,
    Cancelled,
    Conditioning,
    Member,
    ProgressCallback,
    RiffuseRequest,
    batched_text_embeddings,
)
from riffusion.diffusion.checkpoints import DEFAULT_CHECKPOINT, load_stable_diffusion
from riffusion.diffusion.deep_cache import DeepCacheUNet
from riffusion.diffusion.downloads import DownloadProgress
from riffusion.diffusion.inputs import InferenceInput, PromptInput, check_steps
from riffusion.diffusion.interpolation import lerp, slerp
from riffusion.diffusion.named_loras import use_lora
from riffusion.diffusion.openvino_unet import (
    OpenVINOUNet,
    StatusReport,
    UnetBackendName,
    check_openvino_preset,
    check_openvino_use,
    openvino_unet,
)
from riffusion.diffusion.preset_weights import PresetWeights, lcm_unet, load_tiny_vae
from riffusion.diffusion.presets import (
    QUALITY,
    Preset,
    PresetName,
    check_preset_steps,
    get_preset,
    preset_steps,
)
from riffusion.diffusion.prompt_embeddings import PromptEmbedder
from riffusion.diffusion.schedulers import Scheduler, make_scheduler, scheduler_class
from riffusion.errors import RiffusionError
from riffusion.lru_cache import LRUCache
from riffusion.seeds.images import play_spectrogram_image
from riffusion.spectrogram.converter import SpectrogramImageConverter
from riffusion.spectrogram.image import DEFAULT_MAX_VALUE
from riffusion.spectrogram.params import ExifTag, SpectrogramParams
from riffusion.spectrogram.reconstruction import QUALITIES, Quality

__all__ = [
    "BatchKey",
    "Cancelled",
    "OutputType",
    "ProgressCallback",
    "RiffuseRequest",
    "RiffusionPipeline",
    "slerp",
]

OutputType = Literal["pil", "latent"]
#: riffuse_batch()'s result per request: its image (or latents), or its Cancelled.
ImageOrCancelled = Image.Image | Cancelled
LatentsOrCancelled = torch.Tensor | Cancelled
#: The model's own autoencoder, or TAESD.
Autoencoder = AutoencoderKL | AutoencoderTiny

# Seed images and masks whose encodings are kept; each entry is a few hundred kB at most.
_CACHE_SIZE = 16


def _literal_prompt(prompt: str) -> str:
    """prompt with its weight syntax escaped, so brackets and colons are read as plain text."""
    return re.sub(r"([()\[\]:\\])", r"\\\1", prompt)


class RiffusionPipeline(DiffusionPipeline):
    """Stable Diffusion v1 for spectrogram images, in the manner of the original riffusion.

    Build it with load_checkpoint(). The pipeline is safe to share between threads: each call
    makes its own scheduler, and the caches (seed images, masks, prompt embeddings, converters)
    are locked.

    Attributes:
        prompt_embedder: turns (weighted, any-length) prompts into CLIP embeddings, with an LRU.
        spectrogram_params: the spectrogram format the model was trained on; written into the
            EXIF of every image and used to turn images into audio.
        preset_weights: where the realtime preset's LCM-LoRA and TAESD come from when they are
            first needed.
    """

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        unet: UNet2DConditionModel,
        scheduler: Scheduler,
    ) -> None:
        super().__init__()
        self.register_modules(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler
        )
        self.vae_scale_factor = 2 ** (len(vae.config["block_out_channels"]) - 1)
        # Image sides must be multiples of this: the VAE halves the size (len - 1) times, the
        # UNet then (len - 1) more, and both must divide evenly.
        self.size_multiple = self.vae_scale_factor * 2 ** (
            len(unet.config["block_out_channels"]) - 1
        )
        self.prompt_embedder = PromptEmbedder(tokenizer, text_encoder)
        self.spectrogram_params = SpectrogramParams()
        # Keyed on content (and dtype, device, size): (mean, std) of seed images' VAE posteriors,
        # masks' keep weights on the latent grid, and one converter per quality.
        self._image_latents: LRUCache[Hashable, tuple[torch.Tensor, torch.Tensor]] = LRUCache(
            _CACHE_SIZE
        )
        self._masks: LRUCache[Hashable, torch.Tensor] = LRUCache(_CACHE_SIZE)
        self._converters: LRUCache[str, SpectrogramImageConverter] = LRUCache(len(QUALITIES))
        self.preset_weights = PresetWeights()
        # The presets' extra modules, made by prepare_preset(); the lock makes each once.
        self._lcm_unet: UNet2DConditionModel | None = None
        self._tiny_vae: AutoencoderTiny | None = None
        # Set when the LCM-LoRA was fused into self.unet itself (a pipeline for LCM presets only).
        self._unet_is_lcm = False
        self._preset_lock = threading.Lock()
        # Names of the LoRAs held apart in the UNet (riffusion.diffusion.named_loras).
        self.named_loras: tuple[str, ...] = ()
        # With OpenVINO (use_openvino()): how conversions are reported, and the converted
        # UNets, keyed by the id of the PyTorch UNet each stands in for.
        self._openvino_report: StatusReport | None = None
        self._openvino_unets: dict[int, OpenVINOUNet] | None = None

    @classmethod
    def load_checkpoint(
        cls,
        checkpoint: str | os.PathLike[str] = DEFAULT_CHECKPOINT,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        lora: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        lora_scale: float = 1.0,
        local_files_only: bool = False,
        config: str | os.PathLike[str] | None = None,
        download_progress: DownloadProgress | None = None,
        preset_weights: PresetWeights | None = None,
        presets: Sequence[str] | None = None,
        unet_backend: UnetBackendName = "torch",
        report: StatusReport | None = None,
    ) -> RiffusionPipeline:
        """Load a checkpoint: a Hub id, a diffusers folder or a single .ckpt / .safetensors file.

        device None picks cuda, then mps, then cpu; dtype None picks float16 on CUDA, bfloat16
        on CPUs with native bfloat16, else float32. See checkpoints.load_stable_diffusion() for
        the other arguments. Failures raise RiffusionError with a one-line explanation.

        preset_weights says where the realtime preset's extra weights come from. presets None
        lets the pipeline run every preset, loading their extra weights on first use; a list
        names the only presets it will run: their weights load now, and when none of them needs
        the model's own UNet the LCM-LoRA is fused into it rather than into a copy (half the
        UNet memory).

        unet_backend "openvino" runs the UNet in OpenVINO (use_openvino(); report hears of
        conversions): the presets named are refused up front if it cannot run them, and their
        UNets are converted now.
        """
        if unet_backend == "openvino":  # refuse what it cannot run before loading anything
            where = device if isinstance(device, torch.device) else resolve_device(device)
            check_openvino_use(where, [get_preset(name) for name in presets or ()])
        components = load_stable_diffusion(
            checkpoint,
            device=device,
            dtype=dtype,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            config=config,
            lora=lora,
            lora_scale=lora_scale,
            download_progress=download_progress,
        )
        pipeline = cls(
            vae=components.vae,
            text_encoder=components.text_encoder,
            tokenizer=components.tokenizer,
            unet=components.unet,
            scheduler=components.scheduler,
        )
        if preset_weights is not None:
            pipeline.preset_weights = preset_weights
        if unet_backend == "openvino":
            pipeline.use_openvino(report)
        if presets is not None:
            chosen = [get_preset(name) for name in presets]
            lcm_only = bool(chosen) and all(preset.lcm_lora for preset in chosen)
            for preset in chosen:
                pipeline.prepare_preset(preset.name, download_progress, lcm_in_place=lcm_only)
        return pipeline

    def prepare_preset(
        self,
        name: str,
        download_progress: DownloadProgress | None = None,
        *,
        lcm_in_place: bool = False,
    ) -> None:
        """Load what preset name needs beyond the model, if not yet loaded: the LCM-LoRA's UNet
        and TAESD for realtime (from preset_weights: downloaded on first use, with
        download_progress). Generations call this themselves; call it first to load up front.

        lcm_in_place fuses the LCM-LoRA into the model's own UNet instead of a copy: the
        pipeline then runs only presets with the LoRA.

        Raises:
            RiffusionError: an unknown preset, or weights that cannot be had (one line on what to
                do), or a preset that needs the model's own UNet after it took the LoRA, or one
                the OpenVINO UNet cannot run.
        """
        preset = get_preset(name)
        if self._openvino_unets is not None:
            check_openvino_preset(preset)
        with self._preset_lock:
            if preset.lcm_lora and self._lcm_unet is None:
                self._lcm_unet = lcm_unet(
                    self.unet,
                    self.preset_weights,
                    in_place=lcm_in_place,
                    download_progress=download_progress,
                )
                self._unet_is_lcm = lcm_in_place
            if preset.tiny_vae and self._tiny_vae is None:
                self._tiny_vae = load_tiny_vae(
                    self.preset_weights,
                    device=self.device,
                    dtype=self.vae.dtype,
                    download_progress=download_progress,
                )
            unet = self._unet_for(preset)  # refuses a preset this pipeline can no longer run
            if self._openvino_unets is not None and id(unet) not in self._openvino_unets:
                self._openvino_unets[id(unet)] = openvino_unet(unet, self._openvino_report)

    def use_openvino(self, report: StatusReport | None = None) -> None:
        """Run the UNet in OpenVINO on the CPU from now on (riffusion.diffusion.openvino_unet):
        each UNet a preset runs is converted when that preset is prepared (the first time
        for given weights: minutes at SD 1.5's size; report hears of it). Presets with DeepCache
        are refused from then on.

        Raises:
            RiffusionError: OpenVINO is not installed, the pipeline is not on the CPU, or it
                holds named LoRAs.
        """
        check_openvino_use(self.device, (), named_loras=bool(self.named_loras))
        self._openvino_report = report
        if self._openvino_unets is None:
            self._openvino_unets = {}

    @property
    def unet_backend(self) -> UnetBackendName:
        """What runs the UNet: "torch", or "openvino" after use_openvino()."""
        return "torch" if self._openvino_unets is None else "openvino"

    def _unet_for(self, preset: Preset) -> UNet2DConditionModel:
        """The UNet preset runs (prepared)."""
        if preset.lcm_lora:
            assert self._lcm_unet is not None, "prepare_preset() first"
            return self._lcm_unet
        if self._unet_is_lcm:
            raise RiffusionError(
                f"this pipeline was loaded for LCM presets only (its UNet carries the LCM-LoRA); "
                f"load the model again to run the {preset.name} preset"
            )
        return self.unet

    def _vae_for(self, preset: Preset) -> Autoencoder:
        """The autoencoder preset runs (prepared)."""
        if preset.tiny_vae:
            assert self._tiny_vae is not None, "prepare_preset() first"
            return self._tiny_vae
        return self.vae

    # --- Generation ---------------------------------------------------------------------------

    @overload
    def riffuse(
        self,
        inputs: InferenceInput,
        init_image: Image.Image,
        mask_image: Image.Image | None = ...,
        use_reweighting: bool = ...,
        *,
        scheduler: str | None = ...,
        callback: ProgressCallback | None = ...,
        cancel: threading.Event | None = ...,
        output_type: Literal["pil"] = ...,
    ) -> Image.Image: ...

    @overload
    def riffuse(
        self,
        inputs: InferenceInput,
        init_image: Image.Image,
        mask_image: Image.Image | None = ...,
        use_reweighting: bool = ...,
        *,
        scheduler: str | None = ...,
        callback: ProgressCallback | None = ...,
        cancel: threading.Event | None = ...,
        output_type: Literal["latent"],
    ) -> torch.Tensor: ...

    @torch.no_grad()
    def riffuse(
        self,
        inputs: InferenceInput,
        init_image: Image.Image,
        mask_image: Image.Image | None = None,
        use_reweighting: bool = True,
        *,
        scheduler: str | None = None,
        callback: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        output_type: OutputType = "pil",
    ) -> Image.Image | torch.Tensor:
        """img2img from init_image, interpolating between inputs.start and inputs.end at alpha.

        Guidance and denoising strength are interpolated linearly; the text embeddings (prompt
        and negative prompt) linearly; the two seeds' noises spherically. The seed image's latents
        are sampled with the start seed. At alpha = 0 the end prompt and seed play no part.

        Args:
            inputs: prompts, seeds, alpha and step count.
            init_image: seed spectrogram; sides must be multiples of size_multiple (64).
            mask_image: white = repaint, black = keep the seed image, grays blend; any size (it
                is resized to the latent grid). After every step, kept regions are set back to
                the seed image's latents noised to the level the step reached (un-noised after
                the last step).
            use_reweighting: read ``(word:1.3)``-style weights; off, brackets are plain text.
            scheduler: scheduler name (see schedulers.SCHEDULERS); None uses the pipeline's.
            callback: progress callback; it may raise Cancelled to stop.
            cancel: an event that, once set, stops the generation before the next step.
            output_type: "pil" for the spectrogram image, "latent" for the final latents
                (1, 4, height / 8, width / 8) in float32.

        Returns:
            The spectrogram image (RGB, init_image's size, spectrogram parameters in its EXIF),
            or the latents.

        Raises:
            Cancelled: when cancelled between steps.
            RiffusionError: for unusable images or parameters.
        """
        requests = [RiffuseRequest(inputs, init_image, mask_image, callback, cancel)]
        result: Image.Image | torch.Tensor | Cancelled
        if output_type == "latent":
            (result,) = self.riffuse_batch(
                requests, use_reweighting, scheduler=scheduler, output_type="latent"
            )
        else:
            _check_output_type(output_type)
            (result,) = self.riffuse_batch(requests, use_reweighting, scheduler=scheduler)
        if isinstance(result, Cancelled):
            raise result
        return result

    @overload
    def riffuse_batch(
        self,
        requests: Sequence[RiffuseRequest],
        use_reweighting: bool = ...,
        *,
        scheduler: str | None = ...,
        output_type: Literal["pil"] = ...,
    ) -> list[ImageOrCancelled]: ...

    @overload
    def riffuse_batch(
        self,
        requests: Sequence[RiffuseRequest],
        use_reweighting: bool = ...,
        *,
        scheduler: str | None = ...,
        output_type: Literal["latent"],
    ) -> list[LatentsOrCancelled]: ...

    @torch.no_grad()
    def riffuse_batch(
        self,
        requests: Sequence[RiffuseRequest],
        use_reweighting: bool = True,
        *,
        scheduler: str | None = None,
        output_type: OutputType = "pil",
    ) -> list[ImageOrCancelled] | list[LatentsOrCancelled]:
        """riffuse() for several requests at once, with one UNet call per diffusion step.

        The requests must have equal batch_key()s. Each keeps everything that makes its result
        its own: its scheduler instance and generator, noise, text embeddings, guidance and mask.
        Only the UNet forward passes and the VAE decoding are shared. A batch of one is riffuse()
        itself; a larger batch matches separate riffuse() calls up to float rounding (batched
        matrix products round differently).

        Text embeddings of different lengths (prompts over 75 tokens embed to several 77-token
        chunks) are zero-padded to the longest, and the padding is masked out of the UNet's
        cross-attention.

        Args:
            requests: the generations, each with its own progress callback and cancel event.
            use_reweighting, scheduler, output_type: as in riffuse(), for every request.

        Returns:
            One result per request, in order: its image or latents as riffuse() gives them, or
            the Cancelled exception of a request that was cancelled (by its event or by its
            callback raising Cancelled); the other requests run on. An exception of any other
            kind from a callback stops the whole call.

        Raises:
            RiffusionError: for an unusable request, or for requests that cannot share a batch.
        """
        _check_output_type(output_type)
        keys = [
            self.batch_key(
                request.inputs, request.init_image, request.mask_image, scheduler=scheduler
            )
            for request in requests
        ]
        for index, key in enumerate(keys[1:], start=1):
            if key != keys[0]:
                raise RiffusionError(
                    f"requests 0 and {index} cannot share a batch: {keys[0].difference(key)}"
                )
        if not requests:
            return []

        use_lora(self, keys[0].lora)
        preset = get_preset(keys[0].preset)
        self.prepare_preset(preset.name)
        conditionings = [
            self._conditioning(request, use_reweighting, preset) for request in requests
        ]
        lead = requests[0].inputs
        members = self._denoise(
            conditionings,
            num_inference_steps=keys[0].num_inference_steps,
            denoising_steps=keys[0].denoising_steps,
            scheduler=scheduler,
            preset=preset,
            # Requests with equal keys share the timesteps this gives ("strength" schedule).
            strength=lerp(lead.start.denoising, lead.end.denoising, lead.alpha),
        )
        if output_type == "latent":
            return _final_latents(members)
        outputs = self._final_images(members, preset)
        for request, output in zip(requests, outputs, strict=True):
            if isinstance(output, Image.Image):
                # Tags the seed image carries beyond the spectrogram's own (its tempo, say) hold
                # for the result too: img2img keeps the seed's width and beat grid.
                exif = output.getexif()
                for tag, value in request.init_image.getexif().items():
                    exif.setdefault(tag, value)
        return outputs

    def batch_key(
        self,
        inputs: InferenceInput,
        init_image: Image.Image,
        mask_image: Image.Image | None = None,
        *,
        scheduler: str | None = None,
    ) -> BatchKey:
        """What riffuse() of these arguments must share with others to join them in a batch.

        Cheap (no model work), and it checks the arguments as riffuse() would.

        Raises:
            RiffusionError: for images of the wrong kind or size, an unknown scheduler, a
                scheduler asked of a preset that runs its own, or a named LoRA with an LCM preset.
        """
        _check_images(init_image, mask_image)
        self._check_size(init_image.width, init_image.height, "seed image")
        start, end, alpha = inputs.start, inputs.end, inputs.alpha
        preset = get_preset(inputs.preset)
        if preset.lcm_lora and inputs.lora is not None:
            # The LCM UNet is a copy fused with the LCM-LoRA; the named LoRAs live in the model's
            # own UNet, so the pair would silently run without the style.
            raise RiffusionError(
                f"LoRA {inputs.lora!r} runs with the quality and fast presets, not with "
                f"{preset.name} (its LCM-LoRA UNet does not hold the named LoRAs)"
            )
        name = _scheduler_name(preset, scheduler)
        cls = type(self.scheduler) if name is None else scheduler_class(name)
        steps, denoising_steps = self._img2img_size(
            preset, inputs.num_inference_steps, lerp(start.denoising, end.denoising, alpha)
        )
        return BatchKey(
            scheduler=cls.__name__,
            num_inference_steps=steps,
            denoising_steps=denoising_steps,
            latent_size=(
                init_image.height // self.vae_scale_factor,
                init_image.width // self.vae_scale_factor,
            ),
            guided=preset.guided and lerp(start.guidance, end.guidance, alpha) > 1.0,
            preset=preset.name,
            lora=inputs.lora,
        )

    def _img2img_size(self, preset: Preset, steps: int, denoising: float) -> tuple[int, int]:
        """(steps of the schedule, denoising steps) of an img2img run, as BatchKey holds them.

        The original riffusion's arithmetic runs the last int(steps * denoising) steps of a
        steps schedule. The "strength" schedule (LCM's) spreads the steps over the first
        int(original_inference_steps * denoising) of the scheduler's training-time schedule,
        from the noise level denoising sets; fewer steps run when fewer fit.
        """
        if preset.img2img == "truncate":
            return steps, min(int(steps * denoising), steps)
        scheduler = self._preset_scheduler(preset, preset.scheduler)
        covered = int(int(scheduler.config["original_inference_steps"]) * denoising)
        return min(steps, covered), covered

    @overload
    def img2img(
        self,
        prompt: PromptInput,
        init_image: Image.Image,
        mask_image: Image.Image | None = ...,
        *,
        num_inference_steps: int | None = ...,
        use_reweighting: bool = ...,
        scheduler: str | None = ...,
        callback: ProgressCallback | None = ...,
        cancel: threading.Event | None = ...,
        output_type: Literal["pil"] = ...,
        preset: PresetName = ...,
    ) -> Image.Image: ...

    @overload
    def img2img(
        self,
        prompt: PromptInput,
        init_image: Image.Image,
        mask_image: Image.Image | None = ...,
        *,
        num_inference_steps: int | None = ...,
        use_reweighting: bool = ...,
        scheduler: str | None = ...,
        callback: ProgressCallback | None = ...,
        cancel: threading.Event | None = ...,
        output_type: Literal["latent"],
        preset: PresetName = ...,
    ) -> torch.Tensor: ...

    @torch.no_grad()
    def img2img(
        self,
        prompt: PromptInput,
        init_image: Image.Image,
        mask_image: Image.Image | None = None,
        *,
        num_inference_steps: int | None = None,
        use_reweighting: bool = True,
        scheduler: str | None = None,
        callback: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        output_type: OutputType = "pil",
        preset: PresetName = "quality",
    ) -> Image.Image | torch.Tensor:
        """img2img from init_image with one prompt: riffuse() with start = end and alpha = 0.
        num_inference_steps None takes the preset's (50 for quality)."""
        inputs = InferenceInput(
            start=prompt,
            end=prompt,
            alpha=0.0,
            num_inference_steps=preset_steps(preset, num_inference_steps),
            preset=preset,
        )
        if output_type == "latent":
            return self.riffuse(
                inputs,
                init_image,
                mask_image,
                use_reweighting,
                scheduler=scheduler,
                callback=callback,
                cancel=cancel,
                output_type="latent",
            )
        _check_output_type(output_type)
        return self.riffuse(
            inputs,
            init_image,
            mask_image,
            use_reweighting,
            scheduler=scheduler,
            callback=callback,
            cancel=cancel,
        )

    @overload
    def txt2img(
        self,
        prompt: PromptInput,
        *,
        width: int = ...,
        height: int | None = ...,
        num_inference_steps: int | None = ...,
        use_reweighting: bool = ...,
        scheduler: str | None = ...,
        callback: ProgressCallback | None = ...,
        cancel: threading.Event | None = ...,
        output_type: Literal["pil"] = ...,
        preset: PresetName = ...,
    ) -> Image.Image: ...

    @overload
    def txt2img(
        self,
        prompt: PromptInput,
        *,
        width: int = ...,
        height: int | None = ...,
        num_inference_steps: int | None = ...,
        use_reweighting: bool = ...,
        scheduler: str | None = ...,
        callback: ProgressCallback | None = ...,
        cancel: threading.Event | None = ...,
        output_type: Literal["latent"],
        preset: PresetName = ...,
    ) -> torch.Tensor: ...

    @torch.no_grad()
    def txt2img(
        self,
        prompt: PromptInput,
        *,
        width: int = 512,
        height: int | None = None,
        num_inference_steps: int | None = None,
        use_reweighting: bool = True,
        scheduler: str | None = None,
        callback: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        output_type: OutputType = "pil",
        preset: PresetName = "quality",
    ) -> Image.Image | torch.Tensor:
        """A spectrogram from the prompt alone, starting from the seed's noise.

        width (pixels, 10 ms of audio each by default) must be a multiple of size_multiple (64);
        height defaults to the spectrogram's frequency bins (512). prompt.denoising is unused.
        num_inference_steps None takes the preset's (50 for quality).
        The initial noise is drawn as diffusers' StableDiffusionPipeline draws it (and the
        realtime preset's steps as diffusers' LatentConsistencyModelPipeline takes them), so a
        seed gives the same start as there. Other arguments as in riffuse().
        """
        _check_output_type(output_type)
        height = self.spectrogram_params.num_frequencies if height is None else height
        self._check_size(width, height, "image")
        num_inference_steps = preset_steps(preset, num_inference_steps)
        check_steps("num_inference_steps", num_inference_steps)
        check_preset_steps(preset, num_inference_steps)
        recipe = get_preset(preset)
        _scheduler_name(recipe, scheduler)
        self.prepare_preset(recipe.name)
        guidance = prompt.guidance if recipe.guided else 1.0
        text_embeddings = self._text_embeddings([(prompt, 1.0)], guidance, use_reweighting)
        shape = (
            1,
            self.unet.config.in_channels,
            height // self.vae_scale_factor,
            width // self.vae_scale_factor,
        )
        generator = self._generator(prompt.seed)
        conditioning = Conditioning(
            noise=self._randn(shape, generator),
            text_embeddings=text_embeddings,
            guidance=guidance,
            generator=generator,
            callback=callback,
            cancel=cancel,
        )
        members = self._denoise(
            [conditioning],
            num_inference_steps=num_inference_steps,
            denoising_steps=None,
            scheduler=scheduler,
            preset=recipe,
        )
        output: Image.Image | torch.Tensor | Cancelled
        if output_type == "latent":
            (output,) = _final_latents(members)
        else:
            (output,) = self._final_images(members, recipe)
        if isinstance(output, Cancelled):
            raise output
        return output

    @torch.no_grad()
    def encode_image(
        self, image: Image.Image, seed: int, preset: PresetName = "quality"
    ) -> torch.Tensor:
        """The latents riffuse() starts from: a sample of image's VAE posterior, scaled.

        Drawn with a fresh generator for seed (the start seed in riffuse(), as in the original).
        With the realtime preset TAESD encodes, deterministically (seed plays no part).
        Returns (1, 4, height / 8, width / 8) float32. The encoding is cached per image.
        """
        self.prepare_preset(preset)
        vae = self._vae_for(get_preset(preset))
        mean, std = self._encode_image(image, vae)
        epsilon = self._randn(mean.shape, self._generator(seed))
        return (mean + std * epsilon) * vae.config["scaling_factor"]

    def audio_from_image(self, image: Image.Image, quality: Quality = "fast") -> Audio:
        """The audio of a spectrogram image as riffusion plays it (seeds.play_spectrogram_image:
        a tempo-tagged loop at its tempo, any other image as drawn), peak-normalised as the
        original did. Deterministic: the same image always gives the same audio. Reconstruction
        runs on CUDA when the model does, else on the CPU."""
        converter = self._converters.get_or_make(
            quality,
            lambda: SpectrogramImageConverter(
                self.spectrogram_params, device=cuda_or_cpu(self.device), quality=quality
            ),
        )
        return play_spectrogram_image(image, converter)

    # --- The diffusion loop -------------------------------------------------------------------

    def _conditioning(
        self, request: RiffuseRequest, use_reweighting: bool, preset: Preset
    ) -> Conditioning:
        """A riffuse() request's conditioning: seed image latents, text embeddings, noise, mask.
        A preset without guidance sets the guidance scale to 1 (off)."""
        start, end, alpha = request.inputs.start, request.inputs.end, request.inputs.alpha
        guidance = lerp(start.guidance, end.guidance, alpha) if preset.guided else 1.0
        init_latents = self.encode_image(request.init_image, start.seed, preset.name)

        ends = [(start, 1.0 - alpha), (end, alpha)]
        # Encode only the prompts that take part: at alpha 0 or 1 this keeps the result
        # independent of the other end (whose length could otherwise change the padding).
        weighted_ends = [(prompt, weight) for prompt, weight in ends if weight != 0.0]
        text_embeddings = self._text_embeddings(weighted_ends, guidance, use_reweighting)

        # The seeds' noises, interpolated along the sphere. The start seed's generator also
        # drives any per-step noise of the scheduler.
        start_generator = self._generator(start.seed)
        noise_start = self._randn(init_latents.shape, start_generator)
        noise_end = noise_start
        if alpha:
            noise_end = self._randn(init_latents.shape, self._generator(end.seed))

        keep = None
        if request.mask_image is not None:
            height, width = init_latents.shape[-2:]
            keep = self._keep_mask(request.mask_image, (height, width))
        return Conditioning(
            noise=slerp(alpha, noise_start, noise_end),
            text_embeddings=text_embeddings,
            guidance=guidance,
            generator=start_generator,
            init_latents=init_latents,
            keep=keep,
            callback=request.callback,
            cancel=request.cancel,
        )

    def _denoise(
        self,
        conditionings: Sequence[Conditioning],
        *,
        num_inference_steps: int,
        denoising_steps: int | None,
        scheduler: str | None,
        preset: Preset = QUALITY,
        strength: float = 1.0,
    ) -> list[Member]:
        """Run the reverse diffusion of several conditionings side by side, one UNet call per step.

        Returns one Member per conditioning, with its final latents (float32) or, if it stopped
        early, its Cancelled as outcome. With denoising_steps (img2img), only the last
        denoising_steps steps of the schedule run, starting from each conditioning's init_latents
        noised to the first of them; for a preset with the "strength" schedule all
        num_inference_steps run, over the part of the schedule that strength (denoising) covers.
        With None, all steps run from pure noise. A conditioning's keep re-imposes its
        init_latents after each step, noised to the level the latents have reached. The
        conditionings must share guidedness (all guidance > 1 or none) and latent size. The
        preset picks the scheduler, the UNet and its caching (prepare_preset() first).
        """
        by_strength = denoising_steps is not None and preset.img2img == "strength"
        schedulers = [
            self._scheduler(
                _scheduler_name(preset, scheduler),
                num_inference_steps,
                preset,
                strength if by_strength else None,
            )
            for _ in conditionings
        ]
        # Every scheduler has the same class, config and step count: one schedule.
        lead = schedulers[0]
        timesteps = lead.timesteps if num_inference_steps else lead.timesteps[:0]
        if denoising_steps is not None and not by_strength:
            first = _img2img_start(num_inference_steps, denoising_steps, lead)
            timesteps = timesteps[first:] if denoising_steps else timesteps[:0]
            for each in schedulers:
                set_begin_index = getattr(each, "set_begin_index", None)
                if set_begin_index is not None:
                    set_begin_index(first)
        members = [
            Member(conditioning, each, _start_latents(conditioning, each, timesteps))
            for conditioning, each in zip(conditionings, schedulers, strict=True)
        ]

        guided = conditionings[0].guidance > 1.0
        rows_per_member = 2 if guided else 1
        takes_generator = "generator" in inspect.signature(lead.step).parameters
        unet = self._unet_for(preset)
        unet_dtype = unet.dtype
        deep_cache = None
        if preset.deep_cache is not None:
            settings = preset.deep_cache
            deep_cache = DeepCacheUNet(unet, settings.interval, settings.shallow_layers)
        runner: UNet2DConditionModel | OpenVINOUNet = (
            unet if self._openvino_unets is None else self._openvino_unets[id(unet)]
        )
        # The members whose rows the DeepCache cache holds, in row order.
        cached: list[Member] = []

        total = len(timesteps)
        for member in members:
            member.report(0, total)
        for index, timestep in enumerate(timesteps):
            for member in members:
                member.check_cancel(f"cancelled after {index} of {total} steps")
            active = [member for member in members if member.outcome is None]
            if not active:
                break
            # Both guidance halves of every member go through the UNet as one batch:
            # [unconditional, prompt] per member, members in order.
            model_inputs = []
            for member in active:
                rows = torch.cat([member.latents] * rows_per_member)
                model_inputs.append(member.scheduler.scale_model_input(rows, timestep))
            text_embeddings, text_mask = batched_text_embeddings(
                [member.conditioning for member in active]
            )
            sample = torch.cat(model_inputs).to(unet_dtype)
            if deep_cache is None:
                noise_preds = runner(
                    sample,
                    timestep,
                    encoder_hidden_states=text_embeddings,
                    encoder_attention_mask=text_mask,
                ).sample.float()
            else:
                if not deep_cache.is_full_step(index) and active != cached:
                    # Some members stopped since the cache was filled: keep the others' rows.
                    deep_cache.keep_rows(
                        [
                            cached.index(member) * rows_per_member + row
                            for member in active
                            for row in range(rows_per_member)
                        ]
                    )
                noise_preds = deep_cache(
                    index, sample, timestep, text_embeddings, text_mask
                ).float()
                cached = active

            for member, noise_pred in zip(active, noise_preds.split(rows_per_member), strict=True):
                conditioning = member.conditioning
                if guided:
                    noise_uncond, noise_text = noise_pred.chunk(2)
                    noise_pred = noise_uncond + conditioning.guidance * (noise_text - noise_uncond)
                step_kwargs = {"generator": conditioning.generator} if takes_generator else {}
                member.latents = member.scheduler.step(
                    noise_pred, timestep, member.latents, **step_kwargs
                ).prev_sample
                keep, known = conditioning.keep, conditioning.init_latents
                if keep is not None and known is not None:
                    if index + 1 < total:
                        known = member.scheduler.add_noise(
                            known, conditioning.noise, timesteps[index + 1 : index + 2]
                        )
                    member.latents = keep * known + (1.0 - keep) * member.latents
                member.report(index + 1, total)
        return members

    def _scheduler(
        self,
        name: str | None,
        num_inference_steps: int,
        preset: Preset = QUALITY,
        strength: float | None = None,
    ) -> Scheduler:
        """A fresh scheduler of class name (None: the model's), with preset's scheduler settings,
        set to num_inference_steps (none: 0 steps); strength passes on to schedulers whose
        img2img schedule it sets (LCM's)."""
        scheduler = self._preset_scheduler(preset, name)
        if not num_inference_steps:
            return scheduler
        options = {} if strength is None else {"strength": strength}
        try:
            scheduler.set_timesteps(num_inference_steps, device=self.device, **options)
        except ValueError as error:  # e.g. LCM with more steps than it was distilled for
            raise RiffusionError(f"{type(scheduler).__name__}: {error}") from None
        return scheduler

    def _preset_scheduler(self, preset: Preset, name: str | None) -> Scheduler:
        """A fresh scheduler of class name (None: the model's) with preset's settings, not yet
        set to a step count."""
        return make_scheduler(name, self.scheduler, dict(preset.scheduler_config))

    def _final_images(
        self, members: Sequence[Member], preset: Preset = QUALITY
    ) -> list[ImageOrCancelled]:
        """Each member's decoded image (with preset's autoencoder), or its Cancelled."""
        for member in members:
            member.check_cancel("cancelled before decoding")
        finished = [member for member in members if member.outcome is None]
        vae = self._vae_for(preset)
        images = iter(
            self._decode([member.latents for member in finished], vae) if finished else []
        )
        return [
            member.outcome if member.outcome is not None else next(images) for member in members
        ]

    def _decode(self, latents: Sequence[torch.Tensor], vae: Autoencoder) -> list[Image.Image]:
        """Latents, each (1, 4, h, w), -> RGB spectrogram images (8h x 8w) with spectrogram
        EXIF, in one call of vae."""
        batch = torch.cat(list(latents)) / vae.config["scaling_factor"]
        pixels = vae.decode(batch.to(vae.dtype)).sample.float()
        frames = (pixels / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        images = []
        for frame in frames:
            image = Image.fromarray((frame * 255).round().astype(np.uint8), mode="RGB")
            exif = image.getexif()
            exif.update(self.spectrogram_params.to_exif())
            # Model output has no measured loudness: it is read back at the original's fixed
            # scale.
            exif[int(ExifTag.MAX_VALUE)] = DEFAULT_MAX_VALUE
            images.append(image)
        return images

    # --- Conditioning -------------------------------------------------------------------------

    def _text_embeddings(
        self,
        ends: Sequence[tuple[PromptInput, float]],
        guidance: float,
        use_reweighting: bool,
    ) -> torch.Tensor:
        """Text embeddings for the UNet: (2 or 1, tokens, hidden) in the UNet's dtype.

        ends pairs each prompt with its interpolation weight (weights sum to 1). With guidance
        > 1 the result is [negative, prompt] (the negative defaults to the empty prompt), else
        [prompt]. All texts are embedded in one call, so the rows share one token length.
        """
        texts = [prompt.prompt for prompt, _ in ends]
        if guidance > 1.0:
            texts = [prompt.negative_prompt or "" for prompt, _ in ends] + texts
        if not use_reweighting:
            texts = [_literal_prompt(text) for text in texts]
        rows = self.prompt_embedder.embed(texts).float()

        groups = rows.split(len(ends))
        if len(ends) == 1:
            embeddings = torch.cat(groups)
        else:
            # Linear interpolation start + alpha * (end - start), as the original did.
            alpha = ends[1][1]
            embeddings = torch.cat(
                [group[:1] + alpha * (group[1:] - group[:1]) for group in groups]
            )
        return embeddings.to(device=self.device, dtype=self.unet.dtype)

    def _encode_image(
        self, image: Image.Image, vae: Autoencoder
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation (float32, (1, 4, h / 8, w / 8)) of image's posterior
        under vae; TAESD's encoding is deterministic, with a standard deviation of 0.

        Cached per image content: a seed image is encoded once, and sampling from the cached
        distribution with any seed is exactly what re-encoding would give.
        """
        self._check_size(image.width, image.height, "seed image")

        def encode() -> tuple[torch.Tensor, torch.Tensor]:
            rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
            pixels = torch.from_numpy(rgb).permute(2, 0, 1)[None] * 2.0 - 1.0
            pixels = pixels.to(self.device, vae.dtype)
            if isinstance(vae, AutoencoderTiny):
                latents = vae.encode(pixels).latents.float()
                return latents, torch.zeros_like(latents)
            posterior = vae.encode(pixels).latent_dist
            return posterior.mean.float(), posterior.std.float()

        key = (_image_digest(image), type(vae).__name__, vae.dtype, str(self.device))
        return self._image_latents.get_or_make(key, encode)

    def _keep_mask(self, mask_image: Image.Image, latent_size: tuple[int, int]) -> torch.Tensor:
        """(1, 1, h, w) float32 weights of the seed image: 1 where the mask is black, 0 white.

        The mask is converted to grayscale and resized to the latent grid with nearest-neighbour
        sampling, as the original did. Cached per mask content and size.
        """

        def keep_weights() -> torch.Tensor:
            height, width = latent_size
            gray = mask_image.convert("L").resize(
                (width, height), resample=Image.Resampling.NEAREST
            )
            repaint = torch.from_numpy(np.asarray(gray, dtype=np.float32) / 255.0)
            return (1.0 - repaint)[None, None].to(self.device)

        key = (_image_digest(mask_image), latent_size, str(self.device))
        return self._masks.get_or_make(key, keep_weights)

    # --- Helpers ------------------------------------------------------------------------------

    def _check_size(self, width: int, height: int, what: str) -> None:
        multiple = self.size_multiple
        if width < multiple or height < multiple or width % multiple or height % multiple:
            raise RiffusionError(
                f"{what} is {width}x{height} pixels; width and height must be positive multiples "
                f"of {multiple} (e.g. 512x512)"
            )

    def _generator(self, seed: int) -> torch.Generator:
        """A fresh generator for seed, on the device the original riffusion drew noise on.

        CUDA draws on the GPU (so seeds give the noise they gave there); MPS draws on the CPU.
        """
        return torch.Generator(device=cuda_or_cpu(self.device)).manual_seed(seed)

    def _randn(self, shape: Sequence[int], generator: torch.Generator) -> torch.Tensor:
        """Standard normal float32 noise of shape from generator, on the pipeline's device."""
        noise = torch.randn(tuple(shape), generator=generator, device=generator.device)
        return noise.to(self.device)


def _scheduler_name(preset: Preset, scheduler: str | None) -> str | None:
    """The scheduler a run of preset uses: preset's own, else the one asked for; None for the
    model's.

    Raises:
        RiffusionError: a scheduler was asked of a preset that runs its own.
    """
    if preset.scheduler is None:
        return scheduler
    if scheduler is not None:
        raise RiffusionError(
            f"the {preset.name} preset runs its own scheduler ({preset.scheduler}); choosing one "
            "is for the quality preset"
        )
    return preset.scheduler


def _img2img_start(num_inference_steps: int, denoising_steps: int, scheduler: Scheduler) -> int:
    """Index into scheduler.timesteps where img2img of denoising_steps (int(steps * denoising))
    starts: the original riffusion's arithmetic, min(k + offset, steps) steps back from the end
    counted with the config's steps_offset.

    Below denoising 1 this is steps - k: the last k steps run (k + 1 timesteps for PNDM, whose
    schedule repeats one for its warm-up). At denoising 1 the cap makes it 1 rather than 0 when
    steps_offset is 1 (SD v1's configs): the first timestep is skipped, as the original did.
    Unlike the original, the seed image is noised to the level of the first step that runs for
    every scheduler (the original noised one step higher for schedules without PNDM's repeat).
    """
    steps = num_inference_steps
    offset = int(scheduler.config.get("steps_offset", 0))
    return max(steps - min(denoising_steps + offset, steps) + offset, 0) * scheduler.order


def _start_latents(
    conditioning: Conditioning, scheduler: Scheduler, timesteps: torch.Tensor
) -> torch.Tensor:
    """The latents the loop starts from: the seed image's latents noised to the first of
    timesteps (img2img; as they are when no step runs), or pure noise at the scheduler's scale."""
    if conditioning.init_latents is None:
        return conditioning.noise * scheduler.init_noise_sigma
    if not len(timesteps):
        return conditioning.init_latents
    return scheduler.add_noise(conditioning.init_latents, conditioning.noise, timesteps[:1])


def _final_latents(members: Sequence[Member]) -> list[LatentsOrCancelled]:
    """Each member's final latents, or its Cancelled."""
    return [member.outcome if member.outcome is not None else member.latents for member in members]


def _check_output_type(output_type: str) -> None:
    if output_type not in ("pil", "latent"):
        raise RiffusionError(f"output_type must be 'pil' or 'latent', got {output_type!r}")


def _check_images(init_image: object, mask_image: object) -> None:
    """Fail before any model work on images of the wrong kind."""
    for name, image in (("init_image", init_image), ("mask_image", mask_image)):
        if image is not None and not isinstance(image, Image.Image):
            raise RiffusionError(f"{name} must be a PIL image, got {type(image).__name__}")


def _image_digest(image: Image.Image) -> str:
    """A key for an image's content: mode, size and a hash of its pixels."""
    digest = hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest()
    return f"{image.mode}:{image.width}x{image.height}:{digest}"
