"""Ray, the optional engine of `--ray` (the riffusion[ray] extra): the check that it is there."""

from __future__ import annotations

import importlib.util

from riffusion.errors import RiffusionError

#: How to get Ray, for the error of a `--ray` without it.
RAY_INSTALL = "pip install 'riffusion[ray]'"


def require_ray() -> None:
    """Raise RiffusionError, saying how to install it, unless Ray Serve can be imported."""
    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("ray.serve") is None:
        raise RiffusionError(f"--ray needs Ray Serve, which is not installed: {RAY_INSTALL}")


def parse_autoscale(text: str) -> tuple[int, int]:
    """"MIN:MAX" replicas as (MIN, MAX), 1 <= MIN <= MAX; RiffusionError otherwise."""
    low, sep, high = str(text).partition(":")
    if not (sep and low.isdecimal() and high.isdecimal() and 1 <= int(low) <= int(high)):
        raise RiffusionError(f"autoscale must be MIN:MAX with 1 <= MIN <= MAX, got {text!r}")
    return int(low), int(high)
