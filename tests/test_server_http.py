"""The server's HTTP conduct on the tiny checkpoint: what the original web app sends (an empty
mask id, alpha a hair above 1, 1.0 for integers, bodies of any Content-Type), bodies that are
not JSON or too large, methods and HEAD, the JSON error of every failure (a full disk, an
unexpected exception), and `serve --max-steps`."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from server_support import (
    TINY_MASK_ID,
    TINY_SEED_ID,
    config,
    inference_json,
    live_server,
    ready_loader,
    write_seed_images,
)
from test_server_api import png_data_url, wav_data_url

from riffusion.server.app import create_app
from riffusion.server.limits import FRACTION_TOLERANCE, MAX_DATA_URL_CHARS
from riffusion.server.schemas import InferenceInputModel, JamSettingsModel
from riffusion.server.worker import REQUESTED_STEPS_HEADER, STEPS_HEADER

# Where a sum of float steps ends instead of at 1, as the original web app's alpha does: 0.05
# added twenty times, for one.
ALPHA_JUST_ABOVE_1 = sum([0.05] * 20)
JAM_SETTINGS = {
    "seed_image_id": TINY_SEED_ID,
    "num_inference_steps": 2,
    "denoising": 0.5,
    "alpha_velocity": 0.5,
    "seed": 7,
}


@pytest.fixture(scope="module")
def seed_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_seed_images(tmp_path_factory.mktemp("http") / "seeds")


@pytest.fixture(scope="module")
def client(seed_images: Path, tiny_pipeline: Any) -> Iterator[TestClient]:
    """A server with the tiny model loaded and the web app at /; exceptions answer as they
    would to a real client instead of being raised in the test."""
    app = create_app(config(seed_images), loader=ready_loader(tiny_pipeline))
    with TestClient(app, raise_server_exceptions=False) as client:
        app.state.model.wait(30)
        yield client


def image_of(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["image"]


# --- What the original web app sends ----------------------------------------------------------


def test_an_empty_mask_id_means_no_mask(client: TestClient) -> None:
    # The app sends "" for ?maskImageId=none.
    unmasked = image_of(client.post("/run_inference/", json=inference_json(mask_image_id=None)))
    empty = image_of(client.post("/run_inference/", json=inference_json(mask_image_id="")))
    masked = image_of(
        client.post("/run_inference/", json=inference_json(mask_image_id=TINY_MASK_ID))
    )
    assert empty == unmasked
    assert masked != unmasked


def test_an_empty_mask_id_in_jam_settings_means_no_mask(client: TestClient) -> None:
    with client.websocket_connect("/api/jam") as socket:
        settings = {**JAM_SETTINGS, "mask_image_id": ""}
        socket.send_json({"type": "start", "prompt": "jazz", "settings": settings})
        while (message := socket.receive_json())["type"] != "clip":
            assert message["type"] == "status", message
        assert message["input"]["mask_image_id"] is None


def test_alpha_a_hair_above_1_is_taken_as_1(client: TestClient) -> None:
    assert ALPHA_JUST_ABOVE_1 == 1.0000000000000002
    exact = image_of(client.post("/run_inference/", json=inference_json(alpha=1.0)))
    summed = image_of(client.post("/run_inference/", json=inference_json(alpha=ALPHA_JUST_ABOVE_1)))
    assert summed == exact


@pytest.mark.parametrize(
    ("field", "value", "taken"),
    [
        ("alpha", 1 + FRACTION_TOLERANCE / 2, 1.0),
        ("alpha", -FRACTION_TOLERANCE / 2, 0.0),
        ("start.denoising", 1 + FRACTION_TOLERANCE, 1.0),
        ("end.denoising", -FRACTION_TOLERANCE, 0.0),
    ],
)
def test_fractions_within_the_tolerance_are_clamped(field: str, value: float, taken: float) -> None:
    body = inference_json()
    *parents, last = field.split(".")
    target = body
    for name in parents:
        target = target[name]
    target[last] = value
    model = InferenceInputModel.model_validate(body)
    held = model
    for name in parents:
        held = getattr(held, name)
    assert getattr(held, last) == taken
    model.to_inference_input()  # the pipeline's own checks take it

    target[last] = taken + (2 if taken else -2) * FRACTION_TOLERANCE
    with pytest.raises(ValueError, match=last):
        InferenceInputModel.model_validate(body)


def test_jam_fractions_within_the_tolerance_are_clamped() -> None:
    settings = JamSettingsModel.model_validate(
        {"alpha_velocity": ALPHA_JUST_ABOVE_1, "denoising": ALPHA_JUST_ABOVE_1}
    )
    assert settings.changes() == {"alpha_velocity": 1.0, "denoising": 1.0}
    with pytest.raises(ValueError, match="alpha_velocity"):
        JamSettingsModel.model_validate({"alpha_velocity": 0.0})


def test_integral_floats_are_integers(client: TestClient) -> None:
    whole = image_of(client.post("/run_inference/", json=inference_json()))
    body = inference_json(num_inference_steps=2.0)
    body["start"]["seed"] = 42.0
    body["end"]["seed"] = 1.23e2
    assert image_of(client.post("/run_inference/", json=body)) == whole

    schema = client.get("/openapi.json").json()
    inference = schema["components"]["schemas"]["InferenceInputModel"]
    assert inference["properties"]["num_inference_steps"]["type"] == "integer"


@pytest.mark.parametrize("value", [2.5, "2", True, float("inf")])
def test_integer_fields_still_refuse_what_is_not_a_whole_number(
    client: TestClient, value: Any
) -> None:
    body = json.dumps(inference_json(num_inference_steps=value))
    response = client.post(
        "/run_inference/", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert "num_inference_steps" in response.json()["message"]


def test_jam_integers_take_integral_floats(client: TestClient) -> None:
    with client.websocket_connect("/api/jam") as socket:
        settings = {**JAM_SETTINGS, "num_inference_steps": 2.0, "seed": 7.0}
        socket.send_json(
            {"type": "start", "prompt": "jazz", "settings": settings, "clips_ahead": 1.0}
        )
        while (message := socket.receive_json())["type"] != "clip":
            assert message["type"] == "status", message
        assert message["input"]["num_inference_steps"] == 2
        assert message["input"]["start"]["seed"] == 7
        socket.send_json({"type": "played", "index": 0.0})
        while (message := socket.receive_json())["type"] != "status" or message["played"] != 0:
            assert message["type"] in ("status", "clip"), message


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded"],
)
def test_bodies_are_json_whatever_their_content_type(
    client: TestClient, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    body = json.dumps(inference_json()).encode()
    response = client.post("/run_inference/", content=body, headers=headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "Expecting value"),
        (b'{"alpha": 0.5', "Expecting ','"),
        (b"\xff\xfe{}", ""),
    ],
    ids=["text", "cut", "not-utf8"],
)
def test_a_body_that_is_not_json_answers_400(client: TestClient, raw: bytes, reason: str) -> None:
    for content_type in ("application/json", "text/plain"):
        response = client.post(
            "/run_inference/", content=raw, headers={"content-type": content_type}
        )
        assert response.status_code == 400, response.text
        message = response.json()["message"]
        assert "JSON" in message and reason in message, message


# --- serve --max-steps ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def capped(seed_images: Path, tiny_pipeline: Any) -> Iterator[TestClient]:
    """A server that runs at most 1 diffusion step per clip."""
    app = create_app(config(seed_images, max_steps=1), loader=ready_loader(tiny_pipeline))
    with TestClient(app) as client:
        app.state.model.wait(30)
        yield client


def test_max_steps_cuts_the_steps_and_says_so(client: TestClient, capped: TestClient) -> None:
    cut = capped.post("/run_inference/", json=inference_json(num_inference_steps=2))
    assert cut.headers[STEPS_HEADER] == "1"
    assert cut.headers[REQUESTED_STEPS_HEADER] == "2"
    # The same clip as one asked with 1 step.
    one_step = client.post("/run_inference/", json=inference_json(num_inference_steps=1))
    assert image_of(cut) == image_of(one_step)
    assert one_step.headers[STEPS_HEADER] == "1"
    assert REQUESTED_STEPS_HEADER not in one_step.headers
    # Browsers may read both headers across origins.
    preflight = capped.post(
        "/run_inference/",
        json=inference_json(num_inference_steps=1),
        headers={"origin": "http://localhost:3000"},
    )
    exposed = preflight.headers["access-control-expose-headers"].lower()
    assert STEPS_HEADER.lower() in exposed and REQUESTED_STEPS_HEADER.lower() in exposed


def test_max_steps_applies_to_audio_to_audio(capped: TestClient) -> None:
    body = {"audio": wav_data_url(0.7), "prompt": "jazz", "seed": 3, "denoising": 1.0}
    response = capped.post("/api/audio_to_audio", json=body)
    assert response.status_code == 200, response.text
    assert response.headers[STEPS_HEADER] == "1"
    assert response.headers[REQUESTED_STEPS_HEADER] == "50"


def test_max_steps_applies_to_jam_clips(capped: TestClient) -> None:
    with capped.websocket_connect("/api/jam") as socket:
        socket.send_json({"type": "start", "prompt": "jazz", "settings": JAM_SETTINGS})
        while (message := socket.receive_json())["type"] != "clip":
            assert message["type"] == "status", message
        assert message["input"]["num_inference_steps"] == 1
        assert message["requested_steps"] == 2


def test_uncapped_jam_clips_say_nothing_of_requested_steps(client: TestClient) -> None:
    with client.websocket_connect("/api/jam") as socket:
        socket.send_json({"type": "start", "prompt": "jazz", "settings": JAM_SETTINGS})
        while (message := socket.receive_json())["type"] != "clip":
            assert message["type"] == "status", message
        assert message["input"]["num_inference_steps"] == 2
        assert message["requested_steps"] is None


def test_serve_takes_max_steps_and_max_body(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from riffusion.cli.main import cli

    served: dict[str, Any] = {}
    monkeypatch.setattr("riffusion.server.app.create_app", lambda config: config)
    monkeypatch.setattr("uvicorn.run", lambda config, **_: served.setdefault("config", config))
    result = CliRunner().invoke(cli, ["serve", "--max-steps", "20", "--max-body-mb", "2.5"])
    assert result.exit_code == 0, result.output
    assert served["config"].max_steps == 20
    assert served["config"].max_body_bytes == int(2.5 * 2**20)

    result = CliRunner().invoke(cli, ["serve", "--max-steps", "0"])
    assert result.exit_code != 0 and "--max-steps" in result.output


# --- Body size --------------------------------------------------------------------------------


def raw_exchange(url: str, head: bytes, body: bytes = b"", timeout_s: float = 10.0) -> bytes:
    """Send a request's head and the start of its body over a socket; the response's bytes (a
    socket.timeout if none comes, as when the server waits for the rest of the body)."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=timeout_s) as conn:
        conn.sendall(head + body)
        received = b""
        while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def test_a_body_larger_than_the_limit_answers_413_before_it_is_read(
    seed_images: Path, tiny_pipeline: Any
) -> None:
    app = create_app(config(seed_images), loader=ready_loader(tiny_pipeline))
    with live_server(app) as url:
        # 50 MB announced; not a byte of it sent.
        head = (
            b"POST /run_inference/ HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50000000\r\n\r\n"
        )
        response = raw_exchange(url, head)
        assert response.startswith(b"HTTP/1.1 413 "), response[:200]
        error = json.loads(response.split(b"\r\n\r\n", 1)[1])
        assert "18 MB" in error["message"]
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200


