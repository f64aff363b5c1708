"""Presets in the server: the API's optional `preset` field, GET /api/presets, the server's default
preset (`serve --preset`) and the jam's settings, on the tiny checkpoint with stand-in weights."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from fastapi.testclient import TestClient
from server_support import TINY_SEED_ID, inference_json, ready_loader, write_seed_images

from riffusion.diffusion.model_settings import ModelSettings
from riffusion.diffusion.presets import PRESETS, get_preset
from riffusion.server.app import ServerConfig, create_app


@pytest.fixture(scope="module")
def seed_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_seed_images(tmp_path_factory.mktemp("presets-server") / "seeds")


def serve(seed_images: Path, pipeline: Any, preset: str) -> Iterator[TestClient]:
    name = get_preset(preset).name
    settings = ModelSettings("tiny", device="cpu", dtype="float32", preset=name)
    app = create_app(
        ServerConfig(settings, seed_images_dir=seed_images), loader=ready_loader(pipeline)
    )
    with TestClient(app) as client:
        app.state.model.wait(30)
        yield client


@pytest.fixture(scope="module")
def client(seed_images: Path, preset_pipeline: Any) -> Iterator[TestClient]:
    yield from serve(seed_images, preset_pipeline, "quality")


@pytest.fixture(scope="module")
def realtime_client(seed_images: Path, preset_pipeline: Any) -> Iterator[TestClient]:
    yield from serve(seed_images, preset_pipeline, "realtime")


def generated_inputs(client: TestClient, pipeline: Any, body: dict[str, Any]) -> Any:
    """The InferenceInput the worker ran for body (which must succeed)."""
    with mock.patch.object(pipeline, "riffuse_batch", wraps=pipeline.riffuse_batch) as spy:
        response = client.post("/run_inference/", json=body)
        assert response.status_code == 200, response.text
    (requests,) = spy.call_args.args[:1]
    return requests[0].inputs


def test_the_presets_are_listed_with_the_default(client: TestClient) -> None:
    listed = client.get("/api/presets").json()
    assert listed["default"] == "quality"
    assert [preset["name"] for preset in listed["presets"]] == list(PRESETS)
    realtime = listed["presets"][2]
    assert realtime["steps"] == PRESETS["realtime"].steps and realtime["guided"] is False


def test_requests_without_a_preset_run_as_before(client: TestClient, preset_pipeline: Any) -> None:
    inputs = generated_inputs(client, preset_pipeline, inference_json())
    assert (inputs.preset, inputs.num_inference_steps) == ("quality", 2)


@pytest.mark.parametrize(("preset", "steps"), [("fast", 20), ("realtime", 1)])
def test_a_named_preset_runs_at_its_steps_or_those_given(
    client: TestClient, preset_pipeline: Any, preset: str, steps: int
) -> None:
    body = inference_json(preset=preset)
    del body["num_inference_steps"]
    inputs = generated_inputs(client, preset_pipeline, body)
    assert (inputs.preset, inputs.num_inference_steps) == (preset, steps)
    inputs = generated_inputs(client, preset_pipeline, inference_json(preset=preset))
    assert (inputs.preset, inputs.num_inference_steps) == (preset, 2)


def test_bad_presets_are_refused(client: TestClient) -> None:
    response = client.post("/run_inference/", json=inference_json(preset="turbo"))
    assert response.status_code == 422 and "preset" in response.json()["message"]
    response = client.post(
        "/run_inference/", json=inference_json(preset="realtime", num_inference_steps=50)
    )
    assert response.status_code == 400
    assert "at most 8 with the realtime preset" in response.json()["message"]


def test_a_realtime_server_runs_unnamed_requests_realtime(
    realtime_client: TestClient, preset_pipeline: Any
) -> None:
    assert realtime_client.get("/api/presets").json()["default"] == "realtime"
    # The original app's request (50 steps, meant for its own schedule) runs at realtime's.
    inputs = generated_inputs(
        realtime_client, preset_pipeline, inference_json(num_inference_steps=50)
    )
    assert (inputs.preset, inputs.num_inference_steps) == ("realtime", PRESETS["realtime"].steps)
    inputs = generated_inputs(realtime_client, preset_pipeline, inference_json(preset="quality"))
    assert (inputs.preset, inputs.num_inference_steps) == ("quality", 2)


def receive(socket: Any, kind: str, skip: tuple[str, ...] = ("status",)) -> dict[str, Any]:
    """The next message of type kind; those of the types in skip before it are passed over."""
    while True:
        message = socket.receive_json()
        if message["type"] == kind:
            return message
        assert message["type"] in skip, message


def test_the_jam_takes_a_preset_in_its_settings(
    client: TestClient, realtime_client: TestClient
) -> None:
    settings = {"seed_image_id": TINY_SEED_ID, "denoising": 0.5, "seed": 7}
    with client.websocket_connect("/api/jam") as socket:
        socket.send_json(
            {"type": "start", "prompt": "lofi", "settings": {**settings, "preset": "realtime"}}
        )
        first = receive(socket, "clip")["input"]
        assert (first["preset"], first["num_inference_steps"]) == ("realtime", 1)
        socket.send_json({"type": "settings", "settings": {"preset": "fast"}})
        index = 0
        while True:
            # The clips made before the change keep their preset; the playhead moves on.
            socket.send_json({"type": "played", "index": index})
            clip = receive(socket, "clip")
            index = clip["index"]
            if clip["input"]["preset"] == "fast":
                break
        assert clip["input"]["num_inference_steps"] == PRESETS["fast"].steps
        socket.send_json({"type": "settings", "settings": {"preset": "turbo"}})
        assert "preset" in receive(socket, "error", skip=("status", "clip"))["message"]
    # Without a preset, the jam plays the server's.
    with realtime_client.websocket_connect("/api/jam") as socket:
        socket.send_json({"type": "start", "prompt": "lofi", "settings": settings})
        first = receive(socket, "clip")["input"]
        assert (first["preset"], first["num_inference_steps"]) == ("realtime", 1)
