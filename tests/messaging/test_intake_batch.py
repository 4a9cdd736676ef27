"""The worker's batch (messaging/intake.py): the plain PIN credits of a batch go through
set-based statements (``Bot.credit_batch``), every other message one at a time, and each
sender gets the answers, in the order, that one message at a time gives."""

import pytest
from sqlalchemy import func, select, update

from fidelia.customers.standing import CatalogCache
from fidelia.ledger.service import MAX_BALANCE
from fidelia.messaging import intake
from fidelia.messaging.bot import Bot, Inbound
from fidelia.models import (
    Balance,
    InboundMessage,
    LedgerEntry,
    OutboxMessage,
    Pin,
    PinFailure,
    WhatsAppContact,
)
from tests.support.helpers import (
    generate_pin,
    ledger_invariants,
    make_reward,
    make_tenant,
    process_inbound,
    send_whatsapp,
    signed_headers,
    webhook_body,
)

ANA, BETO, CARLA, DANI = "+50688880001", "+50688880002", "+50688880003", "+50688880004"
EVA, FEDE, GABI, HUGO = "+50688880005", "+50688880006", "+50688880007", "+50688880008"
NAMED = {ANA: "Ana", BETO: "Beto", CARLA: "Carla", EVA: "Eva", FEDE: "Fede", GABI: "Gabi"}
NAMED[HUGO] = "Hugo"


def failed(pin):
    return (
        f"No pudimos activar el PIN {pin}. Revisá el número en tu factura: "
        "cada PIN se usa una sola vez y vence."
    )


def store(client, settings, number, text):
    """Meta delivers a message; the worker has not run yet (it is stored, pending)."""
    body = webhook_body(settings, number, text)
    response = client.post(
        "/webhooks/whatsapp", content=body, headers=signed_headers(settings, body)
    )
    assert response.status_code == 200, response.text


def count(db, model, *where):
    with db.session(readonly=True) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def world(client, db, settings):
    """Café Uno (a reward at 10 points) and Panadería (10 points a PIN); the named
    senders each have 1 point at Café Uno."""
    cafe, cafe_key = make_tenant(db)
    make_reward(db, cafe, points=10, title="Café gratis")
    _, pan_key = make_tenant(db, slug="pan", name="Panadería", points_per_pin="10")
    for number, name in NAMED.items():
        send_whatsapp(client, settings, number, generate_pin(client, cafe_key))
        send_whatsapp(client, settings, number, name)
    return cafe_key, pan_key


def test_a_mixed_batch_gets_the_answers_of_one_message_at_a_time(
    client, db, settings, graph, worker, world
):
    cafe_key, pan_key = world
    worker.drain()
    before = {number: len(graph.texts_to(number)) for number in [*NAMED, DANI]}
    pins = [generate_pin(client, cafe_key) for _ in range(6)]
    unknown = f"{(int(pins[0]) + 5000) % 10 ** len(pins[0]):0{len(pins[0])}d}"
    pan = generate_pin(client, pan_key)
    store(client, settings, ANA, f"Quiero activar mi PIN: {pins[0]}")
    store(client, settings, BETO, f"Quiero activar mi PIN: {pins[1]}")
    store(client, settings, BETO, pins[2])  # two credits of one customer in one batch
    store(client, settings, CARLA, unknown)
    store(client, settings, DANI, pins[3])  # a first-time sender
    store(client, settings, EVA, "puntos")
    store(client, settings, EVA, pins[4])
    store(client, settings, GABI, pins[5])  # the same PIN from two senders: Fede's,
    store(client, settings, FEDE, pins[5])  # who comes first in sender order
    store(client, settings, HUGO, pan)  # a named sender at a new merchant
    assert count(db, InboundMessage, InboundMessage.status == "pending") == 10

    assert process_inbound(client, batch=200) == 10
    worker.drain()

    def replies(number):
        return [t.rstrip() for t in graph.texts_to(number)[before[number] :]]

    def credited(name, balance, missing):
        return (
            f"¡Gracias, {name}! Sumaste 1 punto en Café Uno. Tu saldo: {balance} puntos. "
            f"Te faltan {missing} puntos para «Café gratis»."
        )

    assert replies(ANA) == [credited("Ana", 2, 8)]
    assert replies(BETO) == [credited("Beto", 2, 8), credited("Beto", 3, 7)]
    assert replies(CARLA) == [failed(unknown)]
    assert replies(DANI) == ["¡Sumaste 1 punto en Café Uno! 🎉 Es tu primera vez: ¿cómo te llamás?"]
    assert replies(EVA) == [
        "Tus puntos:\n• Café Uno: 1 punto. Te faltan 9 puntos para «Café gratis».",
        credited("Eva", 2, 8),
    ]
    assert replies(FEDE) == [credited("Fede", 2, 8)]
    assert replies(GABI) == [failed(pins[5])]
    assert replies(HUGO) == ["¡Gracias, Hugo! Sumaste 10 puntos en Panadería. Tu saldo: 10 puntos."]

    assert ledger_invariants(db) == []
    with db.session(readonly=True) as session:
        used = session.execute(
            select(Pin.code, Pin.customer_id).where(Pin.code.in_([*pins, pan]))
        ).all()
        assert all(customer is not None for _, customer in used) and len(used) == 7
        assert session.scalar(select(func.count()).select_from(PinFailure)) == 2
        hugo = session.scalar(select(WhatsAppContact).where(WhatsAppContact.wa_number == HUGO))
        assert hugo is not None and hugo.last_tenant_id == world_tenant(session, "pan")
        statuses = set(session.scalars(select(InboundMessage.status)))
    assert statuses == {"done"}


