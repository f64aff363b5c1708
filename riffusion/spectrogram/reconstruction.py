"""Phase reconstruction: from mel amplitudes (magnitudes only) back to a waveform.

Qualities:
    "original": the original riffusion's algorithm (least-squares inverse mel, then 32 iterations of
        fast Griffin-Lim with momentum 0.99 from a random initial phase, n_fft = 17640).
    "fast", "high": see reconstruct_waveform.
"""

from __future__ import annotations

from typing import Literal

import torch

from riffusion.spectrogram.dsp import hann_window, mel_filterbank
from riffusion.spectrogram.params import SpectrogramParams

Quality = Literal["fast", "high", "original"]
QUALITIES: tuple[str, ...] = ("fast", "high", "original")


def linear_magnitudes_least_squares(
    mel_amplitudes: torch.Tensor, params: SpectrogramParams
) -> torch.Tensor:
    """Minimum-norm least-squares inverse of the mel filterbank, clamped to >= 0.

    (channels, num_frequencies, frames) -> (channels, n_fft // 2 + 1, frames)
    """
    filterbank = mel_filterbank(params, mel_amplitudes.device, mel_amplitudes.dtype)
    solution = torch.linalg.lstsq(filterbank.T.unsqueeze(0), mel_amplitudes, driver="gels").solution
    return solution.clamp(min=0.0)


def griffin_lim(
    magnitudes: torch.Tensor,
    params: SpectrogramParams,
    num_iters: int,
    momentum: float = 0.99,
    length: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fast Griffin-Lim (Perraudin et al. 2013) from a random initial phase, as torchaudio runs it.

    magnitudes: (channels, n_fft // 2 + 1, frames) -> waveform (channels, length); the iterations
    run on the natural (frames - 1) * hop_length samples, and only the final inverse is cut or
    extended to length.
    """
    window = hann_window(params, magnitudes.device, magnitudes.dtype)
    stft_args = dict(
        n_fft=params.n_fft,
        hop_length=params.hop_length,
        win_length=params.win_length,
        window=window,
    )
    # torchaudio draws real and imaginary parts uniformly from [0, 1).
    angles = torch.complex(
        torch.rand(magnitudes.shape, generator=generator, device=magnitudes.device),
        torch.rand(magnitudes.shape, generator=generator, device=magnitudes.device),
    ).to(torch.complex64 if magnitudes.dtype == torch.float32 else torch.complex128)
    previous = torch.zeros((), dtype=magnitudes.dtype, device=magnitudes.device)
    for _ in range(num_iters):
        waveform = torch.istft(magnitudes * angles, **stft_args)
        rebuilt = torch.stft(
            waveform,
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
            **stft_args,
        )
        angles = rebuilt - previous * (momentum / (1 + momentum))
        angles = angles / (angles.abs() + 1e-16)
        previous = rebuilt
    return torch.istft(magnitudes * angles, length=length, **stft_args)


def reconstruct_waveform(
    mel_amplitudes: torch.Tensor,
    params: SpectrogramParams,
    quality: Quality = "fast",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Waveform (channels, frames * hop_length) from mel amplitudes (channels, mels, frames).

    The waveform is in the amplitudes' units (int16-scaled for images riffusion writes). Works on
    any device the tensor lives on.
    """
    if quality not in QUALITIES:
        raise ValueError(f"quality must be one of {', '.join(QUALITIES)}, got {quality!r}")
    length = mel_amplitudes.shape[-1] * params.hop_length
    magnitudes = linear_magnitudes_least_squares(mel_amplitudes, params)
    return griffin_lim(
        magnitudes, params, params.num_griffin_lim_iters, length=length, generator=generator
    )
