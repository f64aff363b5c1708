"""Phase reconstruction: from mel amplitudes (magnitudes only) back to a waveform.

Qualities:
    "original": the original riffusion's algorithm (least-squares inverse mel, then 32 iterations of
        fast Griffin-Lim with momentum 0.99 from a random initial phase, n_fft = 17640). Kept as the
        reference the other two are measured against.
    "fast" (default), "high": one pipeline in four steps, "high" iterating longer:

        1. Linear magnitudes on a reconstruction STFT whose FFT is as long as the window (4410
           instead of 17640 samples by default). Zero-padding a windowed frame only interpolates its
           spectrum, so these bins carry exactly the magnitudes of every fourth analysis bin at a
           quarter of the cost. They come from the minimum-norm least-squares inverse of the mel
           filterbank (what "original" computes per call), precomputed once per parameters.
        2. An initial phase from those magnitudes alone by phase-gradient heuristic integration
           (PGHI, Průša, Balazs & Søndergaard, "A noniterative method for reconstruction of phase
           from STFT magnitude", IEEE/ACM TASLP 2017) in its real-time form (Průša & Holighaus,
           "Phase vocoder done right", EUSIPCO 2017), with the per-frame heap replaced by an
           equivalent widest-path scan so that all frames are processed at once.
        3. Fast Griffin-Lim iterations (Perraudin, Balazs & Søndergaard, "A fast Griffin-Lim
           algorithm", WASPAA 2013) with a mel-aware magnitude step: where mel bands are wider
           than the reconstruction bins, the mel spectrogram does not determine the linear
           magnitudes, so instead of imposing the smooth least-squares estimate there, each
           iteration keeps the iterate's own magnitudes and rescales them to the target mel
           energies. Below that frequency the least-squares magnitudes are accurate and imposed.
        4. The same kind of iterations on the analysis STFT's own 2.5 Hz grid
           (riffusion.spectrogram.refinement): on the low bands, where mel bands lie closer
           together than the reconstruction bins and step 3 can only impose least-squares
           magnitudes, at a ninth of the sample rate ("fast" and "high"); then on every band
           ("high"). On spectrograms no signal has (every image the model generates) imposing
           least-squares magnitudes leaves the low bands, which hold most of the energy, well off
           their targets; rescaling the iterate's own fine-grid magnitudes to the target band
           energies does not.

    How many iterations each stage runs is in SCHEDULES.

See docs/benchmarks.md for measurements against "original".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import torch

from riffusion.spectrogram.dsp import (
    hann_window,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
    stft,
    unit_phasors,
)
from riffusion.spectrogram.params import SpectrogramParams
from riffusion.spectrogram.refinement import refine_full_band, refine_low_band

Quality = Literal["fast", "high", "original"]
QUALITIES: tuple[str, ...] = ("fast", "high", "original")


@dataclass(frozen=True)
class Schedule:
    """Iterations of each stage after the PGHI initial phase (see the module docstring).

    Attributes:
        coarse: fast Griffin-Lim iterations on the reconstruction grid (all bands).
        low_band: iterations on the low bands at the analysis grid's resolution
            (refinement.refine_low_band).
        full_band: iterations on the analysis STFT itself (refinement.refine_full_band).
    """

    coarse: int
    low_band: int
    full_band: int


# Chosen on the benchmark (docs/benchmarks.md): "fast" gives the low bands, where the coarse grid
# cannot see what the mel bands measure, a few cheap iterations; "high" adds a few on the analysis
# STFT, which settle the bands the coarse grid resolves only approximately.
SCHEDULES = {"fast": Schedule(5, 6, 0), "high": Schedule(32, 32, 8)}

# Momentum of fast Griffin-Lim, as in the original.
_MOMENTUM = 0.99

# Variance of the Gaussian window that best matches a Hann window of length L is
# 0.25645 * L**2 samples**2 (Průša et al. 2017, table I); PGHI's phase-gradient relations are
# exact for Gaussian windows.
_HANN_GAUSSIAN_VARIANCE = 0.25645

# Log-magnitudes are floored this far below each channel's maximum (-100 dB), so that the
# phase gradients of near-silent coefficients, pure noise, stay finite and small.
_MAGNITUDE_FLOOR = 1e-5

# A mel band's ratio target / iterate is computed against at least this fraction of the target's
# maximum, so silent bands do not divide by zero.
_RATIO_FLOOR = 1e-7


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
    momentum: float = _MOMENTUM,
    length: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fast Griffin-Lim (Perraudin et al. 2013) from a random initial phase, as torchaudio runs it.

    magnitudes: (channels, n_fft // 2 + 1, frames) -> waveform (channels, length); the iterations
    run on the natural (frames - 1) * hop_length samples, and only the final inverse is cut or
    extended to length. This is the original's algorithm on its own STFT (n_fft samples, window
    zero-padded), kept apart from fast_griffin_lim as the reference the other qualities are
    measured against.
    """
    window = hann_window(params, magnitudes.device, magnitudes.dtype)

    def inverse(spectrum: torch.Tensor, samples: int | None = None) -> torch.Tensor:
        return torch.istft(
            spectrum,
            n_fft=params.n_fft,
            hop_length=params.hop_length,
            win_length=params.win_length,
            window=window,
            length=samples,
        )

    # torchaudio draws real and imaginary parts uniformly from [0, 1).
    angles = torch.complex(
        torch.rand(magnitudes.shape, generator=generator, device=magnitudes.device),
        torch.rand(magnitudes.shape, generator=generator, device=magnitudes.device),
    ).to(torch.complex64 if magnitudes.dtype == torch.float32 else torch.complex128)
    previous = torch.zeros((), dtype=magnitudes.dtype, device=magnitudes.device)
    for _ in range(num_iters):
        rebuilt = stft(inverse(magnitudes * angles), params)
        angles = rebuilt - previous * (momentum / (1 + momentum))
        angles = angles / (angles.abs() + 1e-16)
        previous = rebuilt
    return inverse(magnitudes * angles, length)


