"""Manual adjustments (fidelia/ledger/adjustments.py): a person credits or debits points or
cashback with a reason; each is an ``adjustments`` row (who, why, how much) and one ledger
entry of kind 'adjust' pointing at it; a debit never takes a balance below zero."""

import pytest
from sqlalchemy import select

from fidelia.audit.service import Actor
from fidelia.kit import clock
from fidelia.kit.errors import InsufficientPoints, InvalidInput
from fidelia.ledger.adjustments import REASON_MAX, adjust, reasons_by_entry
from fidelia.models import Adjustment, Customer, LedgerEntry, Tenant
from fidelia.users.service import create_user
from tests.ledger.common import T0, balances, earn, member, rows, shop

CLI = Actor("cli", "root@till")


@pytest.fixture(autouse=True)
def _frozen():
    clock.freeze(T0)
    yield
    clock.freeze(None)


def adjusted(db, tenant, customer_id, account, amount, reason, actor=CLI):
    with db.session() as session:
        row, entry = adjust(
            session,
            session.get_one(Tenant, tenant.id),
            session.get_one(Customer, customer_id),
            account,
            amount,
            reason,
            actor,
        )
        return row.id, entry.id


def stored(db) -> list[tuple]:
    with db.session(readonly=True) as session:
        return [
            (r.tenant_id, r.program_id, r.customer_id, r.account, r.amount, r.reason)
            + (r.user_id, r.actor_label, r.created_at)
            for r in session.scalars(select(Adjustment).order_by(Adjustment.id))
        ]


def test_a_credit_and_a_debit_are_rows_with_their_ledger_entries(db):
    tenant = shop(db)
    ana = member(db, tenant)
    with db.session() as session:
        owner = create_user(
            session,
            email="o@cafe.co",
            password="x" * 12,
            role="owner",
            tenant=session.get_one(Tenant, tenant.id),
        ).id
    first, _ = adjusted(db, tenant, ana.customer_id, "points", 40, "  lost   card\n")
    second, _ = adjusted(
        db, tenant, ana.customer_id, "cashback", 250, "goodwill", Actor("user", "o@cafe.co", owner)
    )
    third, _ = adjusted(
        db, tenant, ana.customer_id, "points", -15, "typo", Actor("system", "x" * 250)
    )
    c, p = ana.customer_id, ana.program_id
    assert stored(db) == [
        (tenant.id, p, c, "points", 40, "lost card", None, "root@till", T0),
        (tenant.id, p, c, "cashback", 250, "goodwill", owner, "o@cafe.co", T0),
        (tenant.id, p, c, "points", -15, "typo", None, "x" * 200, T0),
    ]
    assert [
        (r.kind, r.account, r.amount, r.source_type, r.source_id, r.tenant_id) for r in rows(db)
    ] == [
        ("adjust", "points", 40, "adjustment", str(first), tenant.id),
        ("adjust", "cashback", 250, "adjustment", str(second), tenant.id),
        ("adjust", "points", -15, "adjustment", str(third), tenant.id),
    ]
    assert balances(db) == {(c, "points"): 25, (c, "cashback"): 250}


@pytest.mark.parametrize(
    ("account", "amount", "reason", "code"),
    [
        ("stars", 5, "why", "INVALID_ACCOUNT"),
        ("points", 0, "why", "INVALID_AMOUNT"),
        ("points", 5, " \t\n", "REASON_REQUIRED"),
        ("points", 5, "", "REASON_REQUIRED"),
        ("points", 5, None, "REASON_REQUIRED"),
        ("points", 5, "x" * (REASON_MAX + 1), "REASON_TOO_LONG"),
        ("points", -11, "why", "INSUFFICIENT_BALANCE"),
        ("cashback", -1, "why", "INSUFFICIENT_BALANCE"),
    ],
)
def test_a_bad_adjustment_is_refused_and_writes_nothing(db, account, amount, reason, code):
    tenant = shop(db)
    ana = member(db, tenant)
    earn(db, tenant, ana, 10, "e-1")
    with pytest.raises((InvalidInput, InsufficientPoints)) as refused:
        adjusted(db, tenant, ana.customer_id, account, amount, reason)
    assert refused.value.code == code
    if code == "INSUFFICIENT_BALANCE":
        assert f"less {account} than this debit" in str(refused.value)
    assert stored(db) == [] and len(rows(db)) == 1


def test_a_reason_of_the_longest_length_and_the_whole_balance_are_taken(db):
    tenant = shop(db)
    ana = member(db, tenant)
    earn(db, tenant, ana, 10, "e-1")
    adjusted(db, tenant, ana.customer_id, "points", -10, "y" * REASON_MAX)
    assert balances(db) == {(ana.customer_id, "points"): 0}


def test_a_customer_of_another_program_is_refused(db):
    tenant = shop(db)
    other = shop(db, "bar")
    stranger = member(db, other)
    with pytest.raises(InvalidInput, match="not in the merchant's program"):
        adjusted(db, tenant, stranger.customer_id, "points", 5, "why")
    assert stored(db) == [] and rows(db) == []


def test_entries_are_mapped_to_their_adjustments(db):
    tenant = shop(db)
    ana = member(db, tenant)
    earn(db, tenant, ana, 10, "7")
    first, entry_one = adjusted(db, tenant, ana.customer_id, "points", 5, "one")
    second, entry_two = adjusted(db, tenant, ana.customer_id, "points", 6, "two")
    with db.session(readonly=True) as session:
        entries = list(session.scalars(select(LedgerEntry).order_by(LedgerEntry.id)))
        found = reasons_by_entry(session, entries)
        assert {k: v.reason for k, v in found.items()} == {entry_one: "one", entry_two: "two"}
        assert reasons_by_entry(session, entries[:1]) == {}
        assert reasons_by_entry(session, []) == {}
        assert [found[entry_one].id, found[entry_two].id] == [first, second]
