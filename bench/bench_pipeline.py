"""One clip, seed image to audio, at Stable Diffusion 1.5's real sizes: ours against the baseline.

Baseline: what a user of the original gets on this machine: stock diffusers img2img in float32
(the seed image re-encoded on every call) and the original phase reconstruction. Ours:
RiffusionPipeline.riffuse with its default dtype (bfloat16 where the CPU has native bf16), the seed
image's latent distribution cached, and the default ("fast") reconstruction. Both run on the same
random-weight checkpoint of SD 1.5's sizes (UNet 860M, VAE 84M, CLIP ViT-L/14 text encoder, the
compute of riffusion-model-v1), with the same prompt, seed image, steps, denoising and guidance,
side by side in one process. Reports per-stage times, peak resident memory and the speed-up.

    .venv/bin/python bench/bench_pipeline.py [--steps 20] [--denoising 0.75] [--guidance 7]
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from PIL import Image
from random_checkpoints import add_sd15_checkpoint_argument, random_checkpoint

from riffusion import Audio, SpectrogramImageConverter
from riffusion.diffusion.checkpoints import cpu_has_native_bf16

REFERENCE_CLIP = Path(__file__).resolve().parents[1].parent / "shared/riffusion-reference/clip.wav"
PROMPT = "funky bassline with a jazz saxophone solo"


class StageTimer:
    """Wall time per model stage, from forward hooks on the pipeline's modules (seconds)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._handles: list = []

    def watch(self, name: str, module: torch.nn.Module) -> None:
        started: list[float] = []

        def before(*_: object) -> None:
            started.append(time.perf_counter())

        def after(*_: object) -> None:
            self.seconds[name] += time.perf_counter() - started.pop()
            self.calls[name] += 1

        self._handles.append(module.register_forward_pre_hook(before))
        self._handles.append(module.register_forward_hook(after))

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.seconds[name] += time.perf_counter() - start
        self.calls[name] += 1

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


class PeakMemory:
    """Peak resident set size of this process while inside the context, sampled every 20 ms."""

    def __init__(self) -> None:
        self.peak_bytes = 0
        self._process = psutil.Process()
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)
            time.sleep(0.02)

    def __enter__(self) -> PeakMemory:
        self.peak_bytes = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, or what platform knows elsewhere."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def seed_image() -> Image.Image:
    """A 512x512 spectrogram: the first 5.12 s of the reference clip, or a synthesized beat."""
    if REFERENCE_CLIP.is_file():
        audio = Audio.load(REFERENCE_CLIP)
    else:
        rate = 44100
        t = np.arange(6 * rate) / rate
        beat = np.sin(2 * np.pi * 55 * t) * np.exp(-8 * (t % 0.5))
        audio = Audio(0.5 * beat, rate)
    image = SpectrogramImageConverter().spectrogram_image_from_audio(audio)
    return image.crop((0, 0, 512, 512))


