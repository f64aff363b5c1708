"""How audible the joins of a long render are: a boundary artefact figure in dB.

A click or a phase jump at a join puts a burst of broadband energy into the audio, reaching far
above the band the spectrograms hold. So the figure is the energy of the high-passed signal in a
short window around each join, relative to the typical (median) energy of the same measure in
windows elsewhere in the audio. 0 dB means a join is like any other stretch of the audio; plain
concatenation of independently reconstructed clips scores well above that.

What a join can score depends on the music there as much as on the joiner (a downbeat at a loop
boundary is loud above 12 kHz however it is joined; quiet image edges are quiet however they are
joined), so figures are compared at the same places with the same reference windows, and against
the no-join floor: the same clips reconstructed as one uncut piece (uncut_reconstruction). The
naive baselines are plain_concatenation (each clip reconstructed on its own, edges and all) and,
for loops, looped_concatenation (each loop reconstructed as a loop on its own, back to back).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfiltfilt

from riffusion.audio import Audio
from riffusion.errors import RiffusionError
from riffusion.render.joins import raised_cosine
from riffusion.spectrogram.converter import SpectrogramImageConverter
from riffusion.spectrogram.params import SpectrogramParams
from riffusion.spectrogram.reconstruction import Quality

# Window around each join, s: long enough for a click's ringing, short enough not to average it
# away among the music.
WINDOW_S = 0.02
# High-pass cut-off, Hz. Riffusion's spectrograms stop at 10 kHz (max_frequency), so audio
# reconstructed from them has nothing above it, except where the waveform jumps: a discontinuity
# spreads its energy over the whole spectrum. Above 12 kHz (where the filter has taken 26 dB off
# 10 kHz) the music itself does not mask the artefacts. For audio that does reach up there, pass a
# lower cut-off (4 kHz measures within the music's band).
HIGHPASS_HZ = 12000.0
_HIGHPASS_ORDER = 4


@dataclass(frozen=True)
class JoinArtefacts:
    """The boundary artefact figure of one piece of audio.

    Attributes:
        per_join_db: for each join, 10 log10(high-passed energy in the window around it / median
            of the same over the reference windows), dB.
        reference_windows: how many windows the median was taken over.
    """

    per_join_db: tuple[float, ...]
    reference_windows: int

    @property
    def mean_db(self) -> float:
        """The per-join figures averaged in dB."""
        return float(np.mean(self.per_join_db))

    @property
    def max_db(self) -> float:
        """The worst join, dB."""
        return float(np.max(self.per_join_db))


def highpassed(audio: Audio, cutoff_hz: float = HIGHPASS_HZ) -> np.ndarray:
    """audio through a zero-phase Butterworth high-pass, (channels, frames) float64.

    Zero-phase (forward and backward) so that a click's energy stays centred on the click.
    """
    if not 0 < cutoff_hz < audio.sample_rate / 2:
        raise RiffusionError(
            f"the high-pass cut-off must be between 0 and {audio.sample_rate / 2:g} Hz, "
            f"got {cutoff_hz}"
        )
    sos = butter(_HIGHPASS_ORDER, cutoff_hz, btype="highpass", fs=audio.sample_rate, output="sos")
    return sosfiltfilt(sos, audio.samples.astype(np.float64), axis=-1)


def join_artefacts(
    audio: Audio,
    join_samples: Sequence[int],
    window_s: float = WINDOW_S,
    cutoff_hz: float = HIGHPASS_HZ,
    after: bool = False,
) -> JoinArtefacts:
    """The boundary artefact figure of audio whose joins are at join_samples (frame indices).

    The high-passed energy (summed over channels) is measured in a window of window_s centred on
    each join, or starting at it with after (the stretch right after a crossfade ends, say). The
    reference is the median over consecutive windows of the same length that tile the audio,
    leaving out those within one window of a measured one and the first and last window (the
    ends of a file have edge effects of their own).
    """
    width = max(round(window_s * audio.sample_rate), 1)
    joins = [int(join) for join in join_samples]
    if not joins:
        raise RiffusionError("there are no joins to measure")
    if any(not width // 2 <= join <= audio.num_frames - width // 2 for join in joins):
        raise RiffusionError(
            f"every join must lie at least {window_s * 500:g} ms inside the audio "
            f"({audio.num_frames} frames)"
        )
    # Each measured window's first frame.
    firsts = [join if after else join - width // 2 for join in joins]
    if any(first + width > audio.num_frames for first in firsts):
        raise RiffusionError(f"every join must lie at least {window_s * 1000:g} ms before the end")
    energy = (highpassed(audio, cutoff_hz) ** 2).sum(axis=0)
    # Cumulative sums give the energy of any window in O(1).
    cumulative = np.concatenate([[0.0], np.cumsum(energy)])

    def window_energy(start: int) -> float:
        return float(cumulative[start + width] - cumulative[start])

    starts = np.arange(width, audio.num_frames - 2 * width + 1, width)
    near_join = np.zeros(len(starts), dtype=bool)
    for first in firsts:
        near_join |= np.abs(starts - first) < 1.5 * width
    reference = [window_energy(int(start)) for start in starts[~near_join]]
    if not reference:
        raise RiffusionError("the audio is too short to measure joins against the rest of it")
    floor = max(float(np.median(reference)), np.finfo(np.float64).tiny)
    per_join = tuple(
        10.0 * np.log10(max(window_energy(first), np.finfo(np.float64).tiny) / floor)
        for first in firsts
    )
    return JoinArtefacts(per_join, len(reference))


def plain_concatenation(
    clips: Sequence[np.ndarray],
    starts: Sequence[int],
    params: SpectrogramParams | None = None,
    quality: Quality = "fast",
) -> tuple[Audio, list[int]]:
    """The baseline the joins are measured against: clips joined the naive way.

    Each clip (mel amplitudes (channels, mels, columns)) is reconstructed on its own and
    peak-normalised, as the original riffusion made every clip's audio; neighbours are cut at the
    middle of their overlap (at the boundary without one) and concatenated.

    Returns (the audio from the first clip's start, the joins' sample positions in it).
    """
    converter = SpectrogramImageConverter(params, quality=quality)
    hop = converter.params.hop_length
    # Sample positions, from the first clip's start.
    offsets = [(start - starts[0]) * hop for start in starts]
    ends = [offset + clip.shape[-1] * hop for offset, clip in zip(offsets, clips, strict=True)]
    cuts = [(end + offset) // 2 for end, offset in zip(ends[:-1], offsets[1:], strict=True)]
    bounds = [0, *cuts, ends[-1]]
    pieces = []
    for clip, offset, low, high in zip(clips, offsets, bounds[:-1], bounds[1:], strict=True):
        audio = converter.audio_from_mel_amplitudes(clip)
        pieces.append(audio.samples[:, low - offset : high - offset])
    return Audio(np.concatenate(pieces, axis=-1), converter.params.sample_rate), cuts


def uncut_reconstruction(
    clips: Sequence[np.ndarray],
    starts: Sequence[int],
    params: SpectrogramParams | None = None,
    quality: Quality = "fast",
    crossfade: bool = False,
) -> tuple[Audio, list[int]]:
    """The no-join floor: the clips' spectrograms laid on one timeline, reconstructed as one piece.

    By default neighbours are cut at the middle of their overlap (rounded down to a whole column),
    as plain_concatenation cuts them; with crossfade, overlaps are crossfaded with a raised cosine
    as the Stitcher crossfades them (without its level matching), which gives the floor of
    stitch's own spectrogram. The whole spectrogram is reconstructed in one go and peak-normalised:
    the spectrogram still changes from one clip to the next, but no reconstruction has an edge
    there, so the figure at those places is what a join scores when it adds nothing.

    Args:
        clips: mel amplitudes (channels, mels, columns).
        starts: each clip's first column; each clip starts after the previous one's start and ends
            at or after its end.

    Returns (the audio from the first clip's start, the joins' sample positions in it: the cuts,
    or the middles of the overlaps with crossfade).
    """
    converter = SpectrogramImageConverter(params, quality=quality)
    hop = converter.params.hop_length
    origin = starts[0]
    timeline = np.array(clips[0], dtype=np.float32)
    joins = []
    for clip, start in zip(clips[1:], starts[1:], strict=True):
        overlap = origin + timeline.shape[-1] - start
        if crossfade:
            fade = raised_cosine(overlap)
            kept = timeline[..., start - origin :]
            timeline[..., start - origin :] = kept * (1 - fade) + clip[..., :overlap] * fade
            timeline = np.concatenate([timeline, clip[..., overlap:]], axis=-1)
            joins.append((2 * (start - origin) + overlap) * hop // 2)
        else:
            cut = start + overlap // 2
            timeline = np.concatenate([timeline[..., : cut - origin], clip[..., cut - start :]], -1)
            joins.append((cut - origin) * hop)
    return converter.audio_from_mel_amplitudes(timeline), joins


def looped_concatenation(
    loops: Sequence[np.ndarray],
    params: SpectrogramParams | None = None,
    quality: Quality = "fast",
) -> tuple[Audio, list[int]]:
    """Loops joined as a loop player would: each played as a loop on its own, back to back.

    Each loop (mel amplitudes (channels, mels, columns), one period) is reconstructed with a
    wrapped margin of its own columns either side, as riffusion.seeds.loop_audio_from_image plays a
    seed's result, and peak-normalised; the loops are then concatenated. Unlike
    plain_concatenation no piece has an edge of its own: what is left at each boundary is the
    change of spectrogram and the meeting of two separate reconstructions' phases (which do not
    meet even when a loop follows itself). The harder baseline for loops.

    Returns (the audio, the joins' sample positions in it: the loop boundaries).
    """
    converter = SpectrogramImageConverter(params, quality=quality)
    hop = converter.params.hop_length
    pieces = []
    for loop in loops:
        columns = loop.shape[-1]
        margin = min(math.ceil(converter.params.n_fft / hop), columns)
        wrapped = np.concatenate([loop[..., -margin:], loop, loop[..., :margin]], axis=-1)
        audio = converter.audio_from_mel_amplitudes(wrapped)
        pieces.append(audio.samples[:, margin * hop : (margin + columns) * hop])
    joins = [int(join) for join in np.cumsum([piece.shape[-1] for piece in pieces[:-1]])]
    return Audio(np.concatenate(pieces, axis=-1), converter.params.sample_rate), joins
