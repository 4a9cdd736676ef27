"""WhatsApp's 24-hour window seen from Meta's side (issue 13): an automatic message decided
as text while the window looked open, delivered after it closed (the outbox was late), is
refused by Meta with 131047 "Re-engagement message". The channel then sends the template
the merchant mapped (name, language, parameters in the merchant's order) once, and the
outbox and the message log say so. Without a template it fails once, with a clear error,
and is never retried. The fake Graph API keeps the window (tests/fakes/graph.py)."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from fidelia.kit import clock
from fidelia.kit.db import Database
from fidelia.kit.settings import Settings
from fidelia.messaging.channels import senders_for
from fidelia.messaging.templates import set_template
from fidelia.messaging.worker import Worker
from fidelia.models import MessageLog, OutboxMessage, Tenant
from tests.fakes.graph import FakeGraph
from tests.messaging.test_automations import ANA, pos_order, shop
from tests.support.helpers import send_whatsapp

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
DIGITS = ANA.lstrip("+")


@pytest.fixture
def worker(db: Database, settings: Settings) -> Worker:
    return Worker(db, senders_for(settings), batch=50)


@pytest.fixture
def frozen() -> Iterator[Any]:
    clock.freeze(T0)
    yield clock.freeze
    clock.freeze(None)


def writes(client: Any, settings: Settings, graph: FakeGraph, text: str = "oi") -> None:
    """Ana writes to the bot: the window opens at Fidelia and at Meta alike."""
    send_whatsapp(client, settings, ANA, text)
    graph.user_wrote(ANA)


def the_message(db: Database) -> tuple[MessageLog, OutboxMessage]:
    with db.session(readonly=True) as session:
        (row,) = session.scalars(select(MessageLog)).all()
        assert row.outbox_id is not None
        return row, session.get_one(OutboxMessage, row.outbox_id)


def test_text_refused_outside_the_window_goes_as_the_mapped_template_once(
    client, db, settings, graph, worker, frozen
):
    tenant, auth = shop(db)
    with db.session() as session:
        set_template(
            session,
            session.get_one(Tenant, tenant.id),
            "benefit_earned",
            "beneficio_ganho",
            "pt_BR",
            ["name", "earned", "balance"],
        )
    writes(client, settings, graph)
    worker.drain()  # the bot's own answer (inside the window: Meta takes it)
    before = len(graph.sent)
    # 23 hours later a sale earns: at Fidelia the window is still open (30 minutes of
    # margin), so the message is decided as text, carrying its template as the fallback.
    frozen(T0 + timedelta(hours=23))
    pos_order(client, auth, "PDV-1", 150, Phone=ANA, Name="Ana Souza")
    row, message = the_message(db)
    assert (row.channel, row.form, message.payload["type"]) == ("whatsapp", "text", "text")
    assert message.payload["fallback"]["type"] == "template"
    # The worker was down for over an hour: at delivery Meta's window has closed.
    frozen(T0 + timedelta(hours=24, minutes=10))
    worker.drain()

    (refused,) = graph.refused
    assert refused["type"] == "text" and refused["to"] == DIGITS
    assert "fallback" not in refused and "sent_as" not in refused  # ours, never sent to Meta
    assert graph.sent[before:] == [
        {
            "messaging_product": "whatsapp",
            "to": DIGITS,
            "type": "template",
            "template": {
                "name": "beneficio_ganho",
                "language": {"code": "pt_BR"},
                "components": [
                    {
                        "type": "body",
                        "parameters": [
                            {"type": "text", "text": "Ana Souza"},
                            {"type": "text", "text": "150 pontos"},
                            {"type": "text", "text": "150 pontos"},
                        ],
                    }
                ],
            },
        }
    ]
    row, message = the_message(db)
    assert (message.status, message.attempts, message.last_error) == ("sent", 1, None)
    assert message.payload["sent_as"] == "template"
    assert message.payload["text"]["body"].startswith("Café Uno: você ganhou 150 pontos")
    assert (row.channel, row.form, row.skipped) == ("whatsapp", "template", None)

    # Once: more rounds of the worker, and the POS sending the order again, send nothing.
    frozen(T0 + timedelta(hours=30))
    worker.drain()
    pos_order(client, auth, "PDV-1", 150, Phone=ANA, Name="Ana Souza")
    worker.drain()
    assert len(graph.sent) == before + 1 and len(graph.refused) == 1

    # Ana writes again: Meta takes free-form text again, and no template goes.
    writes(client, settings, graph, "obrigada")
    pos_order(client, auth, "PDV-2", 20, Phone=ANA)
    worker.drain()
    assert graph.sent[-1]["type"] == "text"
    assert graph.sent[-1]["text"]["body"] == (
        "Café Uno: você ganhou 20 pontos com a sua compra! Seu saldo: 170 pontos."
    )
    assert len(graph.refused) == 1
    with db.session(readonly=True) as session:
        forms = session.scalars(select(MessageLog.form).order_by(MessageLog.id)).all()
    assert forms == ["template", "text"]


def test_on_demand_refusal_without_a_template_fails_once_with_a_clear_error(
    client, db, settings, graph, worker, frozen
):
    _, auth = shop(db)  # no template mapped
    writes(client, settings, graph)
    worker.drain()
    before = len(graph.sent)
    # Inside the window by every clock, but Meta refuses anyway (on demand).
    graph.close_window(ANA)
    frozen(T0 + timedelta(hours=1))
    pos_order(client, auth, "PDV-1", 80)
    worker.drain()

    (refused,) = graph.refused
    assert refused["type"] == "text"
    assert len(graph.sent) == before
    row, message = the_message(db)
    assert (message.status, message.attempts) == ("failed", 1)
    assert message.last_error is not None
    assert message.last_error.startswith(
        "Meta refused the text: more than 24 hours since the customer last wrote (131047), "
        "and no WhatsApp template is mapped for this message"
    )
    assert (row.channel, row.form, row.skipped) == (
        "whatsapp",
        "text",
        "outside-window-no-template",
    )

    # No retry storm: hours of worker rounds later, Meta has still been asked once.
    for hours in (2, 6, 30):
        frozen(T0 + timedelta(hours=hours))
        worker.drain()
    assert len(graph.refused) == 1 and len(graph.sent) == before
    _, message = the_message(db)
    assert (message.status, message.attempts) == ("failed", 1)
