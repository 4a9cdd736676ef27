"""Orders reported by a POS (fidelia/orders/service.py ``upsert``): stored by their
``OriginalId``, pending with a member and ignored without, completed once (points and
cashback credited, with their ledger rows), and then changed only by a cancellation."""

from datetime import timedelta

from sqlalchemy import select

from fidelia.kit import clock
from fidelia.models import Order, Tenant, Voucher
from fidelia.models.order import CANCELLED, COMPLETE, IGNORED, PENDING
from fidelia.orders import service as orders
from fidelia.orders.earning import Bonus
from fidelia.vouchers.rules import create_rule
from tests.orders.common import (
    BIA,
    T0,
    balances,
    entries,
    member,
    messages,
    order,
    report,
    shop,
)


def test_a_new_order_is_stored_pending_for_its_member(db):
    tenant = shop(db)
    ana = member(db, tenant)
    placed = T0 - timedelta(hours=1)
    oid = report(
        db,
        tenant,
        "P-1",
        2550,
        ana,
        coupon=None,
        status_text="open",
        placed_at=placed,
        details={"items": 2},
    )
    row = order(db, oid)
    assert (row.tenant_id, row.program_id, row.original_id) == (
        tenant.id,
        tenant.program_id,
        "P-1",
    )
    assert (row.total, row.customer_id, row.state, row.status_text) == (2550, ana, PENDING, "open")
    assert (row.placed_at, row.created_at, row.details) == (placed, T0, {"items": 2})
    assert (row.earned_points, row.earned_cashback, row.completed_at) == (0, 0, None)
    assert entries(db) == [] and messages(db) == []


def test_an_order_without_a_member_is_ignored_and_keeps_a_member_once_known(db):
    tenant = shop(db)
    ana = member(db, tenant)
    oid = report(db, tenant, "P-1", 1000)
    assert (order(db, oid).state, order(db, oid).customer_id) == (IGNORED, None)
    assert report(db, tenant, "P-1", 1200, ana, placed_at=T0) == oid
    clock.freeze(T0 + timedelta(minutes=5))
    report(db, tenant, "P-1", 1300, None, status_text="paid", details={"x": 1})
    row = order(db, oid)
    assert (row.total, row.customer_id, row.state, row.placed_at) == (1300, ana, PENDING, T0)
    assert (row.status_text, row.details, row.created_at) == ("paid", {"x": 1}, T0)


def test_completing_earns_points_and_cashback_once(db):
    tenant = shop(db)
    ana = member(db, tenant)
    done_at = T0 - timedelta(minutes=3)
    oid = report(db, tenant, "P-1", 2550, ana, completed=True, completed_at=done_at)
    row = order(db, oid)
    assert (row.state, row.earned_points, row.earned_cashback) == (COMPLETE, 25, 127)
    assert row.completed_at == done_at
    assert balances(db, ana) == (25, 127)
    assert entries(db, ana) == [
        ("points", "earn", 25, "order", str(oid)),
        ("cashback", "earn", 127, "order", str(oid)),
    ]
    assert messages(db) == [("benefit_earned", f"order:{oid}")]
    # The same report again, or with another total: a complete order does not change.
    report(db, tenant, "P-1", 9999, ana, completed=True)
    report(db, tenant, "P-1", 9999, ana)
    assert (order(db, oid).total, order(db, oid).state) == (2550, COMPLETE)
    assert balances(db, ana) == (25, 127) and len(entries(db)) == 2


def test_completion_time_defaults_to_now_and_the_caller_may_run_after_sale(db):
    tenant = shop(db)
    ana = member(db, tenant)
    oid = report(db, tenant, "P-1", 1000, ana, completed=True, after_sale=False)
    assert order(db, oid).completed_at == T0
    assert balances(db, ana) == (10, 50) and messages(db) == []


def test_only_what_earns_is_credited(db):
    tenant = shop(db, cashback_basis_points=0)
    ana = member(db, tenant)
    oid = report(db, tenant, "P-1", 1000, ana, completed=True)
    assert entries(db, ana) == [("points", "earn", 10, "order", str(oid))]
    other = shop(db, "bar", earn_milli_points_per_unit=0)
    bia = member(db, other, BIA)
    oid = report(db, other, "P-1", 1000, bia, completed=True)
    assert entries(db, bia) == [("cashback", "earn", 50, "order", str(oid))]
    assert balances(db, bia) == (0, 50)


def test_a_sale_under_the_minimum_completes_without_earning(db):
    tenant = shop(db, min_order_value=5000)
    ana = member(db, tenant)
    oid = report(db, tenant, "P-1", 4999, ana, completed=True)
    row = order(db, oid)
    assert (row.state, row.earned_points, row.earned_cashback) == (COMPLETE, 0, 0)
    assert entries(db) == [] and messages(db) == []


def test_a_completed_sale_without_a_member_is_ignored(db):
    tenant = shop(db)
    oid = report(db, tenant, "P-1", 1000, completed=True)
    row = order(db, oid)
    assert (row.state, row.earned_points, row.completed_at) == (IGNORED, 0, None)
    assert entries(db) == []


