"""The inference worker: one thread per device that owns the model's compute, fed by a bounded
queue. Requests wait their turn there; when it is full, submit() refuses at once (the server
answers 429) instead of letting waits grow without bound. A request whose client went away is
taken out of the queue, or, if already running, stopped at the next diffusion step.

With max_batch > 1, the worker takes the oldest waiting job together with up to max_batch - 1
later ones that can share its diffusion schedule (RiffusionPipeline.batch_key), and runs them
through one UNet call per step; the jobs it passes over keep their places. How much that pays
depends on the device (docs/benchmarks.md, "Batching concurrent sessions"), hence
resolve_max_batch()'s per-device default.

Each job is rendered completely on the worker thread: diffusion, phase reconstruction and encoding
to JPEG and MP3 (or diffusion and JPEG alone, for a job without audio), so the event loop only
ever waits on a future.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import dataclasses
import io
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from PIL import Image

from riffusion.devices import AUTO
from riffusion.diffusion.batch import RiffuseRequest
from riffusion.diffusion.inputs import InferenceInput
from riffusion.errors import RiffusionError
from riffusion.server.model import ModelHolder
from riffusion.spectrogram.reconstruction import Quality

if TYPE_CHECKING:
    from riffusion.diffusion.batch import BatchKey
    from riffusion.diffusion.pipeline import RiffusionPipeline

# JPEG quality of the spectrograms sent to clients: high, since the web app draws its 3D height
# map from them and JPEG's blocks would show as ridges.
JPEG_QUALITY = 95
# The status nginx made conventional for "the client closed the request".
CLIENT_CLOSED_REQUEST = 499
#: Response headers of a generation: the steps its clip ran with, and, when the server's
#: max_steps cut the request's steps down, the steps the request asked for.
STEPS_HEADER = "X-Riffusion-Steps"
REQUESTED_STEPS_HEADER = "X-Riffusion-Requested-Steps"
# How often (s) a waiting request checks whether its client is still there.
DISCONNECT_POLL_S = 0.25
# Seconds per job assumed for Retry-After before any job has been timed.
_INITIAL_JOB_S = 5.0
# Weight of the newest run in the running average of run time.
_AVERAGE_WEIGHT = 0.3
# How long (s) the worker, batching and with jobs already waiting, gives the clients it has just
# served to send their next job before it takes a batch. Without it, clients that each wait for
# their result before sending the next job fall into step with the worker: it takes the queue
# the moment it delivers a result, just before that client's next job arrives, so two such
# clients would never share a batch. An idle worker starts a job at once.
BATCH_GATHER_S = 0.05

#: max_batch "auto" per device type. On a CPU one request's UNet call keeps the cores nearly busy:
#: two requests per call gained 1.10-1.14x at Stable Diffusion 1.5's sizes, four no more; a GPU is
#: mostly idle with one request's two rows. See docs/benchmarks.md, "Batching concurrent
#: sessions". A lone client is never held back: only jobs already waiting are batched.
AUTO_MAX_BATCH = {"cuda": 4, "cpu": 2}

MaxBatch = int | Literal["auto"]


def resolve_max_batch(setting: MaxBatch, device: str | torch.device) -> int:
    """The jobs the worker may batch on device: setting itself, or for "auto" the device's
    AUTO_MAX_BATCH entry (1 where it has none).

    Raises:
        RiffusionError: setting is neither "auto" nor a whole number of at least 1.
    """
    if setting == AUTO:
        return AUTO_MAX_BATCH.get(torch.device(device).type, 1)
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise RiffusionError(
            f"max_batch must be 'auto' or a whole number of at least 1, got {setting!r}"
        )
    return setting


class QueueFull(Exception):
    """The queue holds as many jobs as it may; retry after retry_after_s seconds."""

    def __init__(self, capacity: int, retry_after_s: int) -> None:
        super().__init__(
            f"the server is busy: {capacity} requests are already waiting; "
            f"retry in about {retry_after_s} s"
        )
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class EncodedClip:
    """A finished generation, encoded for the wire.

    Attributes:
        image: the generated spectrogram itself.
        jpeg: the spectrogram image as JPEG (spectrogram parameters in its EXIF).
        mp3: its audio as MP3; empty for a job submitted with_audio=False.
        duration_s: length of the audio, seconds; 0 for a job submitted with_audio=False.
    """

    image: Image.Image
    jpeg: bytes
    mp3: bytes
    duration_s: float

    @property
    def image_url(self) -> str:
        return data_url("image/jpeg", self.jpeg)

    @property
    def audio_url(self) -> str:
        return data_url("audio/mpeg", self.mp3)


def data_url(mime_type: str, data: bytes) -> str:
    """data as a base64 data URL, the form the original API sent images and audio in."""
    return f"data:{mime_type};base64,{base64.b64encode(data).decode('ascii')}"


class Job:
    """One generation waiting for or running on the worker; its result arrives in future.

    inputs are what runs: the request's, with its steps cut to the worker's max_steps;
    requested_steps the steps the request asked for.

    with_audio=False skips phase reconstruction and MP3 encoding: for callers that make the
    audio themselves from the result's image (the jam joins its clips' audio).
    """

    def __init__(
        self,
        inputs: InferenceInput,
        init_image: Image.Image,
        mask_image: Image.Image | None,
        with_audio: bool = True,
        requested_steps: int | None = None,
    ) -> None:
        self.inputs = inputs
        self.requested_steps = (
            inputs.num_inference_steps if requested_steps is None else requested_steps
        )
        self.init_image = init_image
        self.mask_image = mask_image
        self.with_audio = with_audio
        self.future: concurrent.futures.Future[EncodedClip] = concurrent.futures.Future()
        # Checked by the pipeline between diffusion steps.
        self.cancel_event = threading.Event()

    @property
    def steps_headers(self) -> dict[str, str]:
        """The response headers that say how many steps the clip ran (and asked for, if cut)."""
        headers = {STEPS_HEADER: str(self.inputs.num_inference_steps)}
        if self.requested_steps != self.inputs.num_inference_steps:
            headers[REQUESTED_STEPS_HEADER] = str(self.requested_steps)
        return headers


def new_job(
    inputs: InferenceInput,
    init_image: Image.Image,
    mask_image: Image.Image | None,
    with_audio: bool,
    max_steps: int | None,
) -> Job:
    """A job of inputs with its steps cut to max_steps (None: no limit)."""
    requested_steps = inputs.num_inference_steps
    if max_steps is not None and requested_steps > max_steps:
        inputs = dataclasses.replace(inputs, num_inference_steps=max_steps)
    return Job(inputs, init_image, mask_image, with_audio, requested_steps)


def job_result(job: Job) -> asyncio.Future[EncodedClip]:
    """job's result as an asyncio future of the running event loop.

    A dropped job ends in an exception (Cancelled) that nobody may be left to look at; it is
    marked as seen so that asyncio does not log "exception was never retrieved" for it.
    """
    future = asyncio.wrap_future(job.future)
    future.add_done_callback(lambda done: done.cancelled() or done.exception())
    return future


async def result_unless_disconnected(
    cancel: Callable[[Job], None], job: Job, is_disconnected: Callable[[], Awaitable[bool]]
) -> EncodedClip | None:
    """job's result, or None (and the job dropped with cancel) if the client goes away first.

    is_disconnected is asked every DISCONNECT_POLL_S seconds while the job waits or runs.
    """
    future = job_result(job)
    try:
        while True:
            done, _ = await asyncio.wait({future}, timeout=DISCONNECT_POLL_S)
            if done:
                return future.result()
            if await is_disconnected():
                cancel(job)
                return None
    except asyncio.CancelledError:
        cancel(job)
        raise


class InferenceWorker:
    """Runs jobs on a thread of its own, in the order they were submitted, or in batches of
    compatible jobs led by the oldest waiting one.

    Args:
        model: where the pipeline comes from (jobs are refused until it is ready).
        capacity: jobs that may wait (not counting the running ones).
        quality: phase reconstruction quality of the audio.
        max_batch: jobs that may run through the UNet together; 1 runs them one at a time.
        gather_s: with max_batch > 1, how long to wait for a fuller batch when jobs are already
            waiting as a run ends (see BATCH_GATHER_S).
        max_steps: the most diffusion steps a job may run; jobs asking for more run this many
            (None: no limit). What a request may cost, for servers whose clients time out.

    Attributes:
        completed: jobs that ran to an end (a result, an error or a cancellation).
        dropped: jobs taken out of the queue because nobody wanted their result any more.
        batch_sizes: how many runs the worker made of each batch size.
    """

    def __init__(
        self,
        model: ModelHolder,
        capacity: int = 16,
        quality: Quality = "fast",
        max_batch: int = 1,
        gather_s: float = BATCH_GATHER_S,
        max_steps: int | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps}")
        self.model = model
        self.capacity = capacity
        self.quality = quality
        self.max_batch = max_batch
        self.gather_s = gather_s
        self.max_steps = max_steps
        self._queue: deque[Job] = deque()
        self._running: list[Job] = []
        self._condition = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._average_run_s: float | None = None
        self.completed = 0
        self.dropped = 0
        self.batch_sizes: Counter[int] = Counter()

    # --- Lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="riffusion-inference", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Refuse new jobs, drop the waiting ones, stop the running ones, and end the thread."""
        with self._condition:
            self._stopping = True
            while self._queue:
                self._queue.popleft().future.cancel()
            for job in self._running:
                job.cancel_event.set()
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    # --- Submitting ---------------------------------------------------------------------------

    @property
    def queue_length(self) -> int:
        with self._condition:
            return len(self._queue)

    @property
    def running(self) -> int:
        """Jobs running now (one batch)."""
        with self._condition:
            return len(self._running)

    def submit(
        self,
        inputs: InferenceInput,
        init_image: Image.Image,
        mask_image: Image.Image | None,
        with_audio: bool = True,
    ) -> Job:
        """Queue a generation; its EncodedClip (or exception) arrives in job.future.

        Steps above max_steps are cut to it: job.inputs holds what runs.
        with_audio=False: the clip comes without audio (see Job).

        Raises:
            ModelNotReady: the model is loading or failed to load.
            QueueFull: capacity jobs are already waiting.
        """
        self.model.pipeline()  # raises ModelNotReady
        job = new_job(inputs, init_image, mask_image, with_audio, self.max_steps)
        with self._condition:
            if self._stopping:
                raise RuntimeError("the inference worker has stopped")
            if len(self._queue) >= self.capacity:
                raise QueueFull(self.capacity, self._retry_after_s_locked())
            self._queue.append(job)
            self._condition.notify()
        return job

    def cancel(self, job: Job) -> None:
        """Drop a job whose result nobody wants: out of the queue if waiting, stopped if running."""
        with self._condition:
            if job in self._queue:
                self._queue.remove(job)
                job.future.cancel()
                self.dropped += 1
            elif job in self._running:
                # Only this job stops; the others of its batch run on.
                job.cancel_event.set()

    def retry_after_s(self) -> int:
        """A guess of the seconds until the queue has room: the time of one run (a job, or a
        batch of jobs), rounded up, since the worker takes the next jobs when a run ends."""
        with self._condition:
            return self._retry_after_s_locked()

    def _retry_after_s_locked(self) -> int:
        run_s = self._average_run_s if self._average_run_s is not None else _INITIAL_JOB_S
        return max(1, math.ceil(run_s))

    # --- The worker thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._condition:
                if self._queue and len(self._queue) < self.max_batch:
                    self._gather_locked()
                while not self._queue and not self._stopping:
                    self._condition.wait()
                if self._stopping:
                    return
                jobs = self._take_jobs_locked()
                if not jobs:
                    continue
                self._running = list(jobs)
                self.batch_sizes[len(jobs)] += 1
            started = time.monotonic()
            self._render(jobs)
            with self._condition:
                self._record_time(time.monotonic() - started)

    def _gather_locked(self) -> None:
        """Wait up to gather_s for the queue to hold max_batch jobs (or for stop())."""
        deadline = time.monotonic() + self.gather_s
        while len(self._queue) < self.max_batch and not self._stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._condition.wait(left)

    def _take_jobs_locked(self) -> list[Job]:
        """The oldest live job and up to max_batch - 1 later ones that can share its batch,
        taken out of the queue and marked running; the others keep their order."""
        while self._queue:
            lead = self._queue.popleft()
            if lead.future.set_running_or_notify_cancel():
                break
        else:
            return []
        jobs = [lead]
        if self.max_batch == 1:
            return jobs
        pipeline = self.model.pipeline()
        key = _batch_key(pipeline, lead)
        if key is None:
            return jobs
        for job in list(self._queue):
            if len(jobs) == self.max_batch:
                break
            if _batch_key(pipeline, job) != key:
                continue
            self._queue.remove(job)
            if job.future.set_running_or_notify_cancel():
                jobs.append(job)
        return jobs

    def _record_time(self, seconds: float) -> None:
        if self._average_run_s is None:
            self._average_run_s = seconds
        else:
            self._average_run_s += _AVERAGE_WEIGHT * (seconds - self._average_run_s)

    def _render(self, jobs: list[Job]) -> None:
        """Diffuse jobs together, then encode and deliver each one's clip as soon as it is done."""
        pipeline = self.model.pipeline()
        requests = [
            RiffuseRequest(job.inputs, job.init_image, job.mask_image, cancel=job.cancel_event)
            for job in jobs
        ]
        outcomes: list[Image.Image | BaseException]
        try:
            outcomes = list(pipeline.riffuse_batch(requests))
        except Exception as error:  # delivered to whoever waits on each future
            outcomes = [error] * len(jobs)

        for job, outcome in zip(jobs, outcomes, strict=True):
            delivered: EncodedClip | BaseException
            if isinstance(outcome, BaseException):
                delivered = outcome
            else:
                try:
                    delivered = self._clip(pipeline, job, outcome)
                except Exception as error:
                    delivered = error
            # Counted before the result is delivered, so whoever sees the result sees the count.
            with self._condition:
                self._running.remove(job)
                self.completed += 1
            if isinstance(delivered, BaseException):
                job.future.set_exception(delivered)
            else:
                job.future.set_result(delivered)

    def _clip(self, pipeline: RiffusionPipeline, job: Job, image: Image.Image) -> EncodedClip:
        """job's generated image encoded for the wire, with its audio unless job is without."""
        jpeg = io.BytesIO()
        image.save(jpeg, format="JPEG", quality=JPEG_QUALITY, exif=image.getexif())
        if not job.with_audio:
            return EncodedClip(image, jpeg.getvalue(), b"", 0.0)
        audio = pipeline.audio_from_image(image, quality=self.quality)
        return EncodedClip(image, jpeg.getvalue(), audio.to_bytes("mp3"), audio.duration_s)


def _batch_key(pipeline: RiffusionPipeline, job: Job) -> BatchKey | None:
    """What job must share with others to be batched with them, or None if it cannot be
    batched (its inputs are unusable: it runs alone and fails with the reason)."""
    try:
        return pipeline.batch_key(job.inputs, job.init_image, job.mask_image)
    except Exception:
        # The job's own run raises it again, to its client. Raised here, it would end the worker
        # thread and leave every queued and later request waiting forever.
        return None
