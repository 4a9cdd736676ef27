"""Request bodies larger than the configured limit are refused before they are read.

A pure ASGI middleware: a ``Content-Length`` over the limit is answered 413 at once, without
reading a byte; a chunked body is counted while it streams and refused as soon as it passes
the limit (the app never holds more than the limit in memory). The 413 comes out in the
door's own error format, through the same renderers as every other error."""

from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fidelia.kit.errors import DomainError


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` mid-stream. An HTTPException, so FastAPI's body parsing lets
    it through (any other exception there becomes a 400) and the door renders it."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_message(limit))


def too_large_message(limit: int) -> str:
    return f"Request body too large: at most {limit} bytes."


class BodyLimit:
    def __init__(
        self, app: ASGIApp, limit: int, render: Callable[[Request, DomainError], Response]
    ) -> None:
        self.app = app
        self.limit = limit
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared > self.limit or declared < 0:
                error = DomainError(
                    too_large_message(self.limit) if declared >= 0 else "Bad Content-Length.",
                    code="PAYLOAD_TOO_LARGE" if declared >= 0 else "BAD_REQUEST",
                    status=413 if declared >= 0 else 400,
                )
                response = self.render(Request(scope), error)
                response.headers["Connection"] = "close"
                await response(scope, receive, send)
                return
        seen = 0
        limit = self.limit

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)
