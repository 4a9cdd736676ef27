"""Meta's webhook for the WhatsApp Cloud API: the verification handshake, and inbound
messages checked against ``X-Hub-Signature-256`` on the raw body before anything is read."""

import hmac
import json
import logging
import re
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel

from fidelia.kit.errors import DomainError, Unauthorized
from fidelia.kit.phone import normalize_e164
from fidelia.kit.rendering import default_errors
from fidelia.kit.security import verify_sha256
from fidelia.messaging.bot import Inbound
from fidelia.state import AppState, State

log = logging.getLogger("fidelia.webhook")
_NOT_DIGITS = re.compile(r"\D")
router = APIRouter(tags=["WhatsApp webhook"])

_TEXT = {"type": "object", "properties": {"body": {"type": "string"}}}
_MESSAGE = {
    "type": "object",
    "properties": {
        "from": {"type": "string"},
        "id": {"type": "string"},
        "timestamp": {"type": "string"},
        "type": {"type": "string"},
        "text": _TEXT,
    },
}
_CONTACT = {
    "type": "object",
    "properties": {
        "profile": {"type": "object", "properties": {"name": {"type": "string"}}},
        "wa_id": {"type": "string"},
        "user_id": {"type": "string"},
    },
}
_VALUE = {
    "type": "object",
    "properties": {
        "messaging_product": {"type": "string"},
        "metadata": {
            "type": "object",
            "properties": {
                "display_phone_number": {"type": "string"},
                "phone_number_id": {"type": "string"},
            },
        },
        "contacts": {"type": "array", "items": _CONTACT},
        "messages": {"type": "array", "items": _MESSAGE},
        "statuses": {"type": "array", "items": {"type": "object"}},
    },
}
# Meta's notification, as documented (the handler reads the raw body, so FastAPI does not
# see it): declared for integrators and for the fuzzer. Anything else that is a JSON object
# is accepted and skipped; what is not JSON, or not an object, is a 400.
INBOUND_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "object": {"type": "string"},
                        "entry": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "id": {"type": "string"},
                                    "changes": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "field": {"type": "string"},
                                                "value": _VALUE,
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    },
                }
            }
        },
    }
}


class Received(BaseModel):
    received: int  # text messages in the delivery
    processed: int  # of them, new (stored for the worker); redeliveries count 0


def parse_inbound(payload: dict[str, Any], default_bot_number: str) -> list[Inbound]:
    """Every text message of every entry and change (Meta batches them). Status updates
    and other message types are acknowledged and skipped."""
    found: list[Inbound] = []
    for entry in _objects(payload.get("entry")):
        for change in _objects(entry.get("changes")):
            value = change.get("value")
            if not isinstance(value, dict):
                continue
            metadata = value.get("metadata")
            metadata = metadata if isinstance(metadata, dict) else {}
            bot = (
                _NOT_DIGITS.sub("", str(metadata.get("display_phone_number") or ""))
                or default_bot_number
            )
            contacts = _objects(value.get("contacts"))
            for message in _objects(value.get("messages")):
                if not isinstance(message, dict) or message.get("type") != "text":
                    continue
                found_msg = _message(message, contacts, bot)
                if found_msg is not None:
                    found.append(found_msg)
    return found


def _objects(items: Any) -> list[dict[str, Any]]:
    """The dicts of a list; anything else (a malformed payload) counts as empty."""
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _identity(value: Any, limit: int) -> str | None:
    """An id from Meta as we store it: text without NUL characters, within its column. A
    message whose id cannot be stored is skipped (it would fail on every redelivery)."""
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value)
    return text if text and "\x00" not in text and len(text) <= limit else None


@lru_cache(maxsize=4096)
def _e164(raw: str) -> str | None:
    """A sender's number in E.164, None if it is not one. Senders write again and again, and
    the parse (the phonenumbers library) was the dearest step of reading a message."""
    try:
        return normalize_e164(raw)
    except Exception:
        return None


def _message(message: dict[str, Any], contacts: list[dict[str, Any]], bot: str) -> Inbound | None:
    sender = message.get("from")
    contact = next(
        (c for c in contacts if isinstance(c, dict) and sender and c.get("wa_id") == sender),
        contacts[0] if len(contacts) == 1 and isinstance(contacts[0], dict) else {},
    )
    number_raw = sender or contact.get("wa_id")
    user_id = _identity(contact.get("user_id") or message.get("from_user_id"), 64)
    number = _e164(str(number_raw)) if number_raw else None
    text = message.get("text")
    body = text.get("body") if isinstance(text, dict) else ""
    message_id = _identity(message.get("id"), 128)
    if not message_id or not (number or user_id) or not isinstance(body, str):
        return None
    profile = contact.get("profile")
    name = profile.get("name") if isinstance(profile, dict) else None
    text_body = body.replace("\x00", "")
    return Inbound(
        message_id, number, user_id, text_body, bot, name if isinstance(name, str) else None
    )


@router.get(
    "/webhooks/whatsapp",
    response_class=PlainTextResponse,
    responses={
        403: {"description": "Wrong verify token", "content": {"text/plain": {}}},
        **default_errors(400),
    },
)
def verify(
    state: AppState,
    mode: str = Query("", alias="hub.mode"),
    token: str = Query("", alias="hub.verify_token"),
    challenge: str = Query("", alias="hub.challenge"),
) -> Response:
    """Meta's subscription handshake: echo the challenge when the verify token matches."""
    expected = state.settings.whatsapp_verify_token.encode()
    if mode == "subscribe" and token and hmac.compare_digest(token.encode(), expected):
        return PlainTextResponse(challenge)
    return PlainTextResponse("forbidden", status_code=403)


@router.post(
    "/webhooks/whatsapp",
    response_model=Received,
    responses=default_errors(400, 401),
    openapi_extra=INBOUND_BODY,
)
async def receive(request: Request) -> Response:
    """Inbound messages and statuses, signed by Meta (``X-Hub-Signature-256`` over the raw
    body; anything unsigned is 401 and not read); answered 200 once every message is stored.

    The hottest door, so it takes only what it needs: the app's state from the request (no
    dependency to resolve) and its answer as the JSON ``Received`` documents, made directly
    (a ``Response`` is sent as it is, not validated against the model again)."""
    state: State = request.app.state.fidelia
    signature = request.headers.get("X-Hub-Signature-256")
    if not signature or not signature.startswith("sha256="):  # refused before reading a byte
        raise Unauthorized("Invalid or missing X-Hub-Signature-256.", code="INVALID_SIGNATURE")
    raw = await request.body()  # bounded by FIDELIA_MAX_BODY_BYTES (kit/body_limit)
    if not verify_sha256(raw, state.settings.whatsapp_app_secret, signature):
        raise Unauthorized("Invalid or missing X-Hub-Signature-256.", code="INVALID_SIGNATURE")
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        raise DomainError("Malformed JSON.", code="BAD_REQUEST") from exc
    if not isinstance(payload, dict):
        raise DomainError("Expected a JSON object.", code="BAD_REQUEST")
    messages = parse_inbound(payload, state.settings.bot_number)
    stored = await state.receive_inbound(messages)
    return JSONResponse({"received": len(messages), "processed": stored})
