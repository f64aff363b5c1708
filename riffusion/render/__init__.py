"""Long-form rendering: tracks re-imagined clip by clip, interpolations, offline jam sets, and the
seamless joins between clips (riffusion.render.joins)."""

from riffusion.render.engine import PlannedClip, RenderedClip, Renderer, RenderPlan
from riffusion.render.joins import Stitcher, stitch

__all__ = [
    "PlannedClip",
    "RenderPlan",
    "RenderedClip",
    "Renderer",
    "Stitcher",
    "stitch",
]
