"""Seed 004's error format: ``{"error": {"code": "snake_case", "message": "..."}}``."""

from fastapi.responses import JSONResponse

from fidelia.kit.errors import DomainError


def render(error: DomainError) -> JSONResponse:
    status = error.status if error.status < 500 else 500
    code = error.code.lower() if status < 500 else "internal_error"
    message = error.message if status < 500 else "Internal error."
    headers = {}
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )
