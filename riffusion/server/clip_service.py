"""Where the server's generations run: the ClipService that the inference API, the studio and the
jam submit clips to.

Two kinds serve the same app: LocalClips, this process's model and worker (`riffusion serve`),
and riffusion.server.ray_clips.RayClips, the model replicas of a Ray Serve deployment
(`riffusion serve --ray`). Either way a submitted clip is a worker.Job whose future receives the
EncodedClip or the exception, so the routes cannot tell them apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from PIL import Image
from starlette.concurrency import run_in_threadpool

from riffusion.devices import cuda_or_cpu
from riffusion.diffusion.inputs import InferenceInput
from riffusion.server.model import ModelHolder, ModelSnapshot, Status
from riffusion.server.worker import InferenceWorker, Job
from riffusion.spectrogram.params import SpectrogramParams
from riffusion.spectrogram.reconstruction import Quality


@dataclass(frozen=True)
class ReplicaState:
    """One model replica as /health shows it (schemas.ReplicaModel has the fields' meaning)."""

    replica_id: str
    status: Status
    device: str
    message: str
    queue_length: int
    capacity: int
    running: int
    completed: int


class ClipService(Protocol):
    """What the routes need from whatever runs the model."""

    @property
    def quality(self) -> Quality:
        """Phase reconstruction quality of the audio."""
        ...

    @property
    def queue_length(self) -> int:
        """Clips waiting, over all replicas."""
        ...

    @property
    def capacity(self) -> int:
        """Clips that may wait, over all replicas, before submit() refuses."""
        ...

    def start(self) -> None:
        """Begin loading / connecting; called on the event loop when the app starts."""

    async def stop(self) -> None:
        """Refuse new clips and stop the running ones; called when the app stops."""

    def snapshot(self) -> ModelSnapshot:
        """The model's state for /health: ready when any replica is."""
        ...

    def replicas(self) -> list[ReplicaState] | None:
        """Each replica's state, or None where there is only this process's model."""
        ...

    def check_ready(self) -> None:
        """Raise ModelNotReady unless a clip submitted now could run."""

    def spectrogram_params(self) -> SpectrogramParams:
        """The spectrogram format of the clips (the model's); raises ModelNotReady before it is
        known."""
        ...

    def audio_device(self) -> torch.device:
        """Where this process turns the clips' spectrograms into audio (the jam's stream)."""
        ...

    def submit(
        self,
        inputs: InferenceInput,
        init_image: Image.Image,
        mask_image: Image.Image | None,
        with_audio: bool = True,
    ) -> Job:
        """Queue a generation (see InferenceWorker.submit); its result arrives in job.future.

        Raises:
            ModelNotReady: no replica has the model ready.
            QueueFull: every queue is full; the exception says when to retry.
        """
        ...

    def cancel(self, job: Job) -> None:
        """Drop a job whose result nobody wants (see InferenceWorker.cancel)."""


class LocalClips:
    """This process's model and its inference worker: the ClipService of `riffusion serve`."""

    def __init__(self, model: ModelHolder, worker: InferenceWorker) -> None:
        self.model = model
        self.worker = worker

    @property
    def quality(self) -> Quality:
        return self.worker.quality

    @property
    def queue_length(self) -> int:
        return self.worker.queue_length

    @property
    def capacity(self) -> int:
        return self.worker.capacity

    def start(self) -> None:
        self.model.start()
        self.worker.start()

    async def stop(self) -> None:
        # The worker thread may be mid-generation; stopping waits for it off the event loop.
        await run_in_threadpool(self.worker.stop)

    def snapshot(self) -> ModelSnapshot:
        return self.model.snapshot()

    def replicas(self) -> list[ReplicaState] | None:
        return None

    def check_ready(self) -> None:
        self.model.pipeline()

    def spectrogram_params(self) -> SpectrogramParams:
        return self.model.pipeline().spectrogram_params

    def audio_device(self) -> torch.device:
        return cuda_or_cpu(self.model.pipeline().device)

    def submit(
        self,
        inputs: InferenceInput,
        init_image: Image.Image,
        mask_image: Image.Image | None,
        with_audio: bool = True,
    ) -> Job:
        return self.worker.submit(inputs, init_image, mask_image, with_audio)

    def cancel(self, job: Job) -> None:
        self.worker.cancel(job)
