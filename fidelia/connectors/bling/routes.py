"""Bling's door: the signed webhook (stored, then processed by the worker) and the OAuth
callback (a fixed redirect URI: {public_url}/connectors/bling/callback)."""

import json
import weakref
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel

from fidelia.connectors.bling import intake, service
from fidelia.connectors.bling.client import Bling
from fidelia.kit.errors import DomainError, Unauthorized
from fidelia.kit.rendering import default_errors
from fidelia.kit.security import verify_sha256
from fidelia.state import AppState, State

router = APIRouter(tags=["Bling ERP (seed 003)"])
PANEL = "/panel/integrations"
_clients: "weakref.WeakKeyDictionary[State, Bling]" = weakref.WeakKeyDictionary()


def client_for(state: State) -> Bling:
    """One Bling client per app (its HTTP connections and pacing are shared)."""
    if state not in _clients:
        _clients[state] = Bling(state.db, state.settings)
    return _clients[state]


class Stored(BaseModel):
    received: bool
    duplicate: bool


WEBHOOK_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["eventId", "companyId", "event"],
                    "properties": {
                        "eventId": {"type": "string"},
                        "date": {"type": "string"},
                        "version": {"type": "string"},
                        "event": {"type": "string", "example": "order.updated"},
                        "companyId": {"type": "string"},
                        "data": {"type": "object"},
                    },
                }
            }
        },
    }
}


@router.post(
    "/webhooks/bling",
    response_model=Stored,
    responses=default_errors(400, 401),
    openapi_extra=WEBHOOK_BODY,
)
async def receive(request: Request, state: AppState) -> Stored:
    """Bling's webhook, signed (``X-Bling-Signature-256``: HMAC-SHA256 of the raw body with
    the app's client secret; anything else is 401 and not read); 200 once stored."""
    secret = state.settings.bling_client_secret
    signature = request.headers.get("X-Bling-Signature-256")
    if not secret or not signature or not signature.startswith("sha256="):
        raise Unauthorized("Invalid or missing X-Bling-Signature-256.", code="INVALID_SIGNATURE")
    raw = await request.body()  # bounded by FIDELIA_MAX_BODY_BYTES
    if not verify_sha256(raw, secret, signature):
        raise Unauthorized("Invalid or missing X-Bling-Signature-256.", code="INVALID_SIGNATURE")
    try:
        payload: Any = json.loads(raw)
    except ValueError as exc:
        raise DomainError("Malformed JSON.", code="BAD_REQUEST") from exc

    def keep() -> bool:
        with state.db.session() as session:
            return intake.store(session, payload)

    stored = await state.run_in_db_slot(keep)
    return Stored(received=True, duplicate=not stored)


@router.get("/connectors/bling/callback", include_in_schema=False)
def callback(
    request: Request,
    state: AppState,
    code: str = Query("", max_length=512),
    oauth_state: str = Query("", alias="state", max_length=512),
    error: str = Query("", max_length=200),
) -> RedirectResponse:
    """Where Bling sends the merchant's browser back after the authorisation."""
    if error:
        return RedirectResponse(f"{PANEL}?bling=denied", status_code=303)
    binding = request.cookies.get(service.BINDING_COOKIE)
    service.complete_connect(state.db, client_for(state), code, oauth_state, binding)
    response = RedirectResponse(f"{PANEL}?bling=connected", status_code=303)
    response.delete_cookie(service.BINDING_COOKIE, path="/connectors/bling")
    return response


@router.get("/connectors/bling/begin", include_in_schema=False)
def begin(
    state: AppState,
    oauth_state: str = Query(..., alias="state", max_length=512),
    binding: str = Query(..., max_length=512),
) -> RedirectResponse:
    """The operator's link (``fidelia bling connect``): binds this browser, then on to Bling."""
    with state.db.session(readonly=True) as session:
        service.check_begin(session, oauth_state, binding)
    response = RedirectResponse(service.authorize_url(state.settings, oauth_state), status_code=303)
    set_binding_cookie(response, binding, state.settings.public_url.startswith("https"))
    return response


def set_binding_cookie(response: Any, binding: str, secure: bool) -> None:
    """The cookie the callback checks the state against (for the panel too)."""
    response.set_cookie(
        service.BINDING_COOKIE,
        binding,
        max_age=int(service.STATE_LIFETIME.total_seconds()),
        path="/connectors/bling",
        httponly=True,
        secure=secure,
        samesite="lax",
    )
