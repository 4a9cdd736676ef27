"""The ledger's credit and debit at the service level (fidelia/ledger/service.py): each is
one entry plus the balance, a credit is a lot (paying off a debt first), a debit never
overspends unless it reverses an earning, and lots are spent soonest-to-expire first."""

from datetime import timedelta

import pytest

from fidelia.kit import clock
from fidelia.kit.errors import InsufficientPoints, InvalidInput
from fidelia.ledger.service import (
    CASHBACK,
    MAX_BALANCE,
    Account,
    Source,
    balance,
    credit,
    debit,
    expiry_after,
    last_earning_at,
    validity_end,
)
from tests.ledger.common import T0, balances, earn, lots, member, rows, shop, spend
from tests.support.helpers import ledger_invariants, sent, sent_by_driver


@pytest.fixture(autouse=True)
def _frozen():
    clock.freeze(T0)
    yield
    clock.freeze(None)


def test_a_credit_is_an_entry_a_lot_and_the_balance(db):
    tenant = shop(db)
    ana = member(db, tenant)
    earn(db, tenant, ana, 40, "e-1")
    earn(db, tenant, ana, 2, "e-2", kind="adjust")
    first, second = rows(db)
    assert (first.program_id, first.tenant_id, first.customer_id, first.account) == (
        ana.program_id,
        tenant.id,
        ana.customer_id,
        "points",
    )
    assert (first.kind, first.amount, first.balance_after, first.remaining) == ("earn", 40, 40, 40)
    assert (first.source_type, first.source_id, first.created_at) == ("test", "e-1", T0)
    assert first.expires_at is None  # the merchant's points never expire
    assert (second.kind, second.balance_after, second.remaining) == ("adjust", 42, 2)
    assert balances(db) == {(ana.customer_id, "points"): 42}
    with db.session(readonly=True) as session:
        assert balance(session, ana) == 42
        assert balance(session, Account(ana.program_id, ana.customer_id, CASHBACK)) == 0


def test_an_earning_expires_after_the_merchants_validity_and_others_when_told(db):
    tenant = shop(db, points_validity_days=30)
    ana = member(db, tenant)
    earn(db, tenant, ana, 10, "e-1")
    earn(db, tenant, ana, 10, "e-2", kind="adjust")
    earn(db, tenant, ana, 10, "e-3", expires_at=T0 + timedelta(days=2))
    earn(db, tenant, ana, 10, "e-4", kind="reverse", expires_at=T0 + timedelta(days=3))
    assert [r.expires_at for r in rows(db)] == [
        T0 + timedelta(days=30),
        None,
        T0 + timedelta(days=2),
        T0 + timedelta(days=3),
    ]
    assert validity_end(None) is None
    assert expiry_after(0) is None and expiry_after(-1) is None
    assert expiry_after(1) == T0 + timedelta(days=1)


@pytest.mark.parametrize("amount", [0, -5])
def test_a_credit_or_debit_of_nothing_is_refused(db, amount):
    tenant = shop(db)
    ana = member(db, tenant)
    earn(db, tenant, ana, 10, "e-1")
    with pytest.raises(InvalidInput, match="credit must be positive"):
        earn(db, tenant, ana, amount, "e-2")
    with pytest.raises(InvalidInput, match="debit must be positive"):
        spend(db, tenant, ana, amount, "d-1", allow_negative=True)
    assert len(rows(db)) == 1 and balances(db) == {(ana.customer_id, "points"): 10}


def test_a_credit_up_to_the_cap_is_taken(db):
    tenant = shop(db)
    ana = member(db, tenant)
    earn(db, tenant, ana, MAX_BALANCE, "e-1")
    assert balances(db) == {(ana.customer_id, "points"): MAX_BALANCE}


def test_a_debit_takes_at_most_the_balance(db):
    tenant = shop(db)
    ana = member(db, tenant)
    earn(db, tenant, ana, 30, "e-1")
    with pytest.raises(InsufficientPoints):
        spend(db, tenant, ana, 31, "d-1")
    spend(db, tenant, ana, 30, "d-2")
    last = rows(db)[-1]
    assert (last.kind, last.amount, last.balance_after, last.remaining) == ("redeem", -30, 0, None)
    assert (last.source_id, last.tenant_id, last.customer_id, last.created_at) == (
        "d-2",
        tenant.id,
        ana.customer_id,
        T0,
    )
    assert len(rows(db)) == 2 and balances(db) == {(ana.customer_id, "points"): 0}
    cash = Account(ana.program_id, ana.customer_id, CASHBACK)
    with pytest.raises(InsufficientPoints):  # no balance row at all
        spend(db, tenant, cash, 1, "d-3")
    assert len(rows(db)) == 2 and (ana.customer_id, "cashback") not in balances(db)


def test_a_reversal_may_take_a_balance_below_zero_and_a_credit_pays_the_debt_first(db):
    tenant = shop(db)
    ana = member(db, tenant)
    cash = Account(ana.program_id, ana.customer_id, CASHBACK)
    earn(db, tenant, ana, 10, "e-1")
    spend(db, tenant, ana, 25, "r-1", kind="reverse", allow_negative=True)
    spend(db, tenant, cash, 7, "r-2", kind="reverse", allow_negative=True)  # no row yet
    assert balances(db) == {(ana.customer_id, "points"): -15, (ana.customer_id, "cashback"): -7}
    assert [(r.kind, r.amount, r.balance_after) for r in rows(db)[1:]] == [
        ("reverse", -25, -15),
        ("reverse", -7, -7),
    ]
    earn(db, tenant, ana, 5, "e-2")  # still in debt: nothing to spend
    earn(db, tenant, ana, 30, "e-3")  # 20 left above zero
    earn(db, tenant, cash, 7, "e-4")  # exactly paid off
    assert lots(db) == {"e-1": 0, "r-1": None, "r-2": None, "e-2": 0, "e-3": 20, "e-4": 0}
    assert [r.balance_after for r in rows(db)[3:]] == [-10, 20, 0]
    assert ledger_invariants(db) == []


