"""The worker takes Bling events in batches: each order is fetched once per batch however
many deliveries are about it, a contact not known yet is read once, a failing order is
retried alone, and two workers draining the same backlog on PostgreSQL earn each sale once."""

import random
import threading
import time

import pytest
from sqlalchemy import func, select

from fidelia.connectors.bling import intake
from fidelia.connectors.bling.client import Bling
from fidelia.kit.db import Database
from fidelia.models import BlingEvent, LedgerEntry, Order
from fidelia.models.order import COMPLETE
from tests.connectors.bling.conftest import wallet
from tests.connectors.bling.test_webhooks import customer_id, order_of, setup
from tests.support.helpers import ledger_invariants


def test_one_fetch_per_order_and_a_failure_retried_alone(client, db, settings, fake, bling):
    tenant, company, contact = setup(client, db, settings, fake)
    first = fake.add_order(company, contact, produtos="30.00", situacao=9)
    second = fake.add_order(company, contact, produtos="20.00", situacao=9)
    failing = fake.add_order(company, contact, produtos="10.00", situacao=9)
    for event in ("order.created", "order.updated", "order.updated"):
        fake.send_webhook(client, company, event, first)
    fake.send_webhook(client, company, "order.created", second)
    fake.send_webhook(client, company, "order.created", failing)
    fake.fail_next.append((f"/pedidos/vendas/{failing}", 503))
    before = len(fake.requests)

    assert intake.process_due(db, bling) == 5
    calls = fake.requests[before:]
    assert calls.count(f"GET /pedidos/vendas/{first}") == 1  # three deliveries, one fetch
    assert calls.count(f"GET /contatos/{contact}") == 1  # read once, for both orders
    assert order_of(db, tenant, first).state == COMPLETE
    assert order_of(db, tenant, second).state == COMPLETE
    assert order_of(db, tenant, failing) is None
    assert wallet(db, tenant, customer_id(db, tenant)) == (50, 250)
    with db.session(readonly=True) as session:
        events = session.scalars(select(BlingEvent).order_by(BlingEvent.id)).all()
        assert [e.status for e in events] == ["done"] * 4 + ["pending"]
        assert events[-1].attempts == 1 and "503" in (events[-1].last_error or "")
        events_done = {e.tenant_id for e in events[:4]}
    assert events_done == {tenant.id}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_workers_drain_a_shuffled_backlog_earning_each_sale_once(client, db, settings, fake):
    tenant, company, contact = setup(client, db, settings, fake)
    others = [
        fake.add_contact(company, f"Cliente {n}", email=f"c{n}@example.com") for n in range(5)
    ]
    orders = [
        fake.add_order(company, random.choice([contact, *others]), produtos="10.00", situacao=9)
        for _ in range(30)
    ]
    deliveries = [(e, o) for o in orders for e in ("order.created", "order.updated") * 2]
    random.Random(7).shuffle(deliveries)
    for event, order in deliveries:
        fake.send_webhook(client, company, event, order)

    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def work() -> None:
        database = Database(settings.database_url, pool_size=2)
        worker = Bling(database, settings, token_cache_seconds=60)
        try:
            barrier.wait()
            deadline = time.monotonic() + 60
            # Until nothing is pending: an event that lost a race (two workers creating
            # the same order or customer at once) is retried after its short backoff.
            while time.monotonic() < deadline:
                if intake.process_due(database, worker, batch=7):
                    continue
                with database.session(readonly=True) as session:
                    left = session.scalar(
                        select(func.count())
                        .select_from(BlingEvent)
                        .where(BlingEvent.status == "pending")
                    )
                if not left:
                    return
                time.sleep(0.2)
        except BaseException as exc:  # collected: asserted below
            errors.append(exc)
        finally:
            worker.close()
            database.dispose()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    with db.session(readonly=True) as session:
        pending = session.scalar(
            select(func.count()).select_from(BlingEvent).where(BlingEvent.status != "done")
        )
        complete = session.scalar(
            select(func.count()).select_from(Order).where(Order.state == COMPLETE)
        )
        earns = session.execute(
            select(LedgerEntry.source_id, LedgerEntry.account, func.count())
            .where(LedgerEntry.kind == "earn", LedgerEntry.source_type == "order")
            .group_by(LedgerEntry.source_id, LedgerEntry.account)
        ).all()
    assert pending == 0 and complete == len(orders)
    assert len(earns) == 2 * len(orders) and {n for *_, n in earns} == {1}  # once each
    assert ledger_invariants(db) == []
