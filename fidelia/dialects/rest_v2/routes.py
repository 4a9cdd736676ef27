"""Seed 004: the server-to-server REST API v2 (``/v2/...``). Bearer tokens from
``POST /v2/auth/token``; JSON in snake_case; lists are ``{"data": [...], "meta": {page,
per_page, total, total_pages}}``; errors ``{"error": {"code", "message"}}``."""

from fastapi import APIRouter

from fidelia.dialects.rest_v2 import auth, catalogue, customers, sales, vouchers
from fidelia.dialects.rest_v2.schemas import ErrorOut

router = APIRouter(
    prefix="/v2",
    responses={
        401: {"model": ErrorOut, "description": "unauthorized, invalid_token"},
        403: {"model": ErrorOut, "description": "forbidden"},
        404: {"model": ErrorOut, "description": "*_not_found"},
        409: {"model": ErrorOut, "description": "conflicts: *_exists, insufficient_stock, ..."},
        413: {"model": ErrorOut, "description": "payload_too_large (FIDELIA_MAX_BODY_BYTES)"},
        422: {"model": ErrorOut, "description": "invalid_request and field-specific codes"},
        429: {"model": ErrorOut, "description": "rate_limited (see Retry-After)"},
        500: {"model": ErrorOut, "description": "internal_error"},
    },
)
for part in (auth, customers, sales, catalogue, vouchers):
    router.include_router(part.router)
