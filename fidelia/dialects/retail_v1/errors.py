"""Seed 002's error format: ``{"status": "error", "error": {"code", "message", "path"}}``."""

from fastapi.responses import JSONResponse

from fidelia.kit.errors import DomainError

# engine code -> (HTTP status, the door's code); the helper building the door extends this.
CODES: dict[str, tuple[int, str]] = {
    "UNAUTHORIZED": (401, "4010001"),
    "TOO_MANY_REQUESTS": (429, "429"),
    "NOT_FOUND": (404, "404"),
    "METHOD_NOT_ALLOWED": (405, "405"),
    "BAD_REQUEST": (400, "4000002"),
    "INVALID_INPUT": (400, "4000002"),
}


def render(error: DomainError) -> JSONResponse:
    status, code = CODES.get(error.code, (500, "500"))
    message = error.message if status < 500 else "Internal error."
    body = {
        "status": "error",
        "error": {"code": code, "message": message, "path": getattr(error, "path", None)},
    }
    return JSONResponse(body, status_code=status)