def test_a_complete_order_is_cancelled_by_a_report_and_a_pending_one_too(db):
    tenant = shop(db)
    ana = member(db, tenant)
    oid = report(db, tenant, "P-1", 1000, ana, completed=True)
    clock.freeze(T0 + timedelta(hours=1))
    report(db, tenant, "P-1", 1000, ana, cancelled=True)
    row = order(db, oid)
    assert (row.state, row.cancelled_at) == (CANCELLED, T0 + timedelta(hours=1))
    assert balances(db, ana) == (0, 0)
    report(db, tenant, "P-1", 1000, ana, cancelled=True)  # once
    report(db, tenant, "P-1", 1000, ana, completed=True)  # and for good
    assert balances(db, ana) == (0, 0) and order(db, oid).state == CANCELLED
    assert len(entries(db, ana)) == 4
    pending = report(db, tenant, "P-2", 1000, ana)
    report(db, tenant, "P-2", 1000, ana, cancelled=True, completed=True)
    assert order(db, pending).state == CANCELLED and len(entries(db, ana)) == 4


def test_orders_are_found_by_their_pos_id_or_our_id_at_their_merchant_only(db):
    tenant = shop(db)
    other = shop(db, "bar")
    first = report(db, tenant, "A-1", 1000)
    numeric = report(db, tenant, str(first + 100), 1000)
    theirs = report(db, other, "A-1", 1000)
    with db.session() as session:
        mine = session.get_one(Tenant, tenant.id)
        assert orders.find_order(session, mine, "A-1").id == first
        assert orders.find_order(session, mine, str(first)).id == first
        assert orders.find_order(session, mine, str(first + 100)).id == numeric
        assert orders.find_order(session, mine, str(theirs)) is None
        assert orders.find_order(session, mine, "B-1") is None
        assert orders.find_order(session, session.get_one(Tenant, other.id), "A-1").id == theirs


def test_an_estimate_is_what_the_order_earned_or_would_earn(db):
    tenant = shop(db)
    ana = member(db, tenant)
    pending = report(db, tenant, "P-1", 2550, ana)
    nobody = report(db, tenant, "P-2", 2550)
    done = report(db, tenant, "P-3", 1000, ana, completed=True)
    cancelled = report(db, tenant, "P-4", 1000, ana, completed=True)
    report(db, tenant, "P-4", 1000, ana, cancelled=True)
    with db.session() as session:
        mine = session.get_one(Tenant, tenant.id)
        mine.earn_milli_points_per_unit = 3000  # a rate change does not rewrite the past
        assert orders.estimate(mine, session.get_one(Order, pending)) == Bonus(76, 127)
        assert orders.estimate(mine, session.get_one(Order, nobody)) == Bonus(0, 0)
        assert orders.estimate(mine, session.get_one(Order, done)) == Bonus(10, 50)
        assert orders.estimate(mine, session.get_one(Order, cancelled)) == Bonus(0, 0)


def test_spending_counts_a_members_complete_sales_less_refunds(db):
    tenant = shop(db)
    ana = member(db, tenant)
    bia = member(db, tenant, BIA)
    a = report(db, tenant, "P-1", 1000, ana, completed=True)
    report(db, tenant, "P-2", 2000, ana, completed=True)
    report(db, tenant, "P-3", 4000, ana)  # pending
    report(db, tenant, "P-4", 8000, ana, completed=True)
    report(db, tenant, "P-4", 8000, ana, cancelled=True)
    report(db, tenant, "P-5", 16000, bia, completed=True)
    other = shop(db, "bar")
    report(db, other, "P-1", 32000, ana, completed=True)
    with db.session() as session:
        orders.partial_cancel(
            session, session.get_one(Order, a), cancel_key="R-1", value=300, products=[]
        )
        assert orders.spending(session, tenant.id, ana) == orders.Spending(2, 2700)
        assert orders.spending(session, tenant.id, bia) == orders.Spending(1, 16000)
        assert orders.spending(session, other.id, bia) == orders.Spending(0, 0)


def test_a_completed_order_issues_the_vouchers_of_the_rules_the_caller_has_else_reads_them(db):
    """``OrderData.voucher_rules``: the merchant's active rules from the caller's cache decide
    the vouchers (no read); None, they are read."""
    tenant = shop(db)
    ana, bia = member(db, tenant), member(db, tenant, BIA)
    with db.session() as session:
        rule = create_rule(
            session, session.get_one(Tenant, tenant.id), kind="purchases", threshold=1, value=500
        ).id
    report(db, tenant, "P-1", 1000, ana, completed=True, voucher_rules=[])
    report(db, tenant, "P-2", 1000, bia, completed=True)
    with db.session(readonly=True) as session:
        rows = session.execute(select(Voucher.customer_id, Voucher.campaign).order_by(Voucher.id))
        assert [tuple(row) for row in rows] == [(bia, f"rule-{rule}-1")]
