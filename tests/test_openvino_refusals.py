"""What --unet-backend openvino cannot run is refused in one line, before any work: the fast
preset (DeepCache calls into the PyTorch UNet's blocks), named LoRAs (adapters switched inside the
PyTorch UNet), devices other than the CPU, and a machine without OpenVINO. None of these needs
OpenVINO itself: where it is not installed, its presence is pretended."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from cli_support import failed, run
from fastapi.testclient import TestClient
from server_support import inference_json, ready_loader, write_seed_images

from riffusion.diffusion import openvino_unet
from riffusion.diffusion.model_settings import ModelSettings
from riffusion.diffusion.named_loras import load_named_loras
from riffusion.diffusion.pipeline import RiffusionPipeline
from riffusion.errors import RiffusionError
from riffusion.server.app import ServerConfig, create_app

OPENVINO = ["--unet-backend", "openvino"]
NOT_LOADED = ["--model", "./no-model"]  # a model that is never reached
DEEP_CACHE = "--unet-backend openvino cannot run the fast preset: its DeepCache"
NAMED_LORAS = "--unet-backend openvino cannot switch named LoRAs (--lora NAME=PATH)"


@pytest.fixture(autouse=True)
def openvino_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openvino_unet, "openvino_installed", lambda: True)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_fast_preset_is_refused(in_tmp: Path) -> None:
    result = run("generate", "jazz", "-o", "out.wav", *NOT_LOADED, *OPENVINO, "--preset", "fast")
    failed(result, DEEP_CACHE)
    assert not (in_tmp / "out.wav").exists()


def test_compare_presets_refuses_the_fast_preset(in_tmp: Path) -> None:
    failed(run("compare-presets", "-o", "page", *NOT_LOADED, *OPENVINO), DEEP_CACHE)
    result = run("compare-presets", "-o", "page", *NOT_LOADED, *OPENVINO, "--presets", "realtime")
    failed(result, "no-model")


def test_quality_and_realtime_pass_the_checks(in_tmp: Path) -> None:
    """They get as far as loading the (missing) model."""
    for preset in ("quality", "realtime"):
        result = run(
            "generate", "jazz", "-o", "out.wav", *NOT_LOADED, *OPENVINO, "--preset", preset
        )
        failed(result, "no-model")


def test_devices_other_than_the_cpu_are_refused(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "riffusion.cli.model_options.resolve_device", lambda _: torch.device("cuda", 0)
    )
    result = run("generate", "jazz", "-o", "out.wav", *NOT_LOADED, *OPENVINO)
    failed(result, "--unet-backend openvino runs the UNet on the CPU, not on cuda:0: pass --device")


def test_a_missing_openvino_says_how_to_install_it(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openvino_unet, "openvino_installed", lambda: False)
    result = run("generate", "jazz", "-o", "out.wav", *NOT_LOADED, *OPENVINO)
    failed(result, "--unet-backend openvino needs OpenVINO: pip install 'riffusion[openvino]'")


def test_serve_refuses_named_loras(
    in_tmp: Path, tiny_lcm_lora: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def serving(*_: object, **__: object) -> None:
        raise AssertionError("the server started")

    monkeypatch.setattr("uvicorn.run", serving)
    result = run("serve", *NOT_LOADED, *OPENVINO, "--lora", f"style={tiny_lcm_lora}")
    failed(result, NAMED_LORAS)


def test_training_is_refused(in_tmp: Path) -> None:
    (in_tmp / "data").mkdir()
    result = run("train", "data", "-o", "run", *NOT_LOADED, *OPENVINO)
    failed(result, "--unet-backend openvino runs a converted UNet, which cannot be trained")
    assert not (in_tmp / "run").exists()


def test_the_pipeline_refuses_before_loading() -> None:
    with pytest.raises(RiffusionError, match=DEEP_CACHE):
        RiffusionPipeline.load_checkpoint("./no-model", presets=["fast"], unet_backend="openvino")


@pytest.fixture
def unconverted_pipeline(tiny_checkpoint: Path) -> RiffusionPipeline:
    """The tiny model with OpenVINO chosen and no preset prepared (nothing converted yet)."""
    return RiffusionPipeline.load_checkpoint(
        tiny_checkpoint, device="cpu", dtype="float32", presets=[], unet_backend="openvino"
    )


def test_named_loras_cannot_join_an_openvino_pipeline(
    unconverted_pipeline: RiffusionPipeline, tiny_lcm_lora: Path
) -> None:
    assert unconverted_pipeline.unet_backend == "openvino"
    with pytest.raises(RiffusionError, match="cannot switch named LoRAs"):
        load_named_loras(unconverted_pipeline, {"style": tiny_lcm_lora})
    assert unconverted_pipeline.named_loras == ()


def test_a_pipeline_with_named_loras_cannot_take_openvino(
    tiny_checkpoint: Path, tiny_lcm_lora: Path
) -> None:
    pipeline = RiffusionPipeline.load_checkpoint(tiny_checkpoint, device="cpu", dtype="float32")
    load_named_loras(pipeline, {"style": tiny_lcm_lora})
    with pytest.raises(RiffusionError, match="cannot switch named LoRAs"):
        pipeline.use_openvino()
    assert pipeline.unet_backend == "torch"


def test_a_server_answers_400_to_the_fast_preset(
    unconverted_pipeline: RiffusionPipeline, tmp_path: Path
) -> None:
    settings = ModelSettings("tiny", device="cpu", dtype="float32", unet_backend="openvino")
    seed_images = write_seed_images(tmp_path / "seeds")
    app = create_app(
        ServerConfig(settings, seed_images_dir=seed_images),
        loader=ready_loader(unconverted_pipeline),
    )
    with TestClient(app) as client:
        app.state.model.wait(30)
        response = client.post("/run_inference/", json=inference_json(preset="fast"))
        listed = client.get("/api/presets").json()["presets"]
    assert response.status_code == 400
    assert DEEP_CACHE in response.json()["message"]
    # ... and it does not offer the preset it cannot run.
    assert [preset["name"] for preset in listed] == ["quality", "realtime"]
