"""Inpainting masks, drawn procedurally: black keeps the seed, white repaints it, grays between.

Masks are 8-bit grayscale images as tall as a spectrogram (512 rows, low frequencies at the
bottom) and as wide as the seed they go with. A mask's "strength" is the gray of its repainted
parts (1: white, repaint fully).

The mask_* masks stand in for the original riffusion app's mask files of the same ids. Its
pipeline read masks the same way (white repainted, black kept), so they are drawn as their names
say, not inverted: gray over part of the top (the high frequencies), black elsewhere, the number
in the name being the gray in percent where it is not a fraction of the height (docs/seeds.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from riffusion.errors import RiffusionError

HEIGHT = 512
# Width of a beat line, px (80 ms at 10 ms per column: the attack of a hit). The pipeline samples
# a mask at one pixel in eight (nearest neighbour, onto the latent grid), so a line must be 8 px
# wide to reach the latent wherever it starts; a narrower one can vanish.
BEAT_LINE_PX = 8


def _image(levels: np.ndarray) -> Image.Image:
    """Grayscale image from levels (rows, columns) in [0, 1], 1 being white."""
    return Image.fromarray(np.round(np.clip(levels, 0.0, 1.0) * 255).astype(np.uint8), mode="L")


def _check_fraction(fraction: float) -> None:
    if not 0.0 < fraction < 1.0:
        raise RiffusionError(f"the fraction must be between 0 and 1, got {fraction:g}")


def _check_strength(strength: float) -> None:
    if not 0.0 <= strength <= 1.0:
        raise RiffusionError(f"the mask strength must be between 0 and 1, got {strength:g}")


def _check_beat_px(beat_px: float) -> None:
    if not beat_px > 0:
        raise RiffusionError(f"the beat spacing must be positive, got {beat_px:g} px")


def keep_band(
    width: int, fraction: float, band: str = "bottom", strength: float = 1.0, height: int = HEIGHT
) -> Image.Image:
    """Keep the bottom (lowest frequencies) or top fraction of the rows; repaint the rest."""
    _check_fraction(fraction)
    _check_strength(strength)
    if band not in ("bottom", "top"):
        raise RiffusionError(f"band must be 'bottom' or 'top', got {band!r}")
    kept_rows = round(fraction * height)
    levels = np.full((height, width), strength)
    # Row 0 is the top of the image: the highest frequency.
    if band == "bottom":
        levels[height - kept_rows :] = 0.0
    else:
        levels[:kept_rows] = 0.0
    return _image(levels)


def gradient(
    width: int, direction: str = "right", strength: float = 1.0, height: int = HEIGHT
) -> Image.Image:
    """A linear ramp from keep (black) to repaint (strength) towards direction.

    direction: "right" (keep the start, repaint more and more towards the end, for
    continuations), "left", "up" (keep the lows, repaint the highs) or "down".
    """
    _check_strength(strength)
    ramps = {
        "right": np.linspace(0, 1, width)[None, :].repeat(height, 0),
        "left": np.linspace(1, 0, width)[None, :].repeat(height, 0),
        "up": np.linspace(1, 0, height)[:, None].repeat(width, 1),
        "down": np.linspace(0, 1, height)[:, None].repeat(width, 1),
    }
    if direction not in ramps:
        raise RiffusionError(f"direction must be one of {', '.join(ramps)}, got {direction!r}")
    return _image(ramps[direction] * strength)


def beat_lines(
    width: int, beat_px: float, strength: float = 1.0, height: int = HEIGHT
) -> Image.Image:
    """Keep an 8-px column at every beat (beat_px apart, from column 0); repaint between."""
    _check_strength(strength)
    _check_beat_px(beat_px)
    levels = np.full((height, width), strength)
    for start in np.arange(0, width, beat_px):
        levels[:, round(start) : round(start) + BEAT_LINE_PX] = 0.0
    return _image(levels)


def top_band(width: int, fraction: float, strength: float, height: int = HEIGHT) -> Image.Image:
    """Repaint the top fraction of the rows (the highest frequencies) evenly; keep the rest."""
    _check_fraction(fraction)
    _check_strength(strength)
    levels = np.zeros((height, width))
    levels[: round(fraction * height)] = strength
    return _image(levels)


def top_fade(width: int, fraction: float, strength: float, height: int = HEIGHT) -> Image.Image:
    """Repaint the top fraction of the rows, strength at the top row fading linearly to none
    (black) at fraction of the height; keep the rest."""
    _check_fraction(fraction)
    _check_strength(strength)
    rows = round(fraction * height)
    levels = np.zeros((height, width))
    levels[:rows] = np.linspace(strength, 0.0, rows, endpoint=False)[:, None]
    return _image(levels)


def top_beat_lines(
    width: int, beat_px: float, fraction: float, strength: float, height: int = HEIGHT
) -> Image.Image:
    """Repaint an 8-px column at every beat (beat_px apart, from column 0) over the top fraction of
    the rows; keep everything else. The inverse of beat_lines, limited to the highs."""
    _check_fraction(fraction)
    _check_strength(strength)
    _check_beat_px(beat_px)
    levels = np.zeros((height, width))
    rows = round(fraction * height)
    for start in np.arange(0, width, beat_px):
        levels[:rows, round(start) : round(start) + BEAT_LINE_PX] = strength
    return _image(levels)


def keep_beats(
    width: int,
    beat_px: float,
    beats: int,
    end: str = "first",
    strength: float = 1.0,
    height: int = HEIGHT,
) -> Image.Image:
    """Keep the first or last beats beats (beat_px px each); repaint the rest."""
    _check_strength(strength)
    if end not in ("first", "last"):
        raise RiffusionError(f"end must be 'first' or 'last', got {end!r}")
    kept = round(beats * beat_px)
    if beats < 1 or kept >= width:
        raise RiffusionError(
            f"cannot keep {beats} beats of {beat_px:g} px in a {width}-px mask: keep at least one "
            "and leave something to repaint"
        )
    levels = np.full((height, width), strength)
    if end == "first":
        levels[:, :kept] = 0.0
    else:
        levels[:, width - kept :] = 0.0
    return _image(levels)


@dataclass(frozen=True)
class MaskSpec:
    """A built-in mask: an id, what it does, and how to draw it.

    Attributes:
        id: name, as used on the command line and in the registry.
        description: one line.
        draw: function of (width px, beat spacing px, **parameters) -> image.
        parameters: the defaults of its parameters (fraction, beats, strength, ...).
    """

    id: str
    description: str
    draw: Callable[..., Image.Image]
    parameters: dict[str, Any] = field(default_factory=dict)

    def image(self, width: int, beat_px: float, **overrides: Any) -> Image.Image:
        """The mask, width px wide, beats beat_px apart, with parameters overridden."""
        unknown = set(overrides) - set(self.parameters)
        if unknown:
            raise RiffusionError(
                f"mask {self.id!r} takes no {', '.join(sorted(unknown))}; its parameters are "
                f"{', '.join(self.parameters) or 'none'}"
            )
        return self.draw(width, beat_px, **{**self.parameters, **overrides})


MASKS: dict[str, MaskSpec] = {
    spec.id: spec
    for spec in (
        MaskSpec(
            "keep-bottom",
            "Keep the lowest frequencies (bass, kick), repaint the rest",
            lambda width, beat_px, fraction, strength: keep_band(
                width, fraction, "bottom", strength
            ),
            {"fraction": 1 / 3, "strength": 1.0},
        ),
        MaskSpec(
            "keep-top",
            "Keep the highest frequencies (hats, air), repaint the rest",
            lambda width, beat_px, fraction, strength: keep_band(width, fraction, "top", strength),
            {"fraction": 1 / 3, "strength": 1.0},
        ),
        MaskSpec(
            "gradient-right",
            "Keep the start, repaint more and more towards the end",
            lambda width, beat_px, strength: gradient(width, "right", strength),
            {"strength": 1.0},
        ),
        MaskSpec(
            "gradient-up",
            "Keep the lows, repaint more and more towards the highs",
            lambda width, beat_px, strength: gradient(width, "up", strength),
            {"strength": 1.0},
        ),
        MaskSpec(
            "beat-lines",
            "Keep a thin line at every beat (the attacks), repaint between",
            lambda width, beat_px, strength: beat_lines(width, beat_px, strength),
            {"strength": 0.8},
        ),
        MaskSpec(
            "keep-first-beats",
            "Keep the first beats, repaint the rest (continue a loop)",
            lambda width, beat_px, beats, strength: keep_beats(
                width, beat_px, beats, "first", strength
            ),
            {"beats": 4, "strength": 1.0},
        ),
        MaskSpec(
            "keep-last-beats",
            "Keep the last beats, repaint the rest (lead into a loop)",
            lambda width, beat_px, beats, strength: keep_beats(
                width, beat_px, beats, "last", strength
            ),
            {"beats": 4, "strength": 1.0},
        ),
        MaskSpec(
            "mask_beat_lines_80",
            "Original app's mask: repaint an 8-px line at each beat over the top half at 80 %",
            lambda width, beat_px, fraction, strength: top_beat_lines(
                width, beat_px, fraction, strength
            ),
            {"fraction": 0.5, "strength": 0.8},
        ),
        MaskSpec(
            "mask_gradient_dark",
            "Original app's mask: keep the highs, repaint more and more towards the lows",
            lambda width, beat_px, strength: gradient(width, "down", strength),
            {"strength": 1.0},
        ),
        MaskSpec(
            "mask_gradient_top_70",
            "Original app's mask: repaint the top 70 %, fading from white to black",
            lambda width, beat_px, fraction, strength: top_fade(width, fraction, strength),
            {"fraction": 0.7, "strength": 1.0},
        ),
        MaskSpec(
            "mask_gradient_top_fifth_75",
            "Original app's mask: repaint the top fifth, fading from 75 % gray to black",
            lambda width, beat_px, fraction, strength: top_fade(width, fraction, strength),
            {"fraction": 0.2, "strength": 0.75},
        ),
        MaskSpec(
            "mask_top_third_75",
            "Original app's mask: repaint the top third (highs) evenly at 75 %, keep the rest",
            lambda width, beat_px, fraction, strength: top_band(width, fraction, strength),
            {"fraction": 1 / 3, "strength": 0.75},
        ),
        MaskSpec(
            "mask_top_third_95",
            "Original app's mask: repaint the top third (highs) evenly at 95 %, keep the rest",
            lambda width, beat_px, fraction, strength: top_band(width, fraction, strength),
            {"fraction": 1 / 3, "strength": 0.95},
        ),
    )
}
