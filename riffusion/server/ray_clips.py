"""The ingress side of `riffusion serve --ray`: RayClips, the ClipService whose clips run on the
model replicas of a Ray Serve deployment, reached through a deployment handle, and the board where
the replicas post their state for /health.

Each clip is one call of a replica's render(); Ray Serve's router picks the replica (the less
loaded of two). A call whose replica dies under it is made once more, on whichever replica the
router picks next: a jam then only falls behind by that clip's time. Replicas refuse a clip when
their own queue is full; the ingress refuses at once (429) when the board shows every ready
replica's queue full.

The board is a named Ray actor per application: each replica posts a ReplicaReport every
REPORT_S; the ingress reads them all every REPORT_S. A replica silent for LOST_AFTER_S shows as
failed (lost) until Ray Serve has replaced it, and is forgotten FORGET_AFTER_S after its last post.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import ray
import torch
from PIL import Image
from ray.actor import ActorHandle
from ray.serve.handle import DeploymentHandle, DeploymentResponse

from riffusion.diffusion.batch import Cancelled
from riffusion.diffusion.inputs import InferenceInput
from riffusion.errors import RiffusionError
from riffusion.server.clip_service import ReplicaState
from riffusion.server.model import LOAD_FIX, ModelNotReady, ModelSnapshot
from riffusion.server.worker import EncodedClip, Job, QueueFull, new_job
from riffusion.spectrogram.params import SpectrogramParams
from riffusion.spectrogram.reconstruction import Quality

#: How often (s) replicas post their state and the ingress reads the board.
REPORT_S = 0.5
#: A replica that has not posted for this long (s) is shown as failed (lost).
LOST_AFTER_S = 5.0
#: A lost replica leaves /health this long (s) after its last post.
FORGET_AFTER_S = 60.0
#: Attempts of one clip: the first, and one more when its replica died under it.
ATTEMPTS = 2

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplicaReport:
    """What a replica posts on the board.

    Attributes:
        state: for /health.
        snapshot: its model's loading state (stage and progress while loading).
        retry_after_s: its guess of when its queue has room (worker.retry_after_s).
        spectrogram_params: its model's spectrogram format; None until loaded.
    """

    state: ReplicaState
    snapshot: ModelSnapshot
    retry_after_s: int
    spectrogram_params: SpectrogramParams | None


@dataclass(frozen=True)
class ReplicaReply:
    """A replica's answer to render(): the clip, or why not (a refusal travels as data: the
    server's exceptions take arguments that Ray's pickling of exceptions would lose).

    Attributes:
        replica_id: who answered.
        clip: the clip when outcome is "clip".
        outcome: clip; queue_full (retry_after_s says when to retry); not_ready (snapshot says
            why); bad_input (message says what is wrong, for a 400).
        capacity: the replica's queue capacity, for a queue_full message.
    """

    replica_id: str
    outcome: Literal["clip", "queue_full", "not_ready", "bad_input"]
    clip: EncodedClip | None = None
    message: str = ""
    retry_after_s: int = 0
    capacity: int = 0
    snapshot: ModelSnapshot | None = None

    def result(self) -> EncodedClip:
        """The clip, or the exception the routes turn into the right status."""
        if self.outcome == "queue_full":
            raise QueueFull(self.capacity, self.retry_after_s)
        if self.outcome == "not_ready" and self.snapshot is not None:
            raise ModelNotReady(self.snapshot)
        if self.clip is None:
            raise RiffusionError(self.message)
        return self.clip


class ReplicaBoard:
    """The replicas' latest reports, by replica id, with when they came (monotonic s)."""

    def __init__(self) -> None:
        self._reports: dict[str, tuple[ReplicaReport, float]] = {}

    def post(self, report: ReplicaReport) -> None:
        self._reports[report.state.replica_id] = (report, time.monotonic())

    def forget(self, replica_id: str) -> None:
        self._reports.pop(replica_id, None)

    def reports(self) -> list[tuple[ReplicaReport, float]]:
        """Each report with its age, s; reports older than FORGET_AFTER_S are dropped."""
        now = time.monotonic()
        self._reports = {
            key: (report, posted)
            for key, (report, posted) in self._reports.items()
            if now - posted < FORGET_AFTER_S
        }
        return [(report, now - posted) for report, posted in self._reports.values()]


