"""Seconds per clip of the generation presets against the original's default, side by side, at
Stable Diffusion 1.5's sizes; with --server, the jam server's figures per preset.

Baseline: what the original app does per clip: stock diffusers StableDiffusionImg2ImgPipeline in
float32, 50 steps at denoising 0.75 with guidance 7 (37 UNet calls on 2 rows), and the original
phase reconstruction. Ours: RiffusionPipeline.riffuse with each preset (riffusion.diffusion.
presets) at its own step count, dtype auto (bfloat16 where the CPU has it natively), and the
default ("fast") reconstruction. All on random weights of SD 1.5's sizes (UNet 860M, VAE 84M, CLIP
ViT-L/14), with random stand-ins of the published sizes for the LCM-LoRA (rank 64, float16,
about 135 MB) and TAESD (2.4M parameters), side by side in one process: ours runs before and
after the baseline, and the slower of the two passes counts (the machine may be shared). Every
run is one 512x512 clip (5.12 s of audio) from the same seed image and prompt; each is warmed up
first with a short run of the same shapes (the text embedding and the seed image's latents are
then cached, as in a jam).

Prints the CPU model and its relevant flags, the load average, per-stage seconds, UNet calls, the
speed-up over the baseline and the real-time factor (5.12 s of audio / seconds per clip).

--unet-backends torch,openvino: each preset timed with the UNet in PyTorch and in OpenVINO
(--unet-backend openvino; the fast preset runs in PyTorch only: its DeepCache calls into the
UNet's blocks), side by side in the same passes. The OpenVINO UNets are converted once into the
user's cache (minutes at SD 1.5's size) before anything is timed.

--size tiny runs everything on the tiny random checkpoint: a check that the benchmark runs end
to end, not a measurement.

--server: for each preset, a real `riffusion serve` app under uvicorn in this process (model
loaded with that preset, warmed up), one jam over the WebSocket acknowledging each clip at once:
time to first audio (from "start" to the first clip) and sustained clips per minute over
--server-seconds; the jam keeps ahead of playback when clips/min * clip length >= 60 s.

    .venv/bin/python bench/bench_presets.py [--presets fast,realtime] [--repeats 3]
        [--baseline-steps 50] [--server] [--server-seconds 120] [--skip-clips]
        [--no-baseline] [--dtype auto|float32|bfloat16] [--unet-backends torch,openvino]
        [--size sd15|tiny]

What a CPU without native bfloat16 (AVX2 only) reaches can be approximated on one with it: oneDNN
and ATen limited to AVX2, in float32 (what dtype auto picks there):

    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 .venv/bin/python bench/bench_presets.py \
        --dtype float32 --no-baseline
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from bench_pipeline import PeakMemory, StageTimer, cpu_name, seed_image, stock_img2img
from PIL import Image
from random_checkpoints import (
    add_sd15_checkpoint_argument,
    default_checkpoint_dir,
    random_checkpoint,
    random_preset_weights,
)

from riffusion import Audio, SpectrogramImageConverter
from riffusion.diffusion.checkpoints import cpu_has_native_bf16
from riffusion.diffusion.openvino_unet import UNET_BACKENDS
from riffusion.diffusion.preset_weights import PresetWeights
from riffusion.diffusion.presets import get_preset

PROMPT = "funky bassline with a jazz saxophone solo"
DENOISING = 0.75
GUIDANCE = 7.0
CLIP_S = 5.12
#: The CPU flags that decide how fast the UNet runs.
FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


@dataclass
class Run:
    """One measured configuration: seconds per clip (best of its repeats) and per stage."""

    name: str
    clip_s: float
    stages: dict[str, float]
    unet_calls: str
    peak_gib: float
    load: float
    extra: dict[str, Any] = field(default_factory=dict)


def cpu_flags() -> str:
    """The relevant flags this CPU has, from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return " ".join(flag for flag in FLAGS if flag in flags) or "none of " + ", ".join(FLAGS)


def load_average() -> float:
    return os.getloadavg()[0]


# --- Baseline ------------------------------------------------------------------------------


