"""Helpers of the server tests: a small seed folder, loaders, a pipeline held at a gate, a free
port, and the app served over real HTTP."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from PIL import Image

from riffusion.diffusion.model_settings import ModelSettings
from riffusion.server.app import ServerConfig
from riffusion.server.model import LoadProgress

# A seed 64 px wide (0.64 s): phase reconstruction of the tiny model's clips stays quick.
TINY_SEED_ID = "tiny_seed"
TINY_SEED_SIZE = (64, 512)
TINY_MASK_ID = "mask_tiny"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the moment."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_seed_images(folder: Path) -> Path:
    """A seed images folder holding tiny_seed.png (a noise spectrogram) and mask_tiny.png."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(TINY_SEED_SIZE[1], TINY_SEED_SIZE[0]), dtype=np.uint8)
    Image.fromarray(pixels, mode="L").convert("RGB").save(folder / f"{TINY_SEED_ID}.png")
    mask = np.zeros((TINY_SEED_SIZE[1], TINY_SEED_SIZE[0]), dtype=np.uint8)
    mask[: TINY_SEED_SIZE[1] // 2] = 255
    Image.fromarray(mask, mode="L").save(folder / f"{TINY_MASK_ID}.png")
    return folder


def config(seed_images: Path, **overrides: Any) -> ServerConfig:
    """A config for the tiny model on the CPU (the loader is the test's own)."""
    return ServerConfig(
        ModelSettings("tiny", device="cpu", dtype="float32"),
        seed_images_dir=seed_images,
        **overrides,
    )


def inference_json(**overrides: Any) -> dict[str, Any]:
    """A request in the original riffusion app's JSON, on the tiny seed, one diffusion step."""
    body: dict[str, Any] = {
        "alpha": 0.5,
        "num_inference_steps": 2,
        "seed_image_id": TINY_SEED_ID,
        "mask_image_id": None,
        "start": {"prompt": "church bells", "seed": 42, "denoising": 0.5, "guidance": 7.0},
        "end": {"prompt": "jazz with piano", "seed": 123, "denoising": 0.5, "guidance": 7.0},
    }
    body.update(overrides)
    return body


def ready_loader(pipeline: Any):
    """A loader that hands over an already loaded pipeline."""

    def load(progress: LoadProgress) -> Any:
        return pipeline

    return load


class GatedLoader:
    """A loader that reports a download under way and waits for release()."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.gate = threading.Event()

    def __call__(self, progress: LoadProgress) -> Any:
        progress("downloading", 0.5)
        if not self.gate.wait(60):
            raise TimeoutError("the test never released the loader")
        return self.pipeline

    def release(self) -> None:
        self.gate.set()


class GatedPipeline:
    """A pipeline whose generations wait for open(), so tests can fill the worker's queue."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.gate = threading.Event()
        self.entered = threading.Event()

    def riffuse_batch(self, *args: Any, **kwargs: Any) -> Any:
        self.entered.set()
        if not self.gate.wait(60):
            raise TimeoutError("the test never opened the gate")
        return self.pipeline.riffuse_batch(*args, **kwargs)

    def batch_key(self, *args: Any, **kwargs: Any) -> Any:
        return self.pipeline.batch_key(*args, **kwargs)

    def audio_from_image(self, *args: Any, **kwargs: Any) -> Any:
        return self.pipeline.audio_from_image(*args, **kwargs)

    def open(self) -> None:
        self.gate.set()


def wait_for(condition: Callable[[], Any], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.02)


@contextlib.contextmanager
def live_server(app: Any) -> Iterator[str]:
    """app served by uvicorn on a free port in this process; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
