"""`riffusion dataset --ray`: the tracks of a dataset spread over a Ray cluster's workers, one
task per track, each the same render_track() as on one machine.

The workers write the clips' images into the dataset folder themselves, so on a cluster of more
than one machine it must be a folder they all see (a shared file system); the journal and
metadata are written here alone, as outcomes arrive.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from riffusion.ray_support import require_ray
from riffusion.training.dataset_builder import (
    DatasetSettings,
    TrackOutcome,
    TrackPlan,
    render_track,
)


def render_tracks_on_ray(
    plans: Sequence[TrackPlan], dataset_dir: Path, settings: DatasetSettings
) -> Iterator[TrackOutcome]:
    """render_track() for every plan as Ray tasks (one CPU each) on the cluster of RAY_ADDRESS,
    or a local one when unset; outcomes arrive as tracks finish. Closing the iterator early
    (Ctrl-C) cancels the tracks not finished."""
    require_ray()
    import ray

    if not ray.is_initialized():
        ray.init(log_to_driver=False)
    task = ray.remote(render_track).options(num_cpus=1)
    pending = [task.remote(plan, dataset_dir, settings) for plan in plans]
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            outcome: TrackOutcome = ray.get(done[0])
            yield outcome
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