def test_a_streamed_body_is_cut_off_at_the_limit(seed_images: Path, tiny_pipeline: Any) -> None:
    app = create_app(
        config(seed_images, max_body_bytes=64 * 1024), loader=ready_loader(tiny_pipeline)
    )
    with live_server(app) as url:
        head = (
            b"POST /api/image_to_audio HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        # More than the limit in chunks, and no final chunk: the server must not wait for it.
        chunk = b"x" * 16384
        body = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 5
        response = raw_exchange(url, head, body)
        assert response.startswith(b"HTTP/1.1 413 "), response[:200]
        assert "0.0625 MB" in json.loads(response.split(b"\r\n\r\n", 1)[1])["message"]


def test_the_default_limit_takes_the_largest_upload(client: TestClient) -> None:
    # The longest data URL the studio takes gets as far as the studio's own checks.
    image = "data:image/png;base64," + "A" * (MAX_DATA_URL_CHARS - 22)
    response = client.post("/api/image_to_audio", json={"image": image})
    assert response.status_code == 400
    assert "larger than 12 MB" in response.json()["message"]


# --- Methods ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "GET"])
def test_post_routes_answer_405_with_their_allow(client: TestClient, method: str) -> None:
    for path in ("/run_inference/", "/run_inference", "/api/audio_to_audio"):
        response = client.request(method, path)
        assert response.status_code == 405, (method, path, response.text)
        assert response.headers["allow"] == "POST"
        assert response.json()["message"] == "Method Not Allowed"


def test_get_routes_answer_head_and_405_with_their_allow(client: TestClient) -> None:
    for path in ("/health", "/api/seeds", f"/api/seeds/{TINY_SEED_ID}.png"):
        got = client.get(path)
        head = client.head(path)
        assert head.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]
        assert head.headers["content-length"] == str(len(got.content))

        response = client.post(path, json={})
        assert response.status_code == 405, path
        assert response.headers["allow"] == "GET, HEAD"
    assert client.head("/api/seeds/nope.png").status_code == 404


