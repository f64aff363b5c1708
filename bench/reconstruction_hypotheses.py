"""Why generated and seed images reconstruct worse than real recordings: each hypothesis measured.

Run from the repository root (needs ../shared/riffusion-reference):

    .venv/bin/python bench/reconstruction_hypotheses.py [--seeds N] [--threads N]

For each input: the original's median SC over --seeds generator seeds, "fast" and "high" without
the analysis-grid refinement (the pipeline before it: coarse grid only) and with it (as shipped),
each as a ratio to the original's median; and where the error sits: the share of the target's
energy, and of the squared error of the original and of coarse-only "fast", in the low bands (those
refinement.refine_low_band works on, below ~1.5 kHz).

Inputs test one hypothesis each, on a real recording whose reconstruction is known to go well:
    8-bit quantisation: the clip's float mel amplitudes against their own 8-bit image;
    strong bass: the clip's image with the bands below 250 Hz raised by 12 dB;
    inconsistency: the clip's image blurred (1 pixel), or with noise added to its pixels (sigma 8
        gray levels): what a diffusion model's small errors look like, a spectrogram no signal has;
and, for reference, the generated images and some seeds.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch
from bench_reconstruction import REFERENCE, SEGMENT_S, machine, spectral_convergence
from PIL import Image
from scipy.ndimage import gaussian_filter

from riffusion.audio import Audio
from riffusion.seeds import load_seed_image
from riffusion.spectrogram import reconstruction
from riffusion.spectrogram.dsp import INT16_SCALE, mel_amplitudes_from_waveform
from riffusion.spectrogram.image import (
    image_from_mel_amplitudes,
    max_value_from_image,
    mel_amplitudes_from_image,
)
from riffusion.spectrogram.params import SpectrogramParams
from riffusion.spectrogram.reconstruction import Quality, mel_band_edges
from riffusion.spectrogram.refinement import low_band_size

SEEDS = ("og_beat", "vibes", "ambient_pad", "bossa")
BASS_HZ, BASS_DB = 250.0, 12.0


def through_image(mel: np.ndarray, params: SpectrogramParams) -> torch.Tensor:
    """mel amplitudes (channels, mels, frames) written to an 8-bit image and read back."""
    return torch.from_numpy(
        mel_amplitudes_from_image(image_from_mel_amplitudes(mel, params), params)
    )


def edited_pixels(mel: np.ndarray, params: SpectrogramParams, edit: str) -> torch.Tensor:
    """The image of mel with its gray levels blurred ("blur") or noised ("noise"), read back."""
    image = image_from_mel_amplitudes(mel, params)
    pixels = np.asarray(image, dtype=np.float64)
    if edit == "blur":
        pixels = gaussian_filter(pixels, sigma=(1.0, 1.0, 0.0) if pixels.ndim == 3 else 1.0)
    else:
        pixels = pixels + np.random.default_rng(0).normal(0.0, 8.0, pixels.shape)
    edited = Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8), mode=image.mode)
    return torch.from_numpy(mel_amplitudes_from_image(edited, params, max_value_from_image(image)))


def inputs(params: SpectrogramParams) -> list[tuple[str, torch.Tensor]]:
    frames = round(SEGMENT_S * 1000 / params.step_size_ms)
    clip = Audio.load(REFERENCE / "clip.wav").resample(params.sample_rate)
    samples = torch.from_numpy(np.ascontiguousarray(clip.slice(0.0, SEGMENT_S).samples[:1]))
    mel = mel_amplitudes_from_waveform(samples * INT16_SCALE, params)[..., :frames]
    bass = mel.clone().numpy()
    low = (mel_band_edges(params)[1:-1] < BASS_HZ).numpy()
    bass[:, low] *= 10 ** (BASS_DB / 20)
    result = [
        ("clip, float mel", mel),
        ("clip, 8-bit image", through_image(mel.numpy(), params)),
        ("clip, bass +12 dB", through_image(bass, params)),
        ("clip, blurred", edited_pixels(mel.numpy(), params, "blur")),
        ("clip, pixel noise", edited_pixels(mel.numpy(), params, "noise")),
    ]
    for path in sorted((REFERENCE / "generated").glob("*.png")):
        result.append(
            (path.stem[:20], torch.from_numpy(mel_amplitudes_from_image(Image.open(path), params)))
        )
    for seed in SEEDS:
        result.append(
            (
                f"seed {seed}",
                torch.from_numpy(mel_amplitudes_from_image(load_seed_image(seed), params)),
            )
        )
    return result


def low_band_shares(
    output: torch.Tensor, target: torch.Tensor, params: SpectrogramParams, num_bands: int
) -> float:
    """Share of the squared (gain-matched) mel error in the first num_bands bands."""
    mel = mel_amplitudes_from_waveform(output, params)[..., : target.shape[-1]].double()
    goal = target.double()
    gain = (mel * goal).sum() / (mel * mel).sum()
    error = (gain * mel - goal).square()
    return float(error[:, :num_bands].sum() / error.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4, help="generator seeds of original")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    params = SpectrogramParams()
    print(f"machine: {machine()}\n")
    num_low_bands = low_band_size(params)
    shipped = dict(reconstruction.SCHEDULES)
    coarse_only = {
        quality: reconstruction.Schedule(schedule.coarse, 0, 0)
        for quality, schedule in shipped.items()
    }
    print(
        "| input | SC original (median) | fast, coarse only | fast | high, coarse only | high | "
        "low-band share of: energy | original's error | coarse-only fast's error |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, target in inputs(params):
        scores, low_errors = [], []
        fast_low = 0.0
        for seed in range(args.seeds):
            generator = torch.Generator().manual_seed(seed)
            output = reconstruction.reconstruct_waveform(target, params, "original", generator)
            scores.append(spectral_convergence(output, target, params))
            low_errors.append(low_band_shares(output, target, params, num_low_bands))
        original = statistics.median(scores)
        ratios = {}
        for label, schedules in (("coarse", coarse_only), ("shipped", shipped)):
            reconstruction.SCHEDULES.update(schedules)
            qualities: tuple[Quality, ...] = ("fast", "high")
            for quality in qualities:
                output = reconstruction.reconstruct_waveform(target, params, quality)
                ratios[label, quality] = spectral_convergence(output, target, params) / original
                if label == "coarse" and quality == "fast":
                    fast_low = low_band_shares(output, target, params, num_low_bands)
        reconstruction.SCHEDULES.update(shipped)
        energy = target.double().square()
        energy_low = float(energy[:, :num_low_bands].sum() / energy.sum())
        print(
            f"| {name} | {original:.4f} | {ratios['coarse', 'fast']:.2f} | "
            f"{ratios['shipped', 'fast']:.2f} | {ratios['coarse', 'high']:.2f} | "
            f"{ratios['shipped', 'high']:.2f} | {energy_low:.2f} | "
            f"{statistics.median(low_errors):.2f} | {fast_low:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
