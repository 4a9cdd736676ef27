"""The WhatsApp Cloud API webhook: the handshake, the signature, batches, redeliveries."""

import json

from sqlalchemy import func, select

from fidelia.kit.security import sign_sha256
from fidelia.models import InboundMessage, LedgerEntry, OutboxMessage, Pin
from tests.support.helpers import (
    generate_pin,
    make_tenant,
    process_inbound,
    send_whatsapp,
    signed_headers,
    webhook_body,
)

URL = "/webhooks/whatsapp"


def count(db, model):
    with db.session(readonly=True) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def pin_status(db, code):
    with db.session(readonly=True) as session:
        return session.scalar(select(Pin.status).where(Pin.code == code))


def text_message(number, text, message_id):
    digits = number.lstrip("+")
    return {
        "from": digits,
        "id": message_id,
        "timestamp": "1767225600",
        "type": "text",
        "text": {"body": text},
    }


def contact(number, name):
    return {"profile": {"name": name}, "wa_id": number.lstrip("+")}


def messages_change(settings, contacts, messages):
    return {
        "field": "messages",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": settings.bot_number,
                "phone_number_id": settings.whatsapp_phone_number_id,
            },
            "contacts": contacts,
            "messages": messages,
        },
    }


# -- the verification handshake ----------------------------------------------------------


def test_handshake_echoes_the_challenge(client, settings):
    response = client.get(
        URL,
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": settings.whatsapp_verify_token,
            "hub.challenge": "1158201444",
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "1158201444"


def test_handshake_refuses_a_wrong_token_or_mode(client, settings):
    for params in (
        {"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "42"},
        {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "42"},
        {"hub.mode": "subscribe", "hub.challenge": "42"},
        {
            "hub.mode": "unsubscribe",
            "hub.verify_token": settings.whatsapp_verify_token,
            "hub.challenge": "42",
        },
        {"hub.verify_token": settings.whatsapp_verify_token, "hub.challenge": "42"},
    ):
        response = client.get(URL, params=params)
        assert response.status_code == 403, params
        assert "42" not in response.text


# -- the signature -------------------------------------------------------------------------


def test_unsigned_or_badly_signed_posts_are_refused_and_not_processed(client, db, settings):
    tenant, key = make_tenant(db)
    pin = generate_pin(client, key)
    body = webhook_body(settings, "+50688887777", f"Quiero activar mi PIN: {pin}")
    other = webhook_body(settings, "+50688887777", "hola")
    attempts = [
        {"Content-Type": "application/json"},
        {"Content-Type": "application/json", "X-Hub-Signature-256": ""},
        {"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=00"},
        {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign_sha256(body, "not-the-app-secret"),
        },
        # A valid signature, but of another body.
        signed_headers(settings, other),
        # The bare hex without the "sha256=" prefix.
        {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign_sha256(body, settings.whatsapp_app_secret).removeprefix(
                "sha256="
            ),
        },
    ]
    for headers in attempts:
        response = client.post(URL, content=body, headers=headers)
        assert response.status_code == 401, headers
    assert count(db, InboundMessage) == 0
    assert count(db, OutboxMessage) == 0
    assert count(db, LedgerEntry) == 0
    assert pin_status(db, pin) == "open"

    # The same body, correctly signed, goes through: the refusals were about the signature.
    accepted = client.post(URL, content=body, headers=signed_headers(settings, body))
    assert accepted.status_code == 200
    assert pin_status(db, pin) == "open"  # stored: the worker processes it
    assert process_inbound(client) == 1
    assert pin_status(db, pin) == "used"


def test_malformed_json_with_a_valid_signature_is_400(client, db, settings):
    for raw in (b"{not json", b"", b"[1, 2]", b'"text"'):
        response = client.post(URL, content=raw, headers=signed_headers(settings, raw))
        assert response.status_code == 400, raw
    assert count(db, InboundMessage) == 0
    assert count(db, OutboxMessage) == 0


# -- batches, statuses, redeliveries ---------------------------------------------------------


def test_a_batched_payload_processes_every_text_message(client, db, settings, graph, worker):
    tenant, key = make_tenant(db)
    pins = [generate_pin(client, key) for _ in range(3)]
    ana, beto, caro = "+50688880001", "+50688880002", "+50688880003"
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA-1",
                "changes": [
                    messages_change(
                        settings,
                        [contact(ana, "Ana"), contact(beto, "Beto")],
                        [
                            text_message(ana, f"Quiero activar mi PIN: {pins[0]}", "wamid.b1"),
                            text_message(beto, f"Quiero activar mi PIN: {pins[1]}", "wamid.b2"),
                        ],
                    ),
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": settings.bot_number,
                                "phone_number_id": settings.whatsapp_phone_number_id,
                            },
                            "statuses": [
                                {
                                    "id": "wamid.out.1",
                                    "status": "delivered",
                                    "timestamp": "1767225600",
                                    "recipient_id": ana.lstrip("+"),
                                },
                                {
                                    "id": "wamid.out.2",
                                    "status": "failed",
                                    "timestamp": "1767225601",
                                    "recipient_id": beto.lstrip("+"),
                                    "errors": [{"code": 131047, "title": "Re-engagement"}],
                                },
                            ],
                        },
                    },
                ],
            },
            {
                "id": "WABA-2",
                "changes": [
                    messages_change(
                        settings,
                        [contact(caro, "Caro")],
                        [
                            {
                                "from": caro.lstrip("+"),
                                "id": "wamid.b3-image",
                                "timestamp": "1767225600",
                                "type": "image",
                                "image": {"id": "media-1", "mime_type": "image/jpeg"},
                            },
                            text_message(caro, f"mi pin es {pins[2]}", "wamid.b3"),
                            text_message(caro, "puntos", "wamid.b4"),
                        ],
                    ),
                ],
            },
        ],
    }
    raw = json.dumps(payload).encode()
    response = client.post(URL, content=raw, headers=signed_headers(settings, raw))
    assert response.status_code == 200
    assert response.json() == {"received": 4, "processed": 4}
    assert process_inbound(client) == 4

    with db.session(readonly=True) as session:
        seen = set(session.scalars(select(InboundMessage.message_id)))
        used = set(session.scalars(select(Pin.code).where(Pin.status == "used")))
    assert seen == {"wamid.b1", "wamid.b2", "wamid.b3", "wamid.b4"}
    assert used == set(pins)
    assert count(db, LedgerEntry) == 3

    worker.drain()
    for number in (ana, beto):
        (reply,) = graph.texts_to(number)
        assert "Café Uno" in reply
    first, balance = graph.texts_to(caro)
    assert "Café Uno" in first
    assert "Café Uno: 1 punto" in balance