def test_the_web_app_answers_for_its_files_only(client: TestClient) -> None:
    assert client.get("/").headers["content-type"].startswith("text/html")
    assert client.head("/").status_code == 200
    response = client.put("/index.html")
    assert response.status_code == 405 and response.headers["allow"] == "GET, HEAD"
    missing = client.get("/nope.js")
    assert missing.status_code == 404 and missing.json()["message"] == "Not Found"


# --- Every error is the JSON error ------------------------------------------------------------


def test_a_full_disk_answers_507(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("riffusion.server.studio.tempfile.TemporaryDirectory", no_space)
    body = {"audio": wav_data_url(0.7), "prompt": "jazz", "seed": 3, "num_inference_steps": 2}
    response = client.post("/api/audio_to_audio", json=body)
    assert response.status_code == 507
    assert "disk is full" in response.json()["message"]


@pytest.mark.parametrize("error", [RuntimeError("secret"), OSError(errno.EIO, "I/O error")])
def test_unexpected_errors_answer_a_json_500_and_are_logged(
    seed_images: Path,
    tiny_pipeline: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
) -> None:
    app = create_app(config(seed_images), loader=ready_loader(tiny_pipeline))

    def broken(*args: Any) -> Any:
        raise error

    monkeypatch.setattr(app.state.library, "images", broken)
    with contextlib.ExitStack() as cleanup:
        url = cleanup.enter_context(live_server(app))
        # uvicorn's loggers (set up as its server starts) do not pass records on to the root
        # logger, where caplog listens.
        server_log = logging.getLogger("uvicorn.error")
        server_log.addHandler(caplog.handler)
        cleanup.callback(server_log.removeHandler, caplog.handler)
        app.state.model.wait(30)
        response = httpx.post(f"{url}/run_inference/", json=inference_json(), timeout=30)
        assert response.status_code == 500
        message = response.json()["message"]
        assert type(error).__name__ in message and "secret" not in message
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200
    logged = [record for record in caplog.records if record.exc_info]
    assert any(record.exc_info and record.exc_info[1] is error for record in logged)


def test_image_to_audio_takes_png_data_urls_of_any_content_type(client: TestClient) -> None:
    drawn = png_data_url(Image.new("L", (64, 512), 255))
    response = client.post(
        "/api/image_to_audio",
        content=json.dumps({"image": drawn}),
        headers={"content-type": "text/plain"},
    )
    assert response.status_code == 200, response.text
