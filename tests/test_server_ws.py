"""The jam WebSocket on the tiny checkpoint: clips in order, transitions, acknowledgements,
falling behind, settings, and refused messages."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from server_support import (
    TINY_SEED_ID,
    TINY_SEED_SIZE,
    GatedLoader,
    config,
    ready_loader,
    write_seed_images,
)
from starlette.testclient import WebSocketTestSession

from riffusion.server.app import create_app

# Quick clips: the 64-px seed, one diffusion step, two clips per sweep.
JAM_SETTINGS = {
    "seed_image_id": TINY_SEED_ID,
    "num_inference_steps": 2,
    "denoising": 0.5,
    "alpha_velocity": 0.5,
    "seed": 7,
}


@pytest.fixture(scope="module")
def seed_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_seed_images(tmp_path_factory.mktemp("jam") / "seeds")


@pytest.fixture(scope="module")
def client(seed_images: Path, tiny_pipeline: Any) -> Iterator[TestClient]:
    app = create_app(config(seed_images), loader=ready_loader(tiny_pipeline))
    with TestClient(app) as client:
        app.state.model.wait(30)
        yield client


def receive(socket: WebSocketTestSession, kind: str) -> dict[str, Any]:
    """The next message of type kind; status messages before it are skipped."""
    while True:
        message = socket.receive_json()
        if message["type"] == kind:
            return message
        assert message["type"] == "status", message


def receive_status(socket: WebSocketTestSession, **expected: Any) -> dict[str, Any]:
    """The next status message whose fields have the expected values."""
    while True:
        message = receive(socket, "status")
        if all(message[key] == value for key, value in expected.items()):
            return message


def test_clips_arrive_in_order_and_a_new_prompt_makes_a_transition(client: TestClient) -> None:
    with client.websocket_connect("/api/jam") as socket:
        first = socket.receive_json()
        assert first["type"] == "status" and first["prompt"] is None
        assert first["model"]["status"] == "ready"

        socket.send_json(
            {"type": "start", "prompt": "lofi beat", "settings": JAM_SETTINGS, "clips_ahead": 2}
        )
        socket.send_json({"type": "prompt", "prompt": "jazz piano"})
        clips = [receive(socket, "clip"), receive(socket, "clip")]
        # Two ahead of a playhead that has not started: nothing more until it moves.
        status = receive_status(socket, generated=2)
        assert status["ahead"] == 2 and status["queued_prompts"] == ["jazz piano"]
        assert not status["behind"]
        for index in range(3):
            socket.send_json({"type": "played", "index": index})
            clips.append(receive(socket, "clip"))

    assert [clip["index"] for clip in clips] == [0, 1, 2, 3, 4]
    assert [clip["state"] for clip in clips] == [
        "SAME_PROMPT",
        "SAME_PROMPT",
        "TRANSITION",
        "TRANSITION",
        "SAME_PROMPT",
    ]
    assert [clip["prompt"] for clip in clips] == ["lofi beat"] * 2 + ["jazz piano"] * 3
    inputs = [clip["input"] for clip in clips]
    assert [i["alpha"] for i in inputs] == [0.5, 1.0, 0.5, 1.0, 0.5]
    assert [(i["start"]["seed"], i["end"]["seed"]) for i in inputs] == [
        (7, 8),
        (7, 8),
        (8, 8),
        (8, 8),
        (8, 9),
    ]
    assert inputs[2]["start"]["prompt"] == "lofi beat"
    assert inputs[2]["end"]["prompt"] == "jazz piano"

    clip = clips[0]
    assert clip["duration_s"] == pytest.approx(0.64)
    assert clip["audio"].startswith("data:audio/mpeg;base64,")
    jpeg = base64.b64decode(clip["image"].removeprefix("data:image/jpeg;base64,"))
    assert Image.open(io.BytesIO(jpeg)).size == TINY_SEED_SIZE
    assert inputs[0]["seed_image_id"] == TINY_SEED_ID and inputs[0]["num_inference_steps"] == 2


def test_behind_settings_pause_and_restart(client: TestClient) -> None:
    with client.websocket_connect("/api/jam") as socket:
        socket.send_json(
            {"type": "start", "prompt": "drums", "settings": JAM_SETTINGS, "clips_ahead": 1}
        )
        assert receive(socket, "clip")["index"] == 0
        receive_status(socket, generated=1)

        # The playhead reaches the only clip there is: behind, until the next one arrives.
        socket.send_json({"type": "settings", "settings": {"denoising": 0.25, "guidance": 3}})
        socket.send_json({"type": "played", "index": 0})
        assert receive_status(socket, played=0)["behind"] is True
        clip = receive(socket, "clip")
        assert clip["index"] == 1
        assert clip["input"]["start"]["denoising"] == 0.25
        assert clip["input"]["end"]["guidance"] == 3
        assert receive_status(socket, generated=2)["behind"] is False

        # Paused: the playhead moves on but nothing is generated.
        socket.send_json({"type": "pause"})
        socket.send_json({"type": "played", "index": 1})
        status = receive_status(socket, played=1)
        assert status["paused"] is True and status["behind"] is False
        socket.send_json({"type": "resume"})
        assert receive(socket, "clip")["index"] == 2

        # A new start begins again from index 0 with the new prompt and seed.
        restart = {**JAM_SETTINGS, "seed": 100}
        socket.send_json({"type": "start", "prompt": "strings", "settings": restart})
        clip = receive(socket, "clip")
        assert clip["index"] == 0 and clip["prompt"] == "strings"
        assert clip["input"]["start"]["seed"] == 100


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("not json", "invalid message"),
        ({"type": "dance"}, "invalid message"),
        ({"type": "start"}, "prompt: Field required"),
        ({"type": "start", "prompt": "x", "settings": {"denoising": 2}}, "denoising"),
        ({"type": "start", "prompt": "x", "clips_ahead": 0}, "clips_ahead"),
        ({"type": "start", "prompt": "x", "settings": {"seed": -1}}, "seed"),
        ({"type": "start", "prompt": "x", "settings": {"seed_image_id": "../x"}}, "valid ids"),
        ({"type": "start", "prompt": "x", "settings": {"mask_image_id": "nope"}}, "valid ids"),
        ({"type": "start", "prompt": " "}, "prompt is empty"),
        ({"type": "prompt", "prompt": "x"}, "send a start message before 'prompt'"),
        ({"type": "played", "index": 0}, "send a start message before 'played'"),
    ],
)
def test_refused_messages_answer_an_error_and_keep_the_connection(
    client: TestClient, message: Any, error: str
) -> None:
    with client.websocket_connect("/api/jam") as socket:
        receive(socket, "status")
        if isinstance(message, str):
            socket.send_text(message)
        else:
            socket.send_json(message)
        reply = receive(socket, "error")
        assert error in reply["message"], reply["message"]
        # Still open, and nothing was started.
        socket.send_json({"type": "pause"})
        assert "send a start message" in receive(socket, "error")["message"]


def test_bad_steering_mid_jam_changes_nothing(client: TestClient) -> None:
    with client.websocket_connect("/api/jam") as socket:
        socket.send_json(
            {"type": "start", "prompt": "a", "settings": JAM_SETTINGS, "clips_ahead": 1}
        )
        receive(socket, "clip")
        socket.send_json({"type": "played", "index": 5})
        assert "clip 5 has not been sent" in receive(socket, "error")["message"]
        socket.send_json(
            {"type": "settings", "settings": {"seed_image_id": "nope", "denoising": 0.1}}
        )
        assert "unknown seed image 'nope'" in receive(socket, "error")["message"]
        socket.send_bytes(b"\x00")
        assert "JSON text" in receive(socket, "error")["message"]
        socket.send_json({"type": "played", "index": 0})
        clip = receive(socket, "clip")
        assert clip["input"]["start"]["denoising"] == JAM_SETTINGS["denoising"]


def test_jam_waits_for_the_model_and_reports_loading(seed_images: Path, tiny_pipeline: Any) -> None:
    loader = GatedLoader(tiny_pipeline)
    app = create_app(config(seed_images), loader=loader)
    with TestClient(app) as client, client.websocket_connect("/api/jam") as socket:
        socket.send_json({"type": "start", "prompt": "a", "settings": JAM_SETTINGS})
        status = receive_status(socket, prompt=None)
        while status["model"]["stage"] != "downloading":
            status = receive(socket, "status")
        assert status["model"]["status"] == "loading"
        assert status["model"]["progress"] == 0.5
        loader.release()
        assert receive(socket, "clip")["index"] == 0
