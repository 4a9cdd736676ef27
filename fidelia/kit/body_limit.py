"""Request bodies larger than the configured limit are refused before they are read.

Applied by the app's edge middleware (``fidelia/edge.py``): a ``Content-Length`` over the
limit is answered 413 at once, without reading a byte; a chunked body is counted while it
streams and refused as soon as it passes the limit (the app never holds more than the limit
in memory). The 413 comes out in the door's own error format, through the same renderers as
every other error."""

from starlette.exceptions import HTTPException
from starlette.types import Message, Receive, Scope

from fidelia.kit.errors import DomainError


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` mid-stream. An HTTPException, so FastAPI's body parsing lets
    it through (any other exception there becomes a 400) and the door renders it."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_message(limit))


def too_large_message(limit: int) -> str:
    return f"Request body too large: at most {limit} bytes."


class BodyLimit:
    def __init__(self, limit: int) -> None:
        self.limit = limit

    def refusal(self, scope: Scope) -> DomainError | None:
        """The error for a declared length over the limit (413) or unreadable (400); the
        answer to it closes the connection."""
        length = dict(scope["headers"]).get(b"content-length")
        if length is None:
            return None
        try:
            declared = int(length)
        except ValueError:
            declared = -1
        if declared > self.limit or declared < 0:
            return DomainError(
                too_large_message(self.limit) if declared >= 0 else "Bad Content-Length.",
                code="PAYLOAD_TOO_LARGE" if declared >= 0 else "BAD_REQUEST",
                status=413 if declared >= 0 else 400,
            )
        return None

    def counted(self, receive: Receive) -> Receive:
        """``receive`` that raises ``BodyTooLarge`` as soon as the body passes the limit."""
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

        return counted