def replica_board(name: str) -> ActorHandle:
    """The board called name, made by whichever replica or ingress asks first. Detached, so that
    it outlives the replica that made it (Ray ends an actor with its owner otherwise)."""
    options: dict[str, Any] = {
        "name": name,
        "get_if_exists": True,
        "lifetime": "detached",
        "num_cpus": 0,
    }
    board = ray.remote(ReplicaBoard).options(**options).remote()
    assert isinstance(board, ActorHandle)
    return board


#: Reads the board: each replica's latest report with its age, s.
BoardReader = Callable[[], Awaitable[list[tuple[ReplicaReport, float]]]]


def board_reader(name: str) -> BoardReader:
    """Reads the board called name (made on first use)."""
    boards: list[ActorHandle] = []

    async def read() -> list[tuple[ReplicaReport, float]]:
        if not boards:
            boards.append(replica_board(name))
        try:
            reports: list[tuple[ReplicaReport, float]] = await boards[0].reports.remote()
        except ray.exceptions.RayError:
            boards.clear()  # made again on the next read
            raise
        return reports

    return read


def lost(report: ReplicaReport, age_s: float) -> ReplicaReport:
    """report as /health shows it: a replica silent for LOST_AFTER_S is failed."""
    if age_s < LOST_AFTER_S:
        return report
    state = report.state
    message = f"replica {state.replica_id} stopped answering {age_s:.0f} s ago (lost)"
    snapshot = ModelSnapshot(
        "failed", state.replica_id, state.device, None, None, age_s, message, None
    )
    return ReplicaReport(
        ReplicaState(state.replica_id, "failed", state.device, message, 0, 0, 0, state.completed),
        snapshot,
        report.retry_after_s,
        None,
    )


