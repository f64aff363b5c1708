"""One UNet call at Stable Diffusion 1.5's sizes on the CPU: PyTorch eager, OpenVINO, ONNX Runtime.

The question: would an optional inference backend run the UNet, over 90 % of a clip, at least 1.5x
faster than the pipeline's own best CPU path (PyTorch eager, bfloat16 where the CPU has it
natively, channels_last) with the same output? All backends run the same random-weight UNet of
SD 1.5's sizes (860M parameters) on the inputs one denoising step gets: latents (batch, 4, 64, 64)
for a 512x512 clip, text embeddings (batch, 77, 768), one timestep; batch 2 for a request with
classifier-free guidance, 1 without.

- torch fp32 / torch bf16: the diffusers module in channels_last, as the pipeline loads it.
- openvino fp32 / openvino bf16: the same module converted with openvino.convert_model (the
  conversion optimum-intel wraps) and compiled for the CPU at the static input shape, with the
  inference precision hint f32 or bf16.
- onnxruntime fp32: the module exported with torch.onnx.export, run by the CPU execution
  provider with all graph optimisations.

Conversions are written once next to the checkpoint and reused. Every backend is warmed up, then
the timed calls are interleaved (each repetition runs every backend once, the order rotating) so
that the load of a shared machine falls on all of them alike; the table holds the median. Each
output is compared with torch fp32's: the largest absolute difference, and the relative error
||output - reference|| / ||reference||, which must stay within the tolerance for the backend's
precision (see TOLERANCE_FP32 and BF16_TOLERANCE_FACTOR).

    .venv/bin/python bench/bench_cpu_backends.py [--repeats 5] [--batches 2,1]
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_pipeline import PeakMemory, cpu_name
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from random_checkpoints import add_sd15_checkpoint_argument, random_checkpoint

from riffusion.diffusion.checkpoints import cpu_has_native_bf16
from riffusion.diffusion.openvino_unet import NoisePrediction

LATENT_SIDE = 64  # a 512x512 px spectrogram: the VAE downsamples by 8
TIMESTEP = 500
INPUT_NAMES = ("sample", "timestep", "encoder_hidden_states")
BACKENDS = ("torch-fp32", "torch-bf16", "openvino-fp32", "openvino-bf16", "onnxruntime-fp32")
# Float32 paths differ from torch fp32 only by the order of additions and the kernels' rounding.
TOLERANCE_FP32 = 1e-4
# A bfloat16 path may err up to this many times as much as torch bf16, the path the pipeline uses.
BF16_TOLERANCE_FACTOR = 2.0
# CPU flags that decide which kernels run (AVX512-BF16 and AMX are native bfloat16).
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")

UnetCall = Callable[[], np.ndarray]


def untyped_module(name: str) -> Any:
    """Import name, a library without type information (openvino, onnxruntime), as Any."""
    return importlib.import_module(name)


def unet_inputs(config: Mapping[str, Any], batch: int) -> dict[str, torch.Tensor]:
    """Latents (batch, 4, 64, 64), a 0-d int64 timestep, text embeddings (batch, 77, width).

    config: the UNet's, for its latent channels (4) and text embedding width (768).
    """
    generator = torch.Generator().manual_seed(batch)
    channels = config["in_channels"]
    width = config["cross_attention_dim"]
    return {
        "sample": torch.randn(batch, channels, LATENT_SIDE, LATENT_SIDE, generator=generator),
        "timestep": torch.tensor(TIMESTEP, dtype=torch.int64),
        "encoder_hidden_states": torch.randn(batch, 77, width, generator=generator),
    }


def checkpoint_stamp(checkpoint_dir: Path) -> str:
    """Size and modification time of the UNet weights: a conversion of other weights is stale."""
    weights = checkpoint_dir / "unet" / "diffusion_pytorch_model.safetensors"
    stat = weights.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def written_once(path: Path, stamp: str, write: Callable[[Path], object], what: str) -> Path:
    """path, written by write(path) unless one made from the same weights (stamp) is there."""
    stamp_file = path.with_suffix(".stamp")
    if path.is_file() and stamp_file.is_file() and stamp_file.read_text() == stamp:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"writing {what} to {path} ...", flush=True)
    started = time.perf_counter()
    write(path)
    stamp_file.write_text(stamp)
    print(f"  took {time.perf_counter() - started:.0f} s", flush=True)
    return path


def exported_unet(unet: UNet2DConditionModel) -> torch.export.ExportedProgram:
    """The UNet's graph from torch.export, batch size left free (1 to 16), weights shared.

    Both conversions start from it: it holds no copy of the weights (tracing with TorchScript
    freezes a second one), which keeps an SD 1.5-size conversion within a few GB.
    """
    batch = torch.export.Dim("batch", min=1, max=16)
    with torch.no_grad():
        return torch.export.export(
            NoisePrediction(unet),
            tuple(unet_inputs(unet.config, 2).values()),
            dynamic_shapes={
                "sample": {0: batch},
                "timestep": {},
                "encoder_hidden_states": {0: batch},
            },
        )


def export_openvino(unet: UNet2DConditionModel, path: Path) -> None:
    """OpenVINO IR (.xml + .bin) of the UNet in float32, any batch size."""
    openvino = untyped_module("openvino")
    model = openvino.convert_model(exported_unet(unet))
    for port, name in zip(model.inputs, INPUT_NAMES, strict=True):
        port.get_tensor().set_names({name})
    # save_model halves weights to float16 by default; the comparison needs them as they are.
    openvino.save_model(model, path, compress_to_fp16=False)


def export_onnx(unet: UNet2DConditionModel, path: Path) -> None:
    """ONNX graph of the UNet in float32 (weights in an external file: over 2 GB), any batch."""
    torch.onnx.export(
        exported_unet(unet),
        input_names=list(INPUT_NAMES),
        output_names=["noise"],
        f=path,
        external_data=True,
        dynamo=True,
    )


def load_unet(checkpoint_dir: Path, dtype: torch.dtype) -> UNet2DConditionModel:
    """The checkpoint's UNet in dtype and channels_last, for inference, as the pipeline has it."""
    unet = UNet2DConditionModel.from_pretrained(checkpoint_dir, subfolder="unet", dtype=dtype)
    unet.eval()
    unet.to(memory_format=torch.channels_last)
    return unet


