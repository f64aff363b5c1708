"""The studio's endpoints: a spectrogram image to audio (no model needed), and audio to audio
(an uploaded clip re-imagined from a prompt). Inputs arrive as data URLs, as browsers make them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import math
import re
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from PIL import Image
from starlette.concurrency import run_in_threadpool

from riffusion.audio import Audio, AudioTooLongError
from riffusion.diffusion.inputs import InferenceInput, PromptInput
from riffusion.errors import RiffusionError
from riffusion.server.clip_service import ClipService
from riffusion.server.inference_response import inference_response
from riffusion.server.limits import MAX_UPLOAD_BYTES
from riffusion.server.schemas import (
    AudioOutputModel,
    AudioToAudioModel,
    ErrorModel,
    ImageToAudioModel,
    InferenceOutputModel,
)
from riffusion.server.worker import (
    QueueFull,
    data_url,
)
from riffusion.spectrogram.converter import SpectrogramImageConverter
from riffusion.spectrogram.image import DEFAULT_MAX_VALUE
from riffusion.spectrogram.params import SpectrogramParams

#: Widest spectrogram image turned into audio: 60 s at 10 ms per column.
MAX_IMAGE_WIDTH = 6000
#: Longest uploaded clip for audio to audio, s (two of the model's 5.12-s clips).
MAX_CLIP_S = 10.24
#: How far, s, an upload may run over MAX_CLIP_S (encoders pad the last frame).
CLIP_TOLERANCE_S = 0.05
#: Image-to-audio conversions that may wait for the one running before new ones answer 429.
CONVERSION_QUEUE = 4
#: Rows of a spectrogram image: one per mel frequency.
HEIGHT = SpectrogramParams().num_frequencies
#: Seed image widths must be multiples of this (the model's 8x VAE and 8x UNet downsampling).
WIDTH_MULTIPLE = 64

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[^,;]*)*?;base64,", re.ASCII)
_AUDIO_SUFFIXES = {
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/wave": ".wav",
    "audio/mpeg": ".mp3",
    "audio/mp3": ".mp3",
    "audio/flac": ".flac",
    "audio/x-flac": ".flac",
    "audio/ogg": ".ogg",
}


def decode_data_url(url: str, what: str) -> tuple[str | None, bytes]:
    """(MIME type or None, bytes) of a base64 data URL; RiffusionError if it is not one."""
    match = _DATA_URL.match(url)
    if match is None:
        raise RiffusionError(f"{what} must be a base64 data URL (data:...;base64,...)")
    encoded = url[match.end() :]
    if len(encoded) > math.ceil(MAX_UPLOAD_BYTES / 3) * 4:
        raise RiffusionError(f"{what} is larger than {MAX_UPLOAD_BYTES // 2**20} MB")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise RiffusionError(f"{what}: the base64 data is malformed") from None
    if not data:
        raise RiffusionError(f"{what} is empty")
    return match.group("mime"), data


def decode_image(data: bytes) -> Image.Image:
    """A spectrogram image from PNG / JPEG / ... bytes, checked for a usable size."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            # Check the size before decoding, so a huge image costs nothing.
            if opened.height != HEIGHT:
                raise RiffusionError(
                    f"the image is {opened.height} px tall; spectrogram images have {HEIGHT} "
                    "rows (one per frequency): scale it to that height"
                )
            if opened.width > MAX_IMAGE_WIDTH:
                raise RiffusionError(
                    f"the image is {opened.width} px wide; at most {MAX_IMAGE_WIDTH} "
                    f"({MAX_IMAGE_WIDTH // 100} s) are turned into audio"
                )
            opened.load()
            return opened.copy()
    except Image.UnidentifiedImageError:
        raise RiffusionError("image: not an image (format not recognised)") from None
    except RiffusionError:
        raise
    # Pillow's decoders raise many types for malformed data; all mean the same here.
    except Exception as error:
        raise RiffusionError(f"image: not a readable image ({error})") from None


