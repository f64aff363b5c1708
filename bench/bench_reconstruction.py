"""Benchmark of phase reconstruction: quality "original" vs "fast" vs "high", side by side.

Run from the repository root:

    .venv/bin/python bench/bench_reconstruction.py [--repeats N]

Inputs: 5.12 s segments of the original project's test clip (left, right and stereo, at several
offsets) and its own mono spectrogram image, both from ../shared/riffusion-reference (skipped with
a message when absent), plus a synthesized drum loop and chord pad. For every input the three
qualities run interleaved in one process, each timed as the best of --repeats runs, and scored by
spectral convergence (SC): ||g mel(output) - target|| / ||target|| with the least-squares gain g,
mel(...) being the analysis riffusion uses (its first `frames` columns).

Targets: "fast" at least 15x faster than "original" with SC no higher; "high" SC at most 0.8x the
original's in no more time.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from riffusion.audio import Audio
from riffusion.spectrogram.dsp import INT16_SCALE, mel_amplitudes_from_waveform
from riffusion.spectrogram.image import mel_amplitudes_from_image
from riffusion.spectrogram.params import SpectrogramParams
from riffusion.spectrogram.reconstruction import reconstruct_waveform

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "riffusion-reference"
SEGMENT_S = 5.12
FAST_SPEEDUP, HIGH_SC_RATIO = 15.0, 0.8


def spectral_convergence(
    waveform: torch.Tensor, target: torch.Tensor, params: SpectrogramParams
) -> float:
    """Scale-invariant ||mel(waveform) - target|| / ||target|| over target's frames."""
    mel = mel_amplitudes_from_waveform(waveform, params)[..., : target.shape[-1]].double()
    target = target.double()
    gain = (mel * target).sum() / (mel * mel).sum().clamp(min=1e-300)
    return float((gain * mel - target).norm() / target.norm())