def torch_call(
    unet: UNet2DConditionModel, inputs: dict[str, torch.Tensor], dtype: torch.dtype
) -> UnetCall:
    """A call of the PyTorch module (already in dtype and channels_last) on inputs."""
    sample = inputs["sample"].to(dtype).to(memory_format=torch.channels_last)
    text = inputs["encoder_hidden_states"].to(dtype)
    timestep = inputs["timestep"]

    def call() -> np.ndarray:
        with torch.inference_mode():
            output = unet(sample, timestep, encoder_hidden_states=text, return_dict=False)[0]
        return np.asarray(output.float().numpy())

    return call


def openvino_call(
    ir_path: Path, inputs: dict[str, torch.Tensor], precision: str, threads: int
) -> UnetCall:
    """A call of the OpenVINO model compiled for the CPU at these inputs' shapes in precision."""
    openvino = untyped_module("openvino")
    core = openvino.Core()
    model = core.read_model(ir_path)
    model.reshape({name: list(tensor.shape) for name, tensor in inputs.items()})
    compiled = core.compile_model(
        model,
        "CPU",
        {
            "INFERENCE_PRECISION_HINT": precision,
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
        },
    )
    request = compiled.create_infer_request()
    arrays = {name: tensor.numpy() for name, tensor in inputs.items()}

    def call() -> np.ndarray:
        request.infer(arrays)
        return np.array(request.get_output_tensor(0).data, dtype=np.float32)

    return call


def onnxruntime_call(onnx_path: Path, inputs: dict[str, torch.Tensor], threads: int) -> UnetCall:
    """A call of an ONNX Runtime CPU session on inputs; the session serves every batch size."""
    session = onnxruntime_session(onnx_path, threads)
    arrays = {name: tensor.numpy() for name, tensor in inputs.items()}

    def call() -> np.ndarray:
        return np.asarray(session.run(None, arrays)[0], dtype=np.float32)

    return call


_sessions: dict[Path, Any] = {}


def onnxruntime_session(onnx_path: Path, threads: int) -> Any:
    """One ONNX Runtime CPU session per model file, made on first use (graph optimised)."""
    if onnx_path not in _sessions:
        onnxruntime = untyped_module("onnxruntime")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        _sessions[onnx_path] = onnxruntime.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
    return _sessions[onnx_path]


