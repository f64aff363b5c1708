"""The plans and clip sources of riffusion's long-form commands: riff, interpolate and jam.

riff re-imagines a track of any length: the track is sliced into overlapping clips, each clip's
own spectrogram is the init image of its img2img, and the results are joined. Where a tempo is
known, every overlap ends on a beat: the next clip takes over just before a beat's transient
(which masks the change), and the clip before it is cut there, giving up at most a beat of what
it generated.

The model is trained on mono spectrograms, so stereo input cannot go through it as stereo. With
stereo="pan" (the default for stereo input) the mid channel (L + R) / 2 is re-imagined, and the
input's panning is put back: for every mel bin and column the output's left and right amplitudes
are the re-imagined mid's times 2 L / (L + R) and 2 R / (L + R) of the input (smoothed over 5 bins
and 5 columns; silence counts as centred). The Stitcher gives both channels one phase. Sounds stay
where they were in the stereo field, it costs one img2img per clip, and what the model adds is
placed where the input had energy at that frequency. Width that came from phase or time
differences between the channels (a room, a chorus) is not in a magnitude spectrogram and
narrows (docs/benchmarks.md, "Stereo"). stereo="mono" makes mono output.

interpolate renders one clip per alpha from a start to an end prompt, and jam an offline set from
the jam engine; both play whole seed loops one after another (see engine.loop_plan).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import uniform_filter

from riffusion.audio import Audio
from riffusion.diffusion.inputs import InferenceInput, PromptInput
from riffusion.diffusion.presets import PresetName
from riffusion.errors import RiffusionError
from riffusion.jam import JamEngine, JamSettings
from riffusion.render.engine import PlannedClip, RenderPlan, loop_plan
from riffusion.seeds.tempo import estimate_tempo, onset_envelope
from riffusion.seeds.timing import check_bpm
from riffusion.spectrogram.dsp import INT16_SCALE, mel_amplitudes_from_waveform
from riffusion.spectrogram.image import image_from_mel_amplitudes, mel_amplitudes_from_image
from riffusion.spectrogram.params import SpectrogramParams

StereoMode = Literal["pan", "mono"]
STEREO_MODES: tuple[str, ...] = ("pan", "mono")

# Image widths must be multiples of this (8x VAE, 8x UNet).
WIDTH_MULTIPLE = 64
# Crossfade between consecutive loops of interpolate and jam, columns (0.2 s).
LOOP_OVERLAP_COLUMNS = 20
# Smoothing of the input's panning before it is applied, (mel bins, columns).
_PAN_SMOOTHING = (5, 5)
# Amplitudes below this fraction of a clip's loudest count as silence for panning (centred).
_PAN_FLOOR = 1e-4
# The id riff's inputs carry as their seed image (the track itself is the init image).
TRACK_SEED_ID = "track"


def columns_for(duration_s: float, params: SpectrogramParams) -> float:
    """Spectrogram columns in duration_s (fractional)."""
    return duration_s * 1000.0 / params.step_size_ms


def clip_width(clip_duration_s: float, params: SpectrogramParams) -> int:
    """Columns of a clip of clip_duration_s, which must be a whole multiple of 64 columns."""
    columns = columns_for(clip_duration_s, params)
    width = round(columns / WIDTH_MULTIPLE) * WIDTH_MULTIPLE
    if width < WIDTH_MULTIPLE or abs(columns - width) > 1e-6:
        unit = WIDTH_MULTIPLE * params.step_size_ms / 1000
        raise RiffusionError(
            f"the clip duration must be a positive multiple of {unit:g} s (the model takes images "
            f"{WIDTH_MULTIPLE} columns at a time), got {clip_duration_s:g} s"
        )
    return width


# --- riff: re-imagining a track ---------------------------------------------------------------


@dataclass(frozen=True)
class BeatGrid:
    """Beats at first_beat_s + k * 60 / bpm seconds, k = 0, 1, ... (and before, by extension)."""

    bpm: float
    first_beat_s: float

    def latest_column_at_or_before(self, column: int, params: SpectrogramParams) -> int:
        """The column of the last beat at or before column (rounded to a whole column)."""
        period = columns_for(60.0 / self.bpm, params)
        offset = columns_for(self.first_beat_s, params)
        beat = math.floor((column - offset) / period + 1e-9)
        return round(offset + beat * period)


def beat_grid(audio: Audio, bpm: float | None = None) -> BeatGrid:
    """The beat grid of audio at bpm (estimated when None): tempo and where the beats fall.

    The phase is the offset whose beats collect the most onset strength: the mean of the onset
    envelope (5 ms frames) at offset + k * period over the whole audio. The envelope (spectral
    flux over a 46 ms window) rises as an onset enters the window, so the beats found lie up to
    about 20 ms before the transients: where a join should end.
    """
    bpm = check_bpm(estimate_tempo(audio) if bpm is None else bpm)
    envelope, rate = onset_envelope(audio)
    period = 60.0 * rate / bpm
    offsets = np.arange(math.ceil(period))
    beats = np.arange(math.ceil(len(envelope) / period))
    positions = np.rint(offsets[:, None] + beats[None, :] * period).astype(int)
    inside = positions < len(envelope)
    strength = np.where(inside, envelope[np.minimum(positions, len(envelope) - 1)], 0.0)
    scores = strength.sum(axis=1) / np.maximum(inside.sum(axis=1), 1)
    return BeatGrid(bpm, float(offsets[np.argmax(scores)]) / rate)


def riff_starts(
    num_columns: int,
    width: int,
    overlap: int,
    params: SpectrogramParams,
    beats: BeatGrid | None = None,
) -> list[int]:
    """Start columns of the clips that cover num_columns: each overlaps the previous by overlap.

    Without beats, clips step by width - overlap. With beats, each overlap ends on the latest
    beat the previous clip reaches (so steps are shorter by up to a beat, and the previous clip
    is cut where the overlap ends). The last clip may run past the end of the track.
    """
    if not 0 <= overlap <= width // 2:
        raise RiffusionError(
            f"the overlap must be 0 to half a clip ({width // 2} columns), got {overlap} columns"
        )
    starts = [0]
    while starts[-1] + width < num_columns:
        takeover = starts[-1] + width
        if beats is not None:
            on_beat = beats.latest_column_at_or_before(takeover, params)
            # A beat too early would make no progress: then the step stays whole.
            if on_beat - overlap > starts[-1]:
                takeover = on_beat
        starts.append(takeover - overlap)
    return starts


def plan_riff(
    num_samples: int,
    params: SpectrogramParams,
    width: int,
    overlap: int,
    start: PromptInput,
    end: PromptInput | None = None,
    num_inference_steps: int = 50,
    beats: BeatGrid | None = None,
    preset: PresetName = "quality",
) -> RenderPlan:
    """The clips re-imagining a track of num_samples samples (at params.sample_rate).

    Every clip runs from start to end at alpha = its index / (clips - 1), or at alpha 0 throughout
    when end is None, with preset. The audio is exactly num_samples long.
    """
    if num_samples < 1:
        raise RiffusionError("the track is empty")
    num_columns = math.ceil(num_samples / params.hop_length)
    starts = riff_starts(num_columns, width, overlap, params, beats)
    # Each clip runs until the next one has taken over.
    stops = [following + overlap for following in starts[1:]] + [starts[-1] + width]
    last = max(len(starts) - 1, 1)
    clips = tuple(
        PlannedClip(
            index=index,
            start=column,
            length=stop - column,
            inputs=InferenceInput(
                start=start,
                end=end or start,
                alpha=index / last if end is not None else 0.0,
                num_inference_steps=num_inference_steps,
                seed_image_id=TRACK_SEED_ID,
                preset=preset,
            ),
            source_start=column,
        )
        for index, (column, stop) in enumerate(zip(starts, stops, strict=True))
    )
    return RenderPlan(clips, width, overlap, num_samples, params)


class TrackSource:
    """Init images cut from a track, and generated images put back at the track's level.

    Each clip's init image is the spectrogram of its slice of the track (the mid channel for
    stereo), analysed with the audio around it, so its edges are as accurate as its middle. The
    generated image is read back at the init image's MAX_VALUE, so the output follows the track's
    loudness from clip to clip. For stereo="pan" the track's panning is put back (module notes).

    Args:
        audio: the track, any sample rate (resampled to params.sample_rate), 1 or 2 channels.
        params: spectrogram parameters (mono).
        width: columns per clip.
        stereo: "pan" or "mono"; mono tracks are mono either way.
    """

    init_images_vary = True

    def __init__(
        self, audio: Audio, params: SpectrogramParams, width: int, stereo: StereoMode = "pan"
    ) -> None:
        if stereo not in STEREO_MODES:
            raise RiffusionError(f"stereo must be one of {', '.join(STEREO_MODES)}, got {stereo!r}")
        if audio.num_channels > 2:
            raise RiffusionError(f"the track has {audio.num_channels} channels; mix it down first")
        audio = audio.resample(params.sample_rate)
        self.params = params
        self.width = width
        self.stereo = stereo == "pan" and audio.num_channels == 2
        self.num_channels = 2 if self.stereo else 1
        mid = audio.samples.mean(axis=0, keepdims=True)
        # Analysed together: mid first, then left and right for the panning.
        self._samples = np.concatenate([mid, audio.samples]) if self.stereo else mid
        # Per clip in flight: (MAX_VALUE of its init image, panning gains or None).
        self._pending: dict[int, tuple[float, np.ndarray | None]] = {}

    def init_image(self, clip: PlannedClip) -> Image.Image:
        if clip.source_start is None:
            raise RiffusionError(f"clip {clip.index} has no place in the track")
        mel = self._analyse(clip.source_start)
        mid = mel[:1]
        max_value = float(mid.max())
        self._pending[clip.index] = (max_value, self._panning(mel[1:]) if self.stereo else None)
        return image_from_mel_amplitudes(mid, self.params, max_value)

    def clip_mel(self, clip: PlannedClip, image: Image.Image) -> np.ndarray:
        max_value, panning = self._pending.pop(clip.index)
        mid = mel_amplitudes_from_image(image, self.params, max_value)
        return mid if panning is None else mid * panning

    def _analyse(self, first_column: int) -> np.ndarray:
        """Mel amplitudes (channels, mels, width) of the track from first_column on, silence past
        its ends. The analysis windows see the track's real neighbours at the clip's edges."""
        hop = self.params.hop_length
        margin = math.ceil(self.params.n_fft / 2 / hop)  # whole columns, so frames stay on the grid
        low = (first_column - margin) * hop
        high = (first_column + self.width + margin) * hop
        total = self._samples.shape[-1]
        piece = np.zeros((self._samples.shape[0], high - low), dtype=np.float32)
        inside_low, inside_high = max(low, 0), min(high, total)
        if inside_high > inside_low:
            piece[:, inside_low - low : inside_high - low] = self._samples[
                :, inside_low:inside_high
            ]
        waveform = torch.from_numpy(piece) * INT16_SCALE
        mel = mel_amplitudes_from_waveform(waveform, self.params).numpy()
        return mel[..., margin : margin + self.width]

    @staticmethod
    def _panning(left_right: np.ndarray) -> np.ndarray:
        """Gains (2, mels, columns) from the mid's amplitudes to left and right: 2 L / (L + R) and
        2 R / (L + R), smoothed; silent bins are centred (1, 1)."""
        smoothed = uniform_filter(left_right, size=(1, *_PAN_SMOOTHING), mode="nearest")
        floor = max(float(smoothed.max()) * _PAN_FLOOR, np.finfo(np.float32).tiny)
        share = (smoothed + floor) / (smoothed.sum(axis=0, keepdims=True) + 2 * floor)
        return (2.0 * share).astype(np.float32)


# --- interpolate: one clip per alpha ----------------------------------------------------------


def interpolation_alphas(num_steps: int, alpha_power: float = 1.0) -> list[float]:
    """num_steps alphas from 0 to 1: evenly spaced, then raised to alpha_power (as the
    original's interpolation page did; a power above 1 lingers near the start)."""
    if num_steps < 1:
        raise RiffusionError(f"the number of steps must be at least 1, got {num_steps}")
    if not (math.isfinite(alpha_power) and alpha_power > 0):
        raise RiffusionError(f"the alpha power must be positive, got {alpha_power}")
    if num_steps == 1:
        return [0.0]
    return [float(alpha) ** alpha_power for alpha in np.linspace(0.0, 1.0, num_steps)]


def plan_interpolation(
    start: PromptInput,
    end: PromptInput,
    alphas: Sequence[float],
    width: int,
    params: SpectrogramParams,
    num_inference_steps: int = 50,
    seed_image_id: str = "og_beat",
    preset: PresetName = "quality",
) -> RenderPlan:
    """One loop per alpha, from start (alpha 0) towards end, played one after another."""
    inputs = [
        InferenceInput(
            start=start,
            end=end,
            alpha=alpha,
            num_inference_steps=num_inference_steps,
            seed_image_id=seed_image_id,
            preset=preset,
        )
        for alpha in alphas
    ]
    return loop_plan(inputs, width, LOOP_OVERLAP_COLUMNS, params)


# --- jam: an offline set ----------------------------------------------------------------------


def jam_inputs(
    prompts: Sequence[str], num_clips: int, seed: int, settings: JamSettings
) -> list[InferenceInput]:
    """The jam engine's first num_clips clips, the prompts spread evenly over them.

    The jam starts on prompts[0]; prompt i is queued at clip round(i * num_clips / len(prompts))
    and, as in the live jam, plays from the next rollover, after a transition.
    """
    if not prompts:
        raise RiffusionError("a jam needs at least one prompt")
    engine = JamEngine(prompts[0], seed=seed, settings=settings)
    queue_at = {index: round(index * num_clips / len(prompts)) for index in range(1, len(prompts))}
    inputs = []
    for clip_index in range(num_clips):
        for prompt_index, at in queue_at.items():
            if at == clip_index:
                engine.queue_prompt(prompts[prompt_index])
        inputs.append(engine.next_clip().input)
    return inputs


def plan_jam(
    prompts: Sequence[str],
    duration_s: float,
    seed: int,
    settings: JamSettings,
    width: int,
    params: SpectrogramParams,
) -> RenderPlan:
    """A set of duration_s seconds (to the sample) from the jam engine, whole loops joined; the
    last loop is cut at the duration."""
    num_samples = round(duration_s * params.sample_rate)
    if num_samples < 1:
        raise RiffusionError(f"the duration must be positive, got {duration_s:g} s")
    num_clips = math.ceil(num_samples / (width * params.hop_length))
    plan = loop_plan(
        jam_inputs(prompts, num_clips, seed, settings), width, LOOP_OVERLAP_COLUMNS, params
    )
    return replace(plan, num_samples=num_samples)
