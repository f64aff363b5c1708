"""ASGI middleware that shapes HTTP requests before the routes see them:

- BodyLimit: a body larger than the server takes answers 413 before it is read: at once from
  its Content-Length, or as soon as a body sent without one (chunked) passes the limit.
- JsonBodies: every body is read as JSON, whatever its Content-Type says (or if it says none),
  as the original riffusion server did: its web app's proxy and scripts send text/plain or no
  type at all.
- HeadAsGet: HEAD runs the GET of the same path and answers its status and headers without the
  body, on every route that answers GET; 405s list HEAD wherever they list GET.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from riffusion.server.http_errors import error_response


def megabytes(size: int) -> str:
    """size in bytes as MB (2**20 bytes), for messages: 18 MB, 0.5 MB."""
    return f"{size / 2**20:g} MB"


class BodyTooLarge(HTTPException):
    """A request body passed the limit while it was being read: 413. An HTTPException, so that
    the route reading the body passes it on to the app's handler of HTTP errors."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            413,
            f"the request body is larger than the {megabytes(max_bytes)} this server takes",
            # The rest of the body is never read: the connection cannot carry another request.
            headers={"Connection": "close"},
        )


class BodyLimit:
    """Answer 413 (the JSON error) to requests whose body is larger than max_bytes, without
    reading more of it than max_bytes."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._too_large(scope, receive, send)
            return

        received = 0
        started = False

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def send_noting_start(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive_within_limit, send_noting_start)
        except BodyTooLarge as error:
            if started:
                raise
            await self._too_large(scope, receive, send, error)

    async def _too_large(
        self, scope: Scope, receive: Receive, send: Send, error: BodyTooLarge | None = None
    ) -> None:
        error = error or BodyTooLarge(self.max_bytes)
        response = error_response(error.status_code, error.detail, headers=error.headers)
        await response(scope, receive, send)


class JsonBodies:
    """Present every HTTP request to the app as Content-Type: application/json."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = [(name, value) for name, value in scope["headers"] if name != b"content-type"]
            headers.append((b"content-type", b"application/json"))
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


class HeadAsGet:
    """Run HEAD requests as GET and send the response without its body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        if head:
            # A copy: the ASGI server keeps the original, and knows from it that no body follows.
            scope = {**scope, "method": "GET"}

        async def send_for_head(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                message = {**message, "headers": _allow_head(message["headers"])}
            elif head and message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {**message, "body": b""}
            await send(message)

        await self.app(scope, receive, send_for_head)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the ASGI server refuses such requests itself
    return None


def _allow_head(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """headers with HEAD added to an Allow header that lists GET without it."""
    changed = []
    for name, value in headers:
        if name.lower() == b"allow":
            methods = [method.strip() for method in value.split(b",")]
            if b"GET" in methods and b"HEAD" not in methods:
                value = b", ".join([*methods, b"HEAD"])
        changed.append((name, value))
    return changed
