"""The server's REST API on the tiny checkpoint: the original JSON in and out, validation, ids,
model states, the queue, the seed endpoints, and `riffusion serve` as a real process."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pytest
import soundfile
from fastapi.testclient import TestClient
from PIL import Image
from server_support import (
    TINY_MASK_ID,
    TINY_SEED_ID,
    TINY_SEED_SIZE,
    GatedLoader,
    GatedPipeline,
    config,
    free_port,
    inference_json,
    live_server,
    ready_loader,
    wait_for,
    write_seed_images,
)

from riffusion import InferenceInput, PromptInput
from riffusion.audio import Audio
from riffusion.errors import RiffusionError
from riffusion.seeds import load_mask_image, load_seed_image
from riffusion.server.app import create_app
from riffusion.server.limits import MAX_PROMPT_CHARS
from riffusion.server.schemas import InferenceInputModel
from riffusion.server.worker import JPEG_QUALITY

JPEG_PREFIX = "data:image/jpeg;base64,"
MP3_PREFIX = "data:audio/mpeg;base64,"


def decode_data_url(url: str, prefix: str) -> bytes:
    assert url.startswith(prefix)
    return base64.b64decode(url[len(prefix) :], validate=True)


# --- The original API -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/run_inference/", "/run_inference"])
def test_original_json_in_original_json_out(client: TestClient, path: str) -> None:
    # Unknown fields are ignored, as the original server did.
    body = inference_json(extra_field="ignored")
    body["start"]["unknown"] = 1
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    output = response.json()
    assert set(output) == {"image", "audio", "duration_s"}

    image = Image.open(io.BytesIO(decode_data_url(output["image"], JPEG_PREFIX)))
    assert image.format == "JPEG"
    assert image.size == TINY_SEED_SIZE

    mp3 = io.BytesIO(decode_data_url(output["audio"], MP3_PREFIX))
    info = soundfile.info(mp3)
    assert info.format == "MP3"
    samples, sample_rate = soundfile.read(mp3)
    expected_s = TINY_SEED_SIZE[0] * 0.01  # 10 ms per column
    assert output["duration_s"] == pytest.approx(expected_s)
    assert len(samples) / sample_rate == pytest.approx(expected_s, abs=0.03)


def jpeg_pixels(image: Image.Image) -> np.ndarray:
    """image as the server sends it (JPEG at the worker's quality), decoded."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return np.asarray(Image.open(buffer))


def test_mask_and_defaults(client: TestClient, seed_images: Path, tiny_pipeline: Any) -> None:
    body = inference_json(mask_image_id=TINY_MASK_ID)
    for prompt in (body["start"], body["end"]):
        del prompt["denoising"], prompt["guidance"]
    response = client.post("/run_inference/", json=body)
    assert response.status_code == 200, response.text
    received = Image.open(io.BytesIO(decode_data_url(response.json()["image"], JPEG_PREFIX)))

    # The clip is the pipeline's for the original app's defaults (denoising 0.75, guidance 7)
    # with the mask drawn for the seed.
    seed = load_seed_image(TINY_SEED_ID, seed_images)
    mask = load_mask_image(TINY_MASK_ID, seed_images, like=seed)
    inputs = InferenceInput(
        PromptInput("church bells", seed=42, denoising=0.75, guidance=7.0),
        PromptInput("jazz with piano", seed=123, denoising=0.75, guidance=7.0),
        alpha=0.5,
        num_inference_steps=2,
    )
    expected = jpeg_pixels(tiny_pipeline.riffuse(inputs, seed, mask))
    assert np.array_equal(np.asarray(received), expected)
    assert not np.array_equal(expected, jpeg_pixels(tiny_pipeline.riffuse(inputs, seed)))


def test_same_request_gives_same_clip(client: TestClient) -> None:
    first = client.post("/run_inference/", json=inference_json()).json()
    second = client.post("/run_inference/", json=inference_json()).json()
    assert first["image"] == second["image"]


# --- Validation -------------------------------------------------------------------------------


def _set(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    target = body
    *parents, last = path.split(".")
    for name in parents:
        target = target[name]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return body


_DELETE = object()

INVALID = [
    ("alpha", -0.01),
    ("alpha", 1.01),
    ("alpha", "0.5"),
    ("alpha", float("nan")),
    ("alpha", _DELETE),
    ("start.denoising", 1.5),
    ("end.denoising", -0.1),
    ("start.guidance", 30.5),
    ("end.guidance", -1),
    ("end.guidance", float("inf")),
    ("num_inference_steps", 0),
    ("num_inference_steps", 151),
    ("num_inference_steps", 2.5),
    ("start.seed", -1),
    ("end.seed", 2**64),
    ("start.seed", "5"),
    ("start.seed", 1.5),
    ("start.seed", True),
    ("start.seed", _DELETE),
    ("start.prompt", "x" * (MAX_PROMPT_CHARS + 1)),
    ("start.prompt", 12),
    ("end.prompt", _DELETE),
    ("start.negative_prompt", "x" * (MAX_PROMPT_CHARS + 1)),
    ("start", _DELETE),
    ("end", "jazz"),
    ("seed_image_id", ""),
    ("seed_image_id", "x" * 101),
    ("mask_image_id", 3),
]


@pytest.mark.parametrize(("field", "value"), INVALID, ids=[f"{f}={v!r:.20}" for f, v in INVALID])
def test_invalid_input_answers_422_naming_the_field(
    client: TestClient, field: str, value: Any
) -> None:
    # Python's json writes NaN and Infinity, as some clients do; httpx's json= would refuse them.
    body = json.dumps(_set(inference_json(), field, value))
    response = client.post(
        "/run_inference/", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    body = response.json()
    assert field in body["message"], body["message"]
    assert any(problem["loc"][1:] == field.split(".") for problem in body["detail"])


@pytest.mark.parametrize("raw", [b"[]", b"null", b"12"], ids=["list", "null", "number"])
def test_bodies_that_are_not_an_object_answer_422(client: TestClient, raw: bytes) -> None:
    response = client.post(
        "/run_inference/", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["message"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("alpha", 0),
        ("alpha", 1),
        ("start.denoising", 0),
        ("end.denoising", 1.0),
        ("start.guidance", 30),
        ("end.guidance", 0),
        ("num_inference_steps", 1),
        ("num_inference_steps", 150),
        ("start.seed", 0),
        ("end.seed", 2**64 - 1),
        ("start.prompt", "x" * MAX_PROMPT_CHARS),
        ("start.prompt", ""),
    ],
)
def test_limits_are_inclusive(field: str, value: Any) -> None:
    model = InferenceInputModel.model_validate(_set(inference_json(), field, value))
    model.to_inference_input()


def test_unknown_seed_and_mask_answer_400_listing_valid_ids(client: TestClient) -> None:
    response = client.post("/run_inference/", json=inference_json(seed_image_id="nope"))
    assert response.status_code == 400
    message = response.json()["message"]
    assert "unknown seed image 'nope'" in message
    assert "og_beat" in message and TINY_SEED_ID in message

    response = client.post("/run_inference/", json=inference_json(mask_image_id="nope"))
    assert response.status_code == 400
    message = response.json()["message"]
    assert "unknown mask 'nope'" in message
    assert "keep-bottom" in message and TINY_MASK_ID in message


TRAVERSALS = [
    "../outside",
    "../../etc/passwd",
    "/etc/passwd",
    "..",
    "./tiny_seed",
    "tiny_seed/../tiny_seed",
    "..\\outside",
    "%2e%2e%2foutside",
    "tiny_seed.png",
    "escape",
]


@pytest.fixture(scope="module")
def traversal_client(tmp_path_factory: pytest.TempPathFactory, tiny_pipeline: Any):
    """A server whose seed folder has a PNG beside it and a symlink leading to it."""
    root = tmp_path_factory.mktemp("traversal")
    seeds = write_seed_images(root / "seeds")
    Image.new("RGB", TINY_SEED_SIZE).save(root / "outside.png")
    (seeds / "escape.png").symlink_to(root / "outside.png")
    app = create_app(config(seeds), loader=ready_loader(tiny_pipeline))
    with TestClient(app) as client:
        app.state.model.wait(30)
        yield client


@pytest.mark.parametrize("seed_id", TRAVERSALS)
def test_traversal_ids_are_refused(traversal_client: TestClient, seed_id: str) -> None:
    for field in ("seed_image_id", "mask_image_id"):
        response = traversal_client.post("/run_inference/", json=inference_json(**{field: seed_id}))
        assert response.status_code == 400, (field, response.text)
        assert "valid ids" in response.json()["message"]
    # Quoted, so that the client sends the id as it is instead of resolving its dot segments.
    assert traversal_client.get(f"/api/seeds/{quote(seed_id, safe='')}.png").status_code == 404
    assert traversal_client.get(f"/api/masks/{quote(seed_id, safe='')}.png").status_code == 404
    listed = [seed["id"] for seed in traversal_client.get("/api/seeds").json()["seeds"]]
    assert seed_id not in listed


def test_encoded_traversal_in_image_urls_is_refused(traversal_client: TestClient) -> None:
    for url in (
        "/api/seeds/..%2Foutside.png",
        "/api/seeds/%2E%2E%2F%2E%2E%2Foutside.png",
        "/api/masks/..%2Foutside.png",
        "/api/masks/keep-bottom.png?seed_image_id=../outside",
    ):
        response = traversal_client.get(url)
        assert response.status_code == 404, url
        assert response.headers["content-type"].startswith("application/json")


# --- Seeds, masks, docs, web app --------------------------------------------------------------


def test_seed_list_and_images(client: TestClient) -> None:
    listing = client.get("/api/seeds").json()
    assert listing["default"] == "og_beat"
    seeds = {seed["id"]: seed for seed in listing["seeds"]}
    assert {"og_beat", TINY_SEED_ID} <= set(seeds)
    assert TINY_MASK_ID not in seeds
    tiny = seeds[TINY_SEED_ID]
    assert (tiny["width"], tiny["height"], tiny["duration_s"]) == (64, 512, 0.64)
    assert tiny["url"] == f"/api/seeds/{TINY_SEED_ID}.png"
    assert seeds["og_beat"]["bpm"] > 0 and seeds["og_beat"]["description"]

    response = client.get(tiny["url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == TINY_SEED_SIZE

    response = client.get("/api/seeds/nope.png")
    assert response.status_code == 404
    assert "valid ids" in response.json()["message"]


def test_mask_list_and_images(client: TestClient) -> None:
    masks = {mask["id"]: mask for mask in client.get("/api/masks").json()["masks"]}
    assert {"keep-bottom", TINY_MASK_ID} <= set(masks)
    response = client.get(f"/api/masks/keep-bottom.png?seed_image_id={TINY_SEED_ID}")
    assert response.status_code == 200
    assert Image.open(io.BytesIO(response.content)).size == TINY_SEED_SIZE
    response = client.get(masks[TINY_MASK_ID]["url"] + f"?seed_image_id={TINY_SEED_ID}")
    assert response.status_code == 200
    assert client.get("/api/masks/nope.png").status_code == 404
    assert client.get("/api/masks/keep-bottom.png?seed_image_id=nope").status_code == 404


def test_openapi_docs(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/run_inference/", "/health", "/api/seeds", "/api/masks"} <= set(schema["paths"])
    assert client.get("/docs").status_code == 200


def test_web_app_is_served_at_root(seed_images: Path, tmp_path: Path, tiny_pipeline: Any) -> None:
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<!doctype html><title>jam</title>")
    app = create_app(config(seed_images, static_dir=static), loader=ready_loader(tiny_pipeline))
    with TestClient(app) as client:
        assert client.get("/").text == "<!doctype html><title>jam</title>"
        assert client.get("/health").status_code == 200

    app = create_app(
        config(seed_images, static_dir=tmp_path / "missing"), loader=ready_loader(tiny_pipeline)
    )
    with TestClient(app) as client:
        response = client.get("/")
        assert response.status_code == 200 and "/docs" in response.text


# --- Model states -----------------------------------------------------------------------------


def test_loading_answers_503_until_ready(seed_images: Path, tiny_pipeline: Any) -> None:
    loader = GatedLoader(tiny_pipeline)
    app = create_app(config(seed_images), loader=loader)
    with TestClient(app) as client:
        wait_for(lambda: client.get("/health").json()["stage"] == "downloading")
        health = client.get("/health").json()
        assert health["status"] == "loading"
        assert health["progress"] == 0.5
        assert health["model"] == "tiny" and health["device"] == "cpu"

        response = client.post("/run_inference/", json=inference_json())
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert "still loading" in response.json()["message"]
        assert response.json()["model"]["status"] == "loading"
        # What needs no model works meanwhile; bad requests are still told what is wrong.
        assert client.get("/api/seeds").status_code == 200
        assert client.post("/run_inference/", json=inference_json(alpha=2)).status_code == 422

        loader.release()
        app.state.model.wait(30)
        health = client.get("/health").json()
        assert health["status"] == "ready" and health["stage"] is None
        assert client.post("/run_inference/", json=inference_json()).status_code == 200


def test_failed_load_keeps_the_server_up_and_says_why(seed_images: Path) -> None:
    def broken(progress: Any) -> Any:
        raise RiffusionError("riffusion/riffusion-model-v1 is not in the Hugging Face cache")

    app = create_app(config(seed_images), loader=broken)
    with TestClient(app) as client:
        app.state.model.wait(30)
        health = client.get("/health")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "failed"
        assert "not in the Hugging Face cache" in body["message"]
        assert "--model" in body["fix"]

        response = client.post("/run_inference/", json=inference_json())
        assert response.status_code == 503
        assert "retry-after" not in response.headers
        assert "failed to load" in response.json()["message"]
        assert client.get("/api/seeds").status_code == 200
        assert client.get(f"/api/seeds/{TINY_SEED_ID}.png").status_code == 200


def test_unexpected_loader_errors_are_reported_too(seed_images: Path) -> None:
    def broken(progress: Any) -> Any:
        raise OSError("disk on fire")

    app = create_app(config(seed_images), loader=broken)
    with TestClient(app) as client:
        app.state.model.wait(30)
        assert "OSError: disk on fire" in client.get("/health").json()["message"]


# --- The queue --------------------------------------------------------------------------------


def test_full_queue_answers_429_with_retry_after(seed_images: Path, tiny_pipeline: Any) -> None:
    gated = GatedPipeline(tiny_pipeline)
    app = create_app(config(seed_images, queue_capacity=1), loader=ready_loader(gated))
    worker = app.state.worker
    with TestClient(app) as client:
        app.state.model.wait(30)
        statuses: list[int] = []

        def post() -> None:
            statuses.append(client.post("/run_inference/", json=inference_json()).status_code)

        running = threading.Thread(target=post)
        running.start()
        assert gated.entered.wait(30)
        waiting = threading.Thread(target=post)
        waiting.start()
        wait_for(lambda: worker.queue_length == 1)

        response = client.post("/run_inference/", json=inference_json())
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
        assert "busy" in response.json()["message"]
        assert client.get("/health").json()["queue"] == {"length": 1, "capacity": 1}

        gated.open()
        running.join(60)
        waiting.join(60)
        assert statuses == [200, 200]


def test_client_that_goes_away_has_its_queued_work_dropped(
    seed_images: Path, tiny_pipeline: Any
) -> None:
    gated = GatedPipeline(tiny_pipeline)
    app = create_app(config(seed_images), loader=ready_loader(gated))
    worker = app.state.worker
    with live_server(app) as url:
        app.state.model.wait(30)
        first = threading.Thread(
            target=lambda: httpx.post(f"{url}/run_inference/", json=inference_json(), timeout=60)
        )
        first.start()
        assert gated.entered.wait(30)
        # This one queues behind the first; its client gives up and closes the connection.
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/run_inference/", json=inference_json(), timeout=1.0)
        wait_for(lambda: worker.dropped == 1, timeout_s=10)
        assert worker.queue_length == 0
        gated.open()
        first.join(60)
        assert worker.completed == 1


# --- `riffusion serve` as a process -----------------------------------------------------------


@pytest.mark.slow  # a fresh interpreter that starts the server, loads the model and generates
def test_riffusion_serve_over_real_http(seed_images: Path, tiny_checkpoint: Path) -> None:
    port = free_port()
    command = [
        *(sys.executable, "-m", "riffusion.cli", "serve", "--port", str(port)),
        *("--model", str(tiny_checkpoint), "--device", "cpu", "--dtype", "float32"),
        *("--seed-images", str(seed_images)),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        status = None
        while status != "ready":
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, f"server not ready; last status {status}"
            with contextlib.suppress(httpx.TransportError):  # not listening yet
                status = httpx.get(f"{url}/health", timeout=5).json()["status"]
            assert status != "failed", httpx.get(f"{url}/health").json()
            time.sleep(0.2)
        response = httpx.post(f"{url}/run_inference/", json=inference_json(), timeout=120)
        assert response.status_code == 200, response.text
        assert response.json()["duration_s"] == pytest.approx(0.64)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- Studio -----------------------------------------------------------------------------------


def png_data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def wav_data_url(duration_s: float) -> str:
    rng = np.random.default_rng(1)
    samples = (0.1 * rng.standard_normal(round(duration_s * 44100))).astype(np.float32)
    wav = Audio(samples, 44100).to_bytes("wav")
    return "data:audio/wav;base64," + base64.b64encode(wav).decode()


def test_image_to_audio_works_without_a_model(seed_images: Path) -> None:
    def broken(progress: Any) -> Any:
        raise RiffusionError("no weights here")

    app = create_app(config(seed_images), loader=broken)
    drawn = Image.new("L", (128, 512), 255)
    drawn.paste(0, (10, 400, 100, 404))  # a drawn line: one low tone, 0.9 s
    with TestClient(app) as client:
        response = client.post("/api/image_to_audio", json={"image": png_data_url(drawn)})
        assert response.status_code == 200, response.text
        output = response.json()
        assert output["duration_s"] == pytest.approx(1.28)
        samples, rate = soundfile.read(io.BytesIO(decode_data_url(output["audio"], MP3_PREFIX)))
        assert len(samples) / rate == pytest.approx(1.28, abs=0.03)
        assert np.abs(samples).max() > 0.1


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("not a data url", "must be a base64 data URL"),
        ("data:image/png;base64,@@@", "malformed"),
        ("data:image/png;base64,", "empty"),
        ("data:image/png;base64," + base64.b64encode(b"hello").decode(), "not an image"),
        (png_data_url(Image.new("L", (64, 300))), "300 px tall"),
        (png_data_url(Image.new("L", (6400, 512))), "6400 px wide"),
    ],
)
def test_image_to_audio_refuses_bad_images(client: TestClient, image: str, message: str) -> None:
    response = client.post("/api/image_to_audio", json={"image": image})
    assert response.status_code == 400
    assert message in response.json()["message"]


def test_audio_to_audio(client: TestClient) -> None:
    body = {
        "audio": wav_data_url(0.7),
        "prompt": "jazz",
        "seed": 3,
        "denoising": 0.5,
        "num_inference_steps": 2,
        "unknown": "ignored",
    }
    response = client.post("/api/audio_to_audio", json=body)
    assert response.status_code == 200, response.text
    output = response.json()
    image = Image.open(io.BytesIO(decode_data_url(output["image"], JPEG_PREFIX)))
    assert image.size == (64, 512)  # 0.7 s is 70 columns, cut to a multiple of 64
    assert output["duration_s"] == pytest.approx(0.64)


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (wav_data_url(0.3), "send at least 0.64 s"),
        (wav_data_url(12.0), "send clips of at most 10.24 s"),
        ("data:audio/wav;base64," + base64.b64encode(b"RIFF1234").decode(), "audio"),
    ],
)
def test_audio_to_audio_refuses_bad_clips(client: TestClient, audio: str, message: str) -> None:
    body = {"audio": audio, "prompt": "jazz", "seed": 3, "num_inference_steps": 2}
    response = client.post("/api/audio_to_audio", json=body)
    assert response.status_code == 400
    assert message in response.json()["message"], response.json()["message"]


def test_serve_takes_the_model_options_of_every_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from riffusion.cli.main import cli
    from riffusion.diffusion.model_settings import ModelSettings

    served: dict[str, Any] = {}
    monkeypatch.setattr("riffusion.server.app.create_app", lambda config: config)
    monkeypatch.setattr("uvicorn.run", lambda config, **_: served.setdefault("config", config))
    result = CliRunner().invoke(
        cli,
        [
            *("serve", "--model", "model.safetensors", "--model-config", "configs"),
            *("--revision", "v2", "--cache-dir", "hub", "--lora", "a", "--lora", "b"),
            *("--lora-scale", "0.5", "--device", "cpu", "--dtype", "float32"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert served["config"].model == ModelSettings(
        model="model.safetensors",
        model_config="configs",
        revision="v2",
        cache_dir=Path("hub"),
        lora=("a", "b"),
        lora_scale=0.5,
        device="cpu",
        dtype="float32",
    )


# --- The original app's seed and mask ids -------------------------------------------------------

ORIGINAL_APP_SEED_IDS = ("og_beat", "agile", "marim", "motorway", "vibes")
ORIGINAL_APP_MASK_IDS = (
    "mask_beat_lines_80",
    "mask_gradient_dark",
    "mask_gradient_top_70",
    "mask_gradient_top_fifth_75",
    "mask_top_third_75",
    "mask_top_third_95",
)


def test_every_seed_and_mask_id_of_the_original_app_is_served(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The original web app (riffusion-app) offers these ids; an unknown one answered 400 and the
    # app died. Each seed is paired with a mask, so six clips cover all eleven ids.
    monkeypatch.setenv("RIFFUSION_CACHE_DIR", str(tmp_path))
    listed_seeds = {seed["id"] for seed in client.get("/api/seeds").json()["seeds"]}
    listed_masks = {mask["id"] for mask in client.get("/api/masks").json()["masks"]}
    assert set(ORIGINAL_APP_SEED_IDS) <= listed_seeds
    assert set(ORIGINAL_APP_MASK_IDS) <= listed_masks
    pairs = zip(ORIGINAL_APP_SEED_IDS * 2, ORIGINAL_APP_MASK_IDS, strict=False)
    for seed_id, mask_id in pairs:
        body = inference_json(seed_image_id=seed_id, mask_image_id=mask_id)
        response = client.post("/run_inference/", json=body)
        assert response.status_code == 200, (seed_id, mask_id, response.text)
        output = response.json()
        image = Image.open(io.BytesIO(decode_data_url(output["image"], JPEG_PREFIX)))
        assert image.size == (512, 512) and output["duration_s"] == pytest.approx(5.12)
