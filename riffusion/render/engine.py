"""Long renders: a plan of clips on a timeline, and the loop that generates and joins them.

A RenderPlan lists the clips of a piece: where each sits on a timeline of spectrogram columns
(10 ms each by default) and what to generate for it. A ClipSource says what each clip starts from
(its init image) and how the generated image becomes mel amplitudes for the timeline. The Renderer
runs the plan clip by clip through RiffusionPipeline.riffuse and joins the results with a
Stitcher; it can be stopped at any point (Ctrl-C) and still hand back valid audio of the clips
done: a clip counts once it is wholly joined, and an interrupt never leaves one half joined.

riff, interpolate and jam (riffusion.render.longform) differ only in their plans and sources.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
from PIL import Image

from riffusion.audio import Audio
from riffusion.devices import cuda_or_cpu
from riffusion.diffusion.inputs import InferenceInput
from riffusion.errors import RiffusionError
from riffusion.interrupts import interrupts_held
from riffusion.render.joins import Stitcher, with_pre_roll
from riffusion.seeds.images import image_timing
from riffusion.seeds.timing import retime_columns
from riffusion.spectrogram.image import mel_amplitudes_from_image, save_spectrogram_image
from riffusion.spectrogram.params import SpectrogramParams
from riffusion.spectrogram.reconstruction import Quality

if TYPE_CHECKING:
    from riffusion.diffusion.pipeline import RiffusionPipeline

# Fade at the very end of a render, s: a piece cut at --duration or by Ctrl-C would otherwise stop
# on a non-zero sample, which clicks.
END_FADE_S = 0.01

#: Called with (clip index, diffusion steps done, steps in this clip) before and after every step.
RenderProgress = Callable[[int, int, int], None]

#: How the finished audio is scaled: "peak" to -0.1 dBFS, "keep" the spectrogram's own level.
Normalization = Literal["peak", "keep"]


@dataclass(frozen=True)
class PlannedClip:
    """One clip of a plan.

    Attributes:
        index: position in the plan, from 0.
        start: timeline column of the clip's first column (its pre-roll, if any).
        length: columns the clip occupies on the timeline from start: its pre-roll and the
            generated image, or the image's first part only when the next clip takes over earlier.
        inputs: what to generate (prompts, seeds, alpha, steps).
        pre_roll: columns placed before the generated image: the image's own last columns, for
            loops, so that the crossfade into it ends on its first column (the downbeat).
        source_start: for clips re-imagining a track, the track column the image starts at.
    """

    index: int
    start: int
    length: int
    inputs: InferenceInput
    pre_roll: int = 0
    source_start: int | None = None


@dataclass(frozen=True)
class RenderPlan:
    """The clips of a long render and the audio they make.

    Attributes:
        clips: in timeline order.
        width: timeline columns of every generated image as played (the image's width, or for a
            loop with tempo tags its length at that tempo).
        overlap: largest overlap between neighbouring clips, columns.
        num_samples: length of the finished audio, samples.
        params: spectrogram parameters (sample rate, hop).
    """

    clips: tuple[PlannedClip, ...]
    width: int
    overlap: int
    num_samples: int
    params: SpectrogramParams

    def __post_init__(self) -> None:
        if not self.clips:
            raise RiffusionError("a render needs at least one clip")

    @property
    def sample_rate(self) -> int:
        return self.params.sample_rate

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate

    def clip_end(self, clip: PlannedClip) -> int:
        """Timeline column just after clip."""
        return clip.start + clip.length

    def samples_after(self, num_clips: int) -> int:
        """Length of the audio once the first num_clips clips are rendered, samples."""
        if num_clips <= 0:
            return 0
        end = self.clip_end(self.clips[num_clips - 1]) * self.params.hop_length
        return min(end, self.num_samples)

    def join_samples(self) -> list[int]:
        """Sample positions of the joins: the middle of each overlap (the boundary without one)."""
        hop = self.params.hop_length
        joins = []
        for previous, clip in zip(self.clips, self.clips[1:], strict=False):
            overlap = self.clip_end(previous) - clip.start
            joins.append((2 * clip.start + overlap) * hop // 2)
        return joins


def loop_plan(
    inputs: Sequence[InferenceInput], width: int, overlap: int, params: SpectrogramParams
) -> RenderPlan:
    """Clips of whole loops, one after another: clip k's image fills columns k * width onwards.

    Each clip after the first has a pre-roll of overlap columns (its own loop end), so the
    crossfade from the previous clip ends exactly where its loop begins: on the first beat of a
    bar for a seed image of whole bars. The audio is len(inputs) * width columns long.
    """
    if not 0 <= overlap <= width:
        raise RiffusionError(f"the overlap must be 0 to {width} columns, got {overlap}")
    clips = [
        PlannedClip(
            index=index,
            start=index * width - (overlap if index else 0),
            length=width + (overlap if index else 0),
            inputs=clip_inputs,
            pre_roll=overlap if index else 0,
        )
        for index, clip_inputs in enumerate(inputs)
    ]
    num_samples = len(clips) * width * params.hop_length
    return RenderPlan(tuple(clips), width, overlap, num_samples, params)


class ClipSource(Protocol):
    """Where clips start from and how their images join the timeline.

    Attributes:
        init_images_vary: whether clips start from different images (worth saving each).
    """

    init_images_vary: bool

    def init_image(self, clip: PlannedClip) -> Image.Image:
        """The image img2img starts from for clip."""
        ...

    def clip_mel(self, clip: PlannedClip, image: Image.Image) -> np.ndarray:
        """Mel amplitudes (channels, mels, pre_roll + plan.width) of the image generated for clip,
        as it goes on the timeline (the Renderer keeps the first clip.length columns)."""
        ...


class LoopSource:
    """Every clip starts from the same seed image, a loop.

    A seed image with tempo tags is played at its tempo: the generated image's columns are
    stretched to the loop's playback length, as riffusion.seeds.loop_audio_from_image plays a
    loop (the image is drawn at the nearest tempo a whole number of 64-column blocks allows).
    Pre-rolls wrap around the loop's end.

    Attributes:
        loop_columns: timeline columns of one loop as played (the plan's width).
    """

    init_images_vary = False

    def __init__(self, seed_image: Image.Image, params: SpectrogramParams) -> None:
        self.seed_image = seed_image
        self.params = params
        timing = image_timing(seed_image, params.sample_rate)
        self.loop_columns = seed_image.width if timing is None else timing.playback_columns

    def init_image(self, clip: PlannedClip) -> Image.Image:
        return self.seed_image

    def clip_mel(self, clip: PlannedClip, image: Image.Image) -> np.ndarray:
        mel = mel_amplitudes_from_image(image, self.params)
        if mel.shape[-1] != self.loop_columns:
            mel = retime_columns(mel, self.loop_columns)
        return with_pre_roll(mel, clip.pre_roll)


@dataclass(frozen=True)
class RenderedClip:
    """A clip as the Renderer finished it.

    Attributes:
        clip: its place in the plan.
        image: the generated spectrogram.
        audio_s: seconds of audio rendered so far, this clip included.
    """

    clip: PlannedClip
    image: Image.Image
    audio_s: float


class Renderer:
    """Renders a plan clip by clip and joins the clips.

    Args:
        pipeline: the model.
        plan: the clips.
        source: init images and the way generated images join the timeline.
        quality: phase reconstruction quality.
        scheduler: diffusion scheduler name; None for the model's own.
        images_dir: when given, every generated spectrogram is saved there as clip_NNNN.png (and
            every init image that is not the same for all clips as source_NNNN.png).
        normalize: "peak" scales the finished audio to peak at -0.1 dBFS (as the original did for
            each clip); "keep" keeps the spectrogram's level, scaled down only where it would clip.
    """

    def __init__(
        self,
        pipeline: RiffusionPipeline,
        plan: RenderPlan,
        source: ClipSource,
        quality: Quality = "fast",
        scheduler: str | None = None,
        images_dir: Path | None = None,
        normalize: Normalization = "peak",
    ) -> None:
        if normalize not in ("peak", "keep"):
            raise RiffusionError(f"normalize must be 'peak' or 'keep', got {normalize!r}")
        self.pipeline = pipeline
        self.plan = plan
        self.source = source
        self.scheduler = scheduler
        self.images_dir = images_dir
        self.normalize = normalize
        self._stitcher = Stitcher(
            plan.params, quality, plan.overlap, device=cuda_or_cpu(pipeline.device)
        )
        self._pieces: list[np.ndarray] = []
        self._done = 0

    @property
    def clips_done(self) -> int:
        """Clips rendered and joined so far."""
        return self._done

    def render(self, progress: RenderProgress | None = None) -> Iterator[RenderedClip]:
        """Render the clips not yet done, yielding each as it is joined.

        progress is called from the diffusion loop; an exception it raises (KeyboardInterrupt
        included) propagates out of the generator, and the clips done so far stay done: finish()
        still gives their audio. A Ctrl-C during a clip's diffusion drops that clip; one after it
        (while the clip is joined and its images saved) takes effect once the clip is done.
        """
        for clip in self.plan.clips[self._done :]:

            def step(done: int, total: int, index: int = clip.index) -> None:
                if progress is not None:
                    progress(index, done, total)

            init_image = self.source.init_image(clip)
            image = self.pipeline.riffuse(
                clip.inputs, init_image, scheduler=self.scheduler, callback=step
            )
            # The diffusion, by far the longest part, is done: finish the clip rather than lose it.
            with interrupts_held():
                self._keep(clip, init_image, image)
            yield RenderedClip(
                clip, image, self.plan.samples_after(self._done) / self.plan.sample_rate
            )

    def _keep(self, clip: PlannedClip, init_image: Image.Image, image: Image.Image) -> None:
        """Join clip's generated image to the audio, save its images, and count it done. An
        exception part way leaves the clip uncounted and the renderer's stitcher as it was, so
        finish() gives exactly the clips before this one."""
        mel = self.source.clip_mel(clip, image)[..., : clip.length]
        # The join changes the stitcher in several steps; on a copy, an exception part way leaves
        # the renderer's own stitcher untouched.
        stitcher = copy.deepcopy(self._stitcher)
        piece = stitcher.add(mel, clip.start)
        if self.images_dir is not None:
            save_spectrogram_image(image, self.images_dir / f"clip_{clip.index:04d}.png")
            if self.source.init_images_vary:
                path = self.images_dir / f"source_{clip.index:04d}.png"
                save_spectrogram_image(init_image, path)
        self._stitcher = stitcher
        self._pieces.append(piece.samples)
        self._done += 1

    def finish(self) -> Audio:
        """The audio of the clips done: plan.num_samples long when all are, else up to the end of
        the last one done (mono or stereo as the clips were; empty when none was)."""
        tail = self._stitcher.finish()
        if not self._done:
            return Audio(np.zeros((1, 0), dtype=np.float32), self.plan.sample_rate)
        samples = np.concatenate([*self._pieces, tail.samples], axis=-1)
        samples = samples[:, : self.plan.samples_after(self._done)]
        fade = min(round(END_FADE_S * self.plan.sample_rate), samples.shape[-1])
        samples[:, samples.shape[-1] - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        audio = Audio(samples, self.plan.sample_rate)
        peak = float(np.abs(samples).max(initial=0.0))
        if self.normalize == "peak" or peak > 1.0:
            return audio.peak_normalized(headroom_db=0.1 if self.normalize == "peak" else 0.0)
        return audio
