"""How much memory a training step takes, and whether the chosen batch fits.

On a GPU, torch's allocator counts exactly; on the CPU the process's resident size is sampled
while the step runs (a Linux OOM kill cannot be caught, so the CPU check extrapolates from a
batch of one before the real batch is tried).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

GIB = 1024**3
# How often the CPU's resident size is read while a step runs, s.
_RSS_INTERVAL_S = 0.005


def resident_bytes() -> int | None:
    """This process's resident memory, bytes (Linux; None elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    import resource

    return pages * resource.getpagesize()


def available_bytes(device: torch.device) -> int | None:
    """Memory free for more work on device, bytes: the GPU's free memory, or for the CPU the
    kernel's MemAvailable; None where it cannot be told."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type != "cpu":
        return None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


@dataclass
class PeakMemory:
    """The most memory used above what was in use when measuring began, bytes (None where it
    cannot be measured)."""

    extra_bytes: int | None = None


@contextmanager
def peak_memory(device: torch.device) -> Iterator[PeakMemory]:
    """Measure the peak memory of the block on device (see PeakMemory)."""
    result = PeakMemory()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield result
        torch.cuda.synchronize(device)
        result.extra_bytes = torch.cuda.max_memory_allocated(device) - before
        return
    start = resident_bytes() if device.type == "cpu" else None
    if start is None:
        yield result
        return
    before = peak = start
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, resident_bytes() or 0)
            time.sleep(_RSS_INTERVAL_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield result
    finally:
        done.set()
        sampler.join()
        result.extra_bytes = max(peak, resident_bytes() or 0) - before


def batch_advice(batch_size: int) -> str:
    """What to lower when a batch does not fit."""
    smaller = max(batch_size // 2, 1)
    accumulate = max(batch_size // smaller, 1)
    advice = []
    if batch_size > 1:
        advice.append(
            f"lower --batch-size (to {smaller} with --gradient-accumulation-steps {accumulate} "
            "trains the same batch)"
        )
    advice += [
        "add --gradient-checkpointing",
        "use --dtype bfloat16 (or float16 on a GPU)",
        "lower --rank or --width",
    ]
    return ", ".join(advice[:-1]) + " or " + advice[-1]
