"""`riffusion serve --ray` on a local Ray instance (2 CPUs): the tiny checkpoint on 2 model
replicas behind the ingress. The original API and a jam work through the ingress, clips reach
both replicas, /health lists them, and a jam keeps playing when a replica is killed under it.

One Ray instance and one deployment serve the whole module (starting them takes a while)."""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_support import TINY_SEED_ID, free_port, inference_json, wait_for

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")

from websockets.sync.client import ClientConnection, connect  # noqa: E402

from riffusion.diffusion.model_settings import ModelSettings  # noqa: E402
from riffusion.server.app import ServerConfig  # noqa: E402
from riffusion.server.ray_deployment import (  # noqa: E402
    APP_NAME,
    MODEL_DEPLOYMENT,
    Scaling,
    build_app,
)

pytestmark = pytest.mark.slow

REPLICAS = 2
# Clips slow enough (about a second each on a 2-core CPU) that the replica /health shows busy is
# still rendering one when it is killed.
JAM_SETTINGS = {
    "seed_image_id": TINY_SEED_ID,
    "num_inference_steps": 100,
    "denoising": 1.0,
    "alpha_velocity": 0.5,
    "seed": 7,
}


@pytest.fixture(scope="module")
def ray_server(tiny_checkpoint: Path, seed_images: Path) -> Iterator[str]:
    """The deployment served on a free port; yields its base URL once both replicas are ready."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    port = free_port()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        config = ServerConfig(
            ModelSettings(str(tiny_checkpoint), device="cpu", dtype="float32"),
            seed_images_dir=seed_images,
            max_batch=1,
        )
        serve.run(
            build_app(config, Scaling(replicas=REPLICAS)),
            name=APP_NAME,
            route_prefix="/",
            blocking=False,
        )
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: len(ready_replicas(url)) == REPLICAS, timeout_s=240)
        yield url
    finally:
        serve.shutdown()
        ray.shutdown()


def health(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/health", timeout=10).json()


def ready_replicas(url: str) -> list[dict[str, Any]]:
    try:
        replicas = health(url).get("replicas") or []
    except httpx.HTTPError:
        return []
    return [replica for replica in replicas if replica["status"] == "ready"]


def test_health_lists_the_replicas(ray_server: str) -> None:
    body = health(ray_server)
    assert body["status"] == "ready"
    assert len(body["replicas"]) == REPLICAS
    for replica in body["replicas"]:
        assert replica["status"] == "ready"
        assert replica["device"] == "cpu"
        assert replica["queue"]["capacity"] == ServerConfig().queue_capacity
    assert body["queue"]["capacity"] == REPLICAS * ServerConfig().queue_capacity


def test_run_inference_through_the_ingress_reaches_both_replicas(ray_server: str) -> None:
    before = {replica["id"]: replica["completed"] for replica in health(ray_server)["replicas"]}

    def post(seed: int) -> httpx.Response:
        body = inference_json(start={"prompt": "bells", "seed": seed, "denoising": 0.5})
        return httpx.post(f"{ray_server}/run_inference/", json=body, timeout=120)

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(post, range(8)))
    for response in responses:
        assert response.status_code == 200, response.text
        output = response.json()
        assert output["image"].startswith("data:image/jpeg;base64,")
        assert output["audio"].startswith("data:audio/mpeg;base64,")
        assert len(base64.b64decode(output["audio"].split(",", 1)[1])) > 1000
        assert response.headers["X-Riffusion-Steps"] == "2"

    def served_by_both() -> bool:
        after = {replica["id"]: replica["completed"] for replica in health(ray_server)["replicas"]}
        return all(after[replica] > count for replica, count in before.items())

    wait_for(served_by_both, timeout_s=10)


def test_bad_input_answers_400_through_the_ingress(ray_server: str) -> None:
    body = inference_json(seed_image_id="no_such_seed")
    response = httpx.post(f"{ray_server}/run_inference/", json=body, timeout=60)
    assert response.status_code == 400
    assert "no_such_seed" in response.json()["message"]


def receive_clip(socket: ClientConnection, timeout_s: float = 120) -> dict[str, Any]:
    """The next clip message; fails on an error message."""
    deadline = time.monotonic() + timeout_s
    while True:
        message = json.loads(socket.recv(timeout=max(0.1, deadline - time.monotonic())))
        assert message["type"] != "error", message
        if message["type"] == "clip":
            return message


class Jam:
    """A jam session on its own thread that acknowledges each clip as it comes and keeps them;
    stops at the first error message (kept in failure)."""

    def __init__(self, url: str, prompt: str) -> None:
        self.url = url.replace("http://", "ws://") + "/api/jam"
        self.prompt = prompt
        self.clips: list[dict[str, Any]] = []
        self.failure: BaseException | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with connect(self.url, open_timeout=30) as socket:
                start = {"type": "start", "prompt": self.prompt, "settings": JAM_SETTINGS}
                socket.send(json.dumps(start))
                while not self.done.is_set():
                    clip = receive_clip(socket)
                    self.clips.append(clip)
                    socket.send(json.dumps({"type": "played", "index": clip["index"]}))
        except BaseException as error:
            self.failure = error

    def wait_for_clips(self, count: int) -> None:
        wait_for(lambda: len(self.clips) >= count or self.failure is not None, timeout_s=180)
        assert self.failure is None, self.failure

    def stop(self) -> None:
        self.done.set()
        self.thread.join(60)


def test_jams_keep_playing_when_a_replica_dies(ray_server: str) -> None:
    # Two sessions keep both replicas rendering, so the replica killed has a clip in flight.
    jams = [Jam(ray_server, "lofi"), Jam(ray_server, "jazz")]
    try:
        for jam in jams:
            jam.wait_for_clips(2)
        busy: list[str] = []

        def find_busy() -> bool:
            busy[:] = [r["id"] for r in health(ray_server)["replicas"] if r["running"] > 0]
            return bool(busy)

        wait_for(find_busy, timeout_s=30)
        ray.kill(replica_actor(busy[0]), no_restart=True)
        counts = [len(jam.clips) for jam in jams]
        for jam, count in zip(jams, counts, strict=True):
            jam.wait_for_clips(count + 3)
    finally:
        for jam in jams:
            jam.stop()

    for jam in jams:
        assert [clip["index"] for clip in jam.clips] == list(range(len(jam.clips)))
        # One continuous stream: each clip's audio starts where the previous one's ended.
        for previous, clip in itertools.pairwise(jam.clips):
            end = previous["audio_start_s"] + previous["duration_s"]
            assert clip["audio_start_s"] == pytest.approx(end, abs=1e-3)

    def lost() -> bool:
        replicas = health(ray_server)["replicas"]
        return any(r["id"] == busy[0] and r["status"] == "failed" for r in replicas)

    wait_for(lost, timeout_s=30)


def replica_actor(replica_id: str) -> Any:
    """The Ray actor of the model replica with replica_id."""
    names = [
        actor["name"]
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if MODEL_DEPLOYMENT in actor["name"] and actor["name"].endswith(replica_id)
    ]
    assert len(names) == 1, names
    return ray.get_actor(names[0], namespace="serve")
