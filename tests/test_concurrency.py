"""Real parallel HTTP requests against a real server (uvicorn on a loopback port).

PostgreSQL is the target: its row locks, unique indexes and READ COMMITTED re-checks are
what make these races come out right. SQLite runs the same checks too, because it must
also be correct (it queues writers on BEGIN IMMEDIATE instead).

Run with ``pytest -s`` to see the counts of each burst.
"""

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select

from fidelia.kit.db import Database
from fidelia.kit.settings import Settings
from fidelia.models import Balance, InboundMessage, LedgerEntry, OutboxMessage, Pin, Redemption
from tests.support.helpers import (
    LiveServer,
    generate_pin,
    ledger_invariants,
    make_reward,
    make_tenant,
    process_inbound,
    send_whatsapp,
    signed_headers,
    webhook_body,
)

pytestmark = pytest.mark.parametrize("database_url", ["postgresql", "sqlite"], indirect=True)

GENERAR = "/api/v1/integraciones/pin/generar"
CANJEAR = "/api/v1/redimir/canjear"
WEBHOOK = "/webhooks/whatsapp"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared test settings without the per-IP limit (30/minute): every burst here
    comes from one IP on purpose."""
    return settings.model_copy(update={"rate_limits_enabled": False})


@pytest.fixture
def server(app) -> Iterator[LiveServer]:
    with LiveServer(app) as live:
        yield live


def fire(server: LiveServer, n: int, send: Callable[[httpx.Client, int], httpx.Response]):
    """Call ``send(client, i)`` for i in 0..n-1, each in its own thread with its own
    client, all released at once by a barrier. Returns the responses in order of i."""
    barrier = threading.Barrier(n)

    def one(i: int) -> httpx.Response:
        with server.client() as client:
            barrier.wait()
            return send(client, i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def post_webhooks(settings: Settings, bodies: list[bytes]):
    """A ``send`` for ``fire``: request i POSTs ``bodies[i]``, signed, to the webhook."""

    def send(client: httpx.Client, i: int) -> httpx.Response:
        return client.post(WEBHOOK, content=bodies[i], headers=signed_headers(settings, bodies[i]))

    return send


def tally(responses: list[httpx.Response]) -> Counter:
    """200, or the status with the door's ``codigo`` ("422 PUNTOS_INSUFICIENTES")."""
    counts: Counter = Counter()
    for response in responses:
        if response.status_code == 200:
            counts["200"] += 1
        else:
            try:
                codigo = response.json().get("codigo", "?")
            except ValueError:
                codigo = response.text[:60]
            counts[f"{response.status_code} {codigo}"] += 1
    return counts


def report(db: Database, what: str, counts: Counter) -> None:
    backend = "sqlite" if db.is_sqlite else "postgresql"
    print(f"\n[{backend}] {what}: {dict(sorted(counts.items()))}")


def scalar(db: Database, query) -> int:
    with db.session(readonly=True) as session:
        return int(session.scalar(query) or 0)


def count(db: Database, model, *where) -> int:
    return scalar(db, select(func.count()).select_from(model).where(*where))


def activate_text(pin: str) -> str:
    return f"Quiero activar mi PIN: {pin}"


def test_fifty_redemptions_of_a_balance_worth_one(app, server, db, settings):
    tenant, key = make_tenant(db, points_per_pin="10")
    reward_id = make_reward(db, tenant, points=10)
    number = "+50688887777"
    with server.client() as client:
        send_whatsapp(client, settings, number, activate_text(generate_pin(client, key)))
    process_inbound(app)
    assert scalar(db, select(Balance.amount)) == 10

    body = {"whatsapp": number, "id_comercio": tenant.id, "id_promocion": reward_id}
    responses = fire(server, 50, lambda client, _: client.post(CANJEAR, json=body))
    counts = tally(responses)
    report(db, "50 x POST /redimir/canjear, balance worth 1 reward", counts)

    assert counts == {"200": 1, "422 PUNTOS_INSUFICIENTES": 49}
    winner = next(r.json() for r in responses if r.status_code == 200)
    assert winner["puntos_restantes"] == 0
    assert scalar(db, select(Balance.amount)) == 0
    assert count(db, Redemption) == 1
    assert count(db, LedgerEntry, LedgerEntry.kind == "redeem") == 1
    assert count(db, LedgerEntry, LedgerEntry.balance_after < 0) == 0
    assert ledger_invariants(db) == []


def test_two_hundred_pins_at_once_are_distinct(server, db):
    _, key = make_tenant(db)
    headers = {"X-API-Key": key}
    responses = fire(server, 200, lambda client, _: client.post(GENERAR, headers=headers))
    counts = tally(responses)
    report(db, "200 x POST /integraciones/pin/generar", counts)

    assert counts == {"200": 200}
    pins = {r.json()["pin"] for r in responses}
    assert len(pins) == 200
    open_pins = (Pin.status == "open",)
    assert count(db, Pin, *open_pins) == 200
    assert scalar(db, select(func.count(func.distinct(Pin.code))).where(*open_pins)) == 200


def test_same_webhook_twenty_times_credits_once(app, server, db, settings):
    tenant, key = make_tenant(db, points_per_pin="3")
    with server.client() as client:
        pin = generate_pin(client, key)
    raw = webhook_body(settings, "+50688880001", activate_text(pin), message_id="wamid.same.1")
    responses = fire(server, 20, post_webhooks(settings, [raw] * 20))
    counts = tally(responses)
    processed = Counter(r.json()["processed"] for r in responses if r.status_code == 200)
    report(db, f"20 x the same webhook (processed: {dict(processed)})", counts)

    assert counts == {"200": 20}
    assert processed == {1: 1, 0: 19}  # stored once
    assert process_inbound(app, workers=4, batch=1) == 1
    assert count(db, InboundMessage) == 1
    assert count(db, LedgerEntry, LedgerEntry.kind == "earn") == 1
    assert scalar(db, select(Balance.amount)) == 3
    assert count(db, OutboxMessage) == 1  # one reply, not twenty
    assert count(db, Pin, Pin.status == "used") == 1
    assert ledger_invariants(db) == []


def test_same_pin_from_several_numbers_credits_once(app, server, db, settings):
    tenant, key = make_tenant(db)
    for senders in range(2, 11):
        with server.client() as client:
            pin = generate_pin(client, key)
        numbers = [f"+5068{senders:02d}{i:05d}" for i in range(senders)]
        bodies = [webhook_body(settings, number, activate_text(pin)) for number in numbers]
        responses = fire(server, senders, post_webhooks(settings, bodies))
        # Workers racing for the senders' messages: small batches, several at once.
        assert process_inbound(app, workers=4, batch=1) == senders
        counts = tally(responses)
        pin_row = (LedgerEntry.source_type == "pin", LedgerEntry.source_id == pin_id(db, pin))
        credits = count(db, LedgerEntry, *pin_row)
        report(db, f"PIN {pin} from {senders} numbers ({credits} credit)", counts)

        assert counts == {"200": senders}
        assert credits == 1
    assert count(db, LedgerEntry, LedgerEntry.kind == "earn") == 9
    assert scalar(db, select(func.sum(Balance.amount))) == 9
    assert count(db, Pin, Pin.status == "used", Pin.customer_id.is_not(None)) == 9
    assert ledger_invariants(db) == []


def pin_id(db: Database, code: str) -> str:
    return str(scalar(db, select(func.max(Pin.id)).where(Pin.code == code)))
