"""The jam WebSocket on the tiny checkpoint: clips in order, transitions, acknowledgements,
falling behind, settings, refused messages, and the clips' audio as one stitched stream."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile
from fastapi.testclient import TestClient
from PIL import Image
from server_support import (
    TINY_SEED_ID,
    TINY_SEED_SIZE,
    GatedLoader,
    config,
    live_server,
    write_seed_images,
)
from starlette.testclient import WebSocketTestSession
from websockets.asyncio.client import connect

from riffusion.errors import RiffusionError
from riffusion.render.joins import Stitcher, with_pre_roll
from riffusion.seeds import load_seed_image
from riffusion.seeds.images import TempoTag, image_timing
from riffusion.seeds.timing import retime_columns
from riffusion.server.app import create_app
from riffusion.server.jam_audio import LEVEL_DB, JamAudioStream, soft_limit
from riffusion.server.schemas import InferenceInputModel
from riffusion.spectrogram.image import mel_amplitudes_from_image

# Quick clips: the 64-px seed, one diffusion step, two clips per sweep.
JAM_SETTINGS = {
    "seed_image_id": TINY_SEED_ID,
    "num_inference_steps": 2,
    "denoising": 0.5,
    "alpha_velocity": 0.5,
    "seed": 7,
}


# A 64-px seed tagged as one beat at 100 BPM: it plays stretched to 60 columns (0.6 s).
TEMPO_SEED_ID = "tiny_tempo_seed"
TEMPO_SEED_COLUMNS = 60
SAMPLE_RATE = 44100
HOP = 441
# Columns the docs/longform.md recipe crossfades loops over (each loop's pre-roll).
LOOP_OVERLAP = 20


@pytest.fixture(scope="module")
def seed_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = write_seed_images(tmp_path_factory.mktemp("jam") / "seeds")
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(TINY_SEED_SIZE[1], TINY_SEED_SIZE[0]), dtype=np.uint8)
    image = Image.fromarray(pixels, mode="L").convert("RGB")
    exif = image.getexif()
    exif[int(TempoTag.BPM)] = 100.0
    exif[int(TempoTag.BEATS)] = 1
    exif[int(TempoTag.BEATS_PER_BAR)] = 1
    image.save(folder / f"{TEMPO_SEED_ID}.png", exif=exif)
    return folder


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
    # The first clip's audio stops where the next clip's crossfade may begin (see the stream test).
    assert clip["image_duration_s"] == pytest.approx(0.64)
    assert 0 < clip["duration_s"] < 0.64
    assert clip["audio"].startswith("data:audio/flac;base64,")
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


# ---------------------------------------------------------------- the audio: one stitched stream


def decoded(clip: dict[str, Any]) -> np.ndarray:
    """The clip's audio, decoded: (channels, frames) float32."""
    flac = base64.b64decode(clip["audio"].removeprefix("data:audio/flac;base64,"))
    samples, rate = soundfile.read(io.BytesIO(flac), dtype="float32", always_2d=True)
    assert rate == SAMPLE_RATE
    return samples.T


def frames(seconds: float) -> int:
    """seconds as a whole number of frames (the messages' times are frames / 44100)."""
    count = round(seconds * SAMPLE_RATE)
    assert abs(seconds * SAMPLE_RATE - count) < 1e-6, seconds
    return count