def test_the_same_message_twice_credits_once(client, db, settings, graph, worker):
    tenant, key = make_tenant(db, points_per_pin="3")
    pin = generate_pin(client, key)
    body = webhook_body(
        settings, "+50688887777", f"Quiero activar mi PIN: {pin}", message_id="wamid.same"
    )
    first = client.post(URL, content=body, headers=signed_headers(settings, body))
    again = client.post(URL, content=body, headers=signed_headers(settings, body))
    assert first.status_code == again.status_code == 200
    assert first.json()["processed"] == 1
    assert again.json()["processed"] == 0
    assert process_inbound(client) == 1

    with db.session(readonly=True) as session:
        entries = session.execute(select(LedgerEntry.amount, LedgerEntry.balance_after)).all()
    assert [tuple(e) for e in entries] == [(3, 3)]
    assert count(db, InboundMessage) == 1
    assert count(db, OutboxMessage) == 1

    send_whatsapp(client, settings, "+50688887777", "Ana")
    worker.drain()
    ask, welcome = graph.texts_to("+50688887777")
    assert "3 puntos" in welcome


def test_a_signed_payload_of_the_wrong_shape_is_acknowledged_not_a_500(client, db, settings):
    for payload in (
        {"entry": "nope"},
        {"entry": [{"changes": {"value": 1}}]},
        {"entry": [{"changes": [{"value": "text"}]}]},
        {"entry": [{"changes": [{"value": {"messages": [{"type": "text", "text": "x"}]}}]}]},
    ):
        body = json.dumps(payload).encode()
        response = client.post(
            "/webhooks/whatsapp", content=body, headers=signed_headers(settings, body)
        )
        assert response.status_code == 200, (payload, response.text)
        assert response.json() == {"received": 0, "processed": 0}
