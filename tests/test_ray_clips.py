"""The ingress of `serve --ray` without a Ray instance: the app over RayClips, fed replica reports
by a stand-in board. What /health shows of the replicas, and the 429 / 503 the ingress answers
before any clip leaves it."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from server_support import config, inference_json, wait_for

pytest.importorskip("ray.serve")

from riffusion.errors import RiffusionError
from riffusion.server.app import create_app
from riffusion.server.clip_service import ReplicaState
from riffusion.server.model import ModelNotReady, ModelSnapshot, Status
from riffusion.server.ray_clips import (
    LOST_AFTER_S,
    RayClips,
    ReplicaReply,
    ReplicaReport,
)
from riffusion.server.worker import QueueFull
from riffusion.spectrogram.params import SpectrogramParams

CAPACITY = 4


def report(replica_id: str, status: Status, queue_length: int, retry_after_s: int = 3):
    message = f"{status} on cpu"
    snapshot = ModelSnapshot(status, "tiny", "cpu", "warming up", 0.5, 1.0, message, None)
    state = ReplicaState(replica_id, status, "cpu", message, queue_length, CAPACITY, 0, 5)
    params = SpectrogramParams() if status == "ready" else None
    return ReplicaReport(state, snapshot, retry_after_s, params)


class Board:
    """The replicas' reports as a test sets them, with their ages."""

    def __init__(self) -> None:
        self.posted: list[tuple[ReplicaReport, float]] = []
        self.reads = 0

    async def __call__(self) -> list[tuple[ReplicaReport, float]]:
        self.reads += 1
        return list(self.posted)

    def show(self, client: TestClient, *posted: tuple[ReplicaReport, float]) -> None:
        """Post these reports and wait until the ingress has read them."""
        self.posted = list(posted)
        reads = self.reads
        wait_for(lambda: self.reads >= reads + 2, timeout_s=10)


class NoHandle:
    """A deployment handle that no clip may reach: the ingress refuses them all first."""

    def __getattr__(self, name: str) -> None:
        raise AssertionError(f"a clip reached the replicas ({name})")


@pytest.fixture(scope="module")
def board() -> Board:
    return Board()


@pytest.fixture(scope="module")
def ingress(seed_images: Path, board: Board) -> Iterator[TestClient]:
    clips = RayClips(NoHandle(), board, "tiny", "fast", None)
    with TestClient(create_app(config(seed_images), clips=clips)) as client:
        yield client


def test_health_lists_each_replica(ingress: TestClient, board: Board) -> None:
    board.show(ingress, (report("a", "ready", 1), 0.2), (report("b", "loading", 0), 0.1))
    body = ingress.get("/health").json()
    assert body["status"] == "ready"
    assert body["device"] == "2 replicas (cpu)"
    assert body["queue"] == {"length": 1, "capacity": 2 * CAPACITY}
    assert [(r["id"], r["status"], r["queue"]["length"]) for r in body["replicas"]] == [
        ("a", "ready", 1),
        ("b", "loading", 0),
    ]


def test_a_silent_replica_shows_failed(ingress: TestClient, board: Board) -> None:
    board.show(ingress, (report("a", "ready", 0), 0.2), (report("b", "ready", 0), LOST_AFTER_S))
    replicas = ingress.get("/health").json()["replicas"]
    assert replicas[0]["status"] == "ready"
    assert replicas[1]["status"] == "failed"
    assert "lost" in replicas[1]["message"]


def test_full_queues_answer_429_with_retry_after(ingress: TestClient, board: Board) -> None:
    board.show(
        ingress,
        (report("a", "ready", CAPACITY, retry_after_s=4), 0.1),
        (report("b", "ready", CAPACITY, retry_after_s=2), 0.1),
        (report("c", "loading", 0), 0.1),  # not counted: it takes no clips yet
    )
    response = ingress.post("/run_inference/", json=inference_json())
    assert response.status_code == 429, response.text
    assert response.headers["Retry-After"] == "2"
    assert "busy" in response.json()["message"]