def reference_pieces(
    pipeline: Any, clips: list[dict[str, Any]], seed_images: Path
) -> tuple[list[np.ndarray], int]:
    """What the clips' audio should be: each image generated again from the clip's input and
    the loops joined by docs/longform.md's recipe (a Stitcher, each loop after the first with a
    0.2 s pre-roll, a tempo-tagged seed stretched to its tempo). Returns (the audio each add()
    made final, the frames still held back at the end)."""
    params = pipeline.spectrogram_params
    stitcher = Stitcher(params, "fast", max_overlap_columns=LOOP_OVERLAP)
    column = 0
    pieces = []
    for index, clip in enumerate(clips):
        inputs = InferenceInputModel.model_validate(clip["input"]).to_inference_input()
        seed = load_seed_image(inputs.seed_image_id, seed_images)
        mel = mel_amplitudes_from_image(pipeline.riffuse(inputs, seed), params)
        timing = image_timing(seed)
        if timing is not None:
            mel = retime_columns(mel, timing.playback_columns)
        pre_roll = LOOP_OVERLAP if index else 0
        pieces.append(stitcher.add(with_pre_roll(mel, pre_roll), column - pre_roll).samples)
        column += mel.shape[-1]
    return pieces, stitcher.finish().num_frames


def test_clip_audio_is_one_stitched_stream_across_transitions_and_settings(
    client: TestClient, seed_images: Path, tiny_pipeline: Any
) -> None:
    with client.websocket_connect("/api/jam") as socket:
        socket.send_json(
            {"type": "start", "prompt": "lofi beat", "settings": JAM_SETTINGS, "clips_ahead": 2}
        )
        # A transition at the first rollover (clip 2) ...
        socket.send_json({"type": "prompt", "prompt": "jazz piano"})
        clips = [receive(socket, "clip"), receive(socket, "clip")]
        # ... and a seed of another tempo and length from clip 2 on.
        socket.send_json({"type": "settings", "settings": {"seed_image_id": TEMPO_SEED_ID}})
        for index in range(2):
            socket.send_json({"type": "played", "index": index})
            clips.append(receive(socket, "clip"))
        # Two ahead of clip 1: nothing more is generated, so the model is free for the reference.
        receive_status(socket, generated=4)

    assert [clip["state"] for clip in clips] == ["SAME_PROMPT"] * 2 + ["TRANSITION"] * 2
    assert [clip["input"]["seed_image_id"] for clip in clips] == [TINY_SEED_ID] * 2 + [
        TEMPO_SEED_ID
    ] * 2
    audio = [decoded(clip) for clip in clips]
    lengths = [piece.shape[-1] for piece in audio]
    assert [frames(clip["duration_s"]) for clip in clips] == lengths

    # Placed as whole loops one after another, the tempo-tagged seed at its tempo.
    widths = [64, 64, TEMPO_SEED_COLUMNS, TEMPO_SEED_COLUMNS]
    assert [frames(clip["image_duration_s"]) for clip in clips] == [w * HOP for w in widths]
    assert [frames(clip["image_start_s"]) for clip in clips] == [
        sum(widths[:index]) * HOP for index in range(4)
    ]
    # Each clip's audio starts exactly where the previous one's ended.
    assert [frames(clip["audio_start_s"]) for clip in clips] == [
        sum(lengths[:index]) for index in range(4)
    ]

    expected, held_back = reference_pieces(tiny_pipeline, clips, seed_images)
    # To the sample: each piece is what the stitcher made final with its clip, and what was
    # sent plus what it still holds back is the whole plan.
    assert lengths == [piece.shape[-1] for piece in expected]
    assert sum(lengths) + held_back == sum(widths) * HOP

    received = np.concatenate(audio, axis=-1)[0]
    reference = np.concatenate(expected, axis=-1)[0]
    # The session's gain puts the first piece's peak at -3 dBFS; louder peaks later are bent by
    # the limiter above that, so compare where the stream is linear.
    gain = 10 ** (-3 / 20) / np.abs(expected[0]).max()
    linear = np.abs(reference * gain) < 0.7
    assert linear.mean() > 0.9
    error = np.abs(received - reference * gain)[linear]
    assert error.max() < 1e-4, f"stream differs from the stitched reference by {error.max():.2g}"
    assert np.abs(received).max() < 1.0
    # No discontinuity where one clip's audio meets the next: the sample step across each
    # boundary is the stitched waveform's own.
    steps = np.diff(received)
    reference_steps = np.diff(reference * gain)
    for boundary in np.cumsum(lengths)[:-1]:
        assert steps[boundary - 1] == pytest.approx(reference_steps[boundary - 1], abs=1e-4)


