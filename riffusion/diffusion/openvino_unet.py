"""The UNet run by OpenVINO on the CPU (`--unet-backend openvino`), about 2x PyTorch's speed there.

Measured on a 2-core AMD Zen 4 with native bfloat16 (docs/benchmarks.md, "CPU backends"): one
SD 1.5-size UNet call in OpenVINO bf16 took about half the time of PyTorch bf16, with the same
output within bfloat16's own error (float32: within 1e-6 relative).

How: the UNet the pipeline runs (LoRAs fused, the LCM-LoRA's for the realtime preset) is exported
with torch.export as a function (sample, timestep, text embeddings) -> noise, converted with
openvino.convert_model to OpenVINO's IR (float32 weights, every input dimension free), written to
the user's cache under a digest of the weights, and compiled for the CPU once per input shape.
Converting an SD 1.5-size UNet takes minutes and is done once per set of weights: a model, LoRA or
LoRA scale of its own gets a conversion of its own.

OpenVINOUNet stands in for the diffusers UNet where the pipeline calls it, with the same call and
output. What it cannot stand in for is refused up front (check_openvino_use): DeepCache (the fast
preset) calls into the UNet's blocks, named LoRAs switch adapters inside the PyTorch UNet per
request, and OpenVINO's CPU plugin runs on the CPU only.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.util
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
import torch

from riffusion.diffusion.checkpoints import cpu_has_native_bf16
from riffusion.diffusion.presets import Preset
from riffusion.errors import RiffusionError
from riffusion.lru_cache import LRUCache
from riffusion.user_cache import user_cache_dir

if TYPE_CHECKING:
    from diffusers.models.unets.unet_2d_condition import (
        UNet2DConditionModel,
        UNet2DConditionOutput,
    )

UnetBackendName = Literal["torch", "openvino"]
UNET_BACKENDS: tuple[UnetBackendName, ...] = ("torch", "openvino")
#: Told, in a line, of a slow step as it starts and ends (converting the UNet).
StatusReport = Callable[[str], None]

INSTALL_HINT = "pip install 'riffusion[openvino]'"
NAMED_LORAS_REFUSAL = (
    "--unet-backend openvino cannot switch named LoRAs (--lora NAME=PATH) per request: they "
    "live inside the PyTorch UNet; fuse one with --lora PATH instead"
)
#: Bumped when the conversion changes, so that older conversions are not reused.
CONVERSION_VERSION = 1
#: Input names of the converted model, in the order the wrapper takes them.
INPUT_NAMES = ("sample", "timestep", "encoder_hidden_states")
IR_FILE = "unet.xml"
#: Compiled models kept per UNet, one per input shape: batch 1 (one row, no guidance) and 2
#: (guidance, or two requests), and one more (a longer prompt); each holds a copy of the weights.
COMPILED_SHAPES_KEPT = 3


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def require_openvino() -> None:
    """RiffusionError saying how to install OpenVINO, where it is not installed."""
    if not openvino_installed():
        raise RiffusionError(f"--unet-backend openvino needs OpenVINO: {INSTALL_HINT}")


def check_openvino_use(
    device: torch.device, presets: Iterable[Preset], named_loras: bool = False
) -> None:
    """Refuse, in one line, what the OpenVINO UNet cannot run: a device other than the CPU,
    presets with DeepCache, named LoRAs; and say how to install OpenVINO where it is missing.

    Raises:
        RiffusionError: the first of those found.
    """
    require_openvino()
    if device.type != "cpu":
        raise RiffusionError(
            f"--unet-backend openvino runs the UNet on the CPU, not on {device}: pass --device cpu"
        )
    for preset in presets:
        check_openvino_preset(preset)
    if named_loras:
        raise RiffusionError(NAMED_LORAS_REFUSAL)


def check_openvino_preset(preset: Preset) -> None:
    """RiffusionError unless the OpenVINO UNet can run preset (no DeepCache)."""
    if preset.deep_cache is not None:
        raise RiffusionError(
            f"--unet-backend openvino cannot run the {preset.name} preset: its DeepCache calls "
            "into the PyTorch UNet's blocks (quality and realtime run with OpenVINO)"
        )


def precision_hint(dtype: torch.dtype) -> str:
    """OpenVINO's CPU inference precision for a pipeline computing in dtype: bf16 where the
    pipeline runs bfloat16 and the CPU has it natively, else f32 (OpenVINO would otherwise
    pick bf16 by itself on such CPUs, even for a float32 pipeline)."""
    return "bf16" if dtype == torch.bfloat16 and cpu_has_native_bf16() else "f32"


class OpenVINOUNet:
    """A converted UNet, compiled for the CPU per input shape, called as the diffusers UNet.

    Attributes:
        config: the UNet's config (the diffusers model's own).
        dtype: the dtype the pipeline feeds it (the PyTorch UNet's); inputs are read as float32.
        device: the CPU.
        ir_path: the converted model's .xml file.
        precision: OpenVINO's inference precision, "bf16" or "f32".
    """

    def __init__(
        self, ir_path: Path, config: Any, dtype: torch.dtype, precision: str, threads: int
    ) -> None:
        self.config = config
        self.dtype = dtype
        self.device = torch.device("cpu")
        self.ir_path = ir_path
        self.precision = precision
        self._threads = threads
        self._core = _openvino().Core()
        self._requests: LRUCache[tuple[tuple[int, ...], ...], Any] = LRUCache(COMPILED_SHAPES_KEPT)
        # One inference request per shape, and OpenVINO's requests are not thread-safe.
        self._lock = threading.Lock()

    @overload
    def __call__(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = ...,
        return_dict: Literal[True] = ...,
    ) -> UNet2DConditionOutput: ...

    @overload
    def __call__(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = ...,
        *,
        return_dict: Literal[False],
    ) -> tuple[torch.Tensor]: ...

    def __call__(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> UNet2DConditionOutput | tuple[torch.Tensor]:
        """The noise prediction (batch, 4, h, w), float32, for latents sample (batch, 4, h, w),
        one timestep (a number or a one-element tensor) and text embeddings (batch, tokens,
        width).

        encoder_attention_mask (batch, tokens; 1 = attend, 0 = padding) marks zero-padded
        embeddings; it must be a prefix mask (as riffusion.diffusion.batch makes). Rows are then
        run at their own token lengths, which is what the mask asks the PyTorch UNet to compute.
        """
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        timestep = torch.as_tensor(timestep)
        if timestep.numel() != 1:
            raise ValueError(f"one timestep for the whole batch expected, got {timestep.shape}")
        time_value = timestep.reshape(()).float()
        if encoder_attention_mask is None:
            noise = self._run(sample, time_value, encoder_hidden_states)
        else:
            noise = self._run_masked(
                sample, time_value, encoder_hidden_states, encoder_attention_mask
            )
        return UNet2DConditionOutput(sample=noise) if return_dict else (noise,)

    def _run_masked(
        self, sample: torch.Tensor, timestep: torch.Tensor, text: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """The rows of each token length, run without their padding, back in row order."""
        lengths = mask.sum(dim=1).round().long()
        tokens = torch.arange(mask.shape[1], device=mask.device)
        if not torch.equal(mask.bool(), tokens[None, :] < lengths[:, None]):
            raise ValueError("the OpenVINO UNet takes prefix masks only (1s, then 0s)")
        noise = torch.empty(sample.shape, dtype=torch.float32)
        for length in lengths.unique().tolist():
            rows = (lengths == length).nonzero().flatten()
            noise[rows] = self._run(sample[rows], timestep, text[rows, :length])
        return noise

    def _run(
        self, sample: torch.Tensor, timestep: torch.Tensor, text: torch.Tensor
    ) -> torch.Tensor:
        # Row-major float32 (the pipeline's latents may be channels-last, bfloat16).
        arrays = [
            tensor.detach().float().cpu().contiguous().numpy()
            for tensor in (sample, timestep, text)
        ]
        shapes = tuple(tuple(array.shape) for array in arrays)
        with self._lock:
            request = self._requests.get_or_make(shapes, lambda: self._compile(shapes))
            request.infer(arrays)
            output = np.array(request.get_output_tensor(0).data, dtype=np.float32)
        return torch.from_numpy(output)

    def _compile(self, shapes: tuple[tuple[int, ...], ...]) -> Any:
        """An inference request of the model compiled for the CPU at these input shapes."""
        model = self._core.read_model(self.ir_path)
        model.reshape({name: list(shape) for name, shape in zip(INPUT_NAMES, shapes, strict=True)})
        compiled = self._core.compile_model(
            model,
            "CPU",
            {
                "INFERENCE_PRECISION_HINT": self.precision,
                "INFERENCE_NUM_THREADS": self._threads,
                "PERFORMANCE_HINT": "LATENCY",
            },
        )
        return compiled.create_infer_request()


def openvino_unet(unet: UNet2DConditionModel, report: StatusReport | None = None) -> OpenVINOUNet:
    """unet, converted for OpenVINO (or its conversion from the cache), ready to stand in for it.

    report hears of a conversion as it starts and ends.

    Raises:
        RiffusionError: OpenVINO is not installed, or the conversion failed.
    """
    require_openvino()
    folder = conversions_dir() / weights_digest(unet)
    ir_path = folder / IR_FILE
    if not ir_path.is_file():
        _convert(unet, folder, report)
    return OpenVINOUNet(
        ir_path,
        unet.config,
        unet.dtype,
        precision_hint(unet.dtype),
        threads=torch.get_num_threads(),
    )


def conversions_dir() -> Path:
    """The folder of converted UNets in the user's cache, one subfolder per weights digest."""
    return user_cache_dir() / "openvino"


def weights_digest(unet: UNet2DConditionModel) -> str:
    """32 hex digits identifying what a conversion of unet holds: its config, every weight
    (name, dtype, shape, values), the OpenVINO version and CONVERSION_VERSION."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{CONVERSION_VERSION}:{_openvino().__version__}:".encode())
    digest.update(json.dumps(dict(unet.config), sort_keys=True, default=str).encode())
    for name, tensor in unet.state_dict().items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        # Bytes of the values in logical (row-major) order, whatever the memory format.
        values = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        digest.update(values.numpy().tobytes())
    return digest.hexdigest()


class NoisePrediction(torch.nn.Module):
    """The UNet as a function of three float32 tensors, returning the noise only (float32)."""

    def __init__(self, unet: UNet2DConditionModel) -> None:
        super().__init__()
        self.unet = unet

    def forward(
        self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor
    ) -> torch.Tensor:
        noise: torch.Tensor = self.unet(
            sample, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False
        )[0]
        return noise


def _convert(unet: UNet2DConditionModel, folder: Path, report: StatusReport | None) -> None:
    """Write unet's OpenVINO IR (float32) into folder, whole or not at all."""
    tell = report or (lambda _: None)
    tell("converting the UNet for OpenVINO (once) ...")
    started = time.monotonic()
    folder.parent.mkdir(parents=True, exist_ok=True)
    # float32 weights: the conversion keeps what it is given, and the precision is chosen when
    # compiling. A lower-precision UNet is copied up for the conversion's length only.
    float_unet = unet if unet.dtype == torch.float32 else copy.deepcopy(unet).float()
    openvino = _openvino()
    example = _example_inputs(float_unet)
    auto = torch.export.Dim.AUTO
    try:
        with torch.no_grad():
            exported = torch.export.export(
                NoisePrediction(float_unet).eval(),
                example,
                dynamic_shapes={
                    "sample": {0: auto, 2: auto, 3: auto},
                    "timestep": {},
                    "encoder_hidden_states": {0: auto, 1: auto},
                },
            )
        model = openvino.convert_model(exported)
    except Exception as error:  # an operation torch.export or OpenVINO cannot take
        first_line = (str(error).strip() or type(error).__name__).splitlines()[0]
        raise RiffusionError(
            f"--unet-backend openvino: could not convert the UNet ({type(error).__name__}: "
            f"{first_line}); run it with --unet-backend torch"
        ) from None
    for port, name in zip(model.inputs, INPUT_NAMES, strict=True):
        port.get_tensor().set_names({name})
    partial = Path(
        tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent)
    )
    try:
        # save_model would halve the weights to float16 by default.
        openvino.save_model(model, partial / IR_FILE, compress_to_fp16=False)
        try:
            partial.rename(folder)
        except OSError:
            if not (folder / IR_FILE).is_file():  # not another process's conversion in place
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    tell(f"converted the UNet for OpenVINO in {time.monotonic() - started:.0f} s")


def _example_inputs(unet: UNet2DConditionModel) -> tuple[torch.Tensor, ...]:
    """Inputs one guided step gives: latents (2, channels, side, side), a 0-d float32 timestep,
    text embeddings (2, 77, width). Their sizes only guide the export: all but the channels
    are left free."""
    side = int(unet.config["sample_size"])
    return (
        torch.zeros(2, int(unet.config["in_channels"]), side, side),
        torch.tensor(500.0),
        torch.zeros(2, 77, int(unet.config["cross_attention_dim"])),
    )


def _openvino() -> Any:
    """The openvino module (untyped: it ships no type information)."""
    return importlib.import_module("openvino")