def test_no_ready_replica_answers_503(ingress: TestClient, board: Board) -> None:
    board.show(ingress, (report("a", "loading", 0), 0.1))
    response = ingress.post("/run_inference/", json=inference_json())
    assert response.status_code == 503, response.text
    assert "loading" in response.json()["message"]
    assert response.json()["model"]["stage"] == "warming up"
    assert response.headers["Retry-After"]


def test_failed_replicas_make_the_model_failed(ingress: TestClient, board: Board) -> None:
    board.show(ingress, (report("a", "failed", 0), 0.1))
    body = ingress.get("/health").json()
    assert body["status"] == "failed"
    assert body["fix"]
    assert ingress.post("/run_inference/", json=inference_json()).status_code == 503


def test_replica_refusals_become_the_servers_errors() -> None:
    snapshot = ModelSnapshot("loading", "tiny", "cpu", None, None, 0.0, "loading", None)
    with pytest.raises(QueueFull) as full:
        ReplicaReply("a", "queue_full", retry_after_s=7, capacity=16).result()
    assert full.value.retry_after_s == 7
    with pytest.raises(ModelNotReady):
        ReplicaReply("a", "not_ready", snapshot=snapshot).result()
    with pytest.raises(RiffusionError, match="unusable"):
        ReplicaReply("a", "bad_input", message="unusable input").result()


def test_board_reads_continue_after_a_failed_read(seed_images: Path) -> None:
    import ray

    reads: list[float] = []

    async def flaky() -> list[tuple[ReplicaReport, float]]:
        reads.append(time.monotonic())
        if len(reads) == 1:
            raise ray.exceptions.RayError("board restarting")
        return [(report("a", "ready", 0), 0.1)]

    clips = RayClips(NoHandle(), flaky, "tiny", "fast", None)
    with TestClient(create_app(config(seed_images), clips=clips)) as client:
        wait_for(lambda: client.get("/health").json()["status"] == "ready", timeout_s=10)


DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_serve_config_example_builds_the_application() -> None:
    import importlib

    import yaml
    from ray.serve import Application

    text = (DOCS / "serve_config.yaml").read_text()
    application = yaml.safe_load(text)["applications"][0]
    module, name = application["import_path"].split(":")
    builder = getattr(importlib.import_module(module), name)
    assert isinstance(builder(application["args"]), Application)
    # docs/deploy.md shows the same file.
    body = text.split("\n", 2)[2]  # past its two comment lines
    assert body in (DOCS / "deploy.md").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"model": "m", "replica": 2}, "unknown args ['replica']"),
        ({"replicas": 2}, "args.model is required"),
        ({"model": "m", "autoscale": "4:2"}, "MIN:MAX"),
    ],
)
def test_app_builder_refuses_bad_args(args: dict[str, object], message: str) -> None:
    from riffusion.server.ray_deployment import app_builder

    with pytest.raises(RiffusionError, match=re.escape(message)):
        app_builder(args)


def test_scaling_options() -> None:
    from riffusion.server.app import ServerConfig
    from riffusion.server.ray_deployment import Scaling

    config = ServerConfig(queue_capacity=8, max_batch=4)
    fixed = Scaling(replicas=3, gpus_per_replica=1).deployment_options(config)
    assert fixed["num_replicas"] == 3
    assert fixed["max_ongoing_requests"] == 8 + 4 + 1
    assert fixed["ray_actor_options"] == {"num_cpus": 1, "num_gpus": 1}
    scaled = Scaling(replicas=None, autoscale=(1, 4)).deployment_options(config)
    assert "num_replicas" not in scaled
    assert scaled["autoscaling_config"] == {
        "min_replicas": 1,
        "max_replicas": 4,
        "target_ongoing_requests": 8,
    }
