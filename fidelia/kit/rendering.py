"""One exception handler per wire format: each door registers the path prefix it owns
and a renderer; errors anywhere under that prefix come out in the door's own format."""

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from fidelia.kit.errors import DomainError, Unavailable

log = logging.getLogger("fidelia.errors")
Renderer = Callable[[DomainError], Response]


class ErrorDetail(BaseModel):
    code: str
    message: str


class DefaultError(BaseModel):
    """Errors outside the doors (webhook, simulator): ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


def default_errors(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses`` for routes rendered by ``default_render``."""
    return {status: {"model": DefaultError} for status in statuses}


def default_render(error: DomainError) -> Response:
    headers = {}
    if getattr(error, "retry_after", None) is not None:
        headers["Retry-After"] = str(error.retry_after)  # type: ignore[attr-defined]
    return JSONResponse(
        {"error": {"code": error.code, "message": error.message}},
        status_code=error.status,
        headers=headers,
    )


def describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "Invalid request: " + "; ".join(parts)


def install(
    app: FastAPI, doors: list[tuple[str, Renderer]]
) -> Callable[[Request, DomainError], Response]:
    """Register the handlers; returns ``render(request, error)`` for code outside FastAPI's
    handlers (ASGI middleware) to answer in the door's format too."""

    def renderer_for(request: Request) -> Renderer:
        path = request.url.path
        for prefix, render in doors:
            if path.startswith(prefix):
                return render
        return default_render

    @app.exception_handler(DomainError)
    async def domain(request: Request, exc: DomainError) -> Response:
        return renderer_for(request)(exc)

    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, exc: RequestValidationError) -> Response:
        return renderer_for(request)(DomainError(describe_validation(exc), code="BAD_REQUEST"))

    @app.exception_handler(StarletteHTTPException)
    async def http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}.get(
            exc.status_code, "BAD_REQUEST"
        )
        error = DomainError(str(exc.detail), code=code, status=exc.status_code)
        return renderer_for(request)(error)

    @app.exception_handler(DataError)
    async def unstorable(request: Request, exc: DataError) -> Response:
        """A value the database refuses (a NUL character in text on PostgreSQL, a string
        longer than its column, a number out of range): the client's input, so a 400 in the
        door's format, and the transaction was rolled back like any other refusal."""
        log.warning("refused input on %s %s: %s", request.method, request.url.path, exc.orig)
        error = DomainError(
            "Invalid request: a value contains characters or a size that cannot be stored.",
            code="BAD_REQUEST",
        )
        return renderer_for(request)(error)

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)
    async def unavailable(request: Request, exc: Exception) -> Response:
        """The database does not answer (restarting, failing over, out of connections); the
        transaction was rolled back. An answer here, not in the catch-all below: that one
        re-raises to the server, which then drops the connection, and nginx took each drop
        for a dead web process and sent it nothing for a while, replica reads included. One
        line, no traceback: during an outage every request comes here."""
        log.error(
            "database unavailable on %s %s: %s",
            request.method,
            request.url.path,
            str(getattr(exc, "orig", None) or exc).splitlines()[0][:200],
        )
        return renderer_for(request)(Unavailable("The database is unavailable; try again."))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        error = DomainError("Internal error.", code="INTERNAL_ERROR", status=500)
        return renderer_for(request)(error)

    def render(request: Request, error: DomainError) -> Response:
        return renderer_for(request)(error)

    return render