def world_tenant(session, slug):
    from fidelia.models import Tenant

    return session.scalar(select(Tenant.id).where(Tenant.slug == slug))


def test_which_messages_the_set_based_step_takes(client, db, settings, world):
    cafe_key, _ = world
    pins = [generate_pin(client, cafe_key) for _ in range(6)]
    batch = [
        Inbound("m1", ANA, None, pins[0], settings.bot_number),  # plain credit
        Inbound("m2", BETO, None, pins[1], settings.bot_number),  # two of them
        Inbound("m3", BETO, None, pins[2], settings.bot_number),
        Inbound("m4", DANI, None, pins[3], settings.bot_number),  # no contact yet
        Inbound("m5", EVA, None, "puntos", settings.bot_number),  # not a PIN: all of Eva's
        Inbound("m6", EVA, None, pins[4], settings.bot_number),  # go one at a time
        Inbound("m7", FEDE, None, "12345678", settings.bot_number),  # does not activate
        Inbound("m8", GABI, None, "STOP", settings.bot_number),
        Inbound("m9", CARLA, None, pins[5], settings.bot_number),  # one PIN, two senders
        Inbound("m10", HUGO, None, pins[5], settings.bot_number),
    ]
    bot = client.app.state.fidelia.bot
    with db.session() as session:
        taken = bot.credit_batch(session, batch)
        session.rollback()
    assert set(taken) == {"m1", "m2", "m3"}


def test_a_contact_whose_pins_do_not_all_activate_goes_one_at_a_time(
    client, db, settings, graph, worker, world
):
    cafe_key, _ = world
    worker.drain()
    before = len(graph.texts_to(BETO))
    good = generate_pin(client, cafe_key)
    wrong = f"{(int(good) + 5000) % 10 ** len(good):0{len(good)}d}"
    store(client, settings, BETO, wrong)
    store(client, settings, BETO, good)
    store(client, settings, ANA, generate_pin(client, cafe_key))
    process_inbound(client, batch=200)
    worker.drain()
    assert [t.rstrip() for t in graph.texts_to(BETO)[before:]] == [
        failed(wrong),
        "¡Gracias, Beto! Sumaste 1 punto en Café Uno. Tu saldo: 2 puntos. "
        "Te faltan 8 puntos para «Café gratis».",
    ]
    assert count(db, PinFailure) == 1
    assert count(db, LedgerEntry) == len(NAMED) + 2
    assert ledger_invariants(db) == []