@dataclass
class Result:
    """Seconds per call of one backend at one batch size, and its output's errors."""

    backend: str
    seconds: list[float] = field(default_factory=list)
    max_abs_error: float = 0.0
    relative_error: float = 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def errors(output: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(largest absolute difference, relative L2 error) of output against reference."""
    difference = output.astype(np.float64) - reference.astype(np.float64)
    relative = np.linalg.norm(difference) / np.linalg.norm(reference.astype(np.float64))
    return float(np.abs(difference).max()), float(relative)


def time_interleaved(
    calls: dict[str, UnetCall], reference: np.ndarray, warmups: int, repeats: int
) -> list[Result]:
    """Warm every call up, then time repeats rounds of all, the order rotating by one per round."""
    results = {name: Result(name) for name in calls}
    for name, call in calls.items():
        output = call()
        for _ in range(warmups - 1):
            call()
        results[name].max_abs_error, results[name].relative_error = errors(output, reference)
    names = list(calls)
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            calls[name]()
            results[name].seconds.append(time.perf_counter() - started)
        print(
            f"  round {round_index + 1}/{repeats}: "
            + ", ".join(f"{name} {results[name].seconds[-1]:.2f} s" for name in names),
            flush=True,
        )
    return list(results.values())


def within_tolerance(result: Result, torch_bf16_error: float | None) -> bool:
    """Whether result's output counts as the same as torch fp32's (see the module docstring)."""
    if result.backend.endswith("fp32") or torch_bf16_error is None:
        return result.relative_error <= TOLERANCE_FP32
    return result.relative_error <= BF16_TOLERANCE_FACTOR * torch_bf16_error


def print_table(batch: int, results: list[Result]) -> None:
    """Markdown table: median seconds per call, speed-ups, errors, whether within tolerance."""
    by_name = {result.backend: result for result in results}
    best_torch = min(
        (by_name[name] for name in ("torch-fp32", "torch-bf16") if name in by_name),
        key=lambda result: result.median,
        default=None,
    )
    torch_bf16_error = by_name["torch-bf16"].relative_error if "torch-bf16" in by_name else None
    print(f"\nbatch {batch}: latents ({batch}, 4, {LATENT_SIDE}, {LATENT_SIDE})")
    header = "| backend | s per call (median) | range s | vs torch fp32 | vs best torch |"
    print(header + " max abs error | relative error | within tolerance |")
    print("|---" * 8 + "|")
    for result in results:
        versus_fp32 = (
            f"{by_name['torch-fp32'].median / result.median:.2f}x"
            if "torch-fp32" in by_name
            else ""
        )
        versus_best = f"{best_torch.median / result.median:.2f}x" if best_torch else ""
        print(
            f"| {result.backend} | {result.median:.2f} | "
            f"{min(result.seconds):.2f}-{max(result.seconds):.2f} | {versus_fp32} | "
            f"{versus_best} | {result.max_abs_error:.2e} | {result.relative_error:.2e} | "
            f"{'yes' if within_tolerance(result, torch_bf16_error) else 'NO'} |"
        )
    if best_torch is not None:
        print(f"best PyTorch path at batch {batch}: {best_torch.backend}")


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty elsewhere)."""
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                flags.update(line.partition(":")[2].split())
    return flags


def print_machine(threads: int) -> None:
    """CPU model and the flags that matter, library versions, threads, load average."""
    flags = cpu_flags()
    print(f"CPU: {cpu_name()}, {os.cpu_count()} logical CPUs")
    print(
        "flags: "
        + ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in REPORTED_FLAGS)
    )
    print(f"native bfloat16 (the pipeline picks bf16): {'yes' if cpu_has_native_bf16() else 'no'}")
    packages = ("torch", "diffusers", "openvino", "onnx", "onnxruntime", "onnxscript", "numpy")
    installed = []
    for package in packages:
        try:
            installed.append(f"{package} {version(package)}")
        except Exception:  # importlib.metadata.PackageNotFoundError: not installed
            installed.append(f"{package} (not installed)")
    print("versions: " + ", ".join(installed) + f", Python {sys.version.split()[0]}")
    print(f"threads: {threads} for every backend (torch.get_num_threads())")
    print_load("at start")


