"""Hostile inputs to the server: an image whose MAX_VALUE overflows (it aborted the whole server in
the MP3 encoder) and prompt weights that turn the embeddings to NaN (a black image and full-scale
noise, answered 200)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from server_support import config, inference_json, ready_loader, write_seed_images

from riffusion.server.app import create_app
from riffusion.spectrogram.params import ExifTag


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, tiny_pipeline: Any) -> Iterator[TestClient]:
    seeds = write_seed_images(tmp_path_factory.mktemp("hostile") / "seeds")
    app = create_app(config(seeds), loader=ready_loader(tiny_pipeline))
    with TestClient(app) as client:
        app.state.model.wait(30)
        yield client


def _png_data_url(image: Image.Image, exif: Image.Exif | None = None) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **({"exif": exif} if exif is not None else {}))
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize("max_value", [1e38, 1e308])
def test_an_image_with_an_overflowing_max_value_is_played_as_if_untagged(
    client: TestClient, max_value: float
) -> None:
    """The studio's audio is peak-normalised, so it ignores the tag that once overflowed to
    infinity and aborted the server in the MP3 encoder."""
    image = Image.new("L", (128, 512), 0)
    image.paste(200, (0, 300, 128, 310))
    exif = image.getexif()
    exif[int(ExifTag.MAX_VALUE)] = max_value
    tagged = client.post("/api/image_to_audio", json={"image": _png_data_url(image, exif)})
    untagged = client.post("/api/image_to_audio", json={"image": _png_data_url(image)})
    assert tagged.status_code == 200, tagged.text
    assert tagged.json() == untagged.json()
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("(a:10000000000000000)", "weight 1e+16 of 'a' is out of range"),
        ("(" * 499 + "a" + ")" * 499, "brackets nest 499 deep"),
    ],
)
def test_prompt_weights_beyond_the_limits_answer_400(
    client: TestClient, prompt: str, message: str
) -> None:
    body = inference_json()
    body["start"]["prompt"] = prompt
    response = client.post("/run_inference/", json=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]
