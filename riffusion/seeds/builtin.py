"""Built-in seeds: the patterns rendered into seed images and loops, at any tempo, key and seed."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from riffusion.audio import Audio
from riffusion.seeds.cache import cached_image
from riffusion.seeds.harmony import Key
from riffusion.seeds.images import seed_image_from_loop
from riffusion.seeds.patterns import Pattern, get_pattern, render_pattern
from riffusion.seeds.timing import LoopTiming, choose_timing


@dataclass(frozen=True)
class SeedRequest:
    """What to render: a pattern at a tempo, length, key and random seed.

    Attributes:
        pattern: the built-in pattern.
        timing: beats, width and tempo of the loop.
        key: the key its bass and chords are in.
        seed: random seed of its noise and velocities.
    """

    pattern: Pattern
    timing: LoopTiming
    key: Key
    seed: int

    @property
    def description(self) -> str:
        """One line for the image's EXIF ImageDescription."""
        return (
            f"riffusion seed {self.pattern.id}: {self.timing.bpm:g} BPM, {self.timing.beats} "
            f"beats in {self.pattern.meter}, {self.key.name}, seed {self.seed}"
        )

    @property
    def cache_name(self) -> str:
        timing = self.timing
        key = self.key.name.replace(" ", "-").replace("#", "s")
        return (
            f"{self.pattern.id}-{timing.bpm:g}bpm-{timing.beats}beats-{timing.width}px-{key}-"
            f"seed{self.seed}"
        )


def seed_request(
    pattern_id: str,
    bpm: float | None = None,
    bars: int | None = None,
    key: str | None = None,
    seed: int = 0,
) -> SeedRequest:
    """A SeedRequest for the pattern, with its default tempo and key where not given.

    bars: None picks whole bars for a width near 512 px (see timing.choose_timing).
    """
    pattern = get_pattern(pattern_id)
    timing = choose_timing(pattern.bpm if bpm is None else bpm, pattern.beats_per_bar, bars)
    return SeedRequest(pattern, timing, Key.parse(pattern.key if key is None else key), seed)


def render_loop(request: SeedRequest) -> Audio:
    """The loop at the asked tempo: timing.num_samples samples, repeating seamlessly."""
    return render_pattern(
        request.pattern, request.timing.beats, request.timing.num_samples, request.key, request.seed
    )


def render_seed_image(request: SeedRequest, cache: bool = True) -> Image.Image:
    """The seed image: the pattern rendered at the image tempo (10 ms per column), tempo-tagged.

    cache: reuse an image generated before with the same request and code.
    """
    timing = request.timing

    def make() -> Image.Image:
        audio = render_pattern(
            request.pattern, timing.beats, timing.image_num_samples, request.key, request.seed
        )
        return seed_image_from_loop(audio, timing, description=request.description)

    return cached_image(request.cache_name, make) if cache else make()
