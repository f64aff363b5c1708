"""Property-based tests of the server over real HTTP, on the tiny checkpoint with one diffusion
step per clip (serve --max-steps 1):

- the API against its own OpenAPI schema (schemathesis): no 5xx, and every response, errors
  included, is one the schema documents, in status, content type, headers and body;
- the studio's endpoints fed generated and mutated PNG, JPEG, WAV, FLAC and MP3 files as data
  URLs (hypothesis): only clean 4xx errors, no 5xx, no crash, no hang.

Both are bounded (examples per operation, a timeout per request) to run in well under a minute.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import schemathesis
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis.config import SchemathesisConfig
from server_support import (
    TINY_MASK_ID,
    TINY_SEED_ID,
    config,
    live_server,
    ready_loader,
    write_seed_images,
)

from riffusion.server.app import create_app
from riffusion.spectrogram.params import ExifTag

# Seconds a request may take before the server counts as hung: a clip of the tiny model at one
# step takes well under one, a 2-core machine under load a few.
REQUEST_TIMEOUT_S = 30.0
# What the studio may answer to any upload: a result, or a clean refusal.
CLEAN_STATUSES = {200, 400, 413, 422}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_pipeline: Any) -> Iterator[str]:
    """The app on the tiny model, one diffusion step per clip, over real HTTP; its base URL."""
    seeds = write_seed_images(tmp_path_factory.mktemp("properties") / "seeds")
    app = create_app(config(seeds, max_steps=1), loader=ready_loader(tiny_pipeline))
    with live_server(app) as url:
        app.state.model.wait(30)
        yield url


# --- The API against its OpenAPI schema -------------------------------------------------------


# The schema of an app made for it alone (the schema depends on no setting), so that the tests
# can be generated when the module loads; test_the_served_schema_is_the_one_tested checks it.
OPENAPI = create_app().openapi()
API_CONFIG = SchemathesisConfig.from_dict(
    {
        # Hypothesis's examples, valid and invalid, in a number that keeps the test within a
        # minute. The coverage phase's boundary values would add some 200 generations.
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
        "generation": {"mode": "all", "max-examples": 15, "deterministic": True},
        "checks": {
            # Not asked of the server: that every schema-valid request succeeds. Seed and mask
            # ids are any string to the schema (the library's ids are not in it), and unknown
            # ones answer 400; seeds near 2**64 pass a validator that compares as floats
            # (2**64 + 384 "equals" the maximum) and answer 422.
            "positive_data_acceptance": {"enabled": False},
        },
    }
)
api = schemathesis.openapi.from_dict(OPENAPI, config=API_CONFIG)


def test_the_served_schema_is_the_one_tested(server: str) -> None:
    assert httpx.get(f"{server}/openapi.json", timeout=5).json() == OPENAPI


@api.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_every_response_is_documented_and_none_is_a_server_error(case: Any, server: str) -> None:
    body = case.body
    # Generations start from the 64-px seed (a fraction of a second each) where they would start
    # from the default og_beat (512 px).
    if (
        case.operation.path == "/run_inference/"
        and isinstance(body, dict)
        and body.get("seed_image_id", "og_beat") == "og_beat"
    ):
        body["seed_image_id"] = TINY_SEED_ID
    case.call_and_validate(base_url=server, timeout=REQUEST_TIMEOUT_S)


_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
_PATH_PARAMETERS = {"seed_id": TINY_SEED_ID, "mask_id": TINY_MASK_ID}


def test_every_route_answers_for_each_method(server: str) -> None:
    """Each path of the schema answers HEAD where it answers GET, and every method it does not
    document with 405, its own Allow header and the JSON error."""
    for template, operations in OPENAPI["paths"].items():
        url = server + template.format(**_PATH_PARAMETERS)
        allowed = {method.upper() for method in operations}
        if "GET" in allowed:
            allowed.add("HEAD")
            got = httpx.get(url, timeout=REQUEST_TIMEOUT_S)
            head = httpx.head(url, timeout=REQUEST_TIMEOUT_S)
            assert (head.status_code, head.content) == (got.status_code, b""), url
        for method in set(_METHODS) - allowed:
            response = httpx.request(method, url, timeout=REQUEST_TIMEOUT_S)
            assert response.status_code == 405, (method, url, response.status_code)
            assert set(response.headers["allow"].split(", ")) == allowed, (method, url)
            if method != "HEAD":
                assert response.json()["message"] == "Method Not Allowed"


# --- Media for the studio ---------------------------------------------------------------------

_SPECTROGRAM_HEIGHT = 512
# MAX_VALUE tags as uploads may carry them: the original's, absurd, and not numbers at all.
_MAX_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([15e6, 1e38, 1e308, -1.0, 0.0]),
)


@st.composite
def images(draw: st.DrawFn) -> tuple[str, bytes]:
    """(MIME type, a PNG or JPEG file): mostly spectrogram-sized, some with EXIF tags."""
    image_format = draw(st.sampled_from(["PNG", "JPEG"]))
    modes = (
        ["L", "RGB", "RGBA", "P", "I;16", "1"] if image_format == "PNG" else ["L", "RGB", "CMYK"]
    )
    mode = draw(st.sampled_from(modes))
    # Mostly sizes the endpoint converts, so that most files go the whole way to the encoder.
    width = draw(st.sampled_from([64, 100, 160, 1, 21, 22]))
    height = draw(st.sampled_from([_SPECTROGRAM_HEIGHT] * 4 + [1, 513]))
    seed = draw(st.integers(0, 2**32 - 1))
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)
    image = Image.fromarray(pixels, "L").convert(mode)
    exif = image.getexif()
    if draw(st.booleans()):
        exif[int(ExifTag.MAX_VALUE)] = draw(_MAX_VALUES)
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, exif=exif)
    return f"image/{image_format.lower()}", buffer.getvalue()


_AUDIO_FORMATS = {
    "WAV": ("audio/wav", ["PCM_16", "PCM_24", "FLOAT", "PCM_U8"]),
    "FLAC": ("audio/flac", ["PCM_16", "PCM_24"]),
    "MP3": ("audio/mpeg", ["MPEG_LAYER_III"]),
}


@st.composite
def audio_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """(MIME type, a WAV, FLAC or MP3 file) of 0.02 to 1.2 s, some with samples beyond full
    scale, infinite or NaN (where the format keeps them)."""
    file_format = draw(st.sampled_from(sorted(_AUDIO_FORMATS)))
    mime, subtypes = _AUDIO_FORMATS[file_format]
    subtype = draw(st.sampled_from(subtypes))
    rate = draw(st.sampled_from([8000, 22050, 32000, 44100, 48000]))
    channels = draw(st.integers(1, 3 if file_format == "WAV" else 2))
    # Mostly lengths the endpoint takes (0.64 s to 10.24 s).
    frames = round(rate * draw(st.sampled_from([0.7, 0.9, 1.2, 0.02, 0.3])))
    seed = draw(st.integers(0, 2**32 - 1))
    samples = np.random.default_rng(seed).uniform(-1, 1, (frames, channels)).astype(np.float32)
    samples *= draw(st.sampled_from([1.0, 0.0, 1e-6, 4.0]))
    if subtype == "FLOAT" and draw(st.booleans()):
        samples[:: max(1, frames // 7)] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 3e38]))
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format=file_format, subtype=subtype)
    return mime, buffer.getvalue()


@st.composite
def mutated(draw: st.DrawFn, files: st.SearchStrategy[tuple[str, bytes]]) -> tuple[str, bytes]:
    """A file from files, maybe damaged: bytes flipped, cut off, inserted or repeated."""
    mime, data = draw(files)
    for _ in range(draw(st.integers(0, 3))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert", "repeat", "zero"]))
        if action == "flip":
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
        elif action == "cut":
            data = data[:at]
        elif action == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:]
        elif action == "repeat":
            data = data[:at] + data[at : at + 256] * draw(st.integers(2, 4)) + data[at:]
        else:
            data = data[:at] + bytes(min(64, len(data) - at)) + data[at + 64 :]
    # The client's MIME type need not be the file's.
    mime = draw(st.sampled_from([mime, mime, "audio/wav", "image/png", "application/octet-stream"]))
    return mime, data


def data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def post(server: str, path: str, body: dict[str, Any]) -> httpx.Response:
    """POST body; a ReadTimeout here is a hung server, a connection error a dead one."""
    response = httpx.post(f"{server}{path}", json=body, timeout=REQUEST_TIMEOUT_S)
    assert response.status_code in CLEAN_STATUSES, (response.status_code, response.text[:500])
    assert response.headers["content-type"] == "application/json"
    assert response.json()["message" if response.status_code != 200 else "audio"]
    return response


_FUZZ_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


@_FUZZ_SETTINGS
@given(upload=mutated(st.one_of(images(), audio_files())))
def test_image_to_audio_answers_any_upload_cleanly(server: str, upload: tuple[str, bytes]) -> None:
    post(server, "/api/image_to_audio", {"image": data_url(*upload)})


@_FUZZ_SETTINGS
@given(upload=mutated(st.one_of(audio_files(), audio_files(), images())))
def test_audio_to_audio_answers_any_upload_cleanly(server: str, upload: tuple[str, bytes]) -> None:
    body = {"audio": data_url(*upload), "prompt": "jazz", "seed": 1, "denoising": 0.5}
    post(server, "/api/audio_to_audio", body)


def test_an_upload_whose_exif_overflows_is_converted(server: str) -> None:
    # A MAX_VALUE of 1e38 once overflowed to infinity and ended the server in the MP3 encoder.
    image = Image.new("L", (64, _SPECTROGRAM_HEIGHT), 128)
    exif = image.getexif()
    exif[int(ExifTag.MAX_VALUE)] = 1e38
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=exif)
    response = post(
        server, "/api/image_to_audio", {"image": data_url("image/png", buffer.getvalue())}
    )
    assert response.status_code == 200
    assert httpx.get(f"{server}/health", timeout=5).json()["status"] == "ready"


def test_studio_inputs_reach_the_endpoints(server: str, tmp_path: Path) -> None:
    """The strategies make files the endpoints take, not only ones they refuse."""
    image = Image.new("L", (64, _SPECTROGRAM_HEIGHT), 200)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    assert (
        post(
            server, "/api/image_to_audio", {"image": data_url("image/png", buffer.getvalue())}
        ).status_code
        == 200
    )
    samples = np.random.default_rng(0).uniform(-0.5, 0.5, 44100).astype(np.float32)
    wav = io.BytesIO()
    soundfile.write(wav, samples, 44100, format="WAV")
    body = {"audio": data_url("audio/wav", wav.getvalue()), "prompt": "jazz", "seed": 1}
    assert post(server, "/api/audio_to_audio", body).status_code == 200
