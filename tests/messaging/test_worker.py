"""The outbox worker delivering WhatsApp replies to the fake Graph API on loopback."""

import socket
from datetime import timedelta

import pytest
from sqlalchemy import select

from fidelia.kit.clock import freeze, now
from fidelia.messaging import outbox
from fidelia.messaging.channels import senders_for
from fidelia.messaging.worker import Worker
from fidelia.models import OutboxMessage
from tests.support.helpers import make_tenant, send_whatsapp

ANA = "+50688887777"


@pytest.fixture
def clock():
    yield freeze
    freeze(None)


def enqueue(db, number, text):
    with db.session() as session:
        row = outbox.whatsapp_text(session, text=text, wa_number=number, wa_user_id=None)
        session.flush()
        return row.id


def rows(db):
    """Every outbox row as a dict, oldest first."""
    with db.session(readonly=True) as session:
        found = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        return [
            {
                "id": r.id,
                "status": r.status,
                "attempts": r.attempts,
                "next_attempt_at": r.next_attempt_at,
                "locked_until": r.locked_until,
                "last_error": r.last_error,
                "sent_at": r.sent_at,
                "payload": r.payload,
            }
            for r in found
        ]


def test_delivers_with_the_bearer_token_to_the_messages_path(client, db, settings, graph, worker):
    make_tenant(db)
    send_whatsapp(client, settings, ANA, "hola")  # the bot's help reply is queued
    (queued,) = rows(db)
    assert queued["status"] == "pending" and graph.sent == []

    worker.drain()

    assert graph.paths == [
        f"/v{settings.whatsapp_api_version}/{settings.whatsapp_phone_number_id}/messages"
    ]
    (sent,) = graph.sent
    assert sent["messaging_product"] == "whatsapp"
    assert sent["to"] == ANA.lstrip("+")
    assert sent["type"] == "text" and sent["text"]["body"].startswith("Hola")
    (row,) = rows(db)
    assert row["status"] == "sent" and row["attempts"] == 1
    assert row["sent_at"] is not None and row["last_error"] is None
    assert row["locked_until"] is None

    worker.drain()  # nothing is sent twice
    assert len(graph.sent) == 1


def test_a_wrong_token_is_retried_until_the_operator_fixes_it(db, settings, graph, worker):
    enqueue(db, ANA, "hola")
    wrong = Worker(db, senders_for(settings.model_copy(update={"whatsapp_token": "nope"})))
    wrong.drain()
    assert graph.sent == []
    (row,) = rows(db)
    assert row["status"] == "pending"  # a rotated token must not lose the message
    assert "401" in row["last_error"]
    freeze(now() + timedelta(hours=1))
    try:
        worker.drain()  # the right token
    finally:
        freeze(None)
    assert len(graph.sent) == 1


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_transient_error_is_retried_with_backoff(db, graph, worker, clock, status):
    enqueue(db, ANA, "uno")
    graph.fail_next = [status]

    worker.drain()

    (row,) = rows(db)
    assert row["status"] == "pending"
    assert row["attempts"] == 1
    assert row["next_attempt_at"] > now()
    assert f": {status} " in row["last_error"]
    assert row["locked_until"] is None
    assert graph.sent == []

    worker.drain()  # not due yet: nothing happens
    assert rows(db)[0]["attempts"] == 1

    clock(row["next_attempt_at"] + timedelta(seconds=1))
    worker.drain()

    (row,) = rows(db)
    assert row["status"] == "sent"
    assert row["attempts"] == 2
    assert row["last_error"] is None
    assert graph.texts_to(ANA) == ["uno"]


def test_a_client_error_fails_for_good_and_keeps_the_error(db, graph, worker, clock):
    enqueue(db, ANA, "uno")
    graph.fail_next = [400]

    worker.drain()

    (row,) = rows(db)
    assert row["status"] == "failed"
    assert row["attempts"] == 1
    assert row["last_error"].startswith("400") and "injected" in row["last_error"]
    assert row["payload"]["text"]["body"] == "uno"

    clock(now() + timedelta(days=1))
    worker.drain()  # a failed row is not retried
    assert rows(db)[0]["attempts"] == 1
    assert graph.sent == []


