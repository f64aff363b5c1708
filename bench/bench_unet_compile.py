"""One UNet call at Stable Diffusion 1.5's sizes: eager against torch.compile, side by side.

A probe of what is left for the pipeline's speed on CPUs without native bfloat16, where the UNet
is 92 % of a clip (docs/benchmarks.md, "Pipeline at Stable Diffusion 1.5 sizes"). Both run the
same random-weight UNet (860M parameters) on the batch one guided request makes: latents
(2, 4, 64, 64) in channels_last, text embeddings (2, 77, 768), in float32. The compiled model uses
inductor with frozen weights (constant folding, prepacked convolution weights). Eager calls run
before and after the compiled ones, so drift of the machine shows. Reports seconds per call, the
compile time, the largest difference from eager and the speed-up.

    .venv/bin/python bench/bench_unet_compile.py [--calls 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch._inductor.config as inductor_config
from diffusers import UNet2DConditionModel
from random_checkpoints import add_sd15_checkpoint_argument, random_checkpoint

UnetCall = Callable[[], torch.Tensor]


def timed_calls(call: UnetCall, count: int) -> list[float]:
    """Seconds of each of count calls."""
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return seconds


def unet_call(model: torch.nn.Module) -> UnetCall:
    """One guided request's UNet call: noise prediction, shaped (2, 4, 64, 64)."""
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(2, 4, 64, 64, generator=generator)
    latents = latents.to(memory_format=torch.channels_last)
    timesteps = torch.tensor([500, 500])
    text = torch.randn(2, 77, 768, generator=generator)

    def call() -> torch.Tensor:
        with torch.inference_mode():
            return model(latents, timesteps, encoder_hidden_states=text, return_dict=False)[0]

    return call


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=3, help="timed calls of each kind")
    add_sd15_checkpoint_argument(parser)
    args = parser.parse_args()
    random_checkpoint(args.checkpoint_dir, "sd15")

    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, float32"
    )
    unet = UNet2DConditionModel.from_pretrained(args.checkpoint_dir, subfolder="unet").eval()
    unet = unet.to(memory_format=torch.channels_last)
    eager = unet_call(unet)
    eager()  # warm-up: first-call allocations
    eager_before = timed_calls(eager, args.calls)

    inductor_config.freezing = True
    compiled = unet_call(torch.compile(unet))
    started = time.perf_counter()
    compiled_output = compiled()
    compile_s = time.perf_counter() - started
    difference = (compiled_output - eager()).abs().max().item()
    compiled_s = timed_calls(compiled, args.calls)
    eager_after = timed_calls(eager, args.calls)

    eager_s = statistics.median(eager_before + eager_after)
    compiled_median = statistics.median(compiled_s)
    print(f"eager s per call, before: {', '.join(f'{s:.2f}' for s in eager_before)}")
    print(f"compiled s per call: {', '.join(f'{s:.2f}' for s in compiled_s)}")
    print(f"eager s per call, after: {', '.join(f'{s:.2f}' for s in eager_after)}")
    print(f"first compiled call, compilation included: {compile_s:.1f} s")
    print(f"largest difference from eager: {difference:.2e}")
    print(
        f"speed-up per call (medians): {eager_s / compiled_median:.2f}x; compilation pays back "
        f"after {compile_s / max(eager_s - compiled_median, 1e-9):.0f} calls"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
