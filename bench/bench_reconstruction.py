"""Benchmark of phase reconstruction: quality "original" vs "fast" vs "high", side by side.

Run from the repository root:

    .venv/bin/python bench/bench_reconstruction.py [--repeats N] [--seeds N]
        [--classes real,generated,seed,synth] [--seed-images og_beat,vibes] [--threads N]
        [--only "clip left @0.00s,og_beat"] [--floor-iters N] [--floor-columns N] [--floor-only]

Inputs, in four classes:
    real: 5.12 s segments of the original project's test clip (left, right and stereo, at several
        offsets) and its own mono spectrogram image;
    generated: the spectrograms riffusion-model-v1 itself generated
        (../shared/riffusion-reference/generated/*.png);
    seed: the built-in seed images (riffusion.seeds), the original's seeds as this project
        renders them;
    synth: a synthesized drum loop and chord pad.
The reference inputs are skipped with a message when ../shared/riffusion-reference is absent.

For every input the qualities run interleaved in one process, single-threaded by default
(--threads), timed in CPU seconds of the process by default (--clock wall for wall-clock
time). "original" starts from a random phase: it runs with --seeds generator seeds and is
scored by the median SC (the spread is printed); its time is the best run's. "fast" and "high"
are deterministic: best of --repeats runs. SC (spectral convergence) is ||g mel(output) -
target|| / ||target|| with the least-squares gain g, mel(...) being the analysis riffusion uses
(its first `frames` columns).

The floor (--floor-iters > 0): what SC any waveform can reach on the input, estimated by
optimising the waveform itself against the mel target (L-BFGS on SC squared, started from
"high"'s output), on --floor-columns columns from the middle of each input (the optimisation is
slow); "original" (median) and "high" are scored on the same crop for comparison.

Targets: "fast" at least 25x faster than "original" with SC no higher than its median on every
input; "high" in no more time than "original" with SC at most 0.9x its median on generated and
seed images and 0.8x on real and synthetic ones, or within 2 % of the floor where measured.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from riffusion.audio import Audio
from riffusion.seeds import list_seeds, load_seed_image
from riffusion.spectrogram.dsp import (
    INT16_SCALE,
    hann_window,
    mel_amplitudes_from_waveform,
    mel_filterbank,
)
from riffusion.spectrogram.image import mel_amplitudes_from_image
from riffusion.spectrogram.params import SpectrogramParams
from riffusion.spectrogram.reconstruction import Quality, reconstruct_waveform

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "riffusion-reference"
SEGMENT_S = 5.12
CLASSES = ("real", "generated", "seed", "synth")
FAST_SPEEDUP = 25.0
# Largest high / original SC per class; and how close to the floor counts as reaching it.
HIGH_SC_RATIO = {"real": 0.8, "synth": 0.8, "generated": 0.9, "seed": 0.9}
FLOOR_MARGIN = 1.02
# Clocks: CPU seconds of this process (with one thread, the work done whatever else competes for
# the cores; wall-clock times of short operations stretch far more under contention than long
# ones), or wall-clock seconds.
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}


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


@dataclass(frozen=True)
class Input:
    """One benchmark input: its class, name and mel amplitudes (channels, mels, frames)."""

    kind: str
    name: str
    target: torch.Tensor


def inputs(
    params: SpectrogramParams, classes: tuple[str, ...], seed_ids: list[str] | None = None
) -> list[Input]:
    """Every benchmark input of the given classes (seed images: seed_ids, default all)."""
    frames = round(SEGMENT_S * 1000 / params.step_size_ms)

    def mel_of(samples: np.ndarray) -> torch.Tensor:
        waveform = torch.from_numpy(np.ascontiguousarray(samples)) * INT16_SCALE
        return mel_amplitudes_from_waveform(waveform, params)[..., :frames]

    def image_mel(image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(mel_amplitudes_from_image(image, params))

    result = []
    have_reference = REFERENCE.is_dir()
    if not have_reference and {"real", "generated"} & set(classes):
        print(f"{REFERENCE} not found: skipping the real-music and generated inputs\n")
    if "real" in classes and have_reference:
        clip = Audio.load(REFERENCE / "clip.wav").resample(params.sample_rate)
        for name, channels, offset_s in [
            ("clip left @0.00s", [0], 0.0),
            ("clip right @0.25s", [1], 0.25),
            ("clip left @0.50s", [0], 0.5),
            ("clip stereo @0.30s", [0, 1], 0.3),
        ]:
            segment = clip.slice(offset_s, offset_s + SEGMENT_S).samples[channels]
            result.append(Input("real", name, mel_of(segment)))
        result.append(
            Input("real", "clip_mono.png", image_mel(Image.open(REFERENCE / "clip_mono.png")))
        )
    if "generated" in classes and have_reference:
        for path in sorted((REFERENCE / "generated").glob("*.png")):
            result.append(Input("generated", path.stem[:20], image_mel(Image.open(path))))
    if "seed" in classes:
        for seed_id in seed_ids or [seed.id for seed in list_seeds()]:
            result.append(Input("seed", seed_id[:20], image_mel(load_seed_image(seed_id))))
    if "synth" in classes:
        result.append(Input("synth", "drum loop", mel_of(drum_loop(params.sample_rate, SEGMENT_S))))
        result.append(Input("synth", "chord pad", mel_of(chord_pad(params.sample_rate, SEGMENT_S))))
    return result


@dataclass
class Result:
    seconds: float
    sc: float


@dataclass
class Original:
    """The original's SC over generator seeds: median, lowest and highest; and its best time (as
    "fast" and "high" are timed: the least disturbed run)."""

    seconds: float
    sc: float
    lowest: float
    highest: float


def run_original(
    target: torch.Tensor, params: SpectrogramParams, seeds: int, clock: Callable[[], float]
) -> Original:
    runs = []
    for seed in range(seeds):
        generator = torch.Generator().manual_seed(seed)
        start = clock()
        output = reconstruct_waveform(target, params, "original", generator=generator)
        runs.append((clock() - start, spectral_convergence(output, target, params)))
    scores = [sc for _, sc in runs]
    return Original(
        min(seconds for seconds, _ in runs),
        statistics.median(scores),
        min(scores),
        max(scores),
    )


def run_quality(
    target: torch.Tensor,
    params: SpectrogramParams,
    quality: Quality,
    repeats: int,
    clock: Callable[[], float],
) -> tuple[Result, torch.Tensor]:
    """Best-of-repeats time and SC of a deterministic quality, and its output."""
    best = float("inf")
    output = target
    for _ in range(repeats):
        start = clock()
        output = reconstruct_waveform(target, params, quality)
        best = min(best, clock() - start)
    return Result(best, spectral_convergence(output, target, params)), output


def waveform_floor(
    target: torch.Tensor, start: torch.Tensor, params: SpectrogramParams, iterations: int
) -> float:
    """SC reached by optimising the waveform directly against target (L-BFGS on SC squared).

    target: (channels, mels, frames); start: a reconstruction of it, (channels, samples).
    Lower bound in practice, not in proof: the problem is not convex.
    """
    filterbank = mel_filterbank(params, "cpu", torch.float64)
    used = int((filterbank.sum(1) > 0).nonzero().max()) + 1
    filterbank = filterbank[:used]
    window = hann_window(params, "cpu", torch.float64)
    goal = target.double()
    scale = float(start.abs().max().clamp(min=1e-30))
    signal = (start.double() / scale).requires_grad_(True)

    def loss() -> torch.Tensor:
        spectrum = torch.stft(
            signal,
            params.n_fft,
            params.hop_length,
            params.win_length,
            window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )[:, :used, : goal.shape[-1]]
        # A small epsilon keeps the magnitude differentiable at zero.
        magnitude = torch.sqrt(spectrum.real**2 + spectrum.imag**2 + 1e-20)
        mel = (magnitude.transpose(-1, -2) @ filterbank).transpose(-1, -2)
        gain = (mel * goal).sum() / (mel * mel).sum()
        return ((gain * mel - goal).norm() / goal.norm()) ** 2

    optimiser = torch.optim.LBFGS(
        [signal],
        lr=1,
        max_iter=iterations,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
    )

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        value = loss()
        value.backward()
        return value

    optimiser.step(closure)
    return spectral_convergence(signal.detach().float() * scale, target, params)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == (
                platform.processor() or platform.machine()
            ):
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                wanted = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "fma")
                flags = " ".join(f for f in line.split(":", 1)[1].split() if f in wanted)
    except OSError:
        pass
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"{cpu} ({flags}), {os.cpu_count()} logical CPUs, load average {load}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of fast and high")
    parser.add_argument("--seeds", type=int, default=4, help="generator seeds of original")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--clock", choices=("cpu", "wall"), default="cpu", help="time CPU seconds or wall seconds"
    )
    parser.add_argument("--classes", default=",".join(CLASSES), help="input classes to run")
    parser.add_argument("--seed-images", default="", help="seed ids to run (default: all)")
    parser.add_argument("--floor-iters", type=int, default=0, help="L-BFGS iterations (0: off)")
    parser.add_argument("--floor-columns", type=int, default=128, help="columns of the floor crop")
    parser.add_argument("--floor-only", action="store_true", help="only the floor table")
    parser.add_argument(
        "--only", default="", help="comma-separated parts of input names to keep (default: all)"
    )
    args = parser.parse_args()
    classes = tuple(args.classes.split(","))
    unknown = set(classes) - set(CLASSES)
    if unknown:
        parser.error(f"unknown classes {', '.join(sorted(unknown))}; known: {', '.join(CLASSES)}")
    torch.set_num_threads(args.threads)
    clock = CLOCKS[args.clock]
    params = SpectrogramParams()
    print(f"machine: {machine()}\n")

    all_inputs = inputs(params, classes, [s for s in args.seed_images.split(",") if s] or None)
    # Build per-parameter caches (filterbank inverses, resampling filter) outside the timings.
    for quality in ("fast", "high"):
        reconstruct_waveform(all_inputs[0].target[..., :64], params, quality)

    if args.only:
        wanted = args.only.split(",")
        all_inputs = [item for item in all_inputs if any(part in item.name for part in wanted)]
    if not args.floor_only:
        main_table(all_inputs, params, args.seeds, args.repeats, clock)
    if args.floor_iters:
        floor_table(all_inputs, params, args.seeds, args.floor_iters, args.floor_columns)


def main_table(
    all_inputs: list[Input],
    params: SpectrogramParams,
    seeds: int,
    repeats: int,
    clock: Callable[[], float],
) -> None:
    """The three qualities on every input, against the targets."""
    header = (
        f"{'class':<9} {'input':<20} {'shape':>7} | {'orig':>6} {'fast':>6} {'high':>6} | "
        f"{'fast x':>6} {'high x':>6} | {'SC orig (spread)':>22} {'fast':>6} {'high':>6} | "
        f"{'f/o':>4} {'h/o':>4} | fast high"
    )
    print(header)
    print("-" * len(header))
    verdicts = []
    for item in all_inputs:
        target = item.target
        original = run_original(target, params, seeds, clock)
        fast, _ = run_quality(target, params, "fast", repeats, clock)
        high, _ = run_quality(target, params, "high", repeats, clock)
        fast_speedup = original.seconds / fast.seconds
        high_speedup = original.seconds / high.seconds
        fast_ok = fast_speedup >= FAST_SPEEDUP and fast.sc <= original.sc
        high_ok = (
            high.seconds <= original.seconds and high.sc <= HIGH_SC_RATIO[item.kind] * original.sc
        )
        verdicts += [fast_ok, high_ok]
        shape = f"{target.shape[0]}x{target.shape[-1]}"
        spread = f"{original.sc:6.4f} ({original.lowest:.4f}-{original.highest:.4f})"
        print(
            f"{item.kind:<9} {item.name:<20} {shape:>7} | {original.seconds:5.2f}s "
            f"{fast.seconds:5.3f}s {high.seconds:5.2f}s | {fast_speedup:5.1f}x {high_speedup:5.1f}x"
            f" | {spread:>22} {fast.sc:6.4f} {high.sc:6.4f} | "
            f"{fast.sc / original.sc:4.2f} {high.sc / original.sc:4.2f} | "
            f"{'PASS' if fast_ok else 'FAIL'} {'PASS' if high_ok else 'FAIL'}",
            flush=True,
        )
    print(
        f"\nfast: >= {FAST_SPEEDUP:g}x faster than original and SC <= its median; high: <= "
        f"original's time and SC <= 0.9x (generated, seed) / 0.8x (real, synth) its median "
        f"(or within {FLOOR_MARGIN:g}x of the floor: see the floor table)"
    )
    print("overall:", "PASS" if all(verdicts) else "FAIL")


def floor_table(
    all_inputs: list[Input], params: SpectrogramParams, seeds: int, iterations: int, columns: int
) -> None:
    """Original (median), high and the floor on a crop from the middle of every input."""
    print(f"\nfloor: {iterations} L-BFGS iterations on {columns} columns from each input's middle")
    header = (
        f"{'class':<9} {'input':<20} | {'SC orig':>7} {'high':>7} {'floor':>7} | "
        f"{'high/o':>6} {'floor/o':>7} {'high/floor':>10}"
    )
    print(header)
    print("-" * len(header))
    for item in all_inputs:
        middle = item.target.shape[-1] // 2
        first = max(0, middle - columns // 2)
        crop = item.target[..., first : first + columns].contiguous()
        original = run_original(crop, params, seeds, CLOCKS["cpu"])
        high, start = run_quality(crop, params, "high", 1, CLOCKS["cpu"])
        floor = waveform_floor(crop, start, params, iterations)
        print(
            f"{item.kind:<9} {item.name:<20} | {original.sc:7.4f} {high.sc:7.4f} {floor:7.4f} | "
            f"{high.sc / original.sc:6.2f} {floor / original.sc:7.2f} {high.sc / floor:10.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