def drum_loop(sample_rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """120 bpm sixteenths: kick (pitch-swept sine) on 1 and 3, snare (noise + tone) on 2 and 4,
    closed hats (differentiated noise bursts) elsewhere. Mono, peak 0.5."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * sample_rate))
    sixteenth = 60.0 / 120.0 / 4.0
    for step in range(int(seconds / sixteenth)):
        start = int(step * sixteenth * sample_rate)
        if step % 8 == 0:
            t = np.arange(int(0.3 * sample_rate)) / sample_rate
            frequency = 50.0 + 100.0 * np.exp(-30.0 * t)
            hit = np.sin(2 * np.pi * np.cumsum(frequency) / sample_rate) * np.exp(-8.0 * t)
        elif step % 8 == 4:
            t = np.arange(int(0.2 * sample_rate)) / sample_rate
            noise = 0.6 * rng.standard_normal(t.size)
            hit = (noise + 0.5 * np.sin(2 * np.pi * 190.0 * t)) * np.exp(-20.0 * t)
        else:
            t = np.arange(int(0.05 * sample_rate)) / sample_rate
            hit = 0.3 * np.diff(rng.standard_normal(t.size + 1)) * np.exp(-80.0 * t)
        end = min(out.size, start + hit.size)
        out[start:end] += hit[: end - start]
    return (0.5 * out / np.abs(out).max())[np.newaxis].astype(np.float32)


def chord_pad(sample_rate: int, seconds: float) -> np.ndarray:
    """Two triads (A minor, G major) of 7-harmonic tones with slow vibrato, 0.2 s fades. Mono."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    out = np.zeros_like(t)
    half = t.size // 2
    for index, chord in enumerate([(220.0, 277.18, 329.63), (196.0, 246.94, 293.66)]):
        span = slice(index * half, (index + 1) * half)
        vibrato = 1.0 + 0.002 * np.sin(2 * np.pi * 0.3 * t[span])
        for root in chord:
            for harmonic in range(1, 8):
                phase = 2 * np.pi * root * harmonic * t[span] * vibrato
                out[span] += np.sin(phase) / harmonic**1.5
    fade = np.minimum(1.0, np.minimum(t / 0.2, (t[-1] - t) / 0.2))
    return (0.4 * out * fade / np.abs(out).max())[np.newaxis].astype(np.float32)


def inputs(params: SpectrogramParams) -> list[tuple[str, torch.Tensor]]:
    """(name, mel amplitudes (channels, mels, frames)) for every benchmark input."""
    frames = round(SEGMENT_S * 1000 / params.step_size_ms)

    def mel_of(samples: np.ndarray) -> torch.Tensor:
        waveform = torch.from_numpy(np.ascontiguousarray(samples)) * INT16_SCALE
        return mel_amplitudes_from_waveform(waveform, params)[..., :frames]

    result = []
    if REFERENCE.is_dir():
        clip = Audio.load(REFERENCE / "clip.wav").resample(params.sample_rate)
        for name, channels, offset_s in [
            ("clip left @0.00s", [0], 0.0),
            ("clip right @0.25s", [1], 0.25),
            ("clip left @0.50s", [0], 0.5),
            ("clip stereo @0.30s", [0, 1], 0.3),
        ]:
            segment = clip.slice(offset_s, offset_s + SEGMENT_S).samples[channels]
            result.append((name, mel_of(segment)))
        image = Image.open(REFERENCE / "clip_mono.png")
        result.append(("clip_mono.png", torch.from_numpy(mel_amplitudes_from_image(image, params))))
    else:
        print(f"{REFERENCE} not found: skipping the real-music inputs\n")
    result.append(("drum loop (synth)", mel_of(drum_loop(params.sample_rate, SEGMENT_S))))
    result.append(("chord pad (synth)", mel_of(chord_pad(params.sample_rate, SEGMENT_S))))
    return result


@dataclass
class Result:
    seconds: float
    sc: float


def measure(target: torch.Tensor, params: SpectrogramParams, repeats: int) -> dict[str, Result]:
    """Best-of-repeats time and SC per quality, the qualities interleaved within each repeat."""
    qualities = ("original", "fast", "high")
    best = dict.fromkeys(qualities, float("inf"))
    outputs: dict[str, torch.Tensor] = {}
    runs: dict[str, Callable[[], torch.Tensor]] = {
        quality: (lambda quality=quality: reconstruct_waveform(target, params, quality))
        for quality in qualities
    }
    for _ in range(repeats):
        for quality in qualities:
            start = time.perf_counter()
            outputs[quality] = runs[quality]()
            best[quality] = min(best[quality], time.perf_counter() - start)
    return {q: Result(best[q], spectral_convergence(outputs[q], target, params)) for q in qualities}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per quality (best kept)")
    args = parser.parse_args()
    params = SpectrogramParams()
    print(f"machine: {machine()}\n")

    all_inputs = inputs(params)
    # Build per-parameter caches (filterbank pseudo-inverse) outside the timings.
    reconstruct_waveform(all_inputs[0][1][..., :64], params, "fast")

    header = (
        f"{'input':<20} {'shape':>9} | {'original':>8} {'fast':>7} {'high':>7} | "
        f"{'fast x':>6} {'high x':>6} | {'SC orig':>7} {'SC fast':>7} {'SC high':>7} | "
        f"{'fast/o':>6} {'high/o':>6} | fast high"
    )
    print(header)
    print("-" * len(header))
    verdicts = []
    for name, target in all_inputs:
        results = measure(target, params, args.repeats)
        original, fast, high = results["original"], results["fast"], results["high"]
        fast_speedup = original.seconds / fast.seconds
        high_speedup = original.seconds / high.seconds
        fast_ok = fast_speedup >= FAST_SPEEDUP and fast.sc <= original.sc
        high_ok = high.sc <= HIGH_SC_RATIO * original.sc and high.seconds <= original.seconds
        verdicts += [fast_ok, high_ok]
        shape = f"{target.shape[0]}x{target.shape[-1]}"
        print(
            f"{name:<20} {shape:>9} | {original.seconds:7.2f}s {fast.seconds:6.3f}s "
            f"{high.seconds:6.3f}s | {fast_speedup:5.1f}x {high_speedup:5.1f}x | "
            f"{original.sc:7.4f} {fast.sc:7.4f} {high.sc:7.4f} | "
            f"{fast.sc / original.sc:6.2f} {high.sc / original.sc:6.2f} | "
            f"{'PASS' if fast_ok else 'FAIL'} {'PASS' if high_ok else 'FAIL'}",
            flush=True,
        )
    print(
        f"\nfast: >= {FAST_SPEEDUP:g}x faster than original and SC <= original's; "
        f"high: SC <= {HIGH_SC_RATIO:g}x original's in <= original's time"
    )
    print("overall:", "PASS" if all(verdicts) else "FAIL")


if __name__ == "__main__":
    main()
