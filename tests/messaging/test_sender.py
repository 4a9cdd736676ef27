"""The WhatsApp sender's HTTP (messaging/channels.py ``Poster``) against the fake Graph API
on loopback: one kept-alive connection across a batch and across rounds, a connection the
server closed while idle replaced without losing a message, a dropped request retried."""

import time

import pytest
from sqlalchemy import select

from fidelia.kit.clock import freeze
from fidelia.messaging import outbox
from fidelia.messaging.channels import WhatsAppCloud, senders_for
from fidelia.messaging.worker import Worker
from fidelia.models import OutboxMessage
from tests.fakes.graph import FakeGraph


@pytest.fixture
def clock():
    yield freeze
    freeze(None)


def enqueue(db, count):
    with db.session() as session:
        for i in range(count):
            outbox.whatsapp_text(
                session, text=f"n{i}", wa_number=f"+5068888{i:04d}", wa_user_id=None
            )


def statuses(db):
    with db.session(readonly=True) as session:
        found = session.execute(
            select(OutboxMessage.status, OutboxMessage.attempts, OutboxMessage.last_error).order_by(
                OutboxMessage.id
            )
        )
        return [tuple(row) for row in found]


def test_one_connection_serves_every_batch_and_round(db, settings):
    graph = FakeGraph(token="test-token", keep_alive=True)
    try:
        worker = Worker(
            db, senders_for(settings.model_copy(update={"whatsapp_api_base": graph.url})), batch=3
        )
        enqueue(db, 7)
        worker.drain()  # three batches
        enqueue(db, 2)
        worker.drain()  # another round

        assert statuses(db) == [("sent", 1, None)] * 9
        assert sorted(m["text"]["body"] for m in graph.sent) == sorted(
            [f"n{i}" for i in range(7)] + ["n0", "n1"]
        )
        assert graph.connections == 1
    finally:
        graph.close()


def test_a_connection_the_server_closed_while_idle_is_replaced(db, settings):
    graph = FakeGraph(token="test-token", keep_alive=True, idle_timeout=0.2)
    try:
        worker = Worker(
            db, senders_for(settings.model_copy(update={"whatsapp_api_base": graph.url}))
        )
        enqueue(db, 1)
        worker.drain()
        time.sleep(0.6)  # the server closes the idle connection
        enqueue(db, 1)
        worker.drain()

        assert statuses(db) == [("sent", 1, None)] * 2
        assert len(graph.sent) == 2
        assert graph.connections == 2
    finally:
        graph.close()


def test_an_idle_connection_past_the_keepalive_is_not_reused(settings):
    graph = FakeGraph(token="test-token", keep_alive=True)
    try:
        sender = WhatsAppCloud(settings.model_copy(update={"whatsapp_api_base": graph.url}))
        sender.client.KEEPALIVE = 0.1
        message = {
            "messaging_product": "whatsapp",
            "to": "50688887777",
            "type": "text",
            "text": {"body": "á"},
        }
        assert sender(message) is None
        assert sender(message) is None
        time.sleep(0.3)
        assert sender(message) is None

        assert graph.connections == 2
        assert [m["text"]["body"] for m in graph.sent] == ["á"] * 3
    finally:
        graph.close()


def test_a_request_dropped_without_an_answer_is_retried_on_a_new_connection(db, settings, clock):
    graph = FakeGraph(token="test-token", keep_alive=True)
    try:
        worker = Worker(
            db, senders_for(settings.model_copy(update={"whatsapp_api_base": graph.url}))
        )
        enqueue(db, 2)
        graph.drop_next = 1
        worker.drain(rounds=1)

        (first, second) = statuses(db)
        assert first[:2] == ("pending", 1) and first[2].startswith("RemoteProtocolError")
        assert second == ("sent", 1, None)  # the next one went on a new connection
        assert graph.connections == 2

        (row,) = [r for r in _rows(db) if r.status == "pending"]
        clock(row.next_attempt_at)
        worker.drain()
        assert statuses(db) == [("sent", 2, None), ("sent", 1, None)]
        assert sorted(m["text"]["body"] for m in graph.sent) == ["n0", "n1"]
    finally:
        graph.close()


def _rows(db):
    with db.session(readonly=True) as session:
        return list(session.execute(select(OutboxMessage.status, OutboxMessage.next_attempt_at)))