def test_an_unreachable_graph_api_is_retried(db, settings, graph, clock):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    enqueue(db, ANA, "uno")

    Worker(db, senders_for(settings.model_copy(update={"whatsapp_api_base": closed}))).drain()

    (row,) = rows(db)
    assert row["status"] == "pending" and row["attempts"] == 1
    assert "ConnectError" in row["last_error"]

    clock(row["next_attempt_at"] + timedelta(seconds=1))
    Worker(db, senders_for(settings)).drain()
    assert rows(db)[0]["status"] == "sent"
    assert graph.texts_to(ANA) == ["uno"]


def test_retries_stop_after_max_attempts(db, settings, graph, clock):
    enqueue(db, ANA, "uno")
    graph.fail_next = [500, 500, 500]
    worker = Worker(db, senders_for(settings), max_attempts=3)
    for _ in range(3):
        worker.drain()
        clock(now() + timedelta(hours=2))
    (row,) = rows(db)
    assert row["status"] == "failed"
    assert row["attempts"] == 3
    assert ": 500 " in row["last_error"]
    assert graph.sent == []


def test_a_lease_left_by_a_dead_worker_expires(db, worker, graph, clock):
    enqueue(db, ANA, "uno")
    (claimed,) = worker.claim()  # a worker takes the row and dies before delivering

    worker.drain()
    assert graph.sent == []  # leased: nobody else touches it

    clock(now() + timedelta(minutes=2))
    worker.drain()
    assert graph.texts_to(ANA) == ["uno"]
    assert rows(db)[0]["status"] == "sent"


def test_nothing_is_lost_when_some_deliveries_fail(db, graph, worker, clock):
    numbers = [f"+5068888000{i}" for i in range(1, 6)]
    for number in numbers:
        enqueue(db, number, f"hola {number}")
    graph.fail_next = [500, 400]  # the first row is retried, the second refused

    worker.drain()
    statuses = [row["status"] for row in rows(db)]
    assert statuses == ["pending", "failed", "sent", "sent", "sent"]

    clock(now() + timedelta(hours=1))
    worker.drain()

    final = rows(db)
    assert [row["status"] for row in final] == ["sent", "failed", "sent", "sent", "sent"]
    delivered = sorted(message["to"] for message in graph.sent)
    assert delivered == sorted(row["payload"]["to"] for row in final if row["status"] == "sent")
    assert len(graph.sent) == 4  # each delivered exactly once
    (failed,) = [row for row in final if row["status"] == "failed"]
    assert failed["payload"]["text"]["body"] == f"hola {numbers[1]}"
    assert failed["last_error"].startswith("400")


@pytest.mark.parametrize("failures", [[400], [500] * 3])
def test_a_code_that_cannot_be_delivered_is_redacted_too(db, graph, settings, clock, failures):
    """A secret message (a short code) that fails for good keeps no readable code: neither in
    its payload nor in the error, even when the gateway quotes the request back."""
    worker = Worker(db, senders_for(settings), batch=10, max_attempts=3)
    with db.session() as session:
        row = outbox.whatsapp_text(
            session, text="Tu código es 482913", wa_number=ANA, wa_user_id=None
        )
        row.payload = {**row.payload, "secret": True}
    graph.fail_next = list(failures)
    graph.echo_in_errors = True
    for _ in failures:
        worker.drain()
        clock(now() + timedelta(hours=2))
    (found,) = rows(db)
    assert found["status"] == "failed"
    assert "482913" not in str(found["payload"]) and "482913" not in found["last_error"]
    assert "injected" in found["last_error"]


def test_a_pending_code_keeps_its_text_until_delivered(db, graph, settings, clock):
    worker = Worker(db, senders_for(settings), batch=10, max_attempts=3)
    with db.session() as session:
        row = outbox.whatsapp_text(
            session, text="Tu código es 482913", wa_number=ANA, wa_user_id=None
        )
        row.payload = {**row.payload, "secret": True}
    graph.fail_next = [500]
    worker.drain()
    (pending,) = rows(db)
    assert pending["status"] == "pending" and "482913" in str(pending["payload"])
    clock(now() + timedelta(hours=2))
    worker.drain()
    (sent,) = rows(db)
    assert sent["status"] == "sent" and "482913" not in str(sent["payload"])
    assert graph.texts_to(ANA) == ["Tu código es 482913"]
