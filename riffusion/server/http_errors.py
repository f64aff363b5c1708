"""The server's error responses: every error, whatever raised it, answers the one JSON body
{"message": one line, "detail": ...} (ErrorModel) with the right status, never a plain-text page.

    error_response(413, "the body is larger than 18 MB")
    add_error_handlers(app, health)
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from riffusion.errors import RiffusionError
from riffusion.server.model import ModelNotReady
from riffusion.server.schemas import ErrorModel, HealthModel
from riffusion.server.worker import QueueFull

# Retry-After (s) while the model loads.
LOADING_RETRY_AFTER_S = 5
#: WebDAV's "Insufficient Storage", the conventional status for a server out of disk space.
INSUFFICIENT_STORAGE = 507
# OSError numbers that mean the disk (or the user's quota on it) is full.
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}

#: The error responses any route may give, for the OpenAPI schema (routes add their own).
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorModel, "description": "the request body is larger than the server takes"},
    500: {"model": ErrorModel, "description": "an unexpected error on the server (logged there)"},
    507: {"model": ErrorModel, "description": "the server's disk is full"},
}

logger = logging.getLogger(__name__)


def error_response(
    status: int,
    message: str,
    detail: Any = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """The JSON error: message (one line), detail (message itself unless given), and extra."""
    body = {"message": message, "detail": message if detail is None else detail, **extra}
    return JSONResponse(body, status_code=status, headers=headers)


def is_disk_full(error: OSError) -> bool:
    return error.errno in _NO_SPACE


def add_error_handlers(app: FastAPI, health: Callable[[], HealthModel]) -> None:
    """Turn every exception a route can raise into its JSON error; health() gives the /health
    object that 503s carry."""

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        not_json = [problem for problem in problems if problem["type"] == "json_invalid"]
        if not_json:
            reason = not_json[0].get("ctx", {}).get("error", "malformed")
            position = not_json[0]["loc"][-1]
            return error_response(
                400, f"the request body is not JSON: {reason} at character {position}"
            )
        lines = []
        for problem in problems:
            # FastAPI prefixes the location with where it came from ("body", "query", ...).
            location = ".".join(str(part) for part in problem["loc"][1:])
            lines.append(f"{location}: {problem['msg']}" if location else problem["msg"])
        detail = [
            {key: problem[key] for key in ("loc", "msg", "type") if key in problem}
            for problem in problems
        ]
        return error_response(422, "; ".join(lines), detail)

    # Starlette's class, so that its own 404s (unknown routes, missing files) match too.
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RiffusionError)
    async def bad_input(_: Request, exc: RiffusionError) -> JSONResponse:
        return error_response(400, str(exc))

    @app.exception_handler(ModelNotReady)
    async def not_ready(_: Request, exc: ModelNotReady) -> JSONResponse:
        loading = exc.snapshot.status == "loading"
        headers = {"Retry-After": str(LOADING_RETRY_AFTER_S)} if loading else None
        what = "the model is still loading" if loading else "the model failed to load"
        return error_response(
            503,
            f"{what}: {exc.snapshot.message}",
            headers=headers,
            model=health().model_dump(mode="json"),
        )

    @app.exception_handler(QueueFull)
    async def busy(_: Request, exc: QueueFull) -> JSONResponse:
        return error_response(429, str(exc), headers={"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(OSError)
    async def os_error(request: Request, exc: OSError) -> JSONResponse:
        if not is_disk_full(exc):
            raise exc  # unexpected: to the handler of Exception below
        logger.error("%s %s: %s", request.method, request.url.path, exc)
        return error_response(INSUFFICIENT_STORAGE, "the server's disk is full: try again later")

    # Starlette calls the handler of Exception from its outermost layer for whatever the others
    # did not take, in middleware too, and raises the exception again once the response has
    # gone, so that the ASGI server logs its traceback.
    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        return error_response(
            500, f"internal server error ({type(exc).__name__}); the server's log has the details"
        )