def decode_audio(mime: str | None, data: bytes) -> Audio:
    """Audio from file bytes (WAV, MP3, FLAC, OGG), read with Audio.load's checks; longer than
    a clip may be, it is refused before it is decoded in full."""
    suffix = _AUDIO_SUFFIXES.get(mime or "", ".wav")
    with tempfile.TemporaryDirectory(prefix="riffusion-upload-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            return Audio.load(path, max_duration_s=MAX_CLIP_S + CLIP_TOLERANCE_S)
        except AudioTooLongError:
            raise RiffusionError(
                f"the audio is longer than {MAX_CLIP_S + CLIP_TOLERANCE_S:.2f} s; "
                f"send clips of at most {MAX_CLIP_S} s"
            ) from None
        except RiffusionError as error:
            # The temporary path means nothing to the client.
            raise RiffusionError(str(error).replace(str(path), "audio")) from None


def spectrogram_of_clip(audio: Audio, converter: SpectrogramImageConverter) -> Image.Image:
    """The spectrogram image of a clip, cut to a multiple of 64 columns for the model."""
    if audio.duration_s > MAX_CLIP_S + CLIP_TOLERANCE_S:
        raise RiffusionError(
            f"the audio is {audio.duration_s:.2f} s long; send clips of at most {MAX_CLIP_S} s"
        )
    image = converter.spectrogram_image_from_audio(audio)
    width = image.width - image.width % WIDTH_MULTIPLE
    if width < WIDTH_MULTIPLE:
        step_s = converter.params.step_size_ms / 1000.0
        raise RiffusionError(
            f"the audio is {audio.duration_s:.2f} s long; send at least "
            f"{WIDTH_MULTIPLE * step_s:.2f} s"
        )
    return image.crop((0, 0, width, image.height))


def studio_router(
    clips: ClipService,
    inference_errors: dict[int | str, dict[str, Any]],
) -> APIRouter:
    """The studio endpoints, running generations on clips and conversions on a thread;
    inference_errors: the error responses of a generation, for the OpenAPI schema."""
    router = APIRouter(tags=["studio"])
    converter = SpectrogramImageConverter(quality=clips.quality)
    # Conversions need no model but are heavy: one at a time, a few waiting, others 429.
    conversions = asyncio.Semaphore(1)
    waiting = 0

    @router.post(
        "/api/image_to_audio",
        response_model=AudioOutputModel,
        responses={
            400: {"model": ErrorModel, "description": "not an image, or not a spectrogram's size"},
            422: inference_errors[422],
            429: {"model": ErrorModel, "description": "conversions are queued; see Retry-After"},
        },
    )
    async def image_to_audio(body: ImageToAudioModel) -> AudioOutputModel:
        """The sound of a spectrogram image (512 rows, 10 ms per column), e.g. a drawn one."""
        nonlocal waiting
        _, data = await run_in_threadpool(decode_data_url, body.image, "image")
        image = await run_in_threadpool(decode_image, data)
        if waiting >= CONVERSION_QUEUE:
            raise QueueFull(CONVERSION_QUEUE, retry_after_s=2)
        waiting += 1
        try:
            async with conversions:
                # The audio is peak-normalised, so the upload's MAX_VALUE tag would only scale it
                # (og_beat's own tag, 3e7 or 1e3 differ by less than -80 dB of its peak). It is
                # not read, so that no tag, such as 1e38 overflowing to infinity, reaches the MP3
                # encoder (whose assertion on non-finite samples ends the process).
                audio = await run_in_threadpool(
                    converter.audio_from_spectrogram_image, image, True, DEFAULT_MAX_VALUE
                )
                mp3 = await run_in_threadpool(audio.to_bytes, "mp3")
        finally:
            waiting -= 1
        return AudioOutputModel(audio=data_url("audio/mpeg", mp3), duration_s=audio.duration_s)

    @router.post(
        "/api/audio_to_audio",
        response_model=InferenceOutputModel,
        responses=inference_errors,
    )
    async def audio_to_audio(body: AudioToAudioModel, request: Request) -> Response:
        """A clip (at most 10.24 s) re-imagined from a prompt: img2img on its spectrogram."""
        mime, data = await run_in_threadpool(decode_data_url, body.audio, "audio")
        clips.check_ready()  # 503 before the work of decoding for a model that cannot run
        audio = await run_in_threadpool(decode_audio, mime, data)
        image = await run_in_threadpool(spectrogram_of_clip, audio, converter)
        prompt = PromptInput(
            prompt=body.prompt,
            seed=body.seed,
            negative_prompt=body.negative_prompt,
            denoising=body.denoising,
            guidance=body.guidance,
        )
        inputs = InferenceInput(
            start=prompt,
            end=prompt,
            alpha=0.0,
            num_inference_steps=body.num_inference_steps,
            seed_image_id="upload",
        )
        return await inference_response(clips, inputs, image, None, request)

    return router
