"""A local stand-in for WhatsApp (development only): a chat page where you type as the
customer, and a fake Graph API that receives the bot's replies. Messages typed on the
page go through the same signed-webhook path as Meta's would."""

import json
import secrets
import time
from pathlib import Path
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Query
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel
from sqlalchemy import func, select

from fidelia.kit.deps import ReadSessionDep, SessionDep
from fidelia.kit.errors import NotFound, Unauthorized
from fidelia.kit.phone import normalize_e164
from fidelia.kit.rendering import default_errors
from fidelia.kit.security import sign_sha256
from fidelia.messaging.webhook import parse_inbound
from fidelia.models import InboundMessage, SimulatorMessage
from fidelia.state import AppState, State

router = APIRouter(
    prefix="/simulator",
    tags=["WhatsApp simulator (development)"],
    responses=default_errors(400, 401, 404, 422),
)
templates = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent.parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


class SimSend(BaseModel):
    wa_number: str
    text: str
    name: str | None = None


def cloud_api_payload(
    number: str, text: str, bot_number: str, phone_number_id: str, name: str | None
) -> dict[str, object]:
    """The JSON Meta would POST for one inbound text message."""
    wa_id = number.lstrip("+")
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "0",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": bot_number,
                                "phone_number_id": phone_number_id,
                            },
                            "contacts": [{"profile": {"name": name or ""}, "wa_id": wa_id}],
                            "messages": [
                                {
                                    "from": wa_id,
                                    "id": f"wamid.sim.{secrets.token_hex(12)}",
                                    "timestamp": str(int(time.time())),
                                    "type": "text",
                                    "text": {"body": text},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }


def _enabled(state: AppState) -> None:
    if not state.settings.simulator:
        raise NotFound("The simulator is off (FIDELIA_SIMULATOR=0).")


@router.get("", response_class=HTMLResponse, include_in_schema=False)
def page(state: AppState, text: str = "", wa: str = "+50688887777") -> HTMLResponse:
    _enabled(state)
    html = templates.get_template("simulator.html").render(
        bot_number=state.settings.bot_number, text=text, wa=wa
    )
    return HTMLResponse(html)


@router.post("/api/send")
async def send(body: SimSend, state: AppState) -> dict[str, object]:
    """Type as the customer: the text is signed and handled exactly like Meta's webhook."""
    _enabled(state)
    number = normalize_e164(body.wa_number)
    payload = cloud_api_payload(
        number,
        body.text,
        state.settings.bot_number,
        state.settings.whatsapp_phone_number_id,
        body.name,
    )
    raw = json.dumps(payload).encode()
    signature = sign_sha256(raw, state.settings.whatsapp_app_secret)

    def record_and_store() -> list[str]:
        with state.db.session() as session:
            session.add(SimulatorMessage(wa_number=number, direction="in", body=body.text))
        messages = parse_inbound(json.loads(raw), state.settings.bot_number)
        state.store_inbound(messages)
        return [m.message_id for m in messages]

    ids = await state.run_in_db_slot(record_and_store)
    # The worker processes it (store first, then process); the simulator answers once it
    # has, so whoever types here (or scripts it) sees the bot's effect right after.
    deadline = anyio.current_time() + 5
    while anyio.current_time() < deadline:
        if not await state.run_in_db_slot(_pending, state, ids):
            break
        await anyio.sleep(0.02)
    return {"processed": len(ids), "signature": signature}


def _pending(state: State, ids: list[str]) -> bool:
    with state.db.session(readonly=True) as session:
        return bool(
            session.scalar(
                select(func.count())
                .select_from(InboundMessage)
                .where(InboundMessage.message_id.in_(ids), InboundMessage.status == "pending")
            )
        )


@router.get("/api/messages")
def messages(
    state: AppState, session: ReadSessionDep, wa: str, after: Annotated[int, Query(ge=0)] = 0
) -> dict[str, object]:
    """The conversation with one number, oldest first, after message id ``after``."""
    _enabled(state)
    number = normalize_e164(wa)
    rows = session.scalars(
        select(SimulatorMessage)
        .where(SimulatorMessage.wa_number == number, SimulatorMessage.id > after)
        .order_by(SimulatorMessage.id)
    )
    return {
        "messages": [
            {"id": r.id, "direction": r.direction, "body": r.body, "at": r.created_at.isoformat()}
            for r in rows
        ]
    }


@router.post("/graph/v{version}/{phone_number_id}/messages")
def graph_messages(
    version: str,
    phone_number_id: str,
    payload: dict[str, object],
    state: AppState,
    session: SessionDep,
    authorization: Annotated[str | None, Header()] = None,
) -> dict[str, object]:
    """The fake Graph API: stores the bot's outbound text for the chat page."""
    _enabled(state)
    if authorization != f"Bearer {state.settings.whatsapp_token}":
        raise Unauthorized("bad token")
    to = str(payload.get("to") or payload.get("recipient") or "")
    text = payload.get("text")
    body = text.get("body", "") if isinstance(text, dict) else ""
    number = normalize_e164(to) if to and not to.startswith("US.") else to
    session.add(SimulatorMessage(wa_number=number, direction="out", body=str(body)))
    return {
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
        "messages": [{"id": f"wamid.simout.{secrets.token_hex(12)}"}],
    }