class RayClips:
    """Clips rendered by the model deployment behind handle (see the module doc).

    Args:
        handle: the model deployment (riffusion.server.ray_deployment.ClipReplica).
        read_board: reads the replicas' reports (board_reader of their board).
        model_name: the model as /health shows it.
        quality: phase reconstruction quality of the jam's audio (made on the ingress).
        max_steps: the most diffusion steps a clip may run (None: no limit).
    """

    def __init__(
        self,
        handle: DeploymentHandle,
        read_board: BoardReader,
        model_name: str,
        quality: Quality,
        max_steps: int | None,
    ) -> None:
        self.handle = handle
        self.read_board = read_board
        self.model_name = model_name
        self._quality = quality
        self.max_steps = max_steps
        self.retries = 0
        self._reports: list[ReplicaReport] = []
        self._started = time.monotonic()
        self._tasks: dict[Job, asyncio.Task[None]] = {}
        self._poller: asyncio.Task[None] | None = None

    # --- ClipService --------------------------------------------------------------------------

    @property
    def quality(self) -> Quality:
        return self._quality

    @property
    def queue_length(self) -> int:
        return sum(report.state.queue_length for report in self._reports)

    @property
    def capacity(self) -> int:
        return sum(report.state.capacity for report in self._reports)

    def start(self) -> None:
        self._started = time.monotonic()
        self._poller = asyncio.get_running_loop().create_task(self._poll_forever())

    async def stop(self) -> None:
        tasks = [*self._tasks.values(), *([self._poller] if self._poller else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def replicas(self) -> list[ReplicaState] | None:
        return [report.state for report in self._reports]

    def snapshot(self) -> ModelSnapshot:
        elapsed = round(time.monotonic() - self._started, 3)
        reports = self._reports
        ready = [report for report in reports if report.state.status == "ready"]
        loading = [report for report in reports if report.state.status == "loading"]
        devices = ", ".join(sorted({report.state.device for report in reports})) or "none yet"
        device = f"{len(reports)} replicas ({devices})"
        if ready:
            message = f"{self.model_name} is ready on {len(ready)} of {len(reports)} replicas"
            return ModelSnapshot(
                "ready", self.model_name, device, None, None, elapsed, message, None
            )
        if loading or not reports:
            first = loading[0].snapshot if loading else None
            stage = first.stage if first else "starting the model replicas"
            progress = first.progress if first else None
            message = f"loading {self.model_name} on {len(loading)} of {len(reports)} replicas"
            return ModelSnapshot(
                "loading", self.model_name, device, stage, progress, elapsed, message, None
            )
        message = reports[0].state.message
        return ModelSnapshot(
            "failed", self.model_name, device, None, None, elapsed, message, LOAD_FIX
        )

    def check_ready(self) -> None:
        snapshot = self.snapshot()
        if snapshot.status != "ready":
            raise ModelNotReady(snapshot)

    def spectrogram_params(self) -> SpectrogramParams:
        for report in self._reports:
            if report.spectrogram_params is not None:
                return report.spectrogram_params
        raise ModelNotReady(self.snapshot())

    def audio_device(self) -> torch.device:
        # The ingress holds no model; it reconstructs the jam's audio on its CPU.
        return torch.device("cpu")

    def submit(
        self,
        inputs: InferenceInput,
        init_image: Image.Image,
        mask_image: Image.Image | None,
        with_audio: bool = True,
    ) -> Job:
        self.check_ready()
        ready = [report for report in self._reports if report.state.status == "ready"]
        if all(report.state.queue_length >= report.state.capacity for report in ready):
            capacity = sum(report.state.capacity for report in ready)
            raise QueueFull(capacity, min(report.retry_after_s for report in ready))
        job = new_job(inputs, init_image, mask_image, with_audio, self.max_steps)
        task = asyncio.get_running_loop().create_task(self._render(job))
        self._tasks[job] = task
        task.add_done_callback(lambda _: self._tasks.pop(job, None))
        return job

    def cancel(self, job: Job) -> None:
        job.cancel_event.set()
        if not job.future.cancel():  # already running: stop its call
            task = self._tasks.get(job)
            if task is not None:
                task.cancel()

    # --- Calls to the replicas ----------------------------------------------------------------

    async def _render(self, job: Job) -> None:
        """Run job on a replica, once more on another if its replica dies; deliver the outcome
        to job.future."""
        if not job.future.set_running_or_notify_cancel():
            return
        outcome: EncodedClip | BaseException
        for attempt in range(1, ATTEMPTS + 1):
            response: DeploymentResponse[ReplicaReply] | None = None
            try:
                call = self.handle.render.remote(
                    job.inputs, job.init_image, job.mask_image, job.with_audio
                )
                assert isinstance(call, DeploymentResponse)  # not a streaming handle
                response = call
                reply: ReplicaReply = await call
                outcome = reply.result()
            except asyncio.CancelledError:
                if response is not None:
                    response.cancel()
                job.future.set_exception(Cancelled("the clip was cancelled"))
                raise
            except ray.exceptions.RayActorError as error:
                if attempt < ATTEMPTS:
                    self.retries += 1
                    logger.warning("a model replica died under a clip; retrying it: %s", error)
                    continue
                outcome = RuntimeError(f"the model replicas died under the clip: {error}")
            except Exception as error:
                outcome = error
            break
        if isinstance(outcome, BaseException):
            job.future.set_exception(outcome)
        else:
            job.future.set_result(outcome)

    async def _poll_forever(self) -> None:
        while True:
            try:
                posted = await self.read_board()
            except ray.exceptions.RayError as error:
                logger.warning("cannot read the replicas' board: %s", error)
            else:
                self._reports = sorted(
                    (lost(report, age) for report, age in posted),
                    key=lambda report: report.state.replica_id,
                )
            await asyncio.sleep(REPORT_S)
