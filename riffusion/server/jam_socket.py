"""The jam WebSocket (/api/jam): one JamEngine per connection, a few clips generated ahead of the
client's playhead, each pushed as soon as it is ready. docs/api.md defines the messages.

Two tasks serve a connection: one reads the client's messages and steers the engine, the other
generates clips while the playhead is less than clips_ahead behind. Both run on the event loop,
so the session's state needs no lock; only sending is serialised.

The clips' audio is one continuous stream per jam (riffusion.server.jam_audio): the worker renders
each clip's image only, and the generating task joins it onto the session's stream off the event
loop, one clip at a time, in order, before the clip is sent. Every "start" begins a new stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from PIL import Image
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect

from riffusion.diffusion.inputs import random_seed
from riffusion.diffusion.presets import PresetName, get_preset, resolve_preset
from riffusion.errors import RiffusionError
from riffusion.jam import JamClip, JamEngine, JamSettings
from riffusion.server.clip_service import ClipService
from riffusion.server.jam_audio import WIRE_FORMAT, JamAudioPiece, JamAudioStream
from riffusion.server.library import SeedLibrary
from riffusion.server.model import ModelNotReady
from riffusion.server.schemas import (
    ClientMessage,
    ClipMessage,
    ErrorMessage,
    HealthModel,
    InferenceInputModel,
    JamSettingsModel,
    PlayedMessage,
    PromptMessage,
    SettingsMessage,
    StartMessage,
    StatusMessage,
)
from riffusion.server.worker import (
    EncodedClip,
    Job,
    QueueFull,
    data_url,
    job_result,
)

# How often (s) a session looks at the model while it is loading, to pass its progress on.
MODEL_POLL_S = 0.5

logger = logging.getLogger(__name__)
_CLIENT_MESSAGE: TypeAdapter[Any] = TypeAdapter(ClientMessage)


def validation_message(error: ValidationError) -> str:
    """One line naming each bad field and what is wrong with it."""
    problems = []
    for problem in error.errors():
        location = ".".join(str(part) for part in problem["loc"])
        problems.append(f"{location}: {problem['msg']}" if location else problem["msg"])
    return "; ".join(problems)


class JamSession:
    """The jam of one WebSocket connection.

    Args:
        websocket: the connection (not yet accepted).
        clips: where clips are rendered.
        library: seed images and masks by id.
        health: returns the /health object (the model's state and the queue).
        default_preset: the preset of a jam whose start names none.
    """

    def __init__(
        self,
        websocket: WebSocket,
        clips: ClipService,
        library: SeedLibrary,
        health: Callable[[], HealthModel],
        default_preset: PresetName = "quality",
    ) -> None:
        self.websocket = websocket
        self.default_preset = default_preset
        self.clips = clips
        self.library = library
        self.health = health
        self.engine: JamEngine | None = None
        # The jam's audio so far; replaced by every "start".
        self.stream: JamAudioStream | None = None
        # Bumped by every "start": clips of an earlier jam still in flight are then discarded.
        self.epoch = 0
        self.clips_ahead = 3
        self.played = -1
        self.generated = 0
        self.paused = False
        self.last_prompt: str | None = None
        # The clip being generated; kept until it is sent, so a refused submit retries it.
        self.pending: JamClip | None = None
        self.job: Job | None = None
        self.wake = asyncio.Event()
        self.send_lock = asyncio.Lock()
        self.last_status: dict[str, Any] | None = None

    # --- Connection ---------------------------------------------------------------------------

    async def run(self) -> None:
        await self.websocket.accept()
        generator = asyncio.create_task(self._generate_forever())
        try:
            await self.send_status()
            await self._receive_forever()
        except WebSocketDisconnect:
            pass  # the client left while a reply was on its way: nobody is left to tell
        finally:
            generator.cancel()
            if self.job is not None:
                self.clips.cancel(self.job)
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await generator

    async def _send(self, message: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.websocket.send_json(message)

    async def send_error(self, message: str) -> None:
        await self._send(ErrorMessage(message=message).model_dump(mode="json"))

    async def send_status(self) -> None:
        """Send the status if anything but the clock and the queues (the replicas' too) changed
        since the last."""
        status = self.status().model_dump(mode="json")
        changing = {"elapsed_s": None, "queue": None, "replicas": None}
        key = {**status, "model": {**status["model"], **changing}}
        if key != self.last_status:
            self.last_status = key
            await self._send(status)

    def status(self) -> StatusMessage:
        ahead = self.generated - (self.played + 1)
        return StatusMessage(
            model=self.health(),
            prompt=self.last_prompt,
            queued_prompts=self._upcoming_prompts(),
            played=self.played,
            generated=self.generated,
            ahead=ahead,
            behind=(
                self.engine is not None and not self.paused and self.played >= 0 and ahead <= 0
            ),
            paused=self.paused,
        )

    def _upcoming_prompts(self) -> list[str]:
        """Prompts no clip has headed to yet: a transition's target before its first clip, then
        those queued."""
        if self.engine is None:
            return []
        target = self.engine.target
        upcoming = [target] if target is not None and target != self.last_prompt else []
        return upcoming + list(self.engine.queued_prompts)

    # --- The client's messages ----------------------------------------------------------------

    async def _receive_forever(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                await self.send_error("messages must be JSON text frames")
                continue
            try:
                await self._handle(_CLIENT_MESSAGE.validate_json(text))
            except ValidationError as error:
                await self.send_error(f"invalid message: {validation_message(error)}")
                continue
            except RiffusionError as error:
                await self.send_error(str(error))
                continue
            self.wake.set()
            await self.send_status()

    async def _handle(self, message: Any) -> None:
        if isinstance(message, StartMessage):
            await self._start(message)
        elif self.engine is None:
            raise RiffusionError(f"send a start message before {message.type!r}")
        elif isinstance(message, PromptMessage):
            self.engine.queue_prompt(message.prompt)
        elif isinstance(message, SettingsMessage):
            await self._apply_settings(self.engine, message.settings)
        elif isinstance(message, PlayedMessage):
            if message.index >= self.generated:
                raise RiffusionError(
                    f"clip {message.index} has not been sent yet ({self.generated} so far)"
                )
            self.played = max(self.played, message.index)
        else:
            self.paused = message.type == "pause"

    async def _start(self, message: StartMessage) -> None:
        changes = message.settings.changes()
        seed = changes.pop("seed", None)
        await self._check_ids(changes)
        changes["preset"], changes["num_inference_steps"] = resolve_preset(
            changes.get("preset"), changes.get("num_inference_steps"), self.default_preset
        )
        settings = JamSettings(**changes)
        if seed is None:
            seed = random_seed()
        engine = JamEngine(message.prompt, seed=seed, settings=settings)
        # Everything checked: replace the jam.
        if self.job is not None:
            self.clips.cancel(self.job)
        self.engine = engine
        self.stream = None  # made with the first clip, when the model is there to ask
        self.epoch += 1
        self.clips_ahead = message.clips_ahead
        self.played = -1
        self.generated = 0
        self.paused = False
        self.last_prompt = None
        self.pending = None

    async def _apply_settings(self, engine: JamEngine, settings: JamSettingsModel) -> None:
        changes = settings.changes()
        seed = changes.pop("seed", None)
        await self._check_ids(changes)
        if "preset" in changes and "num_inference_steps" not in changes:
            # A new preset brings its own step count unless steps come with it.
            changes["num_inference_steps"] = get_preset(changes["preset"]).steps
        engine.update_settings(**changes)  # all or nothing
        if seed is not None:
            engine.set_seed(seed)

    async def _check_ids(self, changes: dict[str, Any]) -> None:
        """Refuse unknown ids, and load new images now, so a bad one fails here and not later."""
        seed_id = changes.get("seed_image_id")
        mask_id = changes.get("mask_image_id")
        if seed_id is not None:
            self.library.check_seed_id(seed_id)
        if mask_id is not None:
            self.library.check_mask_id(mask_id)
        if seed_id is not None or mask_id is not None:
            current = self.engine.settings if self.engine else JamSettings()
            await run_in_threadpool(
                self.library.images,
                seed_id or current.seed_image_id,
                mask_id or current.mask_image_id,
            )

    # --- Generating ---------------------------------------------------------------------------

    def _can_generate(self) -> bool:
        if self.engine is None or self.paused:
            return False
        if self.clips.snapshot().status != "ready":
            return False
        return self.generated - (self.played + 1) < self.clips_ahead

    async def _wait_for_work(self) -> None:
        while True:
            self.wake.clear()
            if self._can_generate():
                return
            # While the model loads, look again now and then to pass its progress on.
            loading = self.clips.snapshot().status == "loading"
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.wake.wait(), MODEL_POLL_S if loading else None)
            await self.send_status()

    async def _generate_forever(self) -> None:
        while True:
            await self._wait_for_work()
            assert self.engine is not None
            epoch = self.epoch
            if self.pending is None:
                self.pending = self.engine.next_clip()
            clip = self.pending
            joining = False
            try:
                done = await self._render(clip)
                if done is None or epoch != self.epoch:
                    continue  # refused for now, or replaced by a new jam
                job, seed_image = done
                rendered = job.future.result()
                # What ran: the worker cuts the steps to the server's max_steps.
                ran = dataclasses.replace(clip, input=job.inputs)
                joining = True
                piece, audio = await self._join(ran, rendered, seed_image)
            except Exception as error:  # whatever it is, the client hears of it; the jam lives
                if epoch == self.epoch:
                    await self._failed(clip, error, joining)
                continue
            if epoch != self.epoch:
                continue  # replaced by a new jam while its audio was being made
            self.pending = None
            self.generated += 1
            self.last_prompt = clip.prompt
            message = self._clip_message(ran, rendered, piece, audio, job.requested_steps)
            await self._send(message)
            await self.send_status()

    async def _failed(self, clip: JamClip, error: Exception, joining: bool) -> None:
        if not isinstance(error, RiffusionError):
            logger.exception("jam clip %d failed", clip.index)
        if joining:
            # A stream that failed mid-join cannot be trusted: the next clip starts a new one.
            self.stream = None
        # The same clip would likely fail again: stop until the client resumes.
        self.paused = True
        await self.send_error(f"clip {clip.index} failed: {error}; jam paused")
        await self.send_status()

    async def _join(
        self, clip: JamClip, rendered: EncodedClip, seed_image: Image.Image
    ) -> tuple[JamAudioPiece, bytes]:
        """Join the rendered clip onto the jam's stream: (its piece, the piece encoded)."""
        if self.stream is None:
            self.stream = JamAudioStream(
                self.clips.spectrogram_params(), self.clips.quality, self.clips.audio_device()
            )
        stream = self.stream

        def join() -> tuple[JamAudioPiece, bytes]:
            piece = stream.add(rendered.image, seed_image, clip.input)
            return piece, piece.encoded()

        return await run_in_threadpool(join)

    @staticmethod
    def _clip_message(
        clip: JamClip,
        rendered: EncodedClip,
        piece: JamAudioPiece,
        audio: bytes,
        requested_steps: int,
    ) -> dict[str, Any]:
        rate = piece.sample_rate
        steps = clip.input.num_inference_steps
        return ClipMessage(
            index=clip.index,
            image=rendered.image_url,
            audio=data_url(WIRE_FORMAT[1], audio),
            duration_s=piece.audio.duration_s,
            audio_start_s=piece.start / rate,
            image_start_s=piece.image_start / rate,
            image_duration_s=piece.image_frames / rate,
            input=InferenceInputModel.from_inference_input(clip.input),
            requested_steps=None if requested_steps == steps else requested_steps,
            state=clip.state,
            prompt=clip.prompt,
        ).model_dump(mode="json")

    async def _render(self, clip: JamClip) -> tuple[Job, Image.Image] | None:
        """The clip's job, done (its result is the image, without audio, or an exception), and
        the seed image it started from; None when it could not be run now (queue full, model
        not ready, job dropped)."""
        init_image, mask = await run_in_threadpool(
            self.library.images, clip.input.seed_image_id, clip.input.mask_image_id
        )
        try:
            self.job = self.clips.submit(clip.input, init_image, mask, with_audio=False)
        except QueueFull as error:
            await asyncio.sleep(error.retry_after_s)
            return None
        except ModelNotReady:
            return None
        wrapped = job_result(self.job)
        # asyncio.wait, unlike await, does not raise CancelledError for a dropped job.
        await asyncio.wait({wrapped})
        job, self.job = self.job, None
        # Dropped from the queue, or stopped while running (the pipeline raised Cancelled).
        if job.future.cancelled() or job.cancel_event.is_set():
            return None
        # With replicas, a queue can fill (or a model go) between submit and the replica.
        refusal = job.future.exception()
        if isinstance(refusal, QueueFull):
            await asyncio.sleep(refusal.retry_after_s)
            return None
        if isinstance(refusal, ModelNotReady):
            await asyncio.sleep(MODEL_POLL_S)
            return None
        return job, init_image