def test_a_new_start_begins_a_new_stream(client: TestClient) -> None:
    start = {"type": "start", "prompt": "drums", "settings": JAM_SETTINGS, "clips_ahead": 1}
    with client.websocket_connect("/api/jam") as socket:
        socket.send_json(start)
        first = receive(socket, "clip")
        socket.send_json({"type": "played", "index": 0})
        second = receive(socket, "clip")
        assert frames(second["audio_start_s"]) == decoded(first).shape[-1]
        receive_status(socket, generated=2)

        socket.send_json(start)
        again = receive(socket, "clip")
    # The same jam from the start: a fresh stitcher gives exactly the same first piece.
    assert again["index"] == 0
    assert again["audio_start_s"] == 0 and again["image_start_s"] == 0
    assert again["audio"] == first["audio"]


def test_the_stream_level_is_set_by_its_first_sound_and_limited_softly(
    tiny_pipeline: Any,
) -> None:
    params = tiny_pipeline.spectrogram_params
    stream = JamAudioStream(params)
    inputs = InferenceInputModel.model_validate(
        {"alpha": 0.5, "start": {"prompt": "a", "seed": 1}, "end": {"prompt": "a", "seed": 2}}
    ).to_inference_input()
    silence = Image.new("RGB", TINY_SEED_SIZE, "white")
    rng = np.random.default_rng(2)
    noise = Image.fromarray(rng.integers(0, 200, (512, 64), dtype=np.uint8)).convert("RGB")
    first = stream.add(silence, silence, inputs)
    assert not first.audio.samples.any()
    # The first piece with sound sets the gain: its peak lands on the level.
    second = stream.add(noise, noise, inputs)
    assert np.abs(second.audio.samples).max() == pytest.approx(10 ** (LEVEL_DB / 20), rel=1e-5)
    assert second.start == first.audio.num_frames

    threshold = 10 ** (LEVEL_DB / 20)
    ramp = np.linspace(-4, 4, 80001, dtype=np.float32)
    limited = soft_limit(ramp, threshold)
    quiet = np.abs(ramp) <= threshold
    assert np.array_equal(limited[quiet], ramp[quiet])
    assert np.abs(limited).max() <= 1.0
    assert soft_limit(np.float32([1.0]), threshold)[0] < 0.97
    # Monotonic, and never steeper than the input: a continuous waveform stays continuous.
    steps = np.diff(limited)
    assert (steps >= 0).all() and steps.max() <= np.diff(ramp).max() * (1 + 1e-4)


def test_a_client_that_leaves_while_answered_ends_its_session_quietly(seed_images: Path) -> None:
    """A client that sends a message and closes at once: the reply finds the connection closed,
    and that ends the session, with nothing in the server's log (the soak benchmark found a
    traceback there for every second such client)."""

    def broken(progress: Any) -> Any:
        raise RiffusionError("no model needed here")

    app = create_app(config(seed_images), loader=broken)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    async def send_and_leave(url: str) -> None:
        async with connect(url.replace("http://", "ws://") + "/api/jam") as socket:
            await socket.recv()
            await socket.send(json.dumps({"type": "pause"}))  # answered with an error message

    with live_server(app) as url:
        # Added once uvicorn has set up its loggers, which drops handlers added before.
        server_log = logging.getLogger("uvicorn.error")
        handler = Keep()
        server_log.addHandler(handler)
        try:
            for _ in range(20):
                asyncio.run(send_and_leave(url))
            assert httpx.get(f"{url}/health", timeout=5).status_code == 200
        finally:
            server_log.removeHandler(handler)
    assert [record.getMessage() for record in records if record.levelno >= logging.ERROR] == []
