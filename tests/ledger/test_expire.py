"""The expiry job's parts at the service level (fidelia/ledger/expiry.py): ``due`` lists
the lots past their expiry that still hold something, ``expire_account`` empties them under
the account's balance lock (one ``expire`` entry each, exact), ``run`` walks every due lot
in batches. Frozen clock; effects on lots, entries and balances."""

import logging
from datetime import timedelta

import pytest
from sqlalchemy import update

from fidelia.kit import clock
from fidelia.ledger import expiry
from fidelia.ledger.service import CASHBACK, Account, Credit, Source, credit_many
from fidelia.models import Balance
from tests.ledger.common import T0, balances, earn, lots, member, rows, shop, spend
from tests.support.helpers import ledger_invariants

AT = T0 + timedelta(days=1)


@pytest.fixture(autouse=True)
def _frozen():
    clock.freeze(T0)
    yield
    clock.freeze(None)


def due(db, at=AT, **kw) -> list[tuple]:
    with db.session(readonly=True) as session:
        return [tuple(row) for row in expiry.due(session, at, **kw)]


def expire(db, acct: Account, lot_ids: list[int], at=AT) -> int:
    with db.session() as session:
        return expiry.expire_account(
            session, (acct.program_id, acct.customer_id, acct.account), lot_ids, at
        )


def expirations(db) -> list[tuple]:
    return [
        (r.program_id, r.tenant_id, r.customer_id, r.account, r.amount, r.balance_after)
        + (r.source_type, r.source_id, r.remaining, r.expires_at, r.created_at)
        for r in rows(db)
        if r.kind == "expire"
    ]


def test_due_lists_the_lots_past_their_expiry_that_still_hold_something(db):
    tenant = shop(db)
    ana = member(db, tenant)
    bia = member(db, tenant, "+50688886666")
    cash = Account(ana.program_id, ana.customer_id, CASHBACK)
    exact = earn(db, tenant, bia, 1, "exact", expires_at=AT)  # id 1: due at its very second
    spent = earn(db, tenant, ana, 4, "spent", expires_at=AT - timedelta(hours=5))
    part = earn(db, tenant, ana, 3, "part", expires_at=AT - timedelta(hours=4))
    spend(db, tenant, ana, 6, "r")  # all of `spent`, 2 of `part`: it holds 1
    early = earn(db, tenant, cash, 50, "cash", expires_at=AT - timedelta(seconds=1))
    earn(db, tenant, ana, 9, "later", expires_at=AT + timedelta(seconds=1))
    earn(db, tenant, ana, 9, "never")
    assert lots(db)["spent"] == 0 and lots(db)["part"] == 1
    p, a, b = ana.program_id, ana.customer_id, bia.customer_id
    assert due(db) == [
        (exact, p, b, "points"),
        (part, p, a, "points"),
        (early, p, a, "cashback"),
    ]
    assert spent not in [row[0] for row in due(db, after_id=0)]
    assert due(db, after_id=exact) == [(part, p, a, "points"), (early, p, a, "cashback")]
    assert due(db, after_id=part, limit=1) == [(early, p, a, "cashback")]
    assert due(db, limit=2) == [(exact, p, b, "points"), (part, p, a, "points")]
    assert due(db, at=AT - timedelta(seconds=1)) == [
        (part, p, a, "points"),
        (early, p, a, "cashback"),
    ]
    assert due(db, at=AT - timedelta(hours=4, seconds=1)) == []
    assert due(db, at=T0) == []


def test_due_gives_a_batch_of_500_by_default(db):
    tenant = shop(db)
    ana = member(db, tenant)
    past = T0 - timedelta(days=1)
    with db.session() as session:
        credit_many(
            session, [Credit(ana, 1, Source(tenant.id, "test", str(n)), past) for n in range(501)]
        )
    first = due(db, at=T0)
    assert len(first) == expiry.BATCH == 500
    assert len(due(db, at=T0, after_id=first[-1][0])) == 1


