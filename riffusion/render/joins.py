"""Seamless joins: spectrogram clips placed on a timeline become one continuous piece of audio.

Reconstructing each clip on its own and concatenating the results clicks at every boundary (the
waveforms do not meet, and phase reconstruction has edge effects at a clip's ends) and jumps in
level (each clip is loud or quiet on its own terms). The Stitcher avoids both:

1. Loudness: a clip enters at the level of the audio it joins and relaxes to its own level over
   its length, so no join jumps in level and a long piece does not drift. Levels are mean mel
   energies over the overlap, where both clips render the same stretch of time, or over half a
   second either side of a join without overlap. The correction is at most +-6 dB.
2. Overlaps: where a clip overlaps the previous one, their mel amplitudes are crossfaded with a
   raised cosine, so the spectrogram itself moves smoothly from one clip to the next.
3. Phase: the timeline is reconstructed in windows that reach back over audio already delivered
   (200 ms of it) and forward past the newest join, so every join lies inside one window and is
   reconstructed as a whole. Where a window starts, its phases must carry on those of the audio
   already delivered: over a 300 ms bridge after it, Griffin-Lim iterations run with the
   delivered samples held fixed before the bridge and the window's own reconstruction held fixed
   after it, so the phases continue from the one into the other. The new window's audio is then
   crossfaded in over 50 ms from the previous window's; being phase-continuous, the two agree
   there, and the crossfade neither clicks nor cancels. These splice points lie 100 ms before
   the region the next clip may still change.

Stereo (or any number of channels): the channels share one phase, reconstructed from their mean,
and each channel's own magnitudes are put back per frequency and time (see split_channels), so
left and right stay as coherent as the spectrograms say they are.

Aligning joins with the beat is left to whoever places the clips (see riffusion.render.longform):
the Stitcher joins wherever clips overlap.

The Stitcher is incremental: add() returns the audio that is final once a clip is known, holding
back only the end that the next clip may overlap, and finish() returns the rest. stitch() joins a
whole list at once. It keeps its timeline and audio in torch on its device and works there, on
the reconstruction's own STFT and fast Griffin-Lim (riffusion.spectrogram.reconstruction); only
the clips coming in and the Audio going out are converted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
from PIL import Image

from riffusion.audio import Audio
from riffusion.errors import RiffusionError
from riffusion.spectrogram.dsp import INT16_SCALE
from riffusion.spectrogram.image import mel_amplitudes_from_image
from riffusion.spectrogram.params import SpectrogramParams
from riffusion.spectrogram.reconstruction import (
    QUALITIES,
    Quality,
    fast_griffin_lim,
    mel_band_edges,
    reconstruct_waveform,
    reconstruction_istft,
    reconstruction_stft,
)

# Columns of delivered audio each reconstruction window reaches back over (held fixed).
CONTEXT_COLUMNS = 20
# Columns between a splice point and the first column the next clip may change.
MARGIN_COLUMNS = 10
# Columns over which one window's audio is crossfaded into the next at a splice point.
SPLICE_COLUMNS = 5
# Columns either side of a join without overlap whose mel energies set the incoming clip's level.
LOUDNESS_COLUMNS = 50
# Largest level correction, dB.
MAX_GAIN_DB = 6.0
# Fast Griffin-Lim iterations that continue the phase of the delivered audio into a window, and
# the columns after the delivered audio they work on (the bridge to the window's own phases).
CONTINUATION_ITERATIONS = 16
BRIDGE_COLUMNS = 30
# Mel energies below this fraction of the louder side count as silence: no level matching then.
_SILENCE = 1e-8
# Mel amplitudes below this fraction of the loudest count as silence when channels are split.
_SHARE_FLOOR = 1e-6

Clip = np.ndarray | torch.Tensor | Image.Image


def raised_cosine(length: int) -> np.ndarray:
    """Weights rising from 0 to 1 over length points (exclusive of both ends), float32."""
    return _fade(length, torch.device("cpu")).numpy()


def _fade(length: int, device: torch.device) -> torch.Tensor:
    """raised_cosine's weights as a float32 tensor on device, (length,)."""
    # Computed in float64 on the CPU, which every device can take the result from.
    points = torch.arange(length, dtype=torch.float64) + 0.5
    return (0.5 - 0.5 * torch.cos(math.pi * points / length)).to(device, torch.float32)


def _crossfade(outgoing: torch.Tensor, incoming: torch.Tensor) -> torch.Tensor:
    """outgoing handing over to incoming (same shapes) along the last dim on a raised cosine."""
    fade = _fade(incoming.shape[-1], incoming.device)
    return outgoing * (1 - fade) + incoming * fade


