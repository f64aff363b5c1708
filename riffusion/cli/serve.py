"""`riffusion serve`: the web app, the inference API and the jam WebSocket from one process."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from riffusion.cli.common import PATH, quality_option
from riffusion.cli.model_options import model_options
from riffusion.devices import AUTO
from riffusion.diffusion.model_settings import ModelSettings
from riffusion.diffusion.named_loras import check_lora_name
from riffusion.diffusion.openvino_unet import NAMED_LORAS_REFUSAL
from riffusion.errors import RiffusionError
from riffusion.server.limits import DEFAULT_MAX_BODY_BYTES, MAX_STEPS
from riffusion.spectrogram.reconstruction import Quality

if TYPE_CHECKING:
    from riffusion.server.app import ServerConfig


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=3013, show_default=True, help="Port to listen on.")
@model_options
@click.option(
    "--seed-images",
    type=PATH,
    help="Folder of extra seed images (NAME.png; mask*.png are masks), offered by NAME.",
)
@click.option(
    "--queue",
    "queue_capacity",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Inference requests that may wait; more answer 429.",
)
@click.option(
    "--max-batch",
    default="auto",
    show_default=True,
    metavar="auto|N",
    help="Concurrent requests that may share one UNet call; auto: 4 on CUDA, 2 on CPUs, else 1.",
)
@click.option(
    "--max-steps",
    type=click.IntRange(1, MAX_STEPS),
    help="Most diffusion steps a clip may run; requests for more run this many (the response "
    "says so). Keeps clips within a client's timeout on slow hardware. Default: no limit.",
)
@click.option(
    "--max-body-mb",
    type=click.FloatRange(min=0.001),
    default=DEFAULT_MAX_BODY_BYTES / 2**20,
    show_default=True,
    help="Largest request body taken, in MB (2**20 bytes); larger ones answer 413 unread. The "
    "default fits the largest studio upload.",
)
@quality_option
@click.option(
    "--ray",
    "on_ray",
    is_flag=True,
    help="Serve on Ray Serve (the riffusion[ray] extra): this app as the ingress, the model on "
    "--replicas replicas of the Ray cluster of RAY_ADDRESS, or of a local one (docs/deploy.md).",
)
@click.option(
    "--replicas",
    type=click.IntRange(min=1),
    help="With --ray: model replicas, each one pipeline on one device. Default: 1.",
)
@click.option(
    "--autoscale",
    metavar="MIN:MAX",
    help="With --ray: scale the model replicas between MIN and MAX on their queues' length.",
)
@click.option(
    "--gpus-per-replica",
    type=click.FloatRange(min=0),
    help="With --ray: GPUs each replica reserves. Default: 1 where the cluster has GPUs and "
    "--device is not cpu, else 0.",
)
def serve(
    host: str,
    port: int,
    model_settings: ModelSettings,
    seed_images: Path | None,
    queue_capacity: int,
    max_batch: str,
    max_steps: int | None,
    max_body_mb: float,
    quality: Quality,
    on_ray: bool,
    replicas: int | None,
    autoscale: str | None,
    gpus_per_replica: float | None,
) -> None:
    """Serve the web app at http://HOST:PORT/ and the API (docs at /docs).

    --lora PATH fuses a LoRA into the model for every request; --lora NAME=PATH (repeatable)
    offers it by name instead, for requests and jams to choose (GET /api/loras lists them).

    The server answers at once; the model loads in the background (GET /health tells how it
    is going, and what is missing if it cannot be loaded).
    """
    import uvicorn

    from riffusion.server.app import ServerConfig, create_app
    from riffusion.server.worker import MaxBatch

    ray_options = {
        "--replicas": replicas,
        "--autoscale": autoscale,
        "--gpus-per-replica": gpus_per_replica,
    }
    given = [name for name, value in ray_options.items() if value is not None]
    if given and not on_ray:
        raise RiffusionError(f"{given[0]} needs --ray")
    if replicas is not None and autoscale is not None:
        raise RiffusionError("--replicas and --autoscale exclude each other: give one")
    if not 0 <= port <= 65535:
        raise RiffusionError(f"--port must be between 0 and 65535, got {port}")
    if seed_images is not None and not seed_images.is_dir():
        raise RiffusionError(f"--seed-images {seed_images}: no such folder")
    batch = max_batch.strip().lower()
    if batch != AUTO and not (batch.isdecimal() and int(batch) >= 1):
        raise RiffusionError(
            f"--max-batch must be 'auto' or a whole number of at least 1, got {max_batch!r}"
        )
    batch_setting: MaxBatch = AUTO if batch == AUTO else int(batch)
    fused, named = split_named_loras(model_settings.lora)
    if named and model_settings.unet_backend == "openvino":
        raise RiffusionError(NAMED_LORAS_REFUSAL)
    config = ServerConfig(
        model=dataclasses.replace(model_settings, lora=fused),
        named_loras=named,
        seed_images_dir=seed_images,
        queue_capacity=queue_capacity,
        max_batch=batch_setting,
        quality=quality,
        max_steps=max_steps,
        max_body_bytes=round(max_body_mb * 2**20),
    )
    if on_ray:
        serve_ray(config, host, port, replicas, autoscale, gpus_per_replica)
        return
    app = create_app(config)
    click.echo(f"Riffusion on http://{host}:{port}/ (API docs at /docs)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="info", ws="websockets")


def serve_ray(
    config: ServerConfig,
    host: str,
    port: int,
    replicas: int | None,
    autoscale: str | None,
    gpus_per_replica: float | None,
) -> None:
    """`serve --ray`: the app as the ingress of a Ray Serve application (docs/deploy.md)."""
    from riffusion.ray_support import parse_autoscale, require_ray

    require_ray()
    bounds = None if autoscale is None else parse_autoscale(autoscale)

    from riffusion.server.ray_deployment import Scaling, serve_on_ray

    scaling = Scaling(replicas=None if bounds else replicas or 1, autoscale=bounds)
    click.echo(f"Riffusion on Ray Serve at http://{host}:{port}/ (API docs at /docs)", err=True)
    serve_on_ray(config, scaling, host, port, gpus_per_replica)


# NAME=PATH, where NAME cannot be a path itself.
_NAMED_LORA = re.compile(r"^([^=/\\]+)=(.+)$")


def split_named_loras(
    values: Sequence[str],
) -> tuple[tuple[str, ...], tuple[tuple[str, Path], ...]]:
    """--lora values split into (fused: PATH values, named: (NAME, PATH) pairs). A value that
    is an existing path is a path even if it holds '='.

    Raises:
        RiffusionError: a bad or repeated name, or a named LoRA file that does not exist.
    """
    fused: list[str] = []
    named: dict[str, Path] = {}
    for value in values:
        match = _NAMED_LORA.match(value)
        if match is None or Path(value).exists():
            fused.append(value)
            continue
        name, path = match[1], Path(match[2]).expanduser()
        check_lora_name(name)
        if name in named:
            raise RiffusionError(f"--lora {value}: the name {name!r} is given twice")
        if not path.is_file():
            raise RiffusionError(f"--lora {value}: no such LoRA file {path}")
        named[name] = path
    return tuple(fused), tuple(named.items())