def test_a_failing_credit_is_isolated_and_the_rest_of_the_batch_commits(
    client, db, settings, graph, worker, world
):
    cafe_key, _ = world
    with db.session() as session:  # Ana's balance is full: her next credit must fail
        session.execute(
            update(Balance)
            .where(Balance.customer_id == customer_of(session, ANA))
            .values(amount=MAX_BALANCE)
        )
    ana_pin, beto_pin = generate_pin(client, cafe_key), generate_pin(client, cafe_key)
    store(client, settings, ANA, ana_pin)
    store(client, settings, BETO, beto_pin)
    entries = count(db, LedgerEntry)

    state = client.app.state.fidelia
    assert intake.process_batch(state.db, state.bot, 200) == 2
    with db.session(readonly=True) as session:
        rows = {
            r.wa_number: r
            for r in session.scalars(
                select(InboundMessage).where(InboundMessage.body.in_([ana_pin, beto_pin]))
            )
        }
        statuses = dict(
            session.execute(
                select(Pin.code, Pin.status).where(Pin.code.in_([ana_pin, beto_pin]))
            ).all()
        )
    assert rows[BETO].status == "done"
    assert rows[ANA].status == "pending" and rows[ANA].attempts == 1
    assert "BalanceLimit" in (rows[ANA].last_error or "")
    assert statuses == {ana_pin: "open", beto_pin: "used"}  # Ana's credit rolled back whole
    assert count(db, LedgerEntry) == entries + 1


def open_pins(db, settings, n, slug="cafe"):
    """``n`` open PINs of a merchant, made by the service (the door limits how fast)."""
    from fidelia.models import Tenant
    from fidelia.pins.service import generate

    with db.session() as session:
        tenant = session.scalar(select(Tenant).where(Tenant.slug == slug))
        return [generate(session, tenant, settings.bot_number).code for _ in range(n)]


def customer_of(session, number):
    from fidelia.models import CustomerIdentifier

    return session.scalar(
        select(CustomerIdentifier.customer_id).where(CustomerIdentifier.value == number)
    )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_workers_crediting_batches_at_once_credit_each_pin_once(client, db, settings, world):
    """Four workers on small batches of the same senders (many per batch): each PIN
    credited once, every balance the sum of its entries."""
    cafe_key, _ = world
    pins = open_pins(db, settings, 60)
    for k, pin in enumerate(pins):
        store(client, settings, list(NAMED)[k % len(NAMED)], pin)
    for pin in pins[:10]:  # and again from someone else: refused, once each
        store(client, settings, DANI, pin)
    process_inbound(client.app, workers=4, batch=7)
    assert count(db, LedgerEntry, LedgerEntry.source_type == "pin") == len(NAMED) + 60
    assert count(db, Pin, Pin.status == "used") == len(NAMED) + 60
    assert count(db, InboundMessage, InboundMessage.status != "done") == 0
    assert ledger_invariants(db) == []


