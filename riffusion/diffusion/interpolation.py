"""Interpolation between the two ends of a riffusion generation: linear for numbers, spherical
for noise."""

from __future__ import annotations

import torch


def lerp(a: float, b: float, t: float) -> float:
    """a at t = 0, b at t = 1, linear between (the original's formula)."""
    return a * (1.0 - t) + b * t


def slerp(
    t: float, v0: torch.Tensor, v1: torch.Tensor, dot_threshold: float = 0.9995
) -> torch.Tensor:
    """Spherical interpolation from v0 (t = 0) to v1 (t = 1), treating each as one flat vector.

    Gaussian noise lives near a sphere, and a straight line between two noises would pass
    through lower-norm (less noisy) points, so noises are interpolated along the arc. Nearly
    parallel inputs (|cos| > dot_threshold) fall back to linear interpolation. The end points
    return v0 and v1 exactly; the arithmetic is float64, the result has v0's dtype.
    """
    if t == 0:
        return v0.clone()
    if t == 1:
        return v1.to(v0.dtype, copy=True)
    a, b = v0.double(), v1.double()
    cos = (a * b).sum() / (a.norm() * b.norm())
    if cos.abs() > dot_threshold:
        mixed = (1 - t) * a + t * b
    else:
        theta = torch.arccos(cos)
        mixed = (torch.sin((1 - t) * theta) * a + torch.sin(t * theta) * b) / torch.sin(theta)
    return mixed.to(v0.dtype)
