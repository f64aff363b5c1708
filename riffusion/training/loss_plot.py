"""The loss curve of a run as a PNG: every step's loss, and its moving average."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from riffusion.atomic_files import write_atomically

_SIZE = (800, 400)
_MARGIN = (60, 20, 20, 40)  # left, top, right, bottom, pixels
_RAW = (170, 190, 230)
_SMOOTH = (20, 60, 160)
_AXES = (80, 80, 80)


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """The mean of each value and the window - 1 before it (fewer at the start)."""
    averages, total = [], 0.0
    for index, value in enumerate(values):
        total += value
        if index >= window:
            total -= values[index - window]
        averages.append(total / min(index + 1, window))
    return averages


def plot_losses(steps: Sequence[int], losses: Sequence[float], path: Path) -> Path:
    """Draw the losses (one per step) and their moving average (over 1/20 of the steps, at
    least 1) into a PNG at path, steps along x and loss along y, with the axes' ranges labelled."""
    image = Image.new("RGB", _SIZE, "white")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = _MARGIN
    width, height = _SIZE[0] - left - right, _SIZE[1] - top - bottom
    draw.rectangle((left, top, left + width, top + height), outline=_AXES)
    finite = [(step, loss) for step, loss in zip(steps, losses, strict=True) if math.isfinite(loss)]
    if finite:
        xs, ys = zip(*finite, strict=True)
        x_low, x_high = min(xs), max(max(xs), min(xs) + 1)
        y_low, y_high = min(ys), max(ys)
        if y_high <= y_low:
            y_high = y_low + 1.0

        def point(step: float, loss: float) -> tuple[float, float]:
            x = left + (step - x_low) / (x_high - x_low) * width
            y = top + (1.0 - (loss - y_low) / (y_high - y_low)) * height
            return x, y

        smooth = moving_average(ys, max(len(ys) // 20, 1))
        if len(xs) > 1:
            draw.line([point(x, y) for x, y in zip(xs, ys, strict=True)], fill=_RAW, width=1)
            draw.line([point(x, y) for x, y in zip(xs, smooth, strict=True)], fill=_SMOOTH, width=2)
        else:
            x, y = point(xs[0], ys[0])
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=_SMOOTH)
        draw.text((4, top), f"{y_high:.4g}", fill=_AXES)
        draw.text((4, top + height - 10), f"{y_low:.4g}", fill=_AXES)
        draw.text((left, top + height + 6), f"step {x_low}", fill=_AXES)
        draw.text((left + width - 70, top + height + 6), f"step {x_high}", fill=_AXES)
    draw.text(
        (left + width // 2 - 60, top + height + 22), "loss per step (dark: average)", fill=_AXES
    )
    return write_atomically(path, lambda temporary: image.save(temporary))
