"""`riffusion train` at Stable Diffusion 1.5's sizes: seconds per step and peak memory.

Runs the real command (random weights of SD 1.5's sizes, bench/random_checkpoints.py) on a small
synthetic dataset of 512x512 spectrograms, once per configuration, each in a fresh process:
batch 1, LoRA rank 16 on the UNet's attention, gradient checkpointing, in each --dtypes
precision. Seconds per step come from the run's loss.csv (the first --warmup steps left out);
peak memory is the process's peak resident size (model loading included), from wait4(). Prints
the CPU, its bfloat16 flags, the torch threads and the load average before and after, then what
training on a one-hour dataset costs at the measured speed.

    .venv/bin/python bench/bench_train.py [--dtypes float32,bfloat16] [--steps 3] [--warmup 1]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from bench_pipeline import cpu_name
from random_checkpoints import add_sd15_checkpoint_argument, random_checkpoint

from riffusion.diffusion.checkpoints import cpu_has_native_bf16
from riffusion.spectrogram.image import image_from_mel_amplitudes, save_spectrogram_image
from riffusion.spectrogram.params import SpectrogramParams
from riffusion.training.imagefolder import ClipRow, write_metadata

# One hour of 5.12 s clips.
CLIPS_PER_HOUR = round(3600 / 5.12)


def write_dataset(folder: Path, clips: int = 4) -> Path:
    """clips random 512x512 spectrograms in the model's format, with captions."""
    generator = np.random.default_rng(0)
    params = SpectrogramParams()
    rows = []
    for index in range(clips):
        amplitudes = generator.gamma(1.0, 1e5, size=(1, 512, 512)).astype(np.float32)
        name = f"clip{index}.png"
        save_spectrogram_image(image_from_mel_amplitudes(amplitudes, params), folder / name)
        rows.append(ClipRow(name, f"test caption {index}", "synthetic", 0.0))
    write_metadata(folder, rows)
    return folder


def cpu_flags() -> str:
    """The CPU flags that decide bfloat16 and AVX-512 speed."""
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return " ".join(flag for flag in wanted if flag in flags)
    return "unknown"


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def run_config(
    checkpoint: Path, dataset: Path, run_dir: Path, dtype: str, steps: int, extra: list[str]
) -> tuple[list[float], float]:
    """(seconds of each step, peak resident GiB) of one `riffusion train` process."""
    command = [sys.executable, "-m", "riffusion.cli", "train", str(dataset), "-o", str(run_dir)]
    command += ["--model", str(checkpoint), "--dtype", dtype, "--steps", str(steps)]
    command += ["--rank", "16", "--gradient-checkpointing", "--batch-size", "1"]
    command += ["--validation-every", "0", "--checkpoint-every", "0", *extra]
    process = subprocess.Popen(command, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{dtype}: riffusion train failed ({status})")
    lines = (run_dir / "loss.csv").read_text().splitlines()[1:]
    elapsed = [0.0] + [float(line.split(",")[3]) for line in lines]
    seconds = [after - before for before, after in itertools.pairwise(elapsed)]
    # ru_maxrss is in KiB on Linux.
    return seconds, usage.ru_maxrss / 1024**2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtypes", default="float32,bfloat16", help="precisions to run")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per precision")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps")
    parser.add_argument("--extra", default="", help="more `riffusion train` options")
    add_sd15_checkpoint_argument(parser)
    args = parser.parse_args()

    checkpoint = random_checkpoint(args.checkpoint_dir, "sd15")
    print(f"CPU: {cpu_name()}; flags: {cpu_flags()}; native bf16: {cpu_has_native_bf16()}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {os.cpu_count()} CPUs")
    print(f"load average before: {load_average()}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        dataset = write_dataset(Path(scratch) / "dataset")
        for dtype in args.dtypes.split(","):
            run_dir = Path(scratch) / f"run-{dtype}"
            seconds, peak_gib = run_config(
                checkpoint, dataset, run_dir, dtype, args.warmup + args.steps, args.extra.split()
            )
            timed = seconds[args.warmup :]
            results[dtype] = (statistics.median(timed), peak_gib)
            steps = ", ".join(f"{value:.1f}" for value in timed)
            print(
                f"{dtype}: {statistics.median(timed):.1f} s/step (median of {steps}); "
                f"peak resident {peak_gib:.1f} GiB",
                flush=True,
            )
    print(f"load average after: {load_average()}")
    print(f"\nA one-hour dataset is {CLIPS_PER_HOUR} clips: one epoch at batch 1.")
    reference = next(iter(results.values()))[0]
    for dtype, (per_step, peak_gib) in results.items():
        print(
            f"{dtype}: {per_step:.1f} s/step ({reference / per_step:.2f}x the first); one epoch "
            f"{CLIPS_PER_HOUR * per_step / 3600:.1f} h, 1000 steps (the default) "
            f"{1000 * per_step / 3600:.1f} h; peak {peak_gib:.1f} GiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