def test_lots_are_spent_soonest_to_expiry_first_and_never_expiring_last(db):
    tenant = shop(db)
    ana = member(db, tenant)
    bia = member(db, tenant, "+50688886666")
    cash = Account(ana.program_id, ana.customer_id, CASHBACK)
    earn(db, tenant, ana, 10, "never")
    earn(db, tenant, ana, 10, "late", expires_at=T0 + timedelta(days=9))
    earn(db, tenant, ana, 10, "soon", expires_at=T0 + timedelta(days=2))
    earn(db, tenant, ana, 10, "soon-too", expires_at=T0 + timedelta(days=2))
    earn(db, tenant, bia, 10, "bia", expires_at=T0 + timedelta(days=1))
    earn(db, tenant, cash, 10, "cash", expires_at=T0 + timedelta(days=1))
    spend(db, tenant, ana, 14, "d-1")
    assert lots(db) == {
        "never": 10,
        "late": 10,
        "soon": 0,
        "soon-too": 6,
        "bia": 10,
        "cash": 10,
        "d-1": None,
    }
    spend(db, tenant, ana, 17, "d-2")
    assert (lots(db)["soon-too"], lots(db)["late"], lots(db)["never"]) == (0, 0, 9)
    spend(db, tenant, ana, 9, "d-3")
    assert lots(db)["never"] == 0
    assert ledger_invariants(db) == []


def test_the_last_earning_is_this_customers_at_this_merchant(db):
    tenant = shop(db)
    other = shop(db, "bar")
    ana = member(db, tenant)
    bia = member(db, tenant, "+50688886666")
    with db.session(readonly=True) as session:
        assert last_earning_at(session, tenant.id, ana.customer_id) is None
    earn(db, tenant, ana, 10, "e-1")
    clock.freeze(T0 + timedelta(hours=1))
    earn(db, tenant, ana, 10, "a-1", kind="adjust")
    with db.session() as session:
        credit(session, ana, 5, Source(other.id, "test", "elsewhere"))
        credit(session, bia, 5, Source(tenant.id, "test", "bia"))
    with db.session(readonly=True) as session:
        assert last_earning_at(session, tenant.id, ana.customer_id) == T0
        assert last_earning_at(session, other.id, ana.customer_id) == T0 + timedelta(hours=1)


def test_a_debit_is_two_statements_on_postgresql_the_lots_spent_with_its_entry(db):
    """The balance's guarded UPDATE, then the lots and the entry in ONE statement (a CTE):
    two round trips where three were sent; SQLite (no DML in a CTE) keeps three. The lots
    are spent as before (soonest to expire first) and the entry is the same row."""
    tenant = shop(db)
    ana = member(db, tenant)
    earn(db, tenant, ana, 10, "late", expires_at=T0 + timedelta(days=9))
    earn(db, tenant, ana, 10, "soon", expires_at=T0 + timedelta(days=2))
    with db.session() as session:
        entry, heard = sent(db, lambda: debit(session, ana, 14, Source(tenant.id, "test", "d-1")))
    # Through SQLAlchemy or on the driver's side of the connection (the balance's UPDATE,
    # ``ledger.take``: ``kit/db.py rows_in``); SQLite's BEGIN (its write lock) left out.
    statements = [s for s in heard if not s.startswith("BEGIN")]
    assert len(statements) == (3 if db.is_sqlite else 2)
    assert statements[0].lstrip().upper().startswith("UPDATE BALANCES")
    if not db.is_sqlite:
        assert statements[1].lstrip().upper().startswith("WITH SPENT AS")
    assert lots(db) == {"late": 6, "soon": 0, "d-1": None}
    last = rows(db)[-1]
    assert (entry.id, entry.amount, entry.balance_after) == (last.id, -14, 6)
    assert (last.kind, last.amount, last.balance_after, last.remaining, last.expires_at) == (
        "redeem",
        -14,
        6,
        None,
        None,
    )
    assert (last.tenant_id, last.source_type, last.source_id, last.created_at) == (
        tenant.id,
        "test",
        "d-1",
        T0,
    )
    assert balances(db) == {(ana.customer_id, "points"): 6}
    assert ledger_invariants(db) == []


def test_a_credit_and_a_debit_are_sent_on_the_driver_on_postgresql(db):
    """PostgreSQL: every statement of a credit (the balance with its entry) and of a debit
    (the balance's UPDATE; the lots with the entry) goes on the driver's side of the
    session's connection (``kit/driver``), not through SQLAlchemy's execution layer; the
    entries are the same."""
    tenant = shop(db)
    ana = member(db, tenant)
    with db.session() as session:
        (earned, spent), by_driver = sent_by_driver(
            db,
            lambda: (
                credit(session, ana, 10, Source(tenant.id, "test", "e-1"), tenant=tenant),
                debit(session, ana, 4, Source(tenant.id, "test", "d-1")),
            ),
        )
    if db.is_sqlite:
        assert by_driver == []
    else:
        assert [s.split(" ")[:2] for s in by_driver] == [
            ["WITH", "added"],
            ["UPDATE", "balances"],
            ["WITH", "spent"],
        ]
    first, last = rows(db)
    assert (earned.id, earned.amount, earned.balance_after) == (first.id, 10, 10)
    assert (spent.id, spent.amount, spent.balance_after) == (last.id, -4, 6)
    assert lots(db) == {"e-1": 6, "d-1": None}
    assert balances(db) == {(ana.customer_id, "points"): 6}
    assert ledger_invariants(db) == []
