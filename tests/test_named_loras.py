"""Named LoRAs: held apart in the UNet, chosen per generation (or per batch) by id; `serve
--lora NAME=PATH`, GET /api/loras and the lora field of requests and jam settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from server_support import config, inference_json, ready_loader, write_seed_images

from riffusion.cli.serve import split_named_loras
from riffusion.diffusion.batch import RiffuseRequest
from riffusion.diffusion.inputs import InferenceInput, PromptInput
from riffusion.diffusion.named_loras import load_named_loras
from riffusion.diffusion.pipeline import RiffusionPipeline
from riffusion.errors import RiffusionError
from riffusion.jam import JamEngine, JamSettings
from riffusion.server.app import create_app
from riffusion.server.schemas import JamSettingsModel
from riffusion.testing import make_tiny_lora

SEED_IMAGE = Image.new("RGB", (64, 512), "white")


def inputs(lora: str | None, seed: int = 3) -> InferenceInput:
    prompt = PromptInput("church bells", seed=seed, denoising=0.8)
    return InferenceInput(start=prompt, end=prompt, alpha=0.0, num_inference_steps=4, lora=lora)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


@pytest.fixture(scope="module")
def loras(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("loras")
    return {
        "strings": make_tiny_lora(folder / "strings.safetensors", tiny_checkpoint, seed=1),
        "drums": make_tiny_lora(folder / "drums.safetensors", tiny_checkpoint, seed=2),
    }


@pytest.fixture(scope="module")
def named_pipeline(tiny_checkpoint: Path, loras: dict[str, Path]) -> RiffusionPipeline:
    pipeline = RiffusionPipeline.load_checkpoint(tiny_checkpoint, device="cpu", dtype="float32")
    load_named_loras(pipeline, loras)
    return pipeline


def test_each_request_gets_its_lora_or_none(
    named_pipeline: RiffusionPipeline,
    tiny_pipeline: RiffusionPipeline,
    tiny_checkpoint: Path,
    loras: dict[str, Path],
) -> None:
    assert named_pipeline.named_loras == ("strings", "drums")
    base = pixels(tiny_pipeline.riffuse(inputs(None), SEED_IMAGE))
    fused = RiffusionPipeline.load_checkpoint(
        tiny_checkpoint, device="cpu", dtype="float32", lora=loras["strings"]
    )
    strings = pixels(fused.riffuse(inputs(None), SEED_IMAGE))
    assert np.abs(strings - base).mean() > 1.0
    # In any order, each request gets what it asked for: the LoRA held apart gives what the
    # same LoRA fused gives, and none gives the model alone.
    for lora, expected in (("strings", strings), (None, base), ("strings", strings)):
        got = pixels(named_pipeline.riffuse(inputs(lora), SEED_IMAGE))
        assert np.abs(got - expected).max() <= 1.0, lora
    drums = pixels(named_pipeline.riffuse(inputs("drums"), SEED_IMAGE))
    assert np.abs(drums - strings).mean() > 1.0


def test_requests_with_different_loras_do_not_share_a_batch(
    named_pipeline: RiffusionPipeline,
) -> None:
    keys = [named_pipeline.batch_key(inputs(lora), SEED_IMAGE) for lora in ("drums", None)]
    assert keys[0] != keys[1]
    assert keys[0].lora == "drums"
    requests = [
        RiffuseRequest(inputs("drums"), SEED_IMAGE),
        RiffuseRequest(inputs(None), SEED_IMAGE),
    ]
    with pytest.raises(RiffusionError, match="cannot share a batch: lora drums != None"):
        named_pipeline.riffuse_batch(requests)
    with pytest.raises(
        RiffusionError, match="unknown LoRA 'bass'; this model offers: strings, drums"
    ):
        named_pipeline.riffuse(inputs("bass"), SEED_IMAGE)


def test_loading_refuses_bad_names_and_files(tiny_checkpoint: Path, tmp_path: Path) -> None:
    pipeline = RiffusionPipeline.load_checkpoint(tiny_checkpoint, device="cpu", dtype="float32")
    with pytest.raises(RiffusionError, match=r"LoRA name '\.\./x'"):
        load_named_loras(pipeline, {"../x": tmp_path / "x.safetensors"})
    with pytest.raises(RiffusionError, match=r"LoRA x=.*missing\.safetensors: cannot read it"):
        load_named_loras(pipeline, {"x": tmp_path / "missing.safetensors"})


def test_serve_splits_fused_and_named_loras(loras: dict[str, Path], tmp_path: Path) -> None:
    path = str(loras["strings"])
    fused, named = split_named_loras([path, f"lofi={path}", "user/hub-lora"])
    assert fused == (path, "user/hub-lora")
    assert named == (("lofi", Path(path)),)
    with pytest.raises(RiffusionError, match="the name 'a' is given twice"):
        split_named_loras([f"a={path}", f"a={path}"])
    with pytest.raises(RiffusionError, match="no such LoRA file"):
        split_named_loras([f"a={tmp_path / 'missing.safetensors'}"])


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory,
    named_pipeline: RiffusionPipeline,
    loras: dict[str, Path],
) -> Iterator[TestClient]:
    seeds = write_seed_images(tmp_path_factory.mktemp("server") / "seeds")
    named = tuple(loras.items())
    app = create_app(config(seeds, named_loras=named), loader=ready_loader(named_pipeline))
    with TestClient(app) as client:
        app.state.model.wait(30)
        yield client


def test_the_api_lists_the_ids_and_requests_choose_among_them(client: TestClient) -> None:
    assert client.get("/api/loras").json() == {"loras": ["strings", "drums"]}
    response = client.post("/run_inference/", json=inference_json(lora="bass"))
    assert response.status_code == 400
    assert "unknown lora 'bass'; this server offers: strings, drums" in response.json()["message"]
    plain = client.post("/run_inference/", json=inference_json()).json()
    styled = client.post("/run_inference/", json=inference_json(lora="strings")).json()
    assert styled["image"] != plain["image"]
    path = client.post("/run_inference/", json=inference_json(lora="/etc/passwd"))
    assert path.status_code == 400


def test_jam_settings_carry_the_lora_into_every_clip() -> None:
    changes: dict[str, Any] = JamSettingsModel(lora="drums").changes()
    engine = JamEngine("church bells", settings=JamSettings(**changes))
    assert engine.next_clip().input.lora == "drums"
    engine.update_settings(**JamSettingsModel.model_validate({"lora": None}).changes())
    assert engine.next_clip().input.lora is None


def test_a_named_lora_with_the_realtime_preset_is_refused(
    named_pipeline: RiffusionPipeline,
) -> None:
    """The realtime preset's UNet is a copy with the LCM-LoRA fused in; it does not hold the
    named LoRAs, so the pair would run without the style."""
    prompt = PromptInput("church bells", seed=3, denoising=0.8)
    realtime = InferenceInput(
        start=prompt, end=prompt, alpha=0.0, num_inference_steps=1, lora="drums", preset="realtime"
    )
    with pytest.raises(RiffusionError, match="runs with the quality and fast presets"):
        named_pipeline.batch_key(realtime, SEED_IMAGE)
    fast = InferenceInput(
        start=prompt, end=prompt, alpha=0.0, num_inference_steps=4, lora="drums", preset="fast"
    )
    assert named_pipeline.batch_key(fast, SEED_IMAGE).lora == "drums"
