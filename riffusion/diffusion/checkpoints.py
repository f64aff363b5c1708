"""Finding and loading Stable Diffusion checkpoints: Hub ids, diffusers folders, single files.

Whatever goes wrong while locating or reading a model (no network, a wrong path, a broken folder,
weights that do not fit) is reported as one RiffusionError that says where the weights come from
and how to point ``--model`` at a local copy, never as a traceback from inside a library.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from riffusion.devices import resolve_device
from riffusion.diffusion.downloads import DownloadProgress, reporting_downloads
from riffusion.errors import RiffusionError

if TYPE_CHECKING:
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import (
        StableDiffusionPipeline,
    )

DEFAULT_CHECKPOINT = "riffusion/riffusion-model-v1"
SINGLE_FILE_SUFFIXES = (".ckpt", ".safetensors")

# "owner/name" as the Hub spells repository ids.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

_DTYPES = {
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
}
DTYPE_NAMES = ("auto", "float16", "bfloat16", "float32")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 matrix products natively (AMX-BF16 or AVX512-BF16).

    Those run bfloat16 about 3x faster than float32; without them torch emulates bfloat16, which
    is slower than float32. Read from /proc/cpuinfo, so other systems answer False.
    """
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """The dtype to compute in: dtype itself, or for None / "auto" the fastest safe one on device.

    float16 on CUDA; bfloat16 on CPUs with native bfloat16; float32 elsewhere (MPS included, as in
    the original riffusion).
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is not None and dtype.strip().lower() != "auto":
        try:
            return _DTYPES[dtype.strip().lower()]
        except KeyError:
            raise RiffusionError(
                f"unknown dtype {dtype!r}: use one of {', '.join(DTYPE_NAMES)}"
            ) from None
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


def load_stable_diffusion(
    checkpoint: str | os.PathLike[str] = DEFAULT_CHECKPOINT,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    config: str | os.PathLike[str] | None = None,
    lora: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    lora_scale: float = 1.0,
    download_progress: DownloadProgress | None = None,
) -> StableDiffusionPipeline:
    """Load a Stable Diffusion v1 checkpoint without its safety checker, on device in dtype.

    Args:
        checkpoint: a Hugging Face Hub id ("riffusion/riffusion-model-v1", downloaded once into
            the Hub cache), a local folder in diffusers layout, or a single .ckpt / .safetensors
            file with the original Stable Diffusion parameter names.
        device: "cuda", "mps", "cpu", ...; None picks cuda, then mps, then cpu.
        dtype: torch dtype or its name; None picks as resolve_dtype() describes.
        revision: Hub branch, tag or commit of a Hub checkpoint.
        cache_dir: Hub cache folder instead of the default (~/.cache/huggingface/hub).
        local_files_only: never go online; Hub checkpoints must already be in the cache.
        config: for single files, the diffusers folder or Hub id whose configs and tokenizer
            describe the model; riffusion-model-v1's by default.
        lora: LoRA weights to merge in: a .safetensors / .bin file, a folder or a Hub id; or a
            list of them.
        lora_scale: strength of the LoRA weights (1 = as trained).
        download_progress: called with (bytes fetched, bytes in all) while a Hub checkpoint
            downloads; never called when it is already cached.
    """
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import (
        StableDiffusionPipeline,
    )

    torch_device = resolve_device(None if device is None else str(device))
    torch_dtype = resolve_dtype(dtype, torch_device)
    common = {
        "dtype": torch_dtype,
        # Riffusion never used the NSFW filter (it flags spectrograms at random), and skipping
        # these two components also skips downloading them.
        "safety_checker": None,
        "feature_extractor": None,
        "requires_safety_checker": False,
    }

    path = Path(checkpoint).expanduser()
    if path.is_file():
        if path.suffix.lower() not in SINGLE_FILE_SUFFIXES:
            raise RiffusionError(
                f"{path}: not a model checkpoint; --model takes a Hub id, a diffusers folder or a "
                f"{' / '.join(SINGLE_FILE_SUFFIXES)} file"
            )
        config = str(config) if config is not None else DEFAULT_CHECKPOINT
        pipe = _load(
            path,
            lambda: StableDiffusionPipeline.from_single_file(
                str(path),
                config=config,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                **common,
            ),
            hint=f" (single-file checkpoints take their configs and tokenizer from {config}; "
            "point --model-config at a local diffusers folder of the same architecture)",
        )
    elif path.is_dir():
        if not (path / "model_index.json").is_file():
            raise RiffusionError(
                f"{path}: not a diffusers model folder (it has no model_index.json); --model takes "
                f"a Hub id, a diffusers folder or a {' / '.join(SINGLE_FILE_SUFFIXES)} file"
            )
        pipe = _load(
            path,
            lambda: StableDiffusionPipeline.from_pretrained(path, local_files_only=True, **common),
        )
    elif looks_like_path(str(checkpoint)):
        raise RiffusionError(f"{checkpoint}: no such file or folder")
    else:
        pipe = _load_from_hub(
            str(checkpoint),
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            common=common,
            download_progress=download_progress,
        )

    if lora:
        loras = [lora] if isinstance(lora, (str, os.PathLike)) else list(lora)
        _merge_loras(
            pipe, loras, lora_scale, cache_dir=cache_dir, local_files_only=local_files_only
        )
    pipe = pipe.to(torch_device)
    if torch_device.type in ("cpu", "cuda"):
        # oneDNN and cuDNN run these convolutions fastest on NHWC tensors (measured on this CPU in
        # bfloat16: the VAE decoder about 2x faster; see docs/benchmarks.md).
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    return pipe


def looks_like_path(name: str) -> bool:
    """True for names that cannot be Hub ids, so a missing one is a missing local path."""
    return (
        not _HUB_ID.match(name)
        or name.startswith((".", "~"))
        or name.lower().endswith(SINGLE_FILE_SUFFIXES)
    )


def _load_from_hub(
    repo_id: str,
    *,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool,
    common: dict,
    download_progress: DownloadProgress | None,
) -> StableDiffusionPipeline:
    """Download (once, with a progress bar) the parts of a Hub pipeline we use, then load them."""
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import (
        StableDiffusionPipeline,
    )

    try:
        # download() fetches only the component folders listed in model_index.json, skipping the
        # ones passed as None (safety checker, feature extractor) and stray root files such as
        # riffusion-model-v1.ckpt; a complete cached copy is used without going online.
        with reporting_downloads(download_progress):
            folder = StableDiffusionPipeline.download(
                repo_id,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                safety_checker=None,
                feature_extractor=None,
            )
    except Exception as error:  # any failure here means: no usable copy of the weights
        raise hub_error(repo_id, revision, error) from None
    return _load(
        repo_id,
        lambda: StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, **common),
    )


@dataclass(frozen=True)
class HubWeights:
    """Weights fetched from the Hub, as error messages name them.

    Attributes:
        what: what they are ("the model", "the LCM-LoRA", ...).
        option: the option that takes a local copy instead ("--model").
        local_forms: the forms that option takes.
        download_options: extra options of the `hf download` command that fetches a copy.
    """

    what: str
    option: str
    local_forms: str
    download_options: str = ""


MODEL_WEIGHTS = HubWeights(
    "the model",
    "--model",
    "a diffusers folder or a .ckpt / .safetensors file",
    download_options=' --exclude "*.ckpt"',
)


def hub_error(
    repo_id: str, revision: str | None, error: Exception, weights: HubWeights = MODEL_WEIGHTS
) -> RiffusionError:
    """A one-line explanation of why repo_id could not be had, and what to do about it."""
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    causes: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None and len(causes) < 10:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__

    def caused_by(*types: type[BaseException]) -> bool:
        return any(isinstance(cause, types) for cause in causes)

    unreachable = any(_is_network_error(cause) for cause in causes)

    url = f"https://huggingface.co/{repo_id}"
    local_copy = (
        f"or point {weights.option} at a local copy of {weights.what}: {weights.local_forms}"
    )
    if caused_by(GatedRepoError):
        reason = f"{url} is gated: accept its terms there and log in with `hf auth login`"
    elif caused_by(RevisionNotFoundError):
        reason = f"{url} has no revision {revision!r}"
    elif caused_by(RepositoryNotFoundError):
        reason = f"there is no model {repo_id!r} on the Hugging Face Hub (or it is private)"
    elif unreachable or caused_by(OfflineModeIsEnabled, LocalEntryNotFoundError):
        reason = (
            f"it is not in the Hugging Face cache and the Hub cannot be reached. The weights come "
            f"from {url} and are downloaded once into the cache; where there is network, "
            f"`hf download {repo_id}{weights.download_options} --local-dir DIR` fetches a copy to "
            f"bring here as {weights.option} DIR"
        )
    else:
        reason = f"{type(error).__name__}: {_first_line(error)}"
    return RiffusionError(f"could not get {weights.what} {repo_id!r}: {reason}, {local_copy}")


# Class names the HTTP stacks under huggingface_hub and diffusers (httpx or its renamed copies,
# httpcore, requests, urllib3) give to "could not reach the server".
_NETWORK_ERROR_NAMES = frozenset(
    {"ConnectError", "ConnectionError", "NetworkError", "TransportError", "TimeoutException"}
)


def _is_network_error(error: BaseException) -> bool:
    """Whether error means the server could not be reached (no network, DNS, timeouts)."""
    if isinstance(error, (ConnectionError, TimeoutError, socket.gaierror)):
        return True
    return any(cls.__name__ in _NETWORK_ERROR_NAMES for cls in type(error).__mro__)


def _load(
    source: object, load: Callable[[], StableDiffusionPipeline], hint: str = ""
) -> StableDiffusionPipeline:
    """Run load(), turning any failure into a one-line RiffusionError about source."""
    try:
        return load()
    except RiffusionError:
        raise
    except Exception as error:  # corrupt files, missing parts, mismatched shapes, ...
        raise RiffusionError(
            f"{source}: could not load the model ({type(error).__name__}: {_first_line(error)})"
            + hint
        ) from None


def _merge_loras(
    pipe: StableDiffusionPipeline,
    loras: Sequence[str | os.PathLike[str]],
    scale: float,
    *,
    cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool,
) -> None:
    """Load LoRA adapters through diffusers/peft and fuse them into the weights at scale.

    Fusing makes a LoRA free at inference time: afterwards the UNet and text encoder are plain
    modules again, just with different weights.
    """
    names = []
    for index, lora in enumerate(loras):
        name = f"lora_{index}"
        try:
            pipe.load_lora_weights(
                _lora_source(lora),
                adapter_name=name,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
            )
        except RiffusionError:
            raise
        except Exception as error:  # missing, not a LoRA, or made for another architecture
            raise RiffusionError(
                f"{lora}: could not load LoRA weights ({type(error).__name__}: "
                f"{_first_line(error)}); --lora takes a .safetensors file, a folder or a Hub id "
                "of LoRA weights for Stable Diffusion v1"
            ) from None
        names.append(name)
    pipe.set_adapters(names, adapter_weights=[scale] * len(names))
    pipe.fuse_lora(adapter_names=names)
    pipe.unload_lora_weights()


def fuse_unet_lora(
    unet: UNet2DConditionModel, lora: str | os.PathLike[str], scale: float = 1.0
) -> None:
    """Fuse LoRA weights that change only the UNet (such as an LCM-LoRA) into unet, in place.

    lora is a .safetensors / .bin file or a folder holding one. As with --lora, diffusers reads
    the file (diffusers, kohya or peft layout) and peft fuses it, leaving plain modules.

    Raises:
        RiffusionError: the weights cannot be read, are not a UNet LoRA, or do not fit unet.
    """
    from diffusers.loaders.lora_pipeline import StableDiffusionLoraLoaderMixin as LoraLoader

    try:
        state_dict, alphas = LoraLoader.lora_state_dict(_lora_source(lora), local_files_only=True)
        if any(key.startswith("text_encoder") for key in state_dict):
            raise RiffusionError(
                f"{lora}: these LoRA weights also change the text encoder; only UNet LoRAs can "
                "be fused here"
            )
        if not any(key.startswith("unet.") for key in state_dict):
            raise RiffusionError(f"{lora}: holds no UNet LoRA weights")
        LoraLoader.load_lora_into_unet(state_dict, alphas, unet=unet, adapter_name="fused")
        unet.fuse_lora(lora_scale=scale, adapter_names=["fused"])
        unet.unload_lora()
    except RiffusionError:
        raise
    except Exception as error:  # not a LoRA, or made for another architecture
        raise RiffusionError(
            f"{lora}: could not load LoRA weights ({type(error).__name__}: {_first_line(error)})"
        ) from None


def _lora_source(lora: str | os.PathLike[str]) -> str | dict[str, torch.Tensor]:
    """What load_lora_weights takes: a state dict for a file, the name itself otherwise."""
    path = Path(lora).expanduser()
    if path.is_file():
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    if path.is_dir():
        return str(path)
    if not looks_like_path(str(lora)):
        return str(lora)
    raise RiffusionError(f"{lora}: no such LoRA file or folder")


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
