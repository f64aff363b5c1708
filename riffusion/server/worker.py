"""The inference worker: one thread per device that owns the model's compute, fed by a bounded
queue. Requests wait their turn there; when it is full, submit() refuses at once (the server
answers 429) instead of letting waits grow without bound. A request whose client went away is
taken out of the queue, or, if already running, stopped at the next diffusion step.

Each job is rendered completely on the worker thread: diffusion, phase reconstruction and encoding
to JPEG and MP3 (or diffusion and JPEG alone, for a job without audio), so the event loop only
ever waits on a future.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import io
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from PIL import Image

from riffusion.diffusion.inputs import InferenceInput
from riffusion.server.model import ModelHolder
from riffusion.spectrogram.reconstruction import Quality

# JPEG quality of the spectrograms sent to clients: high, since the web app draws its 3D height
# map from them and JPEG's blocks would show as ridges.
JPEG_QUALITY = 95
# The status nginx made conventional for "the client closed the request".
CLIENT_CLOSED_REQUEST = 499
# How often (s) a waiting request checks whether its client is still there.
DISCONNECT_POLL_S = 0.25
# Seconds per job assumed for Retry-After before any job has been timed.
_INITIAL_JOB_S = 5.0
# Weight of the newest job in the running average of job time.
_AVERAGE_WEIGHT = 0.3


class QueueFull(Exception):
    """The queue holds as many jobs as it may; retry after retry_after_s seconds."""

    def __init__(self, capacity: int, retry_after_s: int) -> None:
        super().__init__(
            f"the server is busy: {capacity} requests are already waiting; "
            f"retry in about {retry_after_s} s"
        )
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class RenderedClip:
    """A finished generation, encoded for the wire.

    Attributes:
        jpeg: the spectrogram image as JPEG (spectrogram parameters in its EXIF).
        mp3: its audio as MP3; empty for a job submitted with_audio=False.
        duration_s: length of the audio, seconds; 0 for a job submitted with_audio=False.
        image: the generated spectrogram itself.
    """

    jpeg: bytes
    mp3: bytes
    duration_s: float
    image: Image.Image | None = None

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

    with_audio=False skips phase reconstruction and MP3 encoding: for callers that make the
    audio themselves from the result's image (the jam joins its clips' audio).
    """

    def __init__(
        self,
        inputs: InferenceInput,
        init_image: Image.Image,
        mask_image: Image.Image | None,
        with_audio: bool = True,
    ) -> None:
        self.inputs = inputs
        self.init_image = init_image
        self.mask_image = mask_image
        self.with_audio = with_audio
        self.future: concurrent.futures.Future[RenderedClip] = concurrent.futures.Future()
        # Checked by the pipeline between diffusion steps.
        self.cancel_event = threading.Event()


def job_result(job: Job) -> asyncio.Future[RenderedClip]:
    """job's result as an asyncio future of the running event loop.

    A dropped job ends in an exception (Cancelled) that nobody may be left to look at; it is
    marked as seen so that asyncio does not log "exception was never retrieved" for it.
    """
    future = asyncio.wrap_future(job.future)
    future.add_done_callback(lambda done: done.cancelled() or done.exception())
    return future


async def result_unless_disconnected(
    worker: InferenceWorker, job: Job, is_disconnected: Callable[[], Awaitable[bool]]
) -> RenderedClip | None:
    """job's result, or None (and the job dropped) if the client goes away first.

    is_disconnected is asked every DISCONNECT_POLL_S seconds while the job waits or runs.
    """
    future = job_result(job)
    try:
        while True:
            done, _ = await asyncio.wait({future}, timeout=DISCONNECT_POLL_S)
            if done:
                return future.result()
            if await is_disconnected():
                worker.cancel(job)
                return None
    except asyncio.CancelledError:
        worker.cancel(job)
        raise


class InferenceWorker:
    """Runs jobs one after another on a thread of its own, in the order they were submitted.

    Args:
        model: where the pipeline comes from (jobs are refused until it is ready).
        capacity: jobs that may wait (not counting the one running).
        quality: phase reconstruction quality of the audio.
    """

    def __init__(self, model: ModelHolder, capacity: int = 16, quality: Quality = "fast") -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.model = model
        self.capacity = capacity
        self.quality = quality
        self._queue: deque[Job] = deque()
        self._running: Job | None = None
        self._condition = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._average_job_s: float | None = None
        self.completed = 0
        self.dropped = 0

    # --- Lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="riffusion-inference", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Refuse new jobs, drop the waiting ones, stop the running one, and end the thread."""
        with self._condition:
            self._stopping = True
            while self._queue:
                self._queue.popleft().future.cancel()
            if self._running is not None:
                self._running.cancel_event.set()
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    # --- Submitting ---------------------------------------------------------------------------

    @property
    def queue_length(self) -> int:
        with self._condition:
            return len(self._queue)

    def submit(
        self,
        inputs: InferenceInput,
        init_image: Image.Image,
        mask_image: Image.Image | None,
        with_audio: bool = True,
    ) -> Job:
        """Queue a generation; its RenderedClip (or exception) arrives in job.future.

        with_audio=False: the clip comes without audio (see Job).

        Raises:
            ModelNotReady: the model is loading or failed to load.
            QueueFull: capacity jobs are already waiting.
        """
        self.model.pipeline()  # raises ModelNotReady
        job = Job(inputs, init_image, mask_image, with_audio)
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
            elif job is self._running:
                job.cancel_event.set()

    def retry_after_s(self) -> int:
        """A guess of the seconds until the queue has room: one job's time, rounded up."""
        with self._condition:
            return self._retry_after_s_locked()

    def _retry_after_s_locked(self) -> int:
        job_s = self._average_job_s if self._average_job_s is not None else _INITIAL_JOB_S
        return max(1, math.ceil(job_s))

    # --- The worker thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._queue and not self._stopping:
                    self._condition.wait()
                if self._stopping:
                    return
                job = self._queue.popleft()
                if not job.future.set_running_or_notify_cancel():
                    continue
                self._running = job
            started = time.monotonic()
            result: RenderedClip | None = None
            error: Exception | None = None
            try:
                result = self._render(job)
            except Exception as exception:  # delivered to whoever waits on the future
                error = exception
            # Counted before the result is delivered, so whoever sees the result sees the count.
            with self._condition:
                self._running = None
                self.completed += 1
                self._record_time(time.monotonic() - started)
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(result)

    def _record_time(self, seconds: float) -> None:
        if self._average_job_s is None:
            self._average_job_s = seconds
        else:
            self._average_job_s += _AVERAGE_WEIGHT * (seconds - self._average_job_s)

    def _render(self, job: Job) -> RenderedClip:
        pipeline = self.model.pipeline()
        image = pipeline.riffuse(
            job.inputs, job.init_image, job.mask_image, cancel=job.cancel_event
        )
        jpeg = io.BytesIO()
        image.save(jpeg, format="JPEG", quality=JPEG_QUALITY, exif=image.getexif())
        if not job.with_audio:
            return RenderedClip(jpeg.getvalue(), b"", 0.0, image)
        audio = pipeline.audio_from_image(image, quality=self.quality)
        return RenderedClip(jpeg.getvalue(), audio.to_bytes("mp3"), audio.duration_s, image)
