"""The training examples of a dataset folder, checked against the model's format, and the
batches drawn from them.

Which clip each sample is, where a wide clip is cropped and whether its caption is dropped all
follow from (seed, sample number) alone, so any step of a run can be redrawn exactly: resuming
from a checkpoint needs no saved data-loader state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from riffusion.errors import RiffusionError
from riffusion.spectrogram.params import ExifTag, SpectrogramParams
from riffusion.training.imagefolder import METADATA_FILE, read_metadata


@dataclass(frozen=True)
class TrainingExample:
    """A clip image and its caption.

    Attributes:
        path: the spectrogram PNG.
        text: its caption.
        width: its width, columns.
        source: the track it came from.
    """

    path: Path
    text: str
    width: int
    source: str


@dataclass(frozen=True)
class DatasetSummary:
    """What a dataset holds, for the run's record and model card.

    Attributes:
        clips: images.
        tracks: distinct source tracks.
        hours: audio in the images, h.
        captions: distinct captions.
        stereo: whether the images are two-channel spectrograms.
    """

    clips: int
    tracks: int
    hours: float
    captions: int
    stereo: bool

    def to_json(self) -> dict[str, object]:
        return {
            "clips": self.clips,
            "tracks": self.tracks,
            "hours": round(self.hours, 4),
            "captions": self.captions,
            "stereo": self.stereo,
        }


def load_examples(
    dataset_dir: Path, params: SpectrogramParams, width: int
) -> tuple[list[TrainingExample], DatasetSummary]:
    """The examples of dataset_dir, each image checked to be in the model's format: the
    spectrogram parameters of params in its EXIF (stereo may differ), num_frequencies rows, and
    at least width columns. Only image headers are read.

    Raises:
        RiffusionError: naming the first unusable image and what is wrong with it, or for a
            missing or empty dataset.
    """
    rows = read_metadata(dataset_dir)
    if not rows:
        raise RiffusionError(f"{dataset_dir}: the dataset is empty ({METADATA_FILE} has no rows)")
    examples = []
    stereo = set()
    for row in rows:
        path = dataset_dir / row.file_name
        image_params, image_width = _check_image(path, params, width)
        stereo.add(image_params.stereo)
        examples.append(TrainingExample(path, row.text, image_width, row.source))
    if len(stereo) > 1:
        raise RiffusionError(f"{dataset_dir}: the dataset mixes mono and stereo spectrograms")
    columns = sum(example.width for example in examples)
    summary = DatasetSummary(
        clips=len(examples),
        tracks=len({example.source for example in examples}),
        hours=columns * params.step_size_ms / 1000.0 / 3600.0,
        captions=len({example.text for example in examples}),
        stereo=stereo.pop(),
    )
    return examples, summary


def _check_image(
    path: Path, params: SpectrogramParams, width: int
) -> tuple[SpectrogramParams, int]:
    """(the image's spectrogram parameters, its width) after checking it fits the model."""
    if not path.is_file():
        raise RiffusionError(f"{path}: listed in {METADATA_FILE} but missing")
    try:
        with Image.open(path) as image:
            size = image.size
            exif = image.getexif()
    except Exception as error:  # Pillow's errors for broken files vary
        raise RiffusionError(f"{path}: not a readable image ({error})") from None
    if int(ExifTag.SAMPLE_RATE) not in exif:
        raise RiffusionError(
            f"{path}: no spectrogram parameters in its EXIF, so not in the model's format; "
            "make the dataset with `riffusion dataset`"
        )
    try:
        image_params = SpectrogramParams.from_exif(exif)
    except RiffusionError as error:
        raise RiffusionError(f"{path}: {error}") from None
    if image_params.with_changes(stereo=params.stereo) != params:
        raise RiffusionError(
            f"{path}: its spectrogram parameters differ from the model's "
            f"({_differences(image_params, params)})"
        )
    image_width, height = size
    if height != params.num_frequencies:
        raise RiffusionError(
            f"{path}: {height} pixels tall; the model's spectrograms have "
            f"{params.num_frequencies} rows"
        )
    if image_width < width:
        raise RiffusionError(
            f"{path}: {image_width} columns wide, narrower than the training width {width} "
            "(--width)"
        )
    return image_params, image_width


def _differences(image: SpectrogramParams, model: SpectrogramParams) -> str:
    names = [
        name
        for name in image.to_exif()
        if image.to_exif()[name] != model.to_exif()[name] and ExifTag(name) is not ExifTag.STEREO
    ]
    return ", ".join(
        f"{ExifTag(name).name} {image.to_exif()[name]} vs {model.to_exif()[name]}" for name in names
    )


def most_common_captions(examples: Sequence[TrainingExample], count: int) -> tuple[str, ...]:
    """The count most frequent non-empty captions (ties: first seen first)."""
    counts = Counter(example.text for example in examples if example.text.strip())
    return tuple(text for text, _ in counts.most_common(count))


@dataclass(frozen=True)
class Sample:
    """One drawn sample: which example, where its crop starts (columns), and its caption."""

    example: TrainingExample
    offset: int
    text: str


class SampleDrawer:
    """Draws samples for (step, micro-batch, process) deterministically from the seed.

    The examples are gone through in epochs, each in its own random order (a permutation seeded
    by the seed and the epoch number); the processes of a data-parallel run take interleaved
    slices of that stream, so together they see every example once per epoch.
    """

    def __init__(
        self,
        examples: Sequence[TrainingExample],
        *,
        seed: int,
        width: int,
        caption_dropout: float,
        batch_size: int,
        accumulation: int,
        processes: int,
    ) -> None:
        self.examples = list(examples)
        self.seed = seed
        self.width = width
        self.caption_dropout = caption_dropout
        self.batch_size = batch_size
        self.accumulation = accumulation
        self.processes = processes
        self._orders: dict[int, np.ndarray] = {}

    def samples(self, step: int, micro: int, process: int) -> list[Sample]:
        """The micro-batch of process for micro-batch micro of optimizer step step."""
        first = ((step * self.accumulation + micro) * self.processes + process) * self.batch_size
        return [self._sample(number) for number in range(first, first + self.batch_size)]

    def _sample(self, number: int) -> Sample:
        epoch, position = divmod(number, len(self.examples))
        example = self.examples[int(self._order(epoch)[position])]
        choices = np.random.default_rng([self.seed, 1, number])
        offset = int(choices.integers(0, example.width - self.width + 1))
        dropped = bool(choices.random() < self.caption_dropout)
        return Sample(example, offset, "" if dropped else example.text)

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            self._orders = {
                epoch: np.random.default_rng([self.seed, 0, epoch]).permutation(len(self.examples))
            }
        return self._orders[epoch]


def pixels_of(samples: Sequence[Sample], width: int) -> torch.Tensor:
    """The samples' crops as float32 pixels in [-1, 1], shaped (batch, 3, rows, width): the
    VAE's input convention, as the pipeline encodes seed images."""
    crops = []
    for sample in samples:
        with Image.open(sample.example.path) as image:
            rgb = image.convert("RGB").crop((sample.offset, 0, sample.offset + width, image.height))
            crops.append(np.asarray(rgb, dtype=np.float32))
    pixels = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2)
    return pixels / 127.5 - 1.0
