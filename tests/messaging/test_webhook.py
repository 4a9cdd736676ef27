"""The WhatsApp Cloud API webhook: the handshake, the signature, batches, redeliveries."""

import json
import sqlite3
import threading
import time

import psycopg
import pytest
from sqlalchemy import func, select

from fidelia.kit.db import sqlite_path
from fidelia.kit.security import sign_sha256
from fidelia.messaging import intake, outbox
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


# -- how a message is stored: one statement on PostgreSQL, SQLite's writer in the event loop --


def test_a_stored_message_wakes_the_workers_a_redelivery_does_not(client, db, settings):
    """PostgreSQL: a NOTIFY for workers in other processes, made by the insert itself; and
    on both databases this process's wake-up event, for a worker running in it."""
    body = webhook_body(settings, "+50688887777", "hola", message_id="wamid.wake")
    listener = None
    if not db.is_sqlite:
        listener = psycopg.connect(db.url, autocommit=True)
        listener.execute(f"LISTEN {intake.CHANNEL}")
    try:
        heard = []
        for expected in (1, 0):  # new, then the same message again
            outbox.wakeup.clear()
            answer = client.post(URL, content=body, headers=signed_headers(settings, body))
            assert answer.status_code == 200
            assert answer.content == b'{"received":1,"processed":%d}' % expected
            assert answer.headers["content-type"] == "application/json"
            assert outbox.wakeup.is_set() == bool(expected)
            if listener is not None:
                heard.append(len(list(listener.notifies(timeout=0.5))))
        assert heard == ([] if listener is None else [1, 0])
    finally:
        if listener is not None:
            listener.close()
    with db.session(readonly=True) as session:
        stored = session.execute(
            select(InboundMessage.message_id, InboundMessage.status, InboundMessage.attempts)
        ).all()
    assert [tuple(r) for r in stored] == [("wamid.wake", "pending", 0)]


def test_a_connection_the_database_dropped_is_replaced_and_the_message_stored(client, db, settings):
    """PostgreSQL (the store has no pre-ping): a restart drops every pooled connection; the
    next webhook's statement fails on its dead one, goes again on a new one, and is 200."""
    if db.is_sqlite:
        pytest.skip("PostgreSQL's pooled connections")
    first = webhook_body(settings, "+50688887777", "uno", message_id="wamid.before")
    assert client.post(URL, content=first, headers=signed_headers(settings, first)).json() == {
        "received": 1,
        "processed": 1,
    }
    with psycopg.connect(db.url, autocommit=True) as conn:
        dropped = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    assert dropped  # the pools' connections
    body = webhook_body(settings, "+50688887777", "dos", message_id="wamid.after")
    answer = client.post(URL, content=body, headers=signed_headers(settings, body))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"received": 1, "processed": 1}
    with db.session(readonly=True) as session:
        ids = session.scalars(select(InboundMessage.message_id).order_by(InboundMessage.message_id))
        assert list(ids) == ["wamid.after", "wamid.before"]


def test_a_value_postgresql_cannot_store_is_a_400_and_the_next_message_is_stored(
    client, db, settings
):
    """PostgreSQL: the one-message insert goes on the driver's connection, and a value the
    column refuses (a display number longer than ``bot_number``'s 20 characters) is still
    the answer SQLAlchemy's DataError gave (400, nothing stored), on a connection that then
    stores the next message."""
    if db.is_sqlite:
        pytest.skip("SQLite does not enforce a column's length")
    payload = json.loads(webhook_body(settings, "+50688887777", "uno", message_id="wamid.long"))
    payload["entry"][0]["changes"][0]["value"]["metadata"]["display_phone_number"] = "9" * 25
    body = json.dumps(payload).encode()
    answer = client.post(URL, content=body, headers=signed_headers(settings, body))
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "BAD_REQUEST"
    assert count(db, InboundMessage) == 0
    body = webhook_body(settings, "+50688887777", "dos", message_id="wamid.fine")
    answer = client.post(URL, content=body, headers=signed_headers(settings, body))
    assert answer.json() == {"received": 1, "processed": 1}
    with db.session(readonly=True) as session:
        assert list(session.scalars(select(InboundMessage.message_id))) == ["wamid.fine"]


@pytest.mark.parametrize("holder", ["this process's worker", "another process"])
def test_sqlite_a_webhook_waits_for_a_busy_writer_then_stores(client, db, settings, holder):
    """SQLite: the insert runs in the event loop only while the one writer's place is free;
    when the worker's batch (this process) or another process (the CLI) holds it, the
    webhook waits in a worker thread, and is answered once its message is stored."""
    if not db.is_sqlite:
        pytest.skip("SQLite's one writer")
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        if holder == "another process":
            path = sqlite_path(db.url)
            assert path is not None
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            holding.set()
            release.wait(10)
            time.sleep(0.5)
            conn.execute("COMMIT")
            conn.close()
        else:
            with db.session() as session:
                session.execute(select(1))
                holding.set()
                release.wait(10)
                time.sleep(0.5)

    thread = threading.Thread(target=hold)
    thread.start()
    assert holding.wait(10)
    release.set()
    started = time.monotonic()
    body = webhook_body(settings, "+50688887777", "hola", message_id="wamid.busy")
    answer = client.post(URL, content=body, headers=signed_headers(settings, body))
    waited = time.monotonic() - started
    thread.join(10)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"received": 1, "processed": 1}
    assert waited >= 0.3  # it waited for the writer, it did not fail or skip the message
    with db.session(readonly=True) as session:
        assert session.scalar(select(InboundMessage.status)) == "pending"
