"""Seed 004's error format: ``{"error": {"code": "snake_case", "message": "..."}}``.

The code is the engine's, lower-cased, except where the door names it in its own words
(coupons are rewards here). 401s carry ``WWW-Authenticate: Bearer`` (RFC 6750), 429s
``Retry-After``. Malformed or invalid bodies and parameters are 422 ``invalid_request``."""

from fastapi.responses import JSONResponse

from fidelia.kit.errors import DomainError

# engine code -> (HTTP status, the door's code)
CODES: dict[str, tuple[int, str]] = {
    "BAD_REQUEST": (422, "invalid_request"),
    "INVALID_INPUT": (422, "invalid_request"),
    "REWARD_NOT_FOUND": (404, "coupon_not_found"),
    "OUT_OF_STOCK": (409, "insufficient_stock"),
    "TOO_MANY_REQUESTS": (429, "rate_limited"),
}


def render(error: DomainError) -> JSONResponse:
    status, code = CODES.get(error.code, (error.status, error.code.lower()))
    if status >= 500:
        status, code = 500, "internal_error"
    message = error.message if status < 500 else "Internal error."
    headers = {}
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = (
            'Bearer realm="fidelia", error="invalid_token"'
            if code == "invalid_token"
            else 'Bearer realm="fidelia"'
        )
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )
