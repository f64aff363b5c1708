"""`riffusion serve --ray`: the server as a Ray Serve application of two deployments.

- RiffusionModel (ClipReplica): N replicas, each one pipeline on one device (a GPU with
  num_gpus=1) with today's batching worker and queue, answering render() calls.
- RiffusionIngress: today's FastAPI app (web app, REST API, /api/jam, /health, docs), whose
  clips go to RiffusionModel through a deployment handle (riffusion.server.ray_clips.RayClips).
  Jam sessions live here: their stitchers keep one stream whichever replica rendered a clip.

build_app() makes the application for `serve.run`; app_builder() is the same for `serve deploy`
and `serve run` with a config file (docs/deploy.md has a serve_config.yaml).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from PIL import Image
from ray import serve
from ray.serve import Application
from ray.serve.handle import DeploymentHandle

from riffusion.devices import resolve_device
from riffusion.diffusion.inputs import InferenceInput
from riffusion.diffusion.model_settings import ModelSettings
from riffusion.diffusion.presets import get_preset
from riffusion.errors import RiffusionError
from riffusion.ray_support import parse_autoscale
from riffusion.server.app import ServerConfig, create_app, local_worker, pipeline_loader
from riffusion.server.clip_service import ReplicaState
from riffusion.server.library import SeedLibrary
from riffusion.server.model import ModelHolder, ModelNotReady
from riffusion.server.ray_clips import (
    REPORT_S,
    RayClips,
    ReplicaReply,
    ReplicaReport,
    board_reader,
    replica_board,
)
from riffusion.server.worker import QueueFull, job_result, resolve_max_batch

#: The application's name in Ray Serve, and its deployments'.
APP_NAME = "riffusion"
MODEL_DEPLOYMENT = "RiffusionModel"
INGRESS_DEPLOYMENT = "RiffusionIngress"


def board_name(app_name: str) -> str:
    return f"riffusion-replicas-{app_name}"


class ClipReplica:
    """One model replica: the pipeline on this replica's device, its worker, and its posts to
    the board. The constructor returns once the model has loaded (or failed to), so Ray Serve
    sends no clip to a replica still loading; the board shows it loading meanwhile."""

    def __init__(self, config: ServerConfig, board: str) -> None:
        self.replica_id = serve.get_replica_context().replica_id.unique_id
        device = str(resolve_device(config.model.device))
        library = SeedLibrary(config.seed_images_dir)
        self.model = ModelHolder(config.model.model, device, pipeline_loader(config, library))
        self.worker = local_worker(config, self.model)
        self.board = replica_board(board)
        self.stopped = threading.Event()
        self.model.start()
        self.worker.start()
        threading.Thread(target=self._post_forever, name="riffusion-board", daemon=True).start()
        self.model.wait()

    async def render(
        self,
        inputs: InferenceInput,
        init_image: Image.Image,
        mask_image: Image.Image | None,
        with_audio: bool,
    ) -> ReplicaReply:
        """One clip on this replica's worker (see ReplicaReply for what comes back)."""
        try:
            job = self.worker.submit(inputs, init_image, mask_image, with_audio)
        except QueueFull as error:
            return ReplicaReply(
                self.replica_id,
                "queue_full",
                message=str(error),
                retry_after_s=error.retry_after_s,
                capacity=self.worker.capacity,
            )
        except ModelNotReady as error:
            return ReplicaReply(self.replica_id, "not_ready", snapshot=error.snapshot)
        try:
            clip = await job_result(job)
        except RiffusionError as error:
            return ReplicaReply(self.replica_id, "bad_input", message=str(error))
        except asyncio.CancelledError:
            # Ray Serve cancels this call when the ingress drops the clip.
            self.worker.cancel(job)
            raise
        return ReplicaReply(self.replica_id, "clip", clip=clip)

    def report(self) -> ReplicaReport:
        snapshot = self.model.snapshot()
        state = ReplicaState(
            self.replica_id,
            snapshot.status,
            snapshot.device,
            snapshot.message,
            self.worker.queue_length,
            self.worker.capacity,
            self.worker.running,
            self.worker.completed,
        )
        params = None
        if snapshot.status == "ready":
            params = self.model.pipeline().spectrogram_params
        return ReplicaReport(state, snapshot, self.worker.retry_after_s(), params)

    def _post_forever(self) -> None:
        while not self.stopped.wait(REPORT_S):
            self.board.post.remote(self.report())

    def __del__(self) -> None:
        # Ray Serve calls this when it stops the replica (scaling down, redeploying).
        self.stopped.set()
        self.worker.stop()
        self.board.forget.remote(self.replica_id)


@serve.ingress()
class IngressApp:
    """The FastAPI app of riffusion.server.app, its clips rendered by the replicas behind
    replicas."""

    def __init__(self, replicas: DeploymentHandle, config: ServerConfig, board: str) -> None:
        clips = RayClips(
            replicas, board_reader(board), config.model.model, config.quality, config.max_steps
        )
        self.riffusion_app = create_app(config, clips=clips)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return self.riffusion_app


@dataclass(frozen=True)
class Scaling:
    """How many model replicas, and what each holds.

    Attributes:
        replicas: a fixed number of replicas, or None to autoscale.
        autoscale: (min, max) replicas when autoscaling.
        gpus_per_replica: GPUs each replica reserves (0 on a CPU machine).
        cpus_per_replica: CPUs each replica reserves.
    """

    replicas: int | None = 1
    autoscale: tuple[int, int] | None = None
    gpus_per_replica: float = 0
    cpus_per_replica: float = 1

    def deployment_options(self, config: ServerConfig) -> dict[str, Any]:
        """RiffusionModel's Ray Serve options.

        A replica takes in up to its queue plus a batch (max_ongoing_requests), and one more, so
        that when every replica is full the next clip reaches a replica and is refused there
        (429) instead of waiting in Ray's router. Autoscaling targets a full batch running and
        as many waiting per replica: the worker's queue length is what the target measures.
        """
        max_batch = self.replica_max_batch(config)
        options: dict[str, Any] = {
            "name": MODEL_DEPLOYMENT,
            "max_ongoing_requests": config.queue_capacity + max_batch + 1,
            "ray_actor_options": {
                "num_cpus": self.cpus_per_replica,
                "num_gpus": self.gpus_per_replica,
            },
        }
        if self.autoscale is not None:
            low, high = self.autoscale
            options["autoscaling_config"] = {
                "min_replicas": low,
                "max_replicas": high,
                "target_ongoing_requests": 2 * max_batch,
            }
        else:
            options["num_replicas"] = self.replicas
        return options


    def replica_max_batch(self, config: ServerConfig) -> int:
        """The max_batch each replica's worker runs with: config's, "auto" resolved for the
        replica's device (CUDA where it holds a GPU; otherwise config's device, here)."""
        device = "cuda" if self.gpus_per_replica else resolve_device(config.model.device)
        return resolve_max_batch(config.max_batch, device)


def build_app(config: ServerConfig, scaling: Scaling, app_name: str = APP_NAME) -> Application:
    """The Ray Serve application: the ingress (no GPU, no CPU reserved: it waits on the
    replicas and makes the jams' audio) bound to the model deployment."""
    board = board_name(app_name)
    model = serve.deployment(**scaling.deployment_options(config))(ClipReplica)
    ingress = serve.deployment(name=INGRESS_DEPLOYMENT, ray_actor_options={"num_cpus": 0})(
        IngressApp
    )
    return ingress.bind(model.bind(config, board), config, board)


def app_builder(args: dict[str, Any]) -> Application:
    """build_app for a Ray Serve config file's import_path, from its args: model (required),
    device, dtype, preset, seed_images, queue, max_batch, max_steps, quality, replicas or autoscale
    ("MIN:MAX"), gpus_per_replica, cpus_per_replica."""
    known = {
        "model", "device", "dtype", "preset", "seed_images", "queue", "max_batch", "max_steps",
        "quality", "replicas", "autoscale", "gpus_per_replica", "cpus_per_replica",
    }  # fmt: skip
    unknown = sorted(set(args) - known)
    if unknown:
        raise RiffusionError(f"unknown args {unknown}; known: {sorted(known)}")
    if "model" not in args:
        raise RiffusionError("args.model is required (a Hub id, folder or checkpoint file)")
    settings = ModelSettings(
        str(args["model"]),
        device=args.get("device", "auto"),
        dtype=args.get("dtype", "auto"),
        preset=get_preset(args.get("preset", "quality")).name,
    )
    defaults = ServerConfig()
    seed_images = args.get("seed_images")
    max_steps = args.get("max_steps")
    config = ServerConfig(
        model=settings,
        seed_images_dir=None if seed_images is None else Path(seed_images),
        queue_capacity=int(args.get("queue", defaults.queue_capacity)),
        max_batch=args.get("max_batch", defaults.max_batch),
        max_steps=None if max_steps is None else int(max_steps),
        quality=args.get("quality", defaults.quality),
    )
    autoscale = args.get("autoscale")
    scaling = Scaling(
        replicas=None if autoscale else int(args.get("replicas", 1)),
        autoscale=parse_autoscale(autoscale) if autoscale else None,
        gpus_per_replica=float(args.get("gpus_per_replica", 0)),
        cpus_per_replica=float(args.get("cpus_per_replica", 1)),
    )
    return build_app(config, scaling)



def serve_on_ray(
    config: ServerConfig, scaling: Scaling, host: str, port: int, gpus_per_replica: float | None
) -> None:
    """Run the application on the Ray cluster of RAY_ADDRESS (a local instance when unset),
    with its HTTP proxy on host:port, until Ctrl-C.

    gpus_per_replica None: 1 where the cluster has GPUs and config's device is not the CPU,
    else 0.
    """
    import ray

    ray.init()
    if gpus_per_replica is None:
        has_gpus = ray.cluster_resources().get("GPU", 0) >= 1
        gpus_per_replica = 1 if has_gpus and config.model.device != "cpu" else 0
    scaling = replace(scaling, gpus_per_replica=gpus_per_replica)
    serve.start(http_options={"host": host, "port": port})
    serve.run(build_app(config, scaling), name=APP_NAME, route_prefix="/", blocking=True)
