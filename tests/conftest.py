"""Shared fixtures. Reference data from the original project lives beside the repository."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

# Tests never touch the network: the Hugging Face Hub is offline for every library that reads
# this (huggingface_hub reads it once, at import, so it is set before anything imports it).
os.environ["HF_HUB_OFFLINE"] = "1"
# Seed images the tests render are cached in a folder of the run's own, not the user's
# ~/.cache; the commands the tests start inherit it. Tests of the cache set their own.
os.environ["RIFFUSION_CACHE_DIR"] = tempfile.mkdtemp(prefix="riffusion-test-cache-")


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C raises KeyboardInterrupt, as at a terminal, even where the suite was started with
    SIGINT ignored (a shell starts background jobs, `make test &`, that way): the Ctrl-C tests
    send real SIGINTs, here and to the commands they start, which inherit the disposition."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_sessionfinish(session: pytest.Session) -> None:
    shutil.rmtree(os.environ["RIFFUSION_CACHE_DIR"], ignore_errors=True)


REFERENCE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "riffusion-reference"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """../shared/riffusion-reference, or a skip where it is absent."""
    if not (REFERENCE_DIR / "clip.wav").is_file():
        pytest.skip(f"reference data not found at {REFERENCE_DIR}")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight model in riffusion-model-v1's diffusers layout (seed 0)."""
    from riffusion.testing import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def tiny_pipeline(tiny_checkpoint: Path):
    """The tiny model as a RiffusionPipeline on the CPU in float32 (shared: do not modify)."""
    from riffusion.diffusion.pipeline import RiffusionPipeline

    return RiffusionPipeline.load_checkpoint(tiny_checkpoint, device="cpu", dtype="float32")


# --- The realtime preset's extra weights, as random-weight stand-ins ----------------------------


@pytest.fixture(scope="session")
def tiny_lcm_lora(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random LoRA weights in the LCM-LoRA's layout for the tiny checkpoint (a .safetensors)."""
    from riffusion.testing.presets import make_lcm_lora

    return make_lcm_lora(tmp_path_factory.mktemp("lcm") / "lcm_lora.safetensors", tiny_checkpoint)


@pytest.fixture(scope="session")
def tiny_vae(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random-weight AutoencoderTiny folder standing in for TAESD."""
    from riffusion.testing.presets import make_tiny_vae

    return make_tiny_vae(tmp_path_factory.mktemp("taesd") / "taesd")


@pytest.fixture(scope="session")
def preset_weights(tiny_lcm_lora: Path, tiny_vae: Path):
    """PresetWeights pointing at the stand-ins."""
    from riffusion.diffusion.preset_weights import PresetWeights

    return PresetWeights(lcm_lora=str(tiny_lcm_lora), tiny_vae=str(tiny_vae))


@pytest.fixture(scope="session")
def preset_pipeline(tiny_checkpoint: Path, preset_weights):
    """The tiny model, float32 on the CPU, able to run every preset (shared: do not modify)."""
    from riffusion.diffusion.pipeline import RiffusionPipeline

    return RiffusionPipeline.load_checkpoint(
        tiny_checkpoint, device="cpu", dtype="float32", preset_weights=preset_weights
    )
@pytest.fixture(scope="module")
def seed_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server tests' seed images folder (server_support.write_seed_images); a module may
    override it with a folder of its own."""
    from server_support import write_seed_images

    return write_seed_images(tmp_path_factory.mktemp("server") / "seeds")


@pytest.fixture(scope="module")
def client(seed_images: Path, tiny_pipeline: Any) -> Iterator[TestClient]:
    """A FastAPI TestClient of the server on seed_images, with the tiny model loaded."""
    from fastapi.testclient import TestClient
    from server_support import config, ready_loader

    from riffusion.server.app import create_app

    app = create_app(config(seed_images), loader=ready_loader(tiny_pipeline))
    with TestClient(app) as test_client:
        app.state.model.wait(30)
        yield test_client