def print_load(when: str) -> None:
    one, five, fifteen = os.getloadavg()
    print(f"load average {when}: {one:.2f} {five:.2f} {fifteen:.2f}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per batch size")
    parser.add_argument("--warmups", type=int, default=2, help="untimed calls per backend first")
    parser.add_argument("--batches", default="2,1", help="batch sizes, comma-separated")
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help=f"comma-separated subset of {', '.join(BACKENDS)} (torch fp32 is always the "
        "reference for the errors)",
    )
    parser.add_argument("--size", default="sd15", help="random checkpoint size: sd15 or tiny")
    parser.add_argument(
        "--prepare-only",
        action="store_true",
        help="write the conversions and reference outputs, then stop",
    )
    add_sd15_checkpoint_argument(parser)
    args = parser.parse_args()
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backends {', '.join(unknown)}: use {', '.join(BACKENDS)}")
    batches = [int(batch) for batch in args.batches.split(",")]

    threads = torch.get_num_threads()
    print_machine(threads)
    checkpoint_dir = random_checkpoint(args.checkpoint_dir, args.size)
    conversions = checkpoint_dir.with_name(checkpoint_dir.name + "-backends")
    stamp = checkpoint_stamp(checkpoint_dir)

    with PeakMemory() as memory:
        fp32_unet: UNet2DConditionModel | None = None

        def unet_fp32() -> UNet2DConditionModel:
            """The float32 UNet, loaded on first use: some runs need only its conversions."""
            nonlocal fp32_unet
            if fp32_unet is None:
                fp32_unet = load_unet(checkpoint_dir, torch.float32)
            return fp32_unet

        ir_path = onnx_path = None
        if any(name.startswith("openvino") for name in backends):
            ir_path = written_once(
                conversions / "openvino" / "unet.xml",
                stamp,
                lambda path: export_openvino(unet_fp32(), path),
                "the UNet converted to OpenVINO",
            )
        if "onnxruntime-fp32" in backends:
            onnx_path = written_once(
                conversions / "onnx" / "unet.onnx",
                stamp,
                lambda path: export_onnx(unet_fp32(), path),
                "the UNet exported to ONNX",
            )
        config = UNet2DConditionModel.load_config(checkpoint_dir, subfolder="unet")

        def write_reference(path: Path, batch: int) -> None:
            call = torch_call(unet_fp32(), unet_inputs(config, batch), torch.float32)
            np.save(path, call())

        references = {
            batch: np.load(
                written_once(
                    conversions / f"reference-batch{batch}.npy",
                    stamp,
                    partial(write_reference, batch=batch),
                    f"torch fp32's output at batch {batch}",
                )
            )
            for batch in batches
        }
        if "torch-fp32" not in backends:
            fp32_unet = None
        gc.collect()
        bf16_unet = None
        if "torch-bf16" in backends:
            bf16_unet = load_unet(checkpoint_dir, torch.bfloat16)
        if args.prepare_only:
            return 0

        summary = {}
        for batch in batches:
            inputs = unet_inputs(config, batch)
            calls: dict[str, UnetCall] = {}
            for name in backends:
                started = time.perf_counter()
                if name == "torch-fp32":
                    calls[name] = torch_call(unet_fp32(), inputs, torch.float32)
                elif name == "torch-bf16" and bf16_unet is not None:
                    calls[name] = torch_call(bf16_unet, inputs, torch.bfloat16)
                elif name.startswith("openvino") and ir_path is not None:
                    precision = name.rpartition("-")[2].replace("fp", "f")
                    calls[name] = openvino_call(ir_path, inputs, precision, threads)
                    print(f"  {name}: compiled in {time.perf_counter() - started:.0f} s")
                elif name == "onnxruntime-fp32" and onnx_path is not None:
                    calls[name] = onnxruntime_call(onnx_path, inputs, threads)
                    print(f"  {name}: session ready in {time.perf_counter() - started:.0f} s")
            print(f"batch {batch}: timing {', '.join(calls)}", flush=True)
            results = time_interleaved(calls, references[batch], args.warmups, args.repeats)
            print_table(batch, results)
            summary[batch] = {
                result.backend: {
                    "median_s": result.median,
                    "seconds": result.seconds,
                    "max_abs_error": result.max_abs_error,
                    "relative_error": result.relative_error,
                }
                for result in results
            }
            del calls, results
            gc.collect()

    print(f"\npeak resident memory: {memory.peak_bytes / 2**30:.1f} GiB")
    print_load("at end")
    print("summary: " + json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