def run_baseline(checkpoint: Path, image: Image.Image, steps: int) -> Run:
    pipe, timer = stock_img2img(checkpoint, ("text", "encode", "unet", "decode"))
    converter = SpectrogramImageConverter(quality="original")

    def clip(num_steps: int) -> Audio:
        output = pipe(
            prompt=PROMPT,
            image=image,
            strength=DENOISING,
            num_inference_steps=num_steps,
            guidance_scale=GUIDANCE,
            generator=torch.Generator().manual_seed(42),
        ).images[0]
        with timer.stage("reconstruction"):
            return converter.audio_from_spectrogram_image(output)

    clip(4)  # warm-up: the same shapes, 3 UNet calls
    timer.reset()
    load = load_average()
    with PeakMemory() as memory:
        started = time.perf_counter()
        clip(steps)
        seconds = time.perf_counter() - started
    calls = timer.calls["unet"]
    stages = dict(timer.seconds)
    stages["loop"] = stages.pop("unet")
    return Run(
        "baseline (stock diffusers, fp32)",
        seconds,
        stages,
        f"{calls} x 2 rows",
        memory.peak_bytes / 2**30,
        load,
    )


# --- Ours ----------------------------------------------------------------------------------


def load_ours(
    checkpoint: Path, weights: PresetWeights, presets: list[str], dtype: str, backend: str
) -> Any:
    """Our pipeline with backend running the UNet, presets prepared (OpenVINO: converted)."""
    from riffusion import RiffusionPipeline

    pipe = RiffusionPipeline.load_checkpoint(
        checkpoint,
        device="cpu",
        dtype=dtype,
        preset_weights=weights,
        unet_backend=backend,
        report=lambda message: print(f"  {message}", flush=True),
    )
    for name in presets:
        pipe.prepare_preset(name)
    if backend == "openvino":
        # The PyTorch UNet's hooks see no calls: count the converted UNet's instead.
        pipe._openvino_unets = {
            key: CountedCalls(unet) for key, unet in pipe._openvino_unets.items()
        }
    return pipe


class CountedCalls:
    """A UNet standing in for another (attributes passed through), counting the calls made."""

    def __init__(self, unet: Any) -> None:
        self.unet = unet
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.unet, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.unet(*args, **kwargs)


def backend_runs(presets: list[str], backends: list[str]) -> list[tuple[str, str]]:
    """The (preset, backend) pairs to time: every pair but the fast preset with OpenVINO."""
    pairs = []
    for preset in presets:
        for backend in backends:
            if backend == "openvino" and get_preset(preset).deep_cache is not None:
                print(f"{preset} with openvino: skipped (DeepCache needs the PyTorch UNet)")
                continue
            pairs.append((preset, backend))
    return pairs


def run_preset(pipe: Any, preset: str, image: Image.Image, repeats: int) -> Run:
    from riffusion import InferenceInput, PromptInput

    recipe = get_preset(preset)
    converter = SpectrogramImageConverter()
    timer = StageTimer()
    timer.watch("text", pipe.text_encoder)
    encoders = [pipe.vae.encoder] + ([pipe._tiny_vae.encoder] if pipe._tiny_vae else [])
    decoders = [pipe.vae.decoder] + ([pipe._tiny_vae.decoder] if pipe._tiny_vae else [])
    for module in encoders:
        timer.watch("encode", module)
    for module in decoders:
        timer.watch("decode", module)
    # Every UNet call, full or DeepCache's shallow branch, starts with conv_in; full ones run
    # the mid block.
    unet = pipe._lcm_unet if recipe.lcm_lora else pipe.unet
    timer.watch("unet calls", unet.conv_in)
    timer.watch("full unet calls", unet.mid_block)
    counted = [] if pipe.unet_backend == "torch" else list(pipe._openvino_unets.values())
    prompt = PromptInput(PROMPT, seed=42, denoising=DENOISING, guidance=GUIDANCE)

    def clip(steps: int) -> Audio:
        inputs = InferenceInput(
            start=prompt, end=prompt, alpha=0.0, num_inference_steps=steps, preset=recipe.name
        )
        with timer.stage("diffusion"):
            output = pipe.riffuse(inputs, image)
        with timer.stage("reconstruction"):
            return converter.audio_from_spectrogram_image(output)

    clip(min(2, recipe.steps))  # warm-up: the same shapes; caches the text and the seed
    clip(recipe.steps)
    timer.reset()
    for each in counted:
        each.calls = 0
    load = load_average()
    times = []
    with PeakMemory() as memory:
        for _ in range(repeats):
            started = time.perf_counter()
            clip(recipe.steps)
            times.append(time.perf_counter() - started)
    stages = {name: seconds / repeats for name, seconds in timer.seconds.items()}
    inside = sum(stages.get(name, 0.0) for name in ("text", "encode", "decode"))
    stages["loop"] = stages.pop("diffusion") - inside
    calls = (timer.calls["unet calls"] + sum(each.calls for each in counted)) // repeats
    full = (timer.calls["full unet calls"] + sum(each.calls for each in counted)) // repeats
    rows = 2 if recipe.guided else 1
    shape = f"{calls} x {rows} rows" + (f" ({full} full)" if full != calls else "")
    for name in ("unet calls", "full unet calls"):
        stages.pop(name, None)
    timer.reset()
    return Run(
        f"{preset} ({str(pipe.unet.dtype)[6:]}, {pipe.unet_backend})",
        min(times),
        stages,
        shape,
        memory.peak_bytes / 2**30,
        load,
        {"all_s": times},
    )