@dataclass(frozen=True)
class _Grid:
    """Constants of the reconstruction STFT for one set of parameters, device and dtype.

    Bins are those of an FFT of win_length samples; only the first num_bins (up to max_frequency)
    are kept, the rest are silent in every spectrogram riffusion writes. Matrices are laid out for
    right-multiplication of (channels, frames, bins) tensors.

    Attributes:
        n_fft: FFT length of the reconstruction STFT, samples (= win_length).
        hop_length: samples between frames.
        num_bins: bins kept, from 0 Hz.
        window: Hann window, (n_fft,).
        inverse_mel: (mels, num_bins), mel amplitudes -> least-squares linear magnitudes.
        free_bin: first bin whose magnitude the iterations rescale instead of impose.
        band_start: first mel band touching a bin >= free_bin.
        free_mel: (num_bins - free_mel_offset, mels - band_start), linear magnitudes -> those
            bands' mel amplitudes: the analysis filters seen from the reconstruction bins (whose
            magnitudes are linearly interpolated onto the analysis bins).
        free_mel_offset: first bin contributing to band band_start (free_mel's first row).
        spread: (mels - band_start, num_bins - free_bin), per-band gains -> per-bin gains
            (filter-weighted average of the gains of the bands covering each bin).
        bin_advance: (num_bins,), phase advance of each bin's centre frequency over one hop,
            radians in [0, 2 pi).
        frame_centre_phase: (num_bins,), phase term that moves the phase reference from the window
            centre to the frame start, as torch.stft counts it, radians.
        time_gradient_scale: hop * n_fft / lambda (lambda: Gaussian-equivalent window variance).
        frequency_gradient_scale: lambda / (hop * n_fft).
    """

    n_fft: int
    hop_length: int
    num_bins: int
    window: torch.Tensor
    inverse_mel: torch.Tensor
    free_bin: int
    band_start: int
    free_mel: torch.Tensor
    free_mel_offset: int
    spread: torch.Tensor
    bin_advance: torch.Tensor
    frame_centre_phase: torch.Tensor
    time_gradient_scale: float
    frequency_gradient_scale: float


