"""Seed 002: the retail loyalty API (``POST /v1/...``): members, transactions, loyalty
payments and events, with the guide's headers and ``{"status": ...}`` envelope."""

from fastapi import APIRouter

from fidelia.dialects.retail_v1 import members, transactions
from fidelia.dialects.retail_v1.schemas import ErrorResponse

ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorResponse}
    for status in (400, 401, 403, 404, 409, 410, 413, 422, 429, 500)
}
router = APIRouter(prefix="/v1", tags=["Seed 002: retail loyalty"], responses=ERRORS)
router.include_router(members.router)
router.include_router(transactions.router)