def slower(first: Run, second: Run) -> Run:
    """The slower pass of a preset, with both passes' times noted."""
    chosen = first if first.clip_s >= second.clip_s else second
    chosen.extra["passes_s"] = [first.clip_s, second.clip_s]
    return chosen


# --- Server --------------------------------------------------------------------------------


def server_figures(
    checkpoint: Path, weights: PresetWeights, preset: str, seconds: float
) -> dict[str, float]:
    """Time to first audio and sustained clips/min of one jam with the server's preset."""
    import bench_server

    from riffusion.diffusion.model_settings import ModelSettings
    from riffusion.server.app import ServerConfig, create_app

    recipe = get_preset(preset)
    settings = ModelSettings(
        str(checkpoint),
        device="cpu",
        preset=recipe.name,
        lcm_lora=weights.lcm_lora,
        tiny_vae=weights.tiny_vae,
    )
    started = time.perf_counter()
    app = create_app(ServerConfig(settings))
    server, thread, address = bench_server.serve_app(app)
    try:
        app.state.model.wait()
        load_s = time.perf_counter() - started
        jam = argparse.Namespace(steps=recipe.steps, seed_image="og_beat", seconds=seconds)
        first_s = asyncio.run(bench_server.first_clip_s(address, jam))
        per_minute, clip_s = asyncio.run(bench_server.sustained(address, jam, 1))
    finally:
        server.should_exit = True
        thread.join(30)
    del app
    gc.collect()
    return {
        "load_s": load_s,
        "first_audio_s": first_s,
        "clips_per_min": per_minute,
        "clip_s": clip_s,
        "realtime_factor": per_minute * clip_s / 60.0,
    }


# --- Report --------------------------------------------------------------------------------


def report(runs: list[Run], baseline: Run | None) -> None:
    stage_names = ["text", "encode", "loop", "decode", "reconstruction"]
    header = [
        "run",
        "clip s",
        *[f"{name} s" for name in stage_names],
        "UNet calls",
        "peak GiB",
        "load avg",
        "speed-up",
        "real-time factor",
    ]
    print("\n" + " | ".join(header))
    print(" | ".join(["---"] * len(header)))
    for run in [baseline, *runs] if baseline else runs:
        stages = [f"{run.stages.get(name, 0.0):.2f}" for name in stage_names]
        print(
            " | ".join(
                [
                    run.name,
                    f"{run.clip_s:.1f}",
                    *stages,
                    run.unet_calls,
                    f"{run.peak_gib:.1f}",
                    f"{run.load:.1f}",
                    f"{baseline.clip_s / run.clip_s:.1f}x" if baseline else "-",
                    f"{CLIP_S / run.clip_s:.2f}",
                ]
            )
        )
    for run in runs:
        if "passes_s" in run.extra:
            passes = ", ".join(f"{seconds:.1f}" for seconds in run.extra["passes_s"])
            print(f"{run.name}: best clip s of the pass before / after the baseline: {passes}")


def report_backends(runs: dict[tuple[str, str], Run]) -> None:
    """Per preset timed with both backends: how much faster OpenVINO ran a clip and its loop."""
    for (preset, backend), run in runs.items():
        torch_run = runs.get((preset, "torch"))
        if backend == "openvino" and torch_run is not None:
            print(
                f"{preset}: openvino {torch_run.clip_s / run.clip_s:.2f}x torch per clip, "
                f"{torch_run.stages['loop'] / run.stages['loop']:.2f}x in the diffusion loop"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--presets", default="fast,realtime", help="comma-separated presets")
    parser.add_argument("--repeats", type=int, default=3, help="clips per preset and pass")
    parser.add_argument("--baseline-steps", type=int, default=50)
    parser.add_argument("--server", action="store_true", help="also measure the jam server")
    parser.add_argument("--server-seconds", type=float, default=120.0)
    parser.add_argument("--skip-clips", action="store_true", help="the server figures only")
    parser.add_argument("--no-baseline", action="store_true", help="ours only, one pass")
    parser.add_argument("--dtype", default="auto", help="ours: auto, float32 or bfloat16")
    parser.add_argument(
        "--unet-backends",
        default="torch",
        help=f"ours: comma-separated, of {', '.join(UNET_BACKENDS)}; each preset with each",
    )
    parser.add_argument(
        "--size", choices=("sd15", "tiny"), default="sd15", help="random checkpoint size"
    )
    add_sd15_checkpoint_argument(parser)
    args = parser.parse_args()
    presets = [get_preset(name.strip()).name for name in args.presets.split(",") if name.strip()]
    backends = [name.strip() for name in args.unet_backends.split(",") if name.strip()]
    unknown = sorted(set(backends) - set(UNET_BACKENDS))
    if unknown or not backends:
        parser.error(f"--unet-backends takes {', '.join(UNET_BACKENDS)}, got {unknown}")
    if args.size == "tiny" and args.checkpoint_dir == default_checkpoint_dir("sd15"):
        args.checkpoint_dir = default_checkpoint_dir("tiny")

    print(
        f"CPU {cpu_name()}; flags: {cpu_flags()}; native bfloat16: "
        f"{'yes' if cpu_has_native_bf16() else 'no'}; {os.cpu_count()} CPUs, torch "
        f"{torch.__version__} with {torch.get_num_threads()} threads; load average "
        f"{load_average():.1f}",
        flush=True,
    )
    checkpoint = random_checkpoint(args.checkpoint_dir, args.size)
    weights = random_preset_weights(checkpoint, args.size)
    image = seed_image()
    if args.size == "tiny":
        image = image.crop((0, 0, 128, 512))  # 1.28 s clips: quick, the same code paths

    if not args.skip_clips:
        pairs = backend_runs(presets, backends)
        pipes = {}
        for backend in dict.fromkeys(backend for _, backend in pairs):
            print(f"loading ours with the UNet in {backend} ...", flush=True)
            pipes[backend] = load_ours(
                checkpoint,
                weights,
                [preset for preset, each in pairs if each == backend],
                args.dtype,
                backend,
            )

        def timed_pass() -> dict[tuple[str, str], Run]:
            return {
                (preset, backend): run_preset(pipes[backend], preset, image, args.repeats)
                for preset, backend in pairs
            }

        first = timed_pass()
        if args.no_baseline:
            report(list(first.values()), None)
            chosen = first
        else:
            print("first pass:", {run.name: round(run.clip_s, 1) for run in first.values()})
            baseline = run_baseline(checkpoint, image, args.baseline_steps)
            gc.collect()  # the baseline's pipeline
            print(f"baseline: {baseline.clip_s:.1f} s", flush=True)
            second = timed_pass()
            chosen = {pair: slower(first[pair], second[pair]) for pair in pairs}
            report(list(chosen.values()), baseline)
        report_backends(chosen)
        del pipes
        gc.collect()

    if args.server:
        print("\nserver, one jam per preset (random SD 1.5-size weights):")
        for name in presets:
            figures = server_figures(checkpoint, weights, name, args.server_seconds)
            print(
                f"{name}: {json.dumps({key: round(value, 2) for key, value in figures.items()})}",
                flush=True,
            )
    print(f"\nload average at the end: {load_average():.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