def batch_statements(app, db, settings, pins, bot=None):
    """The statements ``process_batch`` sends for the stored messages (by the app's bot,
    or ``bot``): (text, parameters of one execution, whether an executemany) each."""
    from sqlalchemy import event

    senders = list(NAMED)
    for k, pin in enumerate(pins):
        body = webhook_body(settings, senders[k % len(senders)], pin)
        app.post("/webhooks/whatsapp", content=body, headers=signed_headers(settings, body))
    seen = []

    def record(_conn, _cursor, statement, params, _context, executemany):
        # A many-rows ``VALUES`` (insertmanyvalues) comes as one dict of every row's.
        one = params[0] if executemany and not isinstance(params, dict) else params
        seen.append((statement, len(one or ()), executemany))

    state = app.app.state.fidelia
    event.listen(state.db.engine, "before_cursor_execute", record)
    try:
        assert intake.process_batch(state.db, bot or state.bot, 200) == len(pins)
    finally:
        event.remove(state.db.engine, "before_cursor_execute", record)
    assert count(db, InboundMessage, InboundMessage.status != "done") == 0
    return seen


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_batch_sends_the_same_statements_whatever_its_size(client, db, settings, world):
    """Issue 14: on PostgreSQL the set-based credit's statements take their lists as arrays,
    so a batch of 3 and one of 11 send the same texts, each with a few parameters: psycopg
    converts each text once (it caches only up to 50 parameters) and PostgreSQL parses and
    plans one text, not one per batch size."""
    small = batch_statements(client, db, settings, open_pins(db, settings, 3))
    entries = count(db, LedgerEntry)
    large = batch_statements(client, db, settings, open_pins(db, settings, 11))
    assert count(db, LedgerEntry) == entries + 11
    assert ledger_invariants(db) == []
    for seen in (small, large):
        texts = [text for text, _, _ in seen]
        assert not any(t.startswith("ROLLBACK TO SAVEPOINT") for t in texts)  # set-based
        assert sum(t.startswith("INSERT INTO balances") for t in texts) == 1
        # psycopg caches its conversion of a text up to 50 parameters and 4,096 characters.
        assert max(n for _, n, _ in seen) <= 50, [(t[:80], n) for t, n, _ in seen if n > 50]
        assert max(len(t) for t in texts) <= 4096
    only = {t for t, _, _ in small} ^ {t for t, _, _ in large}
    assert not {t for t in only if not t.startswith(("SAVEPOINT", "RELEASE"))}, sorted(only)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_batch_sends_no_statement_per_message(client, db, settings, world):
    """Issue 14: on PostgreSQL an executemany is one execution per row (the server executes
    each, psycopg's pipeline handles each): the set-based credit's per-message rows (PIN
    owners, ledger entries, replies, the messages marked done) go as ONE statement over
    arrays each, so a batch of 11 sends as many statements as a batch of 3, none of them an
    executemany; and every row is written as one message at a time writes it."""

    def caching():  # the worker's: catalogs read once a batch (the tests' app reads per reply)
        return Bot(settings, CatalogCache(60))

    small = batch_statements(client, db, settings, open_pins(db, settings, 3), caching())
    entries, replies = count(db, LedgerEntry), count(db, OutboxMessage)
    pins = open_pins(db, settings, 11)
    large = batch_statements(client, db, settings, pins, caching())
    many = [(t[:80], n) for t, n, executemany in large if executemany]
    assert not many, many
    # The same statements, but for the savepoint of an activation where a sender sends two.
    assert len([t for t, _, _ in large if "SAVEPOINT" not in t]) == len(
        [t for t, _, _ in small if "SAVEPOINT" not in t]
    ), [t[:60] for t, _, _ in small + large]
    assert count(db, LedgerEntry) == entries + 11
    assert count(db, OutboxMessage) == replies + 11
    assert ledger_invariants(db) == []
    senders = list(NAMED)
    with db.session(readonly=True) as session:
        used = {p.code: p for p in session.scalars(select(Pin).where(Pin.code.in_(pins)))}
        for k, code in enumerate(pins):  # each PIN owned by its sender's customer
            assert used[code].status == "used"
            assert used[code].customer_id == customer_of(session, senders[k % len(senders)])
        new = session.scalars(select(LedgerEntry).order_by(LedgerEntry.id).offset(entries)).all()
        # In the batch's order: its senders' (by number), each one's in the order sent.
        order = [k for i in range(len(senders)) for k in range(len(pins)) if k % len(senders) == i]
        assert [e.source_id for e in new] == [str(used[pins[k]].id) for k in order]
        assert {(e.kind, e.source_type, e.amount, e.remaining) for e in new} == {
            ("earn", "pin", 1, 1)
        }
        assert all(e.created_at is not None for e in new)  # the model's default, given
        sent = session.scalars(
            select(OutboxMessage).order_by(OutboxMessage.id).offset(replies)
        ).all()
        assert {(o.channel, o.status, o.attempts) for o in sent} == {("whatsapp", "pending", 0)}
        assert all(o.created_at is not None and o.next_attempt_at is not None for o in sent)
        assert [o.payload["to"] for o in sent] == [
            senders[k % len(senders)].lstrip("+") for k in order
        ]
        done = session.scalars(
            select(InboundMessage).where(InboundMessage.processed_at.is_not(None))
        ).all()
        assert all(m.status == "done" and m.contact_id is not None for m in done)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_done_mark_is_planned_for_each_batch(client, db, settings, world):
    """The batch's ``done`` mark is never a prepared statement (``kit/db.py unprepared``):
    a generic plan counts ten messages and keeps the table's size when it was made, and one
    made while inbound_messages was young read all of it for every batch after (make
    bench: 1.6 ms for 24 messages). The credit's statements are still prepared."""
    state = client.app.state.fidelia
    for _ in range(7):  # psycopg prepares a statement at its fifth run on a connection
        batch_statements(client, db, settings, open_pins(db, settings, 2))
    with state.db.engine.connect() as conn:
        prepared = list(
            conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars()
        )
    assert any(s.startswith("INSERT INTO ledger_entries") for s in prepared), prepared
    assert not any(s.startswith("UPDATE inbound_messages") for s in prepared), prepared
