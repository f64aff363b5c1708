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
