"""Point validity (issue 13): lots past their expiry lose what they still hold, once per
lot (two concurrent runs on PostgreSQL too), spent lots have nothing to lose, the balance
never goes below what the lots hold, and `fidelia check` agrees, flagging a lot the job
left behind for over an hour but not one it has not reached yet."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from fidelia.customers.service import identify
from fidelia.kit import clock
from fidelia.kit.db import Database
from fidelia.ledger import expiry
from fidelia.ledger.service import CASHBACK, POINTS, Account, Source, balance, credit, debit
from fidelia.models import LedgerEntry, Tenant
from fidelia.ops.check import check
from tests.support.helpers import make_tenant

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _unfreeze():
    yield
    clock.freeze(None)


def member(db: Database, tenant: Tenant, phone: str = "+50688887777") -> int:
    with db.session() as session:
        return identify(session, session.get_one(Tenant, tenant.id), {"phone": phone}).id


def earn(db: Database, tenant: Tenant, customer: int, amount: int, ref: str, account=POINTS):
    with db.session() as session:
        acct = Account(tenant.program_id, customer, account)
        return credit(session, acct, amount, Source(tenant.id, "test", ref)).id


def spend(db: Database, tenant: Tenant, customer: int, amount: int, ref: str) -> None:
    with db.session() as session:
        acct = Account(tenant.program_id, customer, POINTS)
        debit(session, acct, amount, Source(tenant.id, "test", ref))


def held(db: Database, tenant: Tenant, customer: int, account: str = POINTS) -> int:
    with db.session(readonly=True) as session:
        return balance(session, Account(tenant.program_id, customer, account))


def expirations(db: Database) -> list[tuple[str, int]]:
    with db.session(readonly=True) as session:
        rows = session.execute(
            select(LedgerEntry.source_id, LedgerEntry.amount)
            .where(LedgerEntry.kind == "expire")
            .order_by(LedgerEntry.id)
        )
        return [(source_id, amount) for source_id, amount in rows]


def problems(db: Database) -> dict[str, list[str]]:
    with db.session(readonly=True) as session:
        return check(session).by_rule()


def test_lots_expire_once_spent_lots_do_not_and_check_agrees(db):
    tenant, _ = make_tenant(db, points_validity_days="30")
    ana = member(db, tenant)
    clock.freeze(T0)
    lot_a = earn(db, tenant, ana, 100, "a")
    cash = earn(db, tenant, ana, 500, "c", CASHBACK)
    clock.freeze(T0 + timedelta(days=5))
    lot_b = earn(db, tenant, ana, 50, "b")
    clock.freeze(T0 + timedelta(days=6))
    spend(db, tenant, ana, 120, "r")  # all of lot A (soonest first), 20 of lot B
    with db.session(readonly=True) as session:
        lot = session.get_one(LedgerEntry, lot_a)
        assert lot.expires_at == T0 + timedelta(days=30)

    clock.freeze(T0 + timedelta(days=30, minutes=10))
    assert problems(db) == {}  # due ten minutes ago: not a violation yet
    assert expiry.run(db) == 1  # the cashback; lot A was spent, lot B is not due
    assert expirations(db) == [(str(cash), -500)]
    assert (held(db, tenant, ana), held(db, tenant, ana, CASHBACK)) == (30, 0)

    clock.freeze(T0 + timedelta(days=35, hours=2))
    assert list(problems(db)) == ["expiry"]  # lot B, two hours late
    assert expiry.run(db) == 1
    assert expiry.run(db) == 0  # once
    assert expirations(db) == [(str(cash), -500), (str(lot_b), -30)]
    assert held(db, tenant, ana) == 0
    assert problems(db) == {}

    # Lots earned before the setting, or where validity is off, never expire.
    with db.session() as session:
        session.get_one(Tenant, tenant.id).points_validity_days = 0
    earn(db, tenant, ana, 7, "d")
    clock.freeze(T0 + timedelta(days=3650))
    assert expiry.run(db) == 0
    assert held(db, tenant, ana) == 7
    assert problems(db) == {}


def test_check_catches_an_expiry_entry_that_matches_no_lot(db):
    tenant, _ = make_tenant(db, points_validity_days="1")
    ana = member(db, tenant)
    clock.freeze(T0)
    earn(db, tenant, ana, 10, "a")
    with db.session() as session:
        acct = Account(tenant.program_id, ana, POINTS)
        debit(session, acct, 4, Source(tenant.id, "expiry", "999"), kind="expire")
    assert problems(db)["expiry-entries"] == [
        "expire entry 2 (expiry 999) names no lot of its account"
    ]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_concurrent_runs_expire_each_lot_once(db):
    tenant, _ = make_tenant(db, points_validity_days="30")
    clock.freeze(T0)
    customers = [member(db, tenant, f"+5068888{n:04d}") for n in range(30)]
    lots = []
    for n, customer in enumerate(customers):
        lots.append(earn(db, tenant, customer, 10 + n, f"a{n}"))
        lots.append(earn(db, tenant, customer, 5, f"b{n}"))
        spend(db, tenant, customer, 3, f"r{n}")
    clock.freeze(T0 + timedelta(days=31))
    barrier = threading.Barrier(2)
    counts: list[int] = []

    def run() -> None:
        barrier.wait()
        counts.append(expiry.run(db, batch=7))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == len(lots)
    assert sorted(int(source) for source, _ in expirations(db)) == sorted(lots)
    assert all(held(db, tenant, customer) == 0 for customer in customers)
    assert problems(db) == {}