def stock_img2img(
    checkpoint: Path, stage_names: tuple[str, str, str, str]
) -> tuple[Any, StageTimer]:
    """The original's way: stock diffusers img2img in float32, and a StageTimer watching its text
    encoder, VAE encoder, UNet and VAE decoder under stage_names (in that order)."""
    from diffusers import StableDiffusionImg2ImgPipeline

    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(
        checkpoint, dtype=torch.float32, safety_checker=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    timer = StageTimer()
    modules = (pipe.text_encoder, pipe.vae.encoder, pipe.unet, pipe.vae.decoder)
    for name, module in zip(stage_names, modules, strict=True):
        timer.watch(name, module)
    return pipe, timer


def run_baseline(checkpoint: Path, image: Image.Image, args: argparse.Namespace) -> dict:
    pipe, timer = stock_img2img(checkpoint, ("text encoder", "vae encode", "unet", "vae decode"))
    converter = SpectrogramImageConverter(quality="original")

    def clip() -> Audio:
        output = pipe(
            prompt=PROMPT,
            image=image,
            strength=args.denoising,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance,
            generator=torch.Generator().manual_seed(42),
        ).images[0]
        with timer.stage("reconstruction"):
            return converter.audio_from_spectrogram_image(output)

    return measure("baseline", clip, timer, args.repeats)


def run_ours(checkpoint: Path, image: Image.Image, args: argparse.Namespace) -> dict:
    from riffusion import InferenceInput, PromptInput, RiffusionPipeline

    pipe = RiffusionPipeline.load_checkpoint(checkpoint, device="cpu")
    converter = SpectrogramImageConverter()
    timer = StageTimer()
    timer.watch("text encoder", pipe.text_encoder)
    timer.watch("vae encode", pipe.vae.encoder)
    timer.watch("unet", pipe.unet)
    timer.watch("vae decode", pipe.vae.decoder)
    prompt = PromptInput(PROMPT, seed=42, denoising=args.denoising, guidance=args.guidance)
    inputs = InferenceInput(start=prompt, end=prompt, alpha=0.0, num_inference_steps=args.steps)

    def clip() -> Audio:
        output = pipe.riffuse(inputs, init_image=image)
        with timer.stage("reconstruction"):
            return converter.audio_from_spectrogram_image(output)

    return measure(f"ours ({pipe.unet.dtype})", clip, timer, args.repeats)


def measure(name: str, clip: Callable[[], Audio], timer: StageTimer, repeats: int) -> dict:
    """Runs clip() once to warm up (ours caches the seed image there), then repeats times."""
    start = time.perf_counter()
    clip()
    first = time.perf_counter() - start
    timer.reset()
    totals = []
    with PeakMemory() as memory:
        for _ in range(repeats):
            start = time.perf_counter()
            clip()
            totals.append(time.perf_counter() - start)
    stages = {stage: seconds / repeats for stage, seconds in timer.seconds.items()}
    unet_calls = timer.calls["unet"] // repeats
    return {
        "name": name,
        "first_s": first,
        "clip_s": min(totals),
        "stages": stages,
        "unet_calls": unet_calls,
        "peak_gib": memory.peak_bytes / 2**30,
    }


def report(results: list[dict], args: argparse.Namespace) -> None:
    stage_names = ["text encoder", "vae encode", "unet", "vae decode", "reconstruction"]
    print(
        f"\nOne 512x512 clip, seed image, denoising {args.denoising}, guidance {args.guidance}, "
        f"{args.steps} steps; torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"CPU {cpu_name()}, native bfloat16: {'yes' if cpu_has_native_bf16() else 'no'}\n"
    )
    header = [
        "",
        "first call s",
        "clip s",
        *[f"{s} s" for s in stage_names],
        "UNet calls",
        "peak GiB",
    ]
    print(" | ".join(header))
    print(" | ".join(["---"] * len(header)))
    for result in results:
        stages = [f"{result['stages'].get(s, 0.0):.2f}" for s in stage_names]
        row = [result["name"], f"{result['first_s']:.1f}", f"{result['clip_s']:.1f}", *stages]
        print(" | ".join([*row, str(result["unet_calls"]), f"{result['peak_gib']:.1f}"]))
    baseline, ours = results
    speedup = baseline["clip_s"] / ours["clip_s"]
    verdict = "PASS" if speedup >= 3.0 else "FAIL"
    print(f"\nspeed-up per clip: {speedup:.2f}x (target 3x): {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--denoising", type=float, default=0.75)
    parser.add_argument("--guidance", type=float, default=7.0)
    parser.add_argument("--repeats", type=int, default=1)
    add_sd15_checkpoint_argument(parser)
    args = parser.parse_args()

    random_checkpoint(args.checkpoint_dir, "sd15")
    image = seed_image()
    results = [
        run_baseline(args.checkpoint_dir, image, args),
        run_ours(args.checkpoint_dir, image, args),
    ]
    report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
