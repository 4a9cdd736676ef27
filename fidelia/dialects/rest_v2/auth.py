"""Bearer tokens: ``POST /v2/auth/token`` trades the merchant's ``api_key`` (its API token)
and ``api_secret`` (its API key) for an access token valid an hour; every other call sends
it as ``Authorization: Bearer ...``. Rate limits count per API credential, after
authentication, so bad tokens cannot use up a merchant's quota."""

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fidelia.dialects.rest_v2.schemas import TokenIn, TokenOut
from fidelia.kit.clock import now
from fidelia.kit.deps import AppState, DbSlot
from fidelia.kit.errors import Unauthorized
from fidelia.models import Tenant
from fidelia.tenants import tokens

router = APIRouter()

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="BearerToken",
    bearerFormat="opaque",
    description="An access token from POST /v2/auth/token",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def access_token(credentials: Credentials) -> str:
    if credentials is None or not credentials.credentials.strip():
        raise Unauthorized("Send Authorization: Bearer <access_token> (from POST /v2/auth/token).")
    return credentials.credentials.strip()


AccessToken = Annotated[str, Depends(access_token)]


def merchant(token: AccessToken, state: AppState, _slot: DbSlot) -> Tenant:
    try:
        holder = tokens.holder_of(state.db, token)
    except Unauthorized as exc:
        raise Unauthorized(exc.message, code="INVALID_TOKEN") from exc
    state.limiter.hit(state.settings.rate_limit_rest_v2, "rest-v2", str(holder.api_key_id))
    return holder.tenant


Merchant = Annotated[Tenant, Depends(merchant)]


@router.post("/auth/token", response_model=TokenOut, tags=["Seed 004: auth"])
def create_token(
    body: TokenIn, request: Request, response: Response, state: AppState, _slot: DbSlot
) -> TokenOut:
    """Trade ``api_key`` + ``api_secret`` for a Bearer access token (valid one hour)."""
    ip = request.client.host if request.client else "unknown"
    state.limiter.hit(state.settings.rate_limit_rest_v2_token, "rest-v2-token", ip)
    try:
        issued = tokens.issue(state.db, body.api_key, body.api_secret)
    except Unauthorized as exc:
        raise Unauthorized(exc.message, code="INVALID_CREDENTIALS") from exc
    response.headers["Cache-Control"] = "no-store"  # RFC 6749 5.1
    response.headers["Pragma"] = "no-cache"
    return TokenOut(
        access_token=issued.token,
        expires_in=issued.expires_in,
        expires_at=now() + timedelta(seconds=issued.expires_in),
    )


@router.delete("/auth/token", status_code=204, tags=["Seed 004: auth"])
def revoke_token(token: AccessToken, _tenant: Merchant, state: AppState) -> Response:
    """Revoke the access token of this call (log out); other tokens stay valid."""
    tokens.revoke(state.db, token)
    return Response(status_code=204)