def _mean_energy(mel: torch.Tensor) -> float:
    """Mel energy per column of mel amplitudes (channels, mels, columns), summed over channels."""
    return float(mel.square().sum(dim=(0, 1)).mean())


class Stitcher:
    """Joins spectrogram clips into continuous audio, one clip at a time.

    Clips are mel amplitudes (channels, num_frequencies, columns) in the units of the spectrogram
    images riffusion reads and writes (int16-scaled), or spectrogram images themselves. Each is
    placed at a start column on a timeline of hop_length-sample columns; a clip may overlap the
    previous one by up to max_overlap_columns, and may not leave a gap. Audio sample 0 is the first
    clip's first column; the level is the spectrogram's (int16 full scale is 1.0), not normalised.

    Args:
        params: spectrogram parameters of the clips (the model's by default).
        quality: phase reconstruction quality, "fast", "high" or "original".
        max_overlap_columns: how far a clip may reach back over the previous one. Audio is held
            back by this much (plus 100 ms) until the next clip or finish().
        match_loudness: bring each clip in at the level of the audio it joins.
        device: torch device the stitcher keeps its timeline and audio on and works on.
    """

    def __init__(
        self,
        params: SpectrogramParams | None = None,
        quality: Quality = "fast",
        max_overlap_columns: int = 20,
        match_loudness: bool = True,
        device: str | torch.device = "cpu",
    ) -> None:
        if quality not in QUALITIES:
            raise RiffusionError(f"quality must be one of {', '.join(QUALITIES)}, got {quality!r}")
        if max_overlap_columns < 0:
            raise RiffusionError(
                f"the overlap must be at least 0 columns, got {max_overlap_columns}"
            )
        self.params = params or SpectrogramParams()
        self.quality = quality
        self.max_overlap_columns = max_overlap_columns
        self.match_loudness = match_loudness
        self.device = torch.device(device)
        self._hop = self.params.hop_length
        # Timeline columns [self._columns_start, self._end), all clips blended in, on the device.
        self._columns: torch.Tensor | None = None
        self._columns_start = 0
        self._origin = 0
        self._end = 0
        self._last_start = 0
        # Audio up to column self._committed has been returned; self._history holds its last
        # CONTEXT_COLUMNS columns, self._tail the latest window's audio from there on (both of the
        # one signal all channels share, on the device).
        self._committed = 0
        self._history: torch.Tensor | None = None
        self._tail: torch.Tensor | None = None
        self._joins: list[int] = []
        self._splices: list[int] = []
        self._finished = False

    @property
    def sample_rate(self) -> int:
        return self.params.sample_rate

    @property
    def num_clips(self) -> int:
        return len(self._joins) + (self._columns is not None)

    @property
    def joins(self) -> tuple[int, ...]:
        """Sample positions of the joins (the middle of each overlap, or the boundary)."""
        return tuple(self._joins)

    @property
    def splices(self) -> tuple[int, ...]:
        """Sample positions where one reconstruction window was crossfaded into the next."""
        return tuple(self._splices)

    @property
    def num_columns(self) -> int:
        """Columns on the timeline so far (from the first clip's start to the last clip's end)."""
        return self._end - self._origin

    def add(self, clip: Clip, start_column: int | None = None) -> Audio:
        """Place clip at start_column (default: right after the previous clip, no overlap).

        Returns the audio that became final: from where the last call's audio ended to a point
        max_overlap_columns + 10 columns before the end of this clip (possibly empty).
        """
        if self._finished:
            raise RiffusionError("the stitcher has finished; start a new one")
        mel = self._as_mel(clip)
        if self._columns is None:
            start = 0 if start_column is None else int(start_column)
            self._origin = self._columns_start = self._committed = self._last_start = start
            self._columns = mel
            self._end = start + mel.shape[-1]
        else:
            start = self._end if start_column is None else int(start_column)
            self._check_placement(start, mel)
            if self.match_loudness:
                mel = self._level_matched(mel, start)
            self._blend(mel, start)
            overlap = self._end - start
            self._joins.append((2 * start + overlap) * self._hop // 2 - self._origin * self._hop)
            self._end = max(self._end, start + mel.shape[-1])
            self._last_start = start
        return self._advance(self._end - self.max_overlap_columns - MARGIN_COLUMNS)

    def finish(self) -> Audio:
        """The rest of the audio, to the end of the last clip; the stitcher is done after this."""
        if self._finished:
            raise RiffusionError("the stitcher has already finished")
        self._finished = True
        if self._columns is None:
            return Audio(np.zeros((1, 0), dtype=np.float32), self.sample_rate)
        return self._advance(self._end)

    # --- Placing clips ------------------------------------------------------------------------

    def _as_mel(self, clip: Clip) -> torch.Tensor:
        """clip as float32 mel amplitudes (channels, mels, columns) on the device, checked against
        the rest. Always a copy: the timeline is blended in place, and must not write to a clip
        the caller still holds."""
        if isinstance(clip, Image.Image):
            clip = mel_amplitudes_from_image(clip, self.params)
        if not isinstance(clip, torch.Tensor):
            clip = torch.from_numpy(np.ascontiguousarray(clip))
        mel = clip.detach().to(self.device, torch.float32, copy=True)
        if mel.ndim != 3 or mel.shape[1] != self.params.num_frequencies or mel.shape[2] < 1:
            raise RiffusionError(
                f"a clip must be mel amplitudes shaped (channels, {self.params.num_frequencies}, "
                f"columns), got {tuple(mel.shape)}"
            )
        if not bool((torch.isfinite(mel) & (mel >= 0)).all()):
            raise RiffusionError("a clip's mel amplitudes must be finite and non-negative")
        if self._columns is not None and mel.shape[0] != self._columns.shape[0]:
            raise RiffusionError(
                f"a clip has {mel.shape[0]} channels but the previous ones have "
                f"{self._columns.shape[0]}"
            )
        return mel

    def _check_placement(self, start: int, mel: torch.Tensor) -> None:
        if start > self._end:
            raise RiffusionError(
                f"a clip starting at column {start} would leave a gap after the previous clip, "
                f"which ends at column {self._end}"
            )
        overlap = self._end - start
        if overlap > self.max_overlap_columns:
            raise RiffusionError(
                f"a clip starting at column {start} overlaps the previous one by {overlap} "
                f"columns; at most {self.max_overlap_columns} were allowed"
            )
        if start <= self._last_start or start + mel.shape[-1] < self._end:
            raise RiffusionError(
                f"a clip at columns {start} to {start + mel.shape[-1]} must start after the "
                f"previous clip's start ({self._last_start}) and end at or after its end "
                f"({self._end})"
            )

    def _level_matched(self, mel: torch.Tensor, start: int) -> torch.Tensor:
        """mel scaled to enter at the level of the audio before it and relax to its own.

        The gain (dB) holds through the overlap, then falls to 0 dB along a raised cosine by the
        clip's end, so the next join meets this clip at its own level.
        """
        assert self._columns is not None
        overlap = self._end - start
        # Overlapping clips render the same stretch of time: compare them there. Otherwise compare
        # the stretches either side of the join.
        compared = overlap or LOUDNESS_COLUMNS
        first = max(self._end - compared, self._columns_start)
        before = self._columns[..., first - self._columns_start :]
        after = mel[..., :compared]
        energy_before, energy_after = _mean_energy(before), _mean_energy(after)
        louder = max(energy_before, energy_after)
        if louder == 0 or min(energy_before, energy_after) <= _SILENCE * louder:
            return mel
        gain_db = 10 * math.log10(energy_before / energy_after)
        gain_db = min(max(gain_db, -MAX_GAIN_DB), MAX_GAIN_DB)
        relax = torch.ones(mel.shape[-1], device=mel.device)
        relax[overlap:] = 1.0 - _fade(mel.shape[-1] - overlap, mel.device)
        return mel * (10.0 ** (gain_db * relax / 20.0))

    def _blend(self, mel: torch.Tensor, start: int) -> None:
        """Crossfade mel into the timeline over the overlap and append the rest."""
        assert self._columns is not None
        overlap = self._end - start
        offset = start - self._columns_start
        if overlap:
            previous = self._columns[..., offset:]
            self._columns[..., offset:] = _crossfade(previous, mel[..., :overlap])
        self._columns = torch.cat([self._columns, mel[..., overlap:]], dim=-1)

    # --- Reconstruction -----------------------------------------------------------------------

    def _advance(self, target: int) -> Audio:
        """Reconstruct up to the end of the timeline and return the audio up to column target."""
        assert self._columns is not None
        target = min(target, self._end)
        if target <= self._committed:
            return Audio(np.zeros((self._columns.shape[0], 0), dtype=np.float32), self.sample_rate)
        hop = self._hop
        window_start = max(self._origin, self._committed - CONTEXT_COLUMNS, self._columns_start)
        window = self._columns[..., window_start - self._columns_start :]
        # All channels share one phase, reconstructed from their mean; history and tail are of
        # that one signal, and the channels are split off it last (see split_channels).
        waveform = self._reconstruct(window.mean(dim=0, keepdim=True))
        prefix = (self._committed - window_start) * hop
        if prefix:
            assert self._history is not None
            waveform = continue_phase(waveform, self._history[:, -prefix:], self.params)
        length = (target - self._committed) * hop
        segment = waveform[:, prefix : prefix + length]
        if self._tail is not None:
            # Crossfade the previous window's continuation into this one at the splice point.
            splice = min(SPLICE_COLUMNS * hop, length, self._tail.shape[-1])
            spliced = _crossfade(self._tail[:, :splice], segment[:, :splice])
            segment = torch.cat([spliced, segment[:, splice:]], dim=-1)
            self._splices.append((self._committed - self._origin) * hop)
        self._tail = waveform[:, prefix + length :]
        output = segment
        if window.shape[0] > 1:
            span = torch.cat([waveform[:, :prefix], segment, self._tail], dim=-1)
            output = split_channels(span, window, self.params)[:, prefix : prefix + length]
        joined = segment if self._history is None else torch.cat([self._history, segment], dim=-1)
        self._history = joined[:, -CONTEXT_COLUMNS * hop :]
        self._committed = target
        # Keep only the columns later windows and level matching can still look at (a copy, so
        # that the rest is freed).
        keep_from = min(self._committed - CONTEXT_COLUMNS, self._end - LOUDNESS_COLUMNS)
        if keep_from > self._columns_start:
            self._columns = self._columns[..., keep_from - self._columns_start :].clone()
            self._columns_start = keep_from
        return Audio((output / INT16_SCALE).cpu().numpy(), self.sample_rate)

    def _reconstruct(self, window: torch.Tensor) -> torch.Tensor:
        """Waveform (channels, columns * hop) of mel amplitudes (channels, mels, columns)."""
        params = self.params
        minimum = params.n_fft // 2 // params.hop_length + 2
        columns = window.shape[-1]
        if columns < minimum:
            # Too short for the reconstruction's padding: pad with silence, then cut it off.
            window = torch.nn.functional.pad(window, (0, minimum - columns))
        waveform = reconstruct_waveform(window, params, self.quality)
        return waveform[:, : columns * params.hop_length]


def split_channels(
    shared: torch.Tensor, mel: torch.Tensor, params: SpectrogramParams
) -> torch.Tensor:
    """Channels with one phase: shared (1, columns * hop) -> (channels, columns * hop).

    mel: the channels' mel amplitudes (channels, mels, columns); shared is the reconstruction of
    their mean. Every STFT coefficient of shared (on the reconstruction's own STFT) is scaled by
    each channel's share of the mean in its mel band and column, interpolated between band
    centres: the channels keep their own level per frequency and time, as amplitude panning
    does, and stay coherent. (Reconstructing the channels one by one gives each its own phases,
    and turns a narrow stereo image wide and hollow.)
    """
    spectrum = reconstruction_stft(shared, params)  # (1, frames, bins)
    mean = mel.mean(dim=0, keepdim=True)
    floor = (mean.amax() * _SHARE_FLOOR).clamp(min=torch.finfo(mel.dtype).tiny)
    # Near-silent bands go to every channel alike.
    share = torch.where(mean > floor, mel / torch.maximum(mean, floor), 1.0)
    # Centred frames: one more than columns, the last on the final sample.
    share = torch.cat([share, share[..., -1:]], dim=-1)[..., : spectrum.shape[-2]]
    share = share.transpose(-1, -2)  # (channels, frames, mels)
    lower, upper, weight = _band_interpolation(params, spectrum.shape[-1], mel.device)
    gains = share[..., lower] * (1 - weight) + share[..., upper] * weight
    return reconstruction_istft(spectrum * gains, params, shared.shape[-1])


@lru_cache(maxsize=8)
def _band_interpolation(
    params: SpectrogramParams, num_bins: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each of the first num_bins bins of reconstruction_stft: the neighbouring mel bands
    whose centres lie at or below and above its frequency, and the weight of the upper one
    (linear in Hz between the centres; 0 below the first centre, 1 above the last).

    Returns (lower band, upper band, weight), each (num_bins,), on device.
    """
    centres = mel_band_edges(params)[1:-1]
    frequencies = torch.arange(num_bins, dtype=torch.float64) * (
        params.sample_rate / params.win_length
    )
    upper = torch.searchsorted(centres, frequencies, right=True).clamp(1, centres.numel() - 1)
    lower = upper - 1
    weight = ((frequencies - centres[lower]) / (centres[upper] - centres[lower])).clamp(0, 1)
    return lower.to(device), upper.to(device), weight.to(device, torch.float32)


def continue_phase(
    waveform: torch.Tensor,
    prefix: torch.Tensor,
    params: SpectrogramParams,
    iterations: int = CONTINUATION_ITERATIONS,
    bridge_columns: int = BRIDGE_COLUMNS,
) -> torch.Tensor:
    """waveform made to continue prefix: a bridge of Griffin-Lim iterations between the two.

    waveform: (channels, samples), a reconstruction whose STFT magnitudes are the target.
    prefix: (channels, prefix samples), audio already delivered for the start of the same stretch.
    The bridge_columns after the prefix are iterated (fast_griffin_lim, on the reconstruction's
    own STFT) with the prefix held fixed before them and waveform held fixed after them, keeping
    the magnitudes and looking for phases consistent with both: the phases of the delivered audio
    carry on into the bridge and hand over to waveform's own at its end, where the two are
    crossfaded over one column. Returns (channels, samples), equal to prefix at the start and to
    waveform after the bridge.
    """
    hop = params.hop_length
    length, fixed = waveform.shape[-1], prefix.shape[-1]
    free_end = min(fixed + bridge_columns * hop, length)
    # The bridge's last frames must see a whole window of what follows it.
    part_end = min(free_end + params.win_length, length)
    target = reconstruction_stft(waveform[:, :part_end], params).abs()
    start = torch.cat([prefix, waveform[:, fixed:part_end]], dim=-1)
    estimate = fast_griffin_lim(start, params, lambda _: target, iterations, free=(fixed, free_end))
    handover_end = min(free_end + hop, length)
    handover = _crossfade(estimate[:, free_end:handover_end], waveform[:, free_end:handover_end])
    return torch.cat(
        [prefix, estimate[:, fixed:free_end], handover, waveform[:, handover_end:]], dim=-1
    )


def with_pre_roll(loop: np.ndarray, columns: int) -> np.ndarray:
    """A loop's mel amplitudes (channels, mels, width) with its own last columns put before it.

    Loops played one after another (a jam) join best from each loop's own end: add the loop with
    a pre-roll of the overlap, starting that many columns before its place, and the crossfade
    ends exactly on its first column (the first beat, for a seed of whole bars):

        stitcher.add(with_pre_roll(mel, 20), index * width - 20)   # the first loop: no pre-roll

    Returns (channels, mels, columns + width).
    """
    if not 0 <= columns <= loop.shape[-1]:
        raise RiffusionError(f"a pre-roll must be 0 to {loop.shape[-1]} columns, got {columns}")
    if not columns:
        return loop
    return np.concatenate([loop[..., -columns:], loop], axis=-1)


def stitch(
    clips: Sequence[Clip],
    starts: Sequence[int] | None = None,
    params: SpectrogramParams | None = None,
    quality: Quality = "fast",
    match_loudness: bool = True,
    device: str | torch.device = "cpu",
) -> Audio:
    """Join spectrogram clips into one piece of audio with seamless joins (see Stitcher).

    Args:
        clips: mel amplitudes (channels, num_frequencies, columns), int16-scaled as riffusion's
            images hold them, or spectrogram images.
        starts: each clip's first column on the timeline; by default clips follow each other
            without overlap. Where a clip starts before the previous one ends, the two are
            crossfaded over the overlap.
        params: spectrogram parameters (the model's by default).
        quality: phase reconstruction quality.
        match_loudness: bring each clip in at the level of the audio it joins.
        device: torch device for the reconstruction.

    Returns:
        Audio at params.sample_rate from the first clip's start to the last clip's end, at the
        spectrogram's level (not normalised).
    """
    if not clips:
        raise RiffusionError("there are no clips to stitch")
    if starts is not None and len(starts) != len(clips):
        raise RiffusionError(f"got {len(starts)} start columns for {len(clips)} clips")
    params = params or SpectrogramParams()
    widths = [_width(clip) for clip in clips]
    if starts is None:
        starts = list(np.cumsum([0, *widths[:-1]]))
    # Each clip ends at or after the previous one's end, so only neighbours can overlap.
    overlaps = [
        int(start) + width - int(following)
        for start, width, following in zip(starts[:-1], widths[:-1], starts[1:], strict=True)
    ]
    stitcher = Stitcher(
        params,
        quality,
        max_overlap_columns=max([0, *overlaps]),
        match_loudness=match_loudness,
        device=device,
    )
    pieces = [stitcher.add(clip, int(start)) for clip, start in zip(clips, starts, strict=True)]
    pieces.append(stitcher.finish())
    return Audio(np.concatenate([piece.samples for piece in pieces], axis=-1), params.sample_rate)


def _width(clip: Clip) -> int:
    return clip.width if isinstance(clip, Image.Image) else int(clip.shape[-1])