def mel_band_edges(params: SpectrogramParams) -> torch.Tensor:
    """Corner frequencies of the mel bands, Hz, float64, shaped (num_frequencies + 2,).

    Band i rises from edge i to its centre, edge i + 1, and falls to edge i + 2; the edges are
    equally spaced in mels from min_frequency to max_frequency.
    """
    mel_range = hz_to_mel(
        torch.tensor([params.min_frequency, params.max_frequency], dtype=torch.float64),
        params.mel_scale_type,
    )
    return mel_to_hz(
        torch.linspace(float(mel_range[0]), float(mel_range[1]), params.num_frequencies + 2),
        params.mel_scale_type,
    )


@lru_cache(maxsize=8)
def _grid(params: SpectrogramParams, device: torch.device, dtype: torch.dtype) -> _Grid:
    """The reconstruction constants for params, built in float64 on the CPU once and cached."""
    n_fft, hop = params.win_length, params.hop_length
    num_analysis_bins = params.n_fft // 2 + 1
    analysis = mel_filterbank(params, "cpu", torch.float64)  # (analysis bins, mels)

    # Reconstruction bin k sits at analysis bin k * ratio (exactly every fourth by default).
    ratio = params.n_fft / n_fft
    position = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * ratio
    below = position.floor().long().clamp(max=num_analysis_bins - 1)
    above = (below + 1).clamp(max=num_analysis_bins - 1)
    fraction = (position - below).unsqueeze(1)
    # pinv(A) = A^T pinv(A A^T); with A = analysis^T, a Cholesky solve with the small (mels, mels)
    # Gram matrix replaces an SVD of the whole filterbank. The Gram matrix is well conditioned
    # (cond ~ 40 by default); a negligible ridge keeps it positive definite when a mel band holds
    # no FFT bin, which then gets zero weight as in the pseudo-inverse.
    support = analysis[analysis.sum(1) > 0]
    gram = support.T @ support
    gram.diagonal().add_(1e-10 * float(gram.diagonal().mean().clamp(min=1e-300)))
    rows = analysis[below] * (1 - fraction) + analysis[above] * fraction
    inverse_mel = torch.cholesky_solve(rows.T, torch.linalg.cholesky(gram)).T  # (bins, mels)

    # Analysis bin j sits at reconstruction bin j / ratio; spreading each analysis filter's weight
    # onto the two neighbouring reconstruction bins models its magnitude by linear interpolation.
    source = torch.arange(num_analysis_bins, dtype=torch.float64) / ratio
    lower = source.floor().long().clamp(max=n_fft // 2)
    upper = (lower + 1).clamp(max=n_fft // 2)
    weight = (source - lower).unsqueeze(1)
    filters = torch.zeros(n_fft // 2 + 1, params.num_frequencies, dtype=torch.float64)
    filters.index_add_(0, lower, analysis * (1 - weight))
    filters.index_add_(0, upper, analysis * weight)

    used = (filters.abs().sum(1) > 0) | (inverse_mel.abs().sum(1) > 0)
    num_bins = int(used.nonzero().max()) + 1 if bool(used.any()) else 1
    filters, inverse_mel = filters[:num_bins], inverse_mel[:num_bins]

    # Where mel bands are at least a bin apart, they no longer pin down each bin's magnitude.
    edges = mel_band_edges(params)
    centres, spacing = edges[1:-1], edges[2:] - edges[1:-1]
    bin_hz = params.sample_rate / n_fft
    dense = (spacing < bin_hz).nonzero()
    first_sparse_band = int(dense.max()) + 1 if dense.numel() else 0
    if first_sparse_band >= params.num_frequencies:
        free_bin = num_bins
    else:
        free_bin = min(num_bins, math.ceil(float(centres[first_sparse_band]) / bin_hz))

    touching = (filters[free_bin:].abs().sum(0) > 0).nonzero()
    band_start = int(touching.min()) if touching.numel() else params.num_frequencies
    contributing = (filters[:, band_start:].abs().sum(1) > 0).nonzero()
    free_mel_offset = min(int(contributing.min()) if contributing.numel() else free_bin, free_bin)
    free_filters = filters[free_bin:, band_start:]
    coverage = free_filters.sum(1, keepdim=True)
    spread = torch.where(coverage > 0, free_filters / coverage.clamp(min=1e-30), 0.0).T

    lam = _HANN_GAUSSIAN_VARIANCE * params.win_length**2
    bins = torch.arange(num_bins)
    # Exact modular arithmetic keeps the advance small however high the bin.
    bin_advance = 2 * math.pi * ((bins * hop) % n_fft).double() / n_fft
    # torch.stft references phase to the frame start; the window peaks half a frame (n_fft / 2)
    # later, which turns bin k's phase by -pi k.
    frame_centre_phase = math.pi * (bins % 2).double()

    def to(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(device=device, dtype=dtype).contiguous()

    return _Grid(
        n_fft=n_fft,
        hop_length=hop,
        num_bins=num_bins,
        window=torch.hann_window(n_fft, periodic=True, dtype=torch.float64).to(device, dtype),
        inverse_mel=to(inverse_mel.T),
        free_bin=free_bin,
        band_start=band_start,
        free_mel=to(filters[free_mel_offset:, band_start:]),
        free_mel_offset=free_mel_offset,
        spread=to(spread),
        bin_advance=to(bin_advance),
        frame_centre_phase=to(frame_centre_phase),
        time_gradient_scale=hop * n_fft / lam,
        frequency_gradient_scale=lam / (hop * n_fft),
    )


def _stft(waveform: torch.Tensor, grid: _Grid) -> torch.Tensor:
    """Centred STFT, (channels, samples) -> (channels, 1 + samples // hop frames, num_bins).

    Same frames as torch.stft(center=True, pad_mode="reflect"), but laid out frames-first and cut
    to the bins in use (and zero-padded where the signal is too short to reflect).
    """
    pad = grid.n_fft // 2
    mode = "reflect" if waveform.shape[-1] > pad else "constant"
    padded = torch.nn.functional.pad(waveform, (pad, pad), mode=mode)
    frames = padded.unfold(-1, grid.n_fft, grid.hop_length) * grid.window
    return torch.fft.rfft(frames, dim=-1)[..., : grid.num_bins]


def _overlap_add(frames: torch.Tensor, hop_length: int) -> torch.Tensor:
    """Sum of frames (..., num_frames, frame_length) placed hop_length apart, (..., samples).

    samples = frame_length + hop_length * (num_frames - 1). Frames are cut into hop-sized blocks
    and block b of frame t is added to output block t + b, all in one index_add: several times
    faster on CPUs than F.fold or one shifted addition per block, which matters most when other
    processes compete for the cores and every parallel operation waits for its threads.
    """
    *batch, num_frames, frame_length = frames.shape
    blocks = -(-frame_length // hop_length)
    if blocks * hop_length != frame_length:
        frames = torch.nn.functional.pad(frames, (0, blocks * hop_length - frame_length))
    frames = frames.reshape(*batch, num_frames * blocks, hop_length)
    destination = torch.arange(num_frames, device=frames.device).unsqueeze(1) + torch.arange(
        blocks, device=frames.device
    )
    summed = frames.new_zeros(*batch, num_frames + blocks - 1, hop_length)
    summed.index_add_(-2, destination.flatten(), frames)
    return summed.flatten(-2)[..., : frame_length + hop_length * (num_frames - 1)]


def _istft(spectrum: torch.Tensor, grid: _Grid, envelope: torch.Tensor) -> torch.Tensor:
    """Least-squares inverse of _stft: (channels, frames, bins) -> (channels, samples).

    Bins missing up to n_fft // 2 + 1 count as silent. envelope: overlap-added squared window of
    those frames, (samples,) (see _window_envelope).
    """
    frames = torch.fft.irfft(spectrum, n=grid.n_fft, dim=-1).mul_(grid.window)
    pad = grid.n_fft // 2
    return _overlap_add(frames, grid.hop_length)[..., pad : pad + envelope.shape[0]] / envelope


def _num_stft_frames(grid: _Grid, length: int) -> int:
    """Frames _stft gives for length samples."""
    return 1 + (length + 2 * (grid.n_fft // 2) - grid.n_fft) // grid.hop_length


def _window_envelope(grid: _Grid, num_frames: int, length: int) -> torch.Tensor:
    """Overlap-added squared window of num_frames centred frames over length samples, (length,)."""
    summed = _overlap_add((grid.window**2).expand(num_frames, grid.n_fft), grid.hop_length)
    pad = grid.n_fft // 2
    # Hann windows overlap-add to a positive envelope wherever frames cover; guard the rest.
    return summed[pad : pad + length].clamp(min=1e-10)


def reconstruction_stft(waveform: torch.Tensor, params: SpectrogramParams) -> torch.Tensor:
    """The STFT the reconstruction works on: FFT and Hann window of win_length samples.

    waveform (channels, samples) -> complex (channels, 1 + samples // hop_length frames, bins):
    centred frames, frames first, cut to the bins up to max_frequency (the bins above are silent
    in every spectrogram riffusion writes).
    """
    return _stft(waveform, _grid(params, waveform.device, waveform.dtype))


def reconstruction_istft(
    spectrum: torch.Tensor, params: SpectrogramParams, length: int
) -> torch.Tensor:
    """Least-squares inverse of reconstruction_stft: (channels, frames, bins) -> (channels, length).

    The frames must cover length samples (1 + length // hop_length of them do).
    """
    grid = _grid(params, spectrum.device, spectrum.dtype.to_real())
    return _istft(spectrum, grid, _window_envelope(grid, spectrum.shape[-2], length))


def fast_griffin_lim(
    waveform: torch.Tensor,
    params: SpectrogramParams,
    magnitude_step: Callable[[torch.Tensor], torch.Tensor],
    num_iters: int,
    free: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Fast Griffin-Lim (Perraudin, Balazs & Søndergaard 2013) on reconstruction_stft's grid.

    Each iteration takes the signal's STFT, extrapolates its phase with momentum, gives it the
    magnitudes that magnitude_step returns and resynthesises. magnitude_step receives the STFT's
    own magnitudes, (channels, frames, bins), which it may change in place, and returns the target
    magnitudes, same shape.

    waveform: (channels, samples), the first iterate.
    free: samples [start, end) the iterations may change; the others stay waveform's in every
        signal analysed (audio already delivered, say). None: all samples are free.
    Returns the last resynthesis, (channels, samples), including where it was not free: there it
    shows how the iterate carries on past the free span.
    """
    grid = _grid(params, waveform.device, waveform.dtype)
    length = waveform.shape[-1]
    num_frames = _num_stft_frames(grid, length)
    envelope = _window_envelope(grid, num_frames, length)
    # The spectrum lives in a full-width buffer whose bins past num_bins stay zero, so the inverse
    # FFT need not pad it on every iteration.
    spectrum = waveform.new_zeros(
        *waveform.shape[:-1], num_frames, grid.n_fft // 2 + 1, dtype=waveform.dtype.to_complex()
    )
    used = spectrum[..., : grid.num_bins]
    signal = estimate = waveform
    previous = None
    for _ in range(num_iters):
        rebuilt = _stft(signal, grid)
        # Momentum extrapolates the phase: t_n = c_n + alpha (c_n - c_{n-1}), up to scale.
        direction = (
            rebuilt
            if previous is None
            else rebuilt.sub(previous, alpha=_MOMENTUM / (1 + _MOMENTUM))
        )
        previous = rebuilt
        torch.mul(unit_phasors(direction), magnitude_step(rebuilt.abs()), out=used)
        estimate = _istft(spectrum, grid, envelope)
        if free is None:
            signal = estimate
        else:
            signal = waveform.clone()
            signal[..., free[0] : free[1]] = estimate[..., free[0] : free[1]]
    return estimate


def _phase_derivatives(
    magnitudes: torch.Tensor, grid: _Grid
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PGHI's phase steps between neighbouring coefficients of magnitudes (..., frames, bins).

    Returns (log_magnitude, time_step, frequency_step), all shaped like magnitudes:
    time_step[..., n, k] is the phase advance from frame n - 1 to frame n at bin k and
    frequency_step[..., n, k] the change from bin k - 1 to bin k in frame n (trapezoid rule, zero
    for n = 0 and k = 0; derivatives as _derivative() takes them), radians, for phases referenced
    to the window centre. For a Gaussian window of variance lambda, the phase's time derivative is
    the bin frequency plus (hop * n_fft / lambda) d(log magnitude)/d(bin), and its frequency
    derivative is -(lambda / (hop * n_fft)) d(log magnitude)/d(frame); the Hann window uses its
    Gaussian equivalent.
    """
    num_frames, num_bins = magnitudes.shape[-2:]
    peak = magnitudes.amax(dim=(-2, -1), keepdim=True).clamp(min=torch.finfo(magnitudes.dtype).tiny)
    log_magnitude = torch.log(torch.maximum(magnitudes, peak * _MAGNITUDE_FLOOR))
    time_step = torch.zeros_like(log_magnitude)
    frequency_step = torch.zeros_like(log_magnitude)
    if num_bins > 1 and num_frames > 1:
        d_frequency = _derivative(log_magnitude, dim=-1, even=True)
        time_rate = torch.add(grid.bin_advance, d_frequency, alpha=grid.time_gradient_scale)
        torch.add(time_rate[..., 1:, :], time_rate[..., :-1, :], out=time_step[..., 1:, :])
        time_step.mul_(0.5)
        d_time = _derivative(log_magnitude, dim=-2, even=False)
        torch.add(d_time[..., 1:], d_time[..., :-1], out=frequency_step[..., 1:])
        frequency_step.mul_(-0.5 * grid.frequency_gradient_scale)
    return log_magnitude, time_step, frequency_step


def _derivative(values: torch.Tensor, dim: int, even: bool) -> torch.Tensor:
    """Derivative along dim (size >= 2): central differences inside, one-sided at the end, and at
    index 0 zero if even, else one-sided.

    Spectrograms of real signals are even about bin 0, so the frequency derivative there vanishes
    (even=True), where a one-sided difference would see a slope that is not there. riffusion's STFT
    also reflects the signal about its first sample, making frame 0 even in time; but a time
    derivative of zero there gives every bin of frame 0 the same PGHI phase, and those bins add
    up to a pulse on the first sample (about 5x the typical 10 ms peak on broadband sound), so
    time uses even=False.
    """
    result = torch.zeros_like(values)
    size = values.shape[dim]
    if size > 2:
        central = values.narrow(dim, 2, size - 2) - values.narrow(dim, 0, size - 2)
        result.narrow(dim, 1, size - 2).copy_(central).mul_(0.5)
    last = values.narrow(dim, size - 1, 1) - values.narrow(dim, size - 2, 1)
    result.narrow(dim, size - 1, 1).copy_(last)
    if not even:
        first = values.narrow(dim, 1, 1) - values.narrow(dim, 0, 1)
        result.narrow(dim, 0, 1).copy_(first)
    return result


def _widest_sources(
    strength: torch.Tensor, passage: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """For every bin, the best source at or below it: a widest-path scan along the last dim.

    Bin k takes its phase either from a source at k (worth strength[..., k]) or from bin k - 1 of
    the same frame, in which case it is worth the smaller of k - 1's own best and
    passage[..., k - 1]. Returns (worth, source bin), both shaped like strength.

    Each bin applies x -> max(c, min(x, d)) to the worth arriving from below (tracking which source
    the maximum came from), and such maps compose into maps of the same form. The scan therefore
    runs blockwise: about sqrt(bins) sequential steps compose the maps inside every block at once,
    as many carry the worth from block to block, and one pass applies it, instead of one step per
    bin. (Ties between equally wide paths may go either way.)
    """
    num_bins = strength.shape[-1]
    block = max(1, math.isqrt(num_bins))
    num_blocks = -(-num_bins // block)
    padding = (0, num_blocks * block - num_bins)
    shape = (*strength.shape[:-1], num_blocks, block)
    # Padding bins are identity maps: no source (c = -inf), free passage (d = +inf).
    worth = torch.nn.functional.pad(strength, padding, value=-math.inf).reshape(shape)
    gate = torch.nn.functional.pad(passage[..., :-1], (1, padding[1]), value=math.inf)
    gate[..., 0] = -math.inf
    gate = gate.reshape(shape)
    bins = torch.arange(num_blocks * block, device=strength.device).reshape(num_blocks, block)
    source = bins.expand(shape).clone()

    for position in range(1, block):
        carried = torch.minimum(worth[..., position - 1], gate[..., position])
        wins = carried > worth[..., position]
        worth[..., position] = torch.where(wins, carried, worth[..., position])
        source[..., position] = torch.where(wins, source[..., position - 1], source[..., position])
        gate[..., position] = torch.minimum(gate[..., position - 1], gate[..., position])

    entering = torch.full_like(worth[..., 0], -math.inf)
    entering_source = torch.zeros_like(source[..., 0])
    arriving, arriving_source = entering[..., 0].clone(), entering_source[..., 0].clone()
    for index in range(num_blocks):
        entering[..., index], entering_source[..., index] = arriving, arriving_source
        carried = torch.minimum(arriving, gate[..., index, -1])
        wins = carried > worth[..., index, -1]
        arriving = torch.where(wins, carried, worth[..., index, -1])
        arriving_source = torch.where(wins, arriving_source, source[..., index, -1])

    carried = torch.minimum(entering.unsqueeze(-1), gate)
    wins = carried > worth
    worth = torch.where(wins, carried, worth).flatten(-2)[..., :num_bins]
    source = torch.where(wins, entering_source.unsqueeze(-1), source).flatten(-2)[..., :num_bins]
    return worth, source


def _integrate_frame_by_frame(
    log_magnitude: torch.Tensor, time_step: torch.Tensor, frequency_step: torch.Tensor
) -> torch.Tensor:
    """Real-time PGHI ("Phase vocoder done right"): phases (channels, frames, bins), radians.

    Frame n is integrated from frame n - 1: a coefficient takes its phase from the coefficient of
    frame n - 1 or the neighbouring bin of frame n that a max-heap on magnitude reaches it from
    first, which is the source whose path is widest (largest minimum log-magnitude), found by two
    scans along frequency for all frames at once. The first frame is integrated along frequency
    from its loudest bin.
    """
    num_frames, num_bins = log_magnitude.shape[-2:]
    along_frequency = torch.cumsum(frequency_step, dim=-1)

    strength = torch.empty_like(log_magnitude)
    strength[:, 1:] = log_magnitude[:, :-1]
    strength[:, 0] = -math.inf
    first_peak = log_magnitude[:, 0].argmax(dim=-1, keepdim=True)
    strength[:, 0].scatter_(-1, first_peak, math.inf)
    up_value, up_source = _widest_sources(strength, log_magnitude)
    down_value, down_source = _widest_sources(strength.flip(-1), log_magnitude.flip(-1))
    down_value, down_source = down_value.flip(-1), (num_bins - 1) - down_source.flip(-1)
    source = torch.where(up_value >= down_value, up_source, down_source)

    # phase[n, k] = phase[n - 1, s] + time_step[n, s] + (frequency integral from s to k).
    offset = (time_step - along_frequency).gather(-1, source).add_(along_frequency)
    offset = torch.remainder(offset, 2 * math.pi)
    phase = torch.empty_like(offset)
    phase[:, 0] = offset[:, 0]
    for frame in range(1, num_frames):
        previous = phase[:, frame - 1].gather(-1, source[:, frame])
        phase[:, frame] = torch.remainder(previous + offset[:, frame], 2 * math.pi)
    return phase


def pghi_phase(magnitudes: torch.Tensor, grid: _Grid) -> torch.Tensor:
    """Phase for magnitudes (channels, frames, num_bins) by real-time PGHI, radians, same shape.

    Phases are referenced as torch.stft references them (to the frame start).
    """
    return (
        _integrate_frame_by_frame(*_phase_derivatives(magnitudes, grid)) + grid.frame_centre_phase
    )


def _griffin_lim_mel(
    mel_amplitudes: torch.Tensor,
    magnitudes: torch.Tensor,
    phase: torch.Tensor,
    params: SpectrogramParams,
    num_iters: int,
) -> torch.Tensor:
    """Fast Griffin-Lim with the mel-aware magnitude step; returns (channels, frames * hop).

    mel_amplitudes: (channels, frames, mels) target; magnitudes: (channels, frames, num_bins)
    least-squares linear magnitudes, imposed below the grid's free_bin; phase: initial phase,
    radians. The signal spans frames * hop samples, so its STFT has one frame more than the target,
    centred on the last sample: that frame is left free.
    """
    grid = _grid(params, magnitudes.device, magnitudes.dtype)
    channels, num_frames, _ = magnitudes.shape
    length = num_frames * grid.hop_length
    target_bands = mel_amplitudes[..., grid.band_start :]
    tiny = torch.finfo(mel_amplitudes.dtype).tiny
    ratio_floor = (mel_amplitudes.amax(dim=(-2, -1), keepdim=True) * _RATIO_FLOOR).clamp(min=tiny)
    free, offset = grid.free_bin, grid.free_mel_offset

    def magnitude_step(current: torch.Tensor) -> torch.Tensor:
        current[:, :num_frames, :free] = magnitudes[..., :free]
        if free < grid.num_bins:
            to_bands = grid.free_mel.expand(channels, -1, -1)
            # The iterate's own mel amplitudes; the floor keeps silent bands from dividing by zero.
            reached = torch.baddbmm(ratio_floor, current[:, :num_frames, offset:], to_bands)
            current[:, :num_frames, free:] *= (target_bands / reached) @ grid.spread
        return current

    # Frames past the target's (one, for even n_fft) start silent and stay unconstrained.
    initial = magnitudes.new_zeros(
        channels, _num_stft_frames(grid, length), grid.num_bins, dtype=magnitudes.dtype.to_complex()
    )
    initial[:, :num_frames] = torch.polar(magnitudes, phase)
    waveform = reconstruction_istft(initial, params, length)
    return fast_griffin_lim(waveform, params, magnitude_step, num_iters)


def reconstruct_waveform(
    mel_amplitudes: torch.Tensor,
    params: SpectrogramParams,
    quality: Quality = "fast",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Waveform (channels, frames * hop_length) from mel amplitudes (channels, mels, frames).

    The waveform is in the amplitudes' units (int16-scaled for images riffusion writes). Works on
    any device the tensor lives on. "fast" and "high" involve no randomness (on CPUs they are
    bit-exact run to run; CUDA's index_add may round differently); "original" starts from a random
    phase drawn from generator (seeded with 0 when None, so it repeats too).
    """
    if quality not in QUALITIES:
        raise ValueError(f"quality must be one of {', '.join(QUALITIES)}, got {quality!r}")
    num_frames = mel_amplitudes.shape[-1]
    if quality == "original":
        if generator is None:
            generator = torch.Generator(device=mel_amplitudes.device).manual_seed(0)
        magnitudes = linear_magnitudes_least_squares(mel_amplitudes, params)
        return griffin_lim(
            magnitudes,
            params,
            params.num_griffin_lim_iters,
            length=num_frames * params.hop_length,
            generator=generator,
        )
    grid = _grid(params, mel_amplitudes.device, mel_amplitudes.dtype)
    bands = mel_amplitudes.transpose(-1, -2)  # (channels, frames, mels)
    magnitudes = (bands @ grid.inverse_mel).clamp_(min=0.0)
    phase = pghi_phase(magnitudes, grid)
    schedule = SCHEDULES[quality]
    waveform = _griffin_lim_mel(bands, magnitudes, phase, params, schedule.coarse)
    waveform = refine_low_band(waveform, mel_amplitudes, params, schedule.low_band, _MOMENTUM)
    return refine_full_band(waveform, mel_amplitudes, params, schedule.full_band, _MOMENTUM)
