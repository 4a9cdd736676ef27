"""Meta's webhook for the WhatsApp Cloud API: the verification handshake, and inbound
messages checked against ``X-Hub-Signature-256`` on the raw body before anything is read."""

import json
import logging
import re
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from fidelia.kit.deps import AppState
from fidelia.kit.phone import normalize_e164
from fidelia.kit.security import verify_sha256
from fidelia.messaging.bot import Inbound

log = logging.getLogger("fidelia.webhook")
router = APIRouter(tags=["WhatsApp webhook"])


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
                re.sub(r"\D", "", str(metadata.get("display_phone_number") or ""))
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


def _message(message: dict[str, Any], contacts: list[dict[str, Any]], bot: str) -> Inbound | None:
    sender = message.get("from")
    contact = next(
        (c for c in contacts if isinstance(c, dict) and sender and c.get("wa_id") == sender),
        contacts[0] if len(contacts) == 1 and isinstance(contacts[0], dict) else {},
    )
    number_raw = sender or contact.get("wa_id")
    user_id = contact.get("user_id") or message.get("from_user_id")
    number = None
    if number_raw:
        try:
            number = normalize_e164(str(number_raw))
        except Exception:
            number = None
    text = message.get("text")
    body = text.get("body") if isinstance(text, dict) else ""
    message_id = message.get("id")
    if not message_id or not (number or user_id) or not isinstance(body, str):
        return None
    name = (contact.get("profile") or {}).get("name")
    return Inbound(str(message_id), number, user_id and str(user_id), body, bot, name)


@router.get("/webhooks/whatsapp", response_class=PlainTextResponse)
def verify(
    state: AppState,
    mode: str = Query("", alias="hub.mode"),
    token: str = Query("", alias="hub.verify_token"),
    challenge: str = Query("", alias="hub.challenge"),
) -> Response:
    """Meta's subscription handshake: echo the challenge when the verify token matches."""
    if mode == "subscribe" and token and token == state.settings.whatsapp_verify_token:
        return PlainTextResponse(challenge)
    return PlainTextResponse("forbidden", status_code=403)


@router.post("/webhooks/whatsapp")
async def receive(request: Request, state: AppState) -> Response:
    """Inbound messages and statuses; answered 200 once every message is safely stored."""
    raw = await request.body()
    if not verify_sha256(
        raw, state.settings.whatsapp_app_secret, request.headers.get("X-Hub-Signature-256")
    ):
        return JSONResponse({"error": "invalid signature"}, status_code=401)
    try:
        payload = json.loads(raw)
    except ValueError:
        return JSONResponse({"error": "malformed JSON"}, status_code=400)
    if not isinstance(payload, dict):
        return JSONResponse({"error": "expected an object"}, status_code=400)
    messages = parse_inbound(payload, state.settings.bot_number)
    processed = await state.run_in_db_slot(state.process_inbound, messages)
    return JSONResponse({"received": len(messages), "processed": processed})
