"""The live jam's audio: one session's clips joined into one continuous waveform, cut into the
pieces its clip messages carry.

The jam plays whole seed loops one after another, as the offline `riffusion jam` does: each loop
is placed right after the previous one on a timeline of spectrogram columns, with a pre-roll of
its own last 0.2 s that the previous loop is crossfaded into (riffusion.render.engine.LoopSource
and loop_plan; a seed with tempo tags plays stretched to its tempo), and a Stitcher joins them.
Each clip's piece is the audio the Stitcher made final when that clip was added: up to a little
before the clip's end (the part the next clip may overlap is held back), so the pieces of a
session, played back to back, are exactly the one stitched waveform.

Level: the Stitcher keeps the spectrograms' own level, which has no fixed relation to full scale
(a loud clip reconstructs well above it). A live stream cannot be normalised as a whole, so the
session's gain is set once, by its first piece with sound, to peak at LEVEL_DB, and is then held:
the stitched level matching already carries the loudness smoothly from clip to clip. Louder peaks
later on go through a soft limiter above LEVEL_DB that bends them towards full scale; being a
fixed curve applied sample by sample, it keeps the waveform continuous across the pieces.

Wire format: FLAC (16-bit PCM, lossless). The pieces decode to exactly their frames, so they join
sample for sample; an MP3 per piece, decoded piece by piece, does not (docs/api.md, "Audio of the
jam's clips", gives the measurement).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from riffusion.audio import Audio
from riffusion.diffusion.inputs import InferenceInput
from riffusion.render.engine import LoopSource, PlannedClip
from riffusion.render.joins import Stitcher
from riffusion.render.longform import LOOP_OVERLAP_COLUMNS
from riffusion.spectrogram.params import SpectrogramParams
from riffusion.spectrogram.reconstruction import Quality

#: Peak of the session's first piece with sound, dBFS; also where the soft limiter starts.
LEVEL_DB = -3.0
#: Largest gain the level may apply, dB: a near-silent first clip must not set a huge one.
MAX_GAIN_DB = 24.0
#: The pieces' encoding: (Audio.to_bytes format, MIME type of the data URL).
WIRE_FORMAT = ("flac", "audio/flac")


@dataclass(frozen=True)
class JamAudioPiece:
    """The audio that became final with one clip, and where it and the clip lie in the stream.

    Positions are frames (samples per channel) from the stream's first frame.

    Attributes:
        audio: (channels, frames) at the stream's sample rate, levelled (see LEVEL_DB).
        start: the audio's first frame; each piece starts where the previous one ended.
        image_start: the frame where the clip's image (its first column, as played) begins.
        image_frames: how long the clip's image lasts as played (a seed with tempo tags plays
            stretched to its tempo), frames.
    """

    audio: Audio
    start: int
    image_start: int
    image_frames: int

    @property
    def sample_rate(self) -> int:
        return self.audio.sample_rate

    def encoded(self) -> bytes:
        """The audio as a file in WIRE_FORMAT."""
        return self.audio.to_bytes(WIRE_FORMAT[0])


class JamAudioStream:
    """One jam session's clips joined into one waveform, a piece per clip (see the module doc).

    Args:
        params: spectrogram parameters of the clips (the model's).
        quality: phase reconstruction quality.
        device: torch device for the reconstruction.
    """

    def __init__(
        self,
        params: SpectrogramParams,
        quality: Quality = "fast",
        device: str | torch.device = "cpu",
    ) -> None:
        self.params = params
        self._stitcher = Stitcher(params, quality, LOOP_OVERLAP_COLUMNS, device=device)
        self._clips = 0
        # Timeline column where the next clip's image starts (column 0 is frame 0).
        self._next_column = 0
        self._frames = 0
        self._gain: float | None = None

    @property
    def frames(self) -> int:
        """Frames delivered so far: where the next piece starts."""
        return self._frames

    def add(
        self, image: Image.Image, seed_image: Image.Image, inputs: InferenceInput
    ) -> JamAudioPiece:
        """Join the clip generated as image (from seed_image, with inputs) after the previous
        ones; returns its piece. Blocks for the reconstruction: call it off the event loop."""
        source = LoopSource(seed_image, self.params)
        loop_columns = source.loop_columns
        pre_roll = min(LOOP_OVERLAP_COLUMNS, loop_columns) if self._clips else 0
        clip = PlannedClip(
            index=self._clips,
            start=self._next_column - pre_roll,
            length=pre_roll + loop_columns,
            inputs=inputs,
            pre_roll=pre_roll,
        )
        joined = self._stitcher.add(source.clip_mel(clip, image), clip.start)
        hop = self.params.hop_length
        piece = JamAudioPiece(
            audio=Audio(self._levelled(joined.samples), joined.sample_rate),
            start=self._frames,
            image_start=self._next_column * hop,
            image_frames=loop_columns * hop,
        )
        self._clips += 1
        self._next_column += loop_columns
        self._frames += joined.num_frames
        return piece

    def _levelled(self, samples: np.ndarray) -> np.ndarray:
        """samples (channels, frames) at the session's gain, through the soft limiter."""
        if self._gain is None:
            peak = float(np.abs(samples).max(initial=0.0))
            if peak == 0.0:
                return samples  # silence: the gain waits for a piece with sound
            self._gain = min(db_to_gain(LEVEL_DB) / peak, db_to_gain(MAX_GAIN_DB))
        return soft_limit(samples * self._gain, db_to_gain(LEVEL_DB))


def db_to_gain(decibels: float) -> float:
    return float(10.0 ** (decibels / 20.0))


def soft_limit(samples: np.ndarray, threshold: float) -> np.ndarray:
    """samples unchanged up to +-threshold, and above it bent along tanh towards +-1 (reached only
    where float32 rounds tanh to 1, some 10 dB over full scale). The curve and its slope are
    continuous, so a continuous waveform stays so.

    samples: any shape, float32; threshold: in (0, 1), full scale 1.
    """
    magnitude = np.abs(samples)
    over = magnitude > threshold
    if not over.any():
        return samples
    headroom = 1.0 - threshold
    bent = threshold + headroom * np.tanh((magnitude[over] - threshold) / headroom)
    limited = samples.copy()
    limited[over] = np.sign(samples[over]) * bent
    return limited.astype(np.float32, copy=False)
