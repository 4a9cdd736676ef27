"""HTTP Basic auth (user = API token, password = API key), per-credential rate limits
(10/s, 300/min, 10,000/h), and the merchant's CORS origins for the response."""

import base64
import binascii
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from fidelia.kit.errors import Unauthorized
from fidelia.models import Tenant
from fidelia.state import state_of


def _basic(header: str | None) -> tuple[str, str]:
    if not header or not header.lower().startswith("basic "):
        raise Unauthorized(
            "HTTP Basic credentials required (API token as user, API key as password)."
        )
    try:
        user, _, password = (
            base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        )
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized("Malformed Basic credentials.") from exc
    return user, password


async def pdv_merchant(request: Request) -> Tenant:
    """Async: with the key in the cache and the counters in memory it costs no thread hop;
    a cache miss reads in a worker thread. The state from the request (``state_of``), not
    as a dependency of its own: one less for FastAPI to solve on every call of the door."""
    state = state_of(request)
    token, secret = _basic(request.headers.get("Authorization"))
    hit, tenant = state.keys.cached(secret, token)
    if not hit:
        tenant = await run_in_threadpool(state.keys.tenant_for, state.db, secret, token)
    if tenant is None:
        raise Unauthorized("Invalid or revoked API token/key.")
    # Before the limiter: a 429 must carry CORS headers too, or a browser POS cannot read it.
    request.state.cors_origins = [o for o in tenant.cors_origins.split(",") if o]
    # Counted after authentication, so nobody can use up a merchant's quota with bad keys.
    await state.limiter.hit_async(state.settings.rate_limit_pdv, "pdv", token)
    return tenant


PdvMerchant = Annotated[Tenant, Depends(pdv_merchant)]
