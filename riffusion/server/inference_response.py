"""One generation over HTTP: queue it on the clip service, wait for it while the client is there,
and answer with the original API's InferenceOutput JSON (or nothing, for a client that went
away)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from PIL import Image

from riffusion.diffusion.inputs import InferenceInput
from riffusion.server.clip_service import ClipService
from riffusion.server.schemas import InferenceOutputModel
from riffusion.server.worker import (
    CLIENT_CLOSED_REQUEST,
    result_unless_disconnected,
)


async def inference_response(
    clips: ClipService,
    inputs: InferenceInput,
    init_image: Image.Image,
    mask_image: Image.Image | None,
    request: Request,
) -> Response:
    """The clip generated for inputs as InferenceOutput JSON, with the job's step headers.

    Raises what clips.submit() raises (ModelNotReady, QueueFull) for the app's error handlers.
    """
    job = clips.submit(inputs, init_image, mask_image)
    rendered = await result_unless_disconnected(clips.cancel, job, request.is_disconnected)
    if rendered is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    output = InferenceOutputModel(
        image=rendered.image_url, audio=rendered.audio_url, duration_s=rendered.duration_s
    )
    return JSONResponse(output.model_dump(mode="json"), headers=job.steps_headers)