def test_an_account_loses_exactly_what_its_due_lots_hold_in_lot_order(db, caplog):
    tenant = shop(db)
    other = shop(db, "bar")
    ana = member(db, tenant)
    bia = member(db, tenant, "+50688886666")
    cash = Account(ana.program_id, ana.customer_id, CASHBACK)
    later = earn(db, tenant, ana, 2, "later", expires_at=AT + timedelta(seconds=1))
    first = earn(db, tenant, ana, 10, "first", expires_at=AT - timedelta(hours=1))
    second = earn(db, other, ana, 6, "second", expires_at=AT)  # due at its very second
    never = earn(db, tenant, ana, 5, "never")
    cashback = earn(db, tenant, cash, 7, "cash", expires_at=AT - timedelta(hours=1))
    theirs = earn(db, tenant, bia, 8, "theirs", expires_at=AT - timedelta(hours=1))
    clock.freeze(AT + timedelta(hours=3))  # the job runs later than `at`
    caplog.set_level(logging.INFO, logger="fidelia.expiry")

    # The lots as the caller found them (not in order, with ones not due, the first of
    # them not due): each due one, in id order.
    assert expire(db, ana, [never, second, later, first]) == 2
    p, a, now = ana.program_id, ana.customer_id, AT + timedelta(hours=3)
    assert expirations(db) == [
        (p, tenant.id, a, "points", -10, 13, "expiry", str(first), None, None, now),
        (p, other.id, a, "points", -6, 7, "expiry", str(second), None, None, now),
    ]
    assert lots(db) == {
        "first": 0,
        "second": 0,
        "never": 5,
        "later": 2,
        "cash": 7,
        "theirs": 8,
        str(first): None,
        str(second): None,
    }
    assert balances(db) == {(a, "points"): 7, (a, "cashback"): 7, (bia.customer_id, "points"): 8}

    # Again: nothing left to expire, nothing written.
    assert expire(db, ana, [first, second]) == 0
    # An account without a balance row: nothing to lock, nothing done (its lots are not read).
    assert expire(db, Account(ana.program_id, bia.customer_id, CASHBACK), [theirs]) == 0
    assert len(expirations(db)) == 2
    assert lots(db)["theirs"] == 8 and lots(db)["cash"] == 7
    assert caplog.records == []
    assert expire(db, cash, [cashback]) == 1
    assert balances(db)[(a, "cashback")] == 0
    assert ledger_invariants(db) == []


def test_a_lot_holding_more_than_its_balance_is_left_and_logged(db, caplog):
    tenant = shop(db)
    ana = member(db, tenant)
    big = earn(db, tenant, ana, 10, "big", expires_at=AT)
    small = earn(db, tenant, ana, 4, "small", expires_at=AT)
    with db.session() as session:  # a broken ledger, as `fidelia check` would report it
        session.execute(update(Balance).values(amount=5))
    caplog.set_level(logging.INFO, logger="fidelia.expiry")
    assert expire(db, ana, [big, small]) == 1  # the next lot still expires
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("fidelia.expiry", "ERROR", f"lot {big} holds 10 but its balance is lower; not expired")
    ]
    assert lots(db)["big"] == 10 and lots(db)["small"] == 0
    assert [(e[4], e[5], e[7]) for e in expirations(db)] == [(-4, 1, str(small))]
    assert balances(db) == {(ana.customer_id, "points"): 1}


def test_run_walks_every_due_lot_in_batches_and_counts_them(db):
    tenant = shop(db)
    ana = member(db, tenant)
    bia = member(db, tenant, "+50688886666")
    cash = Account(ana.program_id, ana.customer_id, CASHBACK)
    for n, acct in enumerate([ana, bia, cash, ana, bia]):
        earn(db, tenant, acct, 10 + n, f"due-{n}", expires_at=AT)
    earn(db, tenant, ana, 3, "later", expires_at=AT + timedelta(seconds=1))
    # At T0 nothing is due yet by the clock, but everything is at `at`.
    assert expiry.run(db, batch=2) == 0
    assert expiry.run(db, at=AT, batch=2) == 5  # 2 + 2 + 1, over three accounts
    a, b = ana.customer_id, bia.customer_id
    assert balances(db) == {(a, "points"): 3, (b, "points"): 0, (a, "cashback"): 0}
    assert sorted(e[7] for e in expirations(db)) == sorted(
        str(r.id) for r in rows(db) if r.source_id.startswith("due-")
    )
    assert expiry.run(db, at=AT, batch=2) == 0


def test_run_stops_after_a_full_last_batch_and_takes_the_clock_by_default(db):
    tenant = shop(db)
    ana = member(db, tenant)
    bia = member(db, tenant, "+50688886666")
    for n, (acct, amount) in enumerate([(ana, 5), (bia, 5), (ana, 5), (bia, 1)]):
        earn(db, tenant, acct, amount, f"due-{n}", expires_at=AT)
    clock.freeze(AT)
    assert expiry.run(db, batch=2) == 4  # two full batches, then an empty one
    assert balances(db) == {(ana.customer_id, "points"): 0, (bia.customer_id, "points"): 0}
    assert [(e[4], e[5]) for e in expirations(db)] == [(-5, 5), (-5, 1), (-5, 0), (-1, 0)]
    assert ledger_invariants(db) == []
