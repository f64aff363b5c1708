"""The riffusion server: the original inference API, seeds, health, the jam WebSocket and the web
app, from one FastAPI application. docs/api.md describes every endpoint.

    app = create_app(ServerConfig(ModelSettings("riffusion/riffusion-model-v1")))
    uvicorn.run(app, host="127.0.0.1", port=3013)

The model loads on a background thread when the app starts, so the server answers at once; what
needs the model answers 503 until it is ready, and if loading fails everything else keeps working
and /health says what is missing.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Query, Request, WebSocket
from fastapi.exceptions import HTTPException
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from riffusion.devices import resolve_device
from riffusion.diffusion.inputs import InferenceInput, PromptInput
from riffusion.diffusion.model_settings import ModelSettings
from riffusion.diffusion.named_loras import load_named_loras
from riffusion.diffusion.presets import PRESETS
from riffusion.errors import RiffusionError
from riffusion.server.clip_service import ClipService, LocalClips
from riffusion.server.http_errors import COMMON_ERRORS, add_error_handlers
from riffusion.server.http_middleware import BodyLimit, HeadAsGet, JsonBodies
from riffusion.server.inference_response import inference_response
from riffusion.server.jam_socket import JamSession
from riffusion.server.library import SeedLibrary, UnknownId
from riffusion.server.limits import DEFAULT_MAX_BODY_BYTES
from riffusion.server.model import Loader, LoadProgress, ModelHolder
from riffusion.server.schemas import (
    ErrorModel,
    HealthModel,
    InferenceInputModel,
    InferenceOutputModel,
    LoraListModel,
    MaskListModel,
    MaskModel,
    PresetListModel,
    PresetModel,
    QueueModel,
    ReplicaModel,
    SeedListModel,
    SeedModel,
)
from riffusion.server.studio import studio_router
from riffusion.server.worker import (
    AUTO,
    REQUESTED_STEPS_HEADER,
    STEPS_HEADER,
    InferenceWorker,
    MaxBatch,
    resolve_max_batch,
)
from riffusion.spectrogram.reconstruction import Quality

if TYPE_CHECKING:
    from riffusion.diffusion.pipeline import RiffusionPipeline

STATIC_DIR = Path(__file__).resolve().parent / "static"

_INFERENCE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorModel, "description": "unknown seed or mask id, or unusable input"},
    422: {"model": ErrorModel, "description": "a field missing, mistyped or out of range"},
    429: {"model": ErrorModel, "description": "the queue is full; see Retry-After"},
    503: {"model": ErrorModel, "description": "the model is loading or failed to load"},
}


@dataclass(frozen=True)
class ServerConfig:
    """How the server runs.

    Attributes:
        model: which model to load (Hub id, folder or file, LoRAs) and its device and dtype.
        seed_images_dir: folder of extra seed images and masks, by file name.
        queue_capacity: inference requests that may wait before new ones answer 429.
        max_batch: concurrent requests that may share one UNet call per step; "auto" picks per
            device (worker.AUTO_MAX_BATCH: 4 on CUDA, 2 on CPUs, else 1).
        quality: phase reconstruction quality of the audio.
        static_dir: the web app's files, served at /.
        named_loras: (id, LoRA file) pairs held apart in the model, for requests and jams to
            choose among by id (`serve --lora NAME=PATH`).
        max_steps: the most diffusion steps a generation may run; requests (and jam clips) that
            ask for more run this many, and say so (docs/api.md). None: no limit.
        max_body_bytes: the largest request body taken; larger ones answer 413 unread.
    """

    model: ModelSettings = field(default_factory=ModelSettings)
    seed_images_dir: Path | None = None
    queue_capacity: int = 16
    max_batch: MaxBatch = AUTO
    quality: Quality = "fast"
    static_dir: Path = STATIC_DIR
    named_loras: tuple[tuple[str, Path], ...] = ()
    max_steps: int | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


def pipeline_loader(config: ServerConfig, library: SeedLibrary) -> Loader:
    """The loader of config's model: RiffusionPipeline.load_checkpoint on config's device (with
    the weights of the server's preset; other presets' load when first asked for), then one
    warm-up generation with the server's preset on the default seed image.

    The warm-up is there because a process's first generation pays one-time set-up: the first
    call of each kernel shape builds its primitives (bfloat16 on CPUs most of all) and phase
    reconstruction plans its FFTs. On a loaded 2-core CPU with the tiny model the first clip took
    several times as long as the next in most runs. That cost belongs in loading, not in the first
    listener's wait for audio.
    """

    def load(progress: LoadProgress) -> RiffusionPipeline:
        progress("importing the model libraries", None)
        importlib.import_module("riffusion.diffusion.pipeline")  # diffusers: seconds

        def downloading(fetched: int, total: int) -> None:
            if fetched < total:
                gigabytes = f"{fetched / 1e9:.2f} of {total / 1e9:.2f} GB"
                progress(f"downloading the weights: {gigabytes}", fetched / total)
            else:
                progress("loading weights", None)

        progress("loading weights", None)
        pipeline = config.model.load(
            download_progress=downloading,
            all_presets=True,
            report=lambda message: progress(message, None),
        )
        if config.named_loras:
            progress("loading the named LoRAs", None)
            load_named_loras(pipeline, dict(config.named_loras))
        progress("warming up", None)
        # The shortest schedule that runs the UNet (a one-step schedule at denoising 1 runs
        # none: the original's img2img arithmetic skips its only timestep), with guidance, so
        # the UNet sees the batch of two that every guided request gives it.
        prompt = PromptInput(prompt="warm-up", seed=0, denoising=1.0, guidance=7.0)
        warm_up = InferenceInput(
            start=prompt,
            end=prompt,
            alpha=0.0,
            num_inference_steps=2,
            preset=config.model.preset,
        )
        image = pipeline.riffuse(warm_up, library.seed_image(library.default_seed_id))
        pipeline.audio_from_image(image, quality=config.quality).to_bytes("mp3")
        return pipeline

    return load


def create_app(
    config: ServerConfig | None = None,
    *,
    loader: Loader | None = None,
    library: SeedLibrary | None = None,
    clips: ClipService | None = None,
) -> FastAPI:
    """The FastAPI app; the model starts loading (and the worker starts) when the app starts.

    Args:
        config: how to run; the defaults serve riffusion-model-v1 on the best device.
        loader: loads the pipeline instead of pipeline_loader(config, library) (tests pass
            their own).
        library: the seed images on offer instead of SeedLibrary(config.seed_images_dir).
        clips: where generations run instead of this process's model and worker (the Ray
            deployment's ingress passes its replicas); loader is then unused.
    """
    config = config or ServerConfig()
    library = library or SeedLibrary(config.seed_images_dir)
    if clips is None:
        device = str(resolve_device(config.model.device))
        model = ModelHolder(config.model.model, device, loader or pipeline_loader(config, library))
        worker = local_worker(config, model)
        clips = LocalClips(model, worker)
    service = clips

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="Riffusion",
        description="Real-time music from Stable Diffusion spectrograms. See docs/api.md.",
        version="0.1.0",
        lifespan=lifespan,
        responses=COMMON_ERRORS,
    )
    app.state.clips = service
    if isinstance(service, LocalClips):
        app.state.model = service.model
        app.state.worker = service.worker
    app.state.library = library
    # Innermost first: each add_middleware wraps what was added before it.
    app.add_middleware(JsonBodies)
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    app.add_middleware(HeadAsGet)
    # The original server allowed any origin; its web app may be served from elsewhere.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "POST"],
        allow_headers=["*"],
        expose_headers=[STEPS_HEADER, REQUESTED_STEPS_HEADER],
    )

    def health() -> HealthModel:
        snapshot = service.snapshot()
        replicas = service.replicas()
        return HealthModel(
            status=snapshot.status,
            model=snapshot.model,
            device=snapshot.device,
            stage=snapshot.stage,
            progress=snapshot.progress,
            elapsed_s=snapshot.elapsed_s,
            message=snapshot.message,
            fix=snapshot.fix,
            queue=QueueModel(length=service.queue_length, capacity=service.capacity),
            replicas=None
            if replicas is None
            else [ReplicaModel.from_state(replica) for replica in replicas],
        )

    add_error_handlers(app, health)

    @app.get("/health", response_model=HealthModel, tags=["server"])
    async def get_health() -> HealthModel:
        """The model's state (loading, ready or failed, and why), the queue, and with Ray each
        replica's."""
        return health()

    async def run_inference(body: InferenceInputModel, request: Request) -> Response:
        """Generate one clip: the original riffusion API, InferenceInput in, InferenceOutput out."""
        inputs = body.to_inference_input(config.model.preset)
        check_lora_id(inputs.lora)
        library.check_seed_id(inputs.seed_image_id)
        if inputs.mask_image_id is not None:
            library.check_mask_id(inputs.mask_image_id)
        service.check_ready()  # 503 before loading images for a model that cannot run them
        init_image, mask = await run_in_threadpool(
            library.images, inputs.seed_image_id, inputs.mask_image_id
        )
        return await inference_response(service, inputs, init_image, mask, request)

    for path in ("/run_inference/", "/run_inference"):
        app.add_api_route(
            path,
            run_inference,
            methods=["POST"],
            response_model=InferenceOutputModel,
            responses=_INFERENCE_ERRORS,
            tags=["inference"],
            include_in_schema=path.endswith("/"),
        )

    lora_ids = [name for name, _ in config.named_loras]

    def check_lora_id(lora: str | None) -> None:
        if lora is not None and lora not in lora_ids:
            offered = ", ".join(lora_ids) or "none (start the server with --lora NAME=PATH)"
            raise RiffusionError(f"unknown lora {lora!r}; this server offers: {offered}")

    @app.get("/api/loras", response_model=LoraListModel, tags=["inference"])
    async def get_loras() -> LoraListModel:
        """The LoRA ids a request's (or a jam's) lora field may name."""
        return LoraListModel(loras=lora_ids)

    @app.get("/api/seeds", response_model=SeedListModel, tags=["seeds"])
    async def get_seeds() -> SeedListModel:
        """The seed images inference can start from."""
        return SeedListModel(
            default=library.default_seed_id,
            seeds=[
                SeedModel(
                    id=seed.id,
                    url=f"/api/seeds/{seed.id}.png",
                    width=seed.width,
                    height=seed.height,
                    duration_s=seed.duration_s,
                    bpm=seed.bpm,
                    description=seed.description,
                )
                for seed in library.seeds()
            ],
        )

    @app.get(
        "/api/seeds/{seed_id}.png",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}, 404: {"model": ErrorModel}},
        tags=["seeds"],
    )
    async def get_seed_png(seed_id: str) -> Response:
        """A seed image as PNG."""
        try:
            library.check_seed_id(seed_id)
        except UnknownId as error:
            raise HTTPException(404, str(error)) from None
        png = await run_in_threadpool(library.seed_png, seed_id)
        return Response(png, media_type="image/png")

    @app.get("/api/masks", response_model=MaskListModel, tags=["seeds"])
    async def get_masks() -> MaskListModel:
        """The masks that can go with a seed image (white: repaint, black: keep)."""
        return MaskListModel(
            masks=[
                MaskModel(id=mask.id, url=f"/api/masks/{mask.id}.png", description=mask.description)
                for mask in library.masks()
            ]
        )

    @app.get(
        "/api/masks/{mask_id}.png",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}, 404: {"model": ErrorModel}},
        tags=["seeds"],
    )
    async def get_mask_png(
        mask_id: str, seed_image_id: str | None = Query(None, max_length=100)
    ) -> Response:
        """A mask as PNG, drawn for a seed image (the default seed when none is given)."""
        seed_id = seed_image_id or library.default_seed_id
        try:
            library.check_mask_id(mask_id)
            library.check_seed_id(seed_id)
        except UnknownId as error:
            raise HTTPException(404, str(error)) from None
        png = await run_in_threadpool(library.mask_png, mask_id, seed_id)
        return Response(png, media_type="image/png")

    @app.get("/api/presets", response_model=PresetListModel, tags=["inference"])
    async def get_presets() -> PresetListModel:
        """The generation presets this server can run, and the one requests without a preset
        get."""
        # The OpenVINO UNet cannot run DeepCache, so such a server does not offer the presets
        # that use it (it would answer 400 to them).
        runnable = [
            preset
            for preset in PRESETS.values()
            if config.model.unet_backend == "torch" or preset.deep_cache is None
        ]
        return PresetListModel(
            default=config.model.preset,
            presets=[
                PresetModel(
                    name=preset.name,
                    summary=preset.summary,
                    steps=preset.steps,
                    max_steps=preset.max_steps,
                    guided=preset.guided,
                )
                for preset in runnable
            ],
        )

    app.include_router(studio_router(service, _INFERENCE_ERRORS))

    @app.websocket("/api/jam")
    async def jam(websocket: WebSocket) -> None:
        """The endless jam (see docs/api.md for its messages)."""
        await JamSession(websocket, service, library, health, config.model.preset).run()

    if config.static_dir.is_dir():
        # The router's fallback rather than a mount at /, which would match every path first and
        # answer for the routes: GET /run_inference/ 404, PUT /health 405 "Allow: GET, HEAD".
        app.router.default = StaticFiles(directory=config.static_dir, html=True)
    else:

        @app.get("/", response_class=HTMLResponse, include_in_schema=False)
        async def no_web_app() -> str:
            return (
                "<!doctype html><title>Riffusion</title><p>The web app is not installed "
                f"({config.static_dir} is missing). The API is running: see "
                '<a href="/docs">/docs</a>.</p>'
            )

    return app


def local_worker(config: ServerConfig, model: ModelHolder) -> InferenceWorker:
    """The inference worker of config for model (not started)."""
    return InferenceWorker(
        model,
        capacity=config.queue_capacity,
        quality=config.quality,
        max_batch=resolve_max_batch(config.max_batch, model.device),
        max_steps=config.max_steps,
    )
