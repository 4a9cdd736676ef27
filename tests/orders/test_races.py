"""Concurrent sales on PostgreSQL (several connections, real row locks): one member's sales
complete one at a time (the member row lock of ``_complete`` and ``open_sale``), so a
voucher by visits counts every earlier sale and two counter sales paying with different
accounts do not deadlock; two reports of one ``OriginalId`` make one order. SQLite has
one writer at a time, so these only run on PostgreSQL."""

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import func, select, text

from fidelia.models import Customer, Order, Tenant, Voucher
from fidelia.models.order import COMPLETE
from fidelia.orders import checkout
from fidelia.orders import service as orders
from fidelia.vouchers.rules import create_rule
from tests.orders.common import CASHBACK, balances, entries, give, member, report, shop

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def lock_waits(db) -> int:
    with db.session(readonly=True) as session:
        found = session.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        )
        return int(found or 0)


class Racer:
    """``work`` in a thread of its own (its own connection); what it returned or raised."""

    def __init__(self, work: Callable[[], object]) -> None:
        self.result: object = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.result = work()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def waits_or_ends(self, db, seconds: float = 15.0) -> bool:
        """True once it waits on a row lock; False when it ended first."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self.thread.is_alive():
                return False
            if lock_waits(db):
                return True
            time.sleep(0.02)
        raise AssertionError("neither waiting nor done")

    def outcome(self) -> object:
        self.thread.join(30)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error
        return self.result


def upsert(session, tenant: Tenant, customer: int, original_id: str, total: int, **kw) -> int:
    """``orders.upsert`` in the caller's transaction (left open by the test)."""
    who = session.get_one(Customer, customer)
    data = orders.OrderData(original_id=original_id, total=total, customer=who, **kw)
    return orders.upsert(session, session.get_one(Tenant, tenant.id), data).id


def vouchers(db) -> list[tuple[int | None, str | None]]:
    with db.session(readonly=True) as session:
        rows = session.execute(select(Voucher.customer_id, Voucher.campaign).order_by(Voucher.id))
        return [tuple(row) for row in rows]


def test_a_sale_completing_waits_for_the_members_other_sale_and_counts_it(db):
    """A stamp card (no points, a voucher every second visit): the second of two concurrent
    sales of one member waits for the first (the member's row lock in ``_complete``), then
    counts it and issues the voucher. Without that lock both count only themselves and
    the voucher is never issued. One member only: a lock taken on the other rows instead
    would hold nothing."""
    tenant = shop(db, earn_milli_points_per_unit=0, cashback_basis_points=0)
    ana = member(db, tenant)
    with db.session() as session:
        rule = create_rule(
            session, session.get_one(Tenant, tenant.id), kind="purchases", threshold=2, value=500
        ).id

    with db.session() as session:
        upsert(session, tenant, ana, "P-1", 800, completed=True)  # not committed yet
        second = Racer(lambda: report(db, tenant, "P-2", 1200, ana, completed=True))
        waited = second.waits_or_ends(db)
    second.outcome()
    assert vouchers(db) == [(ana, f"rule-{rule}-1")]  # the second visit's
    assert waited, "the second sale did not wait for the first"
    with db.session(readonly=True) as session:
        states = session.execute(select(Order.original_id, Order.state).order_by(Order.id))
        assert [tuple(row) for row in states] == [("P-1", COMPLETE), ("P-2", COMPLETE)]
    assert entries(db) == [] and balances(db, ana) == (0, 0)


def test_two_counter_sales_of_one_member_paying_with_each_account_run_one_after_the_other(db):
    """Sale A pays with credit (its cashback balance locked), sale B with points (its points
    balance), each then earns both: B waits at ``open_sale`` for A (the member's row lock),
    so neither holds a balance the other needs. Without that lock they deadlock."""
    tenant = shop(db, point_value_milli_minor=10_000)  # a point is worth 10 cents
    ana = member(db, tenant)
    give(db, tenant, ana, 100)
    give(db, tenant, ana, 1000, CASHBACK)

    def sale_b() -> int:
        with db.session() as session:
            sale = checkout.open_sale(
                session,
                session.get_one(Tenant, tenant.id),
                "TX-B",
                session.get_one(Customer, ana),
                2000,
                [],
            )
            checkout.pay(session, sale, "points", 500)  # 50 points
            return checkout.close(session, sale).order.id

    with db.session() as session:
        sale = checkout.open_sale(
            session,
            session.get_one(Tenant, tenant.id),
            "TX-A",
            session.get_one(Customer, ana),
            2000,
            [],
        )
        checkout.pay(session, sale, "credit", 1000)
        b = Racer(sale_b)
        waited = b.waits_or_ends(db)
        a = checkout.close(session, sale).order.id
    b_id = b.outcome()  # not a deadlock
    assert waited, "sale B did not wait for sale A"
    # A earns on 1000 (10 points, 50 cashback), B on 1500 (15 points, 75 cashback).
    assert balances(db, ana) == (100 + 10 - 50 + 15, 1000 - 1000 + 50 + 75)
    earned = [e for e in entries(db, ana) if e[1] == "earn"]
    assert earned == [
        ("points", "earn", 10, "order", str(a)),
        ("cashback", "earn", 50, "order", str(a)),
        ("points", "earn", 15, "order", str(b_id)),
        ("cashback", "earn", 75, "order", str(b_id)),
    ]


def test_two_reports_of_one_original_id_make_one_order(db):
    """A POS reports order P-1 twice at once: the first report's transaction holds the new
    row; the second's INSERT meets it, waits, then updates that same order (here completing
    it) instead of making another. One order, earned once."""
    tenant = shop(db)
    ana = member(db, tenant)
    with db.session() as session:
        first = upsert(session, tenant, ana, "P-1", 1000)  # pending, not committed yet
        again = Racer(lambda: report(db, tenant, "P-1", 2400, ana, completed=True))
        waited = again.waits_or_ends(db)
    assert again.outcome() == first
    assert waited, "the second report did not wait for the first"
    with db.session(readonly=True) as session:
        rows = session.execute(select(Order.id, Order.total, Order.state, Order.earned_points))
        assert [tuple(row) for row in rows] == [(first, 2400, COMPLETE, 24)]
        assert session.scalar(select(func.count()).select_from(Order)) == 1
    assert entries(db, ana) == [
        ("points", "earn", 24, "order", str(first)),
        ("cashback", "earn", 120, "order", str(first)),
    ]
    assert balances(db, ana) == (24, 120)
