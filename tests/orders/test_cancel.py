"""Undoing a sale (fidelia/orders/service.py ``cancel``, ``partial_cancel``): what it earned
is taken back (less what refunds took, plus deal bonuses) even below zero, the reward and
loyalty payments it used are given back, its vouchers can be used again; a partial refund
takes back its share once per CancelKey."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from fidelia.kit import clock
from fidelia.kit.errors import Conflict, InvalidInput
from fidelia.ledger.service import CASHBACK, POINTS, Account, Source, credit, debit
from fidelia.models import (
    Customer,
    LoyaltyPayment,
    Order,
    OrderRefund,
    Redemption,
    Reward,
    Tenant,
    Voucher,
)
from fidelia.models.order import CANCELLED
from fidelia.orders import service as orders
from fidelia.payments import service as payments
from fidelia.redemptions import service as redemptions
from fidelia.redemptions.service import redeem
from fidelia.vouchers import service as vouchers
from tests.orders.common import (
    BIA,
    T0,
    balances,
    entries,
    give,
    member,
    order,
    report,
    said,
    shop,
)


def refund(db, oid, key, value, products=()):
    with db.session() as session:
        row = orders.partial_cancel(
            session,
            session.get_one(Order, oid),
            cancel_key=key,
            value=value,
            products=list(products),
        )
        session.flush()
        return row.id, row.points, row.cashback


def cancel(db, oid):
    with db.session() as session:
        return orders.cancel(session, session.get_one(Order, oid))


def test_a_cancellation_takes_back_what_the_sale_earned_even_below_zero(db):
    tenant = shop(db)
    ana = member(db, tenant)
    oid = report(db, tenant, "P-1", 2550, ana, completed=True)
    with db.session() as session:  # the points were already spent
        who = session.get_one(Customer, ana)
        payments.pay(session, session.get_one(Tenant, tenant.id), who, "credit", 100)
    clock.freeze(T0 + timedelta(days=1))
    undone = cancel(db, oid)
    assert (undone.points, undone.cashback, undone.payments, undone.vouchers) == (25, 127, [], [])
    assert balances(db, ana) == (0, -100)
    assert entries(db, ana)[-2:] == [
        ("points", "reverse", -25, "order-cancel", str(oid)),
        ("cashback", "reverse", -127, "order-cancel", str(oid)),
    ]
    row = order(db, oid)
    assert (row.state, row.cancelled_at) == (CANCELLED, T0 + timedelta(days=1))
    assert (row.reversed_points, row.reversed_cashback) == (25, 127)
    again = cancel(db, oid)
    assert (again.points, again.cashback) == (0, 0) and balances(db, ana) == (0, -100)


def test_a_partial_refund_takes_back_its_share_once_per_key(db):
    tenant = shop(db)
    ana = member(db, tenant)
    oid = report(db, tenant, "P-1", 1000, ana, completed=True)  # 10 points, 50 cashback
    products = [{"code": "A", "value": 100}, {"code": "B", "value": "200"}]
    rid, points, cashback = refund(db, oid, "R-1", 300, products)
    assert (points, cashback) == (3, 15)
    with db.session(readonly=True) as session:
        row = session.get_one(OrderRefund, rid)
        assert (row.tenant_id, row.order_id, row.cancel_key, row.value) == (
            tenant.id,
            oid,
            "R-1",
            300,
        )
        assert (row.products, row.created_at) == (products, T0)
    assert entries(db, ana)[-2:] == [
        ("points", "reverse", -3, "refund", str(rid)),
        ("cashback", "reverse", -15, "refund", str(rid)),
    ]
    assert refund(db, oid, "R-1", 300, products) == (rid, 3, 15)  # the same refund, once
    assert balances(db, ana) == (7, 35)
    row = order(db, oid)
    assert (row.refunded, row.reversed_points, row.reversed_cashback) == (300, 3, 15)
    # Cumulative: 650 of 1000 refunded takes back 7 points (6.5 up) and 33 cashback in all.
    assert refund(db, oid, "R-2", 350)[1:] == (4, 18)
    undone = cancel(db, oid)  # the rest
    assert (undone.points, undone.cashback) == (3, 17)
    assert balances(db, ana) == (0, 0)


def test_a_refund_of_the_whole_rest_is_allowed_and_nothing_more(db):
    tenant = shop(db)
    ana = member(db, tenant)
    oid = report(db, tenant, "P-1", 1000, ana, completed=True)
    assert refund(db, oid, "R-1", 399)[1:] == (4, 20)
    assert refund(db, oid, "R-0", 1)[1:] == (0, 0)  # the smallest refund
    row = order(db, oid)
    assert (row.refunded, row.reversed_points, row.reversed_cashback) == (400, 4, 20)
    with pytest.raises(InvalidInput) as refused:
        refund(db, oid, "R-2", 601)
    said(refused.value, "REFUND_EXCEEDS_TOTAL")
    assert refund(db, oid, "R-3", 600)[1:] == (6, 30)
    assert balances(db, ana) == (0, 0) and order(db, oid).refunded == 1000


@pytest.mark.parametrize(
    ("value", "products", "code"),
    [
        (0, [], "INVALID_REFUND"),
        (-5, [], "INVALID_REFUND"),
        (300, [{"value": 100}, {"value": 199}], "REFUND_MISMATCH"),
    ],
)
def test_a_refund_with_a_bad_value_is_refused(db, value, products, code):
    tenant = shop(db)
    ana = member(db, tenant)
    oid = report(db, tenant, "P-1", 1000, ana, completed=True)
    with pytest.raises(InvalidInput) as refused:
        refund(db, oid, "R-1", value, products)
    said(refused.value, code)
    assert balances(db, ana) == (10, 50) and order(db, oid).refunded == 0


def test_a_cancel_key_used_for_another_refund_is_refused(db):
    tenant = shop(db)
    ana = member(db, tenant)
    oid = report(db, tenant, "P-1", 1000, ana, completed=True)
    refund(db, oid, "R-1", 300, [{"value": 300}])
    for value, products in ((200, [{"value": 200}]), (300, [{"value": 300, "code": "X"}])):
        with pytest.raises(Conflict) as refused:
            refund(db, oid, "R-1", value, products)
        said(refused.value, "CANCEL_KEY_REUSED")
    other = report(db, tenant, "P-2", 1000, ana, completed=True)
    assert refund(db, other, "R-1", 500)[1:] == (5, 25)  # keys are per order
    assert balances(db, ana) == (12, 60)


def test_only_a_complete_order_is_refunded_in_part(db):
    tenant = shop(db)
    ana = member(db, tenant)
    pending = report(db, tenant, "P-1", 1000, ana)
    cancelled = report(db, tenant, "P-2", 1000, ana, completed=True)
    cancel(db, cancelled)
    for oid, code in ((pending, "ORDER_NOT_COMPLETE"), (cancelled, "ORDER_CANCELLED")):
        with pytest.raises(Conflict) as refused:
            refund(db, oid, "R-1", 100)
        said(refused.value, code)
    with db.session(readonly=True) as session:
        assert session.scalars(select(OrderRefund)).all() == []


def test_a_cancellation_takes_back_the_sales_deal_bonuses_only(db):
    tenant = shop(db)
    bar = shop(db, "bar")
    ana = member(db, tenant)
    bia = member(db, bar, BIA)
    oid = report(db, tenant, "P-1", 1000, ana, completed=True)
    neighbour = report(db, tenant, "P-2", 1000, ana, completed=True)
    with db.session() as session:
        mine = session.get_one(Customer, ana).program_id
        theirs = session.get_one(Customer, bia).program_id
        given = [
            (mine, ana, POINTS, "deal", f"{oid}:1", 7, "earn"),  # this sale's
            (mine, ana, CASHBACK, "deal", f"{oid}:2", 4, "earn"),  # this sale's
            (mine, ana, POINTS, "deal", f"{oid}{neighbour}:1", 100, "earn"),  # another sale
            (mine, ana, CASHBACK, "deal", f"{neighbour}:1", 11, "earn"),
            (mine, ana, POINTS, "test", f"{oid}:9", 5, "earn"),  # not a deal
            (mine, ana, POINTS, "deal", f"{oid}:3", 6, "bonus"),  # not an earning
            (theirs, bia, POINTS, "deal", f"{oid}:1", 8, "earn"),  # another program
        ]
        for program, who, account, kind_of_source, ref, amount, kind in given:
            credit(
                session,
                Account(program, who, account),
                amount,
                Source(tenant.id, kind_of_source, ref),
                kind=kind,
            )
        # The member spent nearly everything: the reversals take the balance below zero.
        debit(session, Account(mine, ana, POINTS), 135, Source(tenant.id, "test", "spent"))
    cancel(db, oid)
    assert entries(db, ana)[-4:-2] == [
        ("points", "reverse", -10, "order-cancel", str(oid)),
        ("cashback", "reverse", -50, "order-cancel", str(oid)),
    ]
    assert sorted(entries(db, ana)[-2:]) == [  # in no particular order
        ("cashback", "reverse", -4, "deal", f"{oid}:2"),
        ("points", "reverse", -7, "deal", f"{oid}:1"),
    ]
    assert balances(db, ana) == (-14, 61) and balances(db, bia) == (8, 0)


def test_cancelling_a_sale_of_nobody_takes_nothing_back(db):
    tenant = shop(db)
    oid = report(db, tenant, "P-1", 1000, completed=True)
    undone = cancel(db, oid)
    assert (undone.points, undone.cashback) == (0, 0)
    assert order(db, oid).state == CANCELLED and entries(db) == []


def test_a_cancellation_gives_back_the_reward_payments_and_vouchers_it_used(db):
    tenant = shop(db, point_value_milli_minor=10_000)  # a point pays 10 cents
    bar = shop(db, "bar")
    ana = member(db, tenant)
    bia = member(db, bar, BIA)
    give(db, tenant, ana, 500)
    give(db, tenant, ana, 400, CASHBACK)
    give(db, bar, bia, 400, CASHBACK)
    with db.session() as session:
        mine = session.get_one(Tenant, tenant.id)
        who = session.get_one(Customer, ana)
        prize = Reward(tenant_id=tenant.id, title="Café", points_required=50)
        session.add(prize)
        session.flush()
        coupon = redeem(session, mine, who, prize, origin="pdv").redemption.external_code
        redeem(session, mine, who, prize, origin="pdv")  # another, of no order
        paid = payments.pay(session, mine, who, "credit", 300, reference="P-1")
        by_points = payments.pay(session, mine, who, "points", 100, reference="P-1")  # 10 pts
        elsewhere = payments.pay(session, mine, who, "credit", 50, reference="P-9")
        undone_before = payments.pay(session, mine, who, "credit", 20, reference="P-1")
        payments.cancel(session, mine, undone_before.confirmation_code)
        at_bar = payments.pay(
            session,
            session.get_one(Tenant, bar.id),
            session.get_one(Customer, bia),
            "credit",
            70,
            reference="P-1",
        )
        voucher = vouchers.issue(session, mine, value=200)
        vouchers.validate(session, mine, voucher.code, reference=orders.voucher_reference("P-1"))
        codes = [paid, by_points, elsewhere, undone_before, at_bar]
        codes = [c.confirmation_code for c in codes]
        voucher_code = voucher.code
    assert balances(db, ana) == (390, 50)
    oid = report(db, tenant, "P-1", 1000, None, coupon=coupon, completed=True)
    with db.session(readonly=True) as session:
        used = session.scalars(select(Redemption).where(Redemption.external_code == coupon)).one()
        assert (used.order_id, order(db, oid).customer_id) == (oid, ana)
    assert balances(db, ana) == (400, 100)
    undone = cancel(db, oid)
    assert sorted(p.confirmation_code for p in undone.payments) == sorted(codes[:2])
    assert [v.code for v in undone.vouchers] == [voucher_code]
    assert balances(db, ana) == (450, 350)  # the 50-point reward and both payments back
    assert balances(db, bia) == (0, 330)
    with db.session(readonly=True) as session:
        states = session.execute(
            select(Redemption.external_code, Redemption.status).order_by(Redemption.id)
        ).all()
        assert [s for c, s in states] == ["cancelled", "done"] and states[0][0] == coupon
        assert session.scalars(select(Voucher)).one().uses == 0
        statuses = session.execute(
            select(LoyaltyPayment.confirmation_code, LoyaltyPayment.status)
        ).all()
    assert dict(statuses) == dict(
        zip(codes, ["cancelled", "cancelled", "done", "cancelled", "done"], strict=True)
    )


def test_a_coupon_links_only_a_done_redemption_of_this_merchant_not_yet_linked(db):
    tenant = shop(db)
    ana = member(db, tenant)
    give(db, tenant, ana, 500)
    with db.session() as session:
        mine = session.get_one(Tenant, tenant.id)
        who = session.get_one(Customer, ana)
        prize = Reward(tenant_id=tenant.id, title="Café", points_required=50)
        session.add(prize)
        session.flush()
        coupon = redeem(session, mine, who, prize, origin="pdv").redemption.external_code
        undone = redeem(session, mine, who, prize, origin="pdv").redemption
        redemptions.cancel(session, undone)
        cancelled_coupon = undone.external_code
    # None of these may take the coupon (nor any redemption) before its own order does.
    elsewhere = report(db, shop(db, "bar"), "P-1", 1000, None, coupon=coupon)
    unknown = report(db, tenant, "P-3", 1000, None, coupon="FD-NOPE")
    of_cancelled = report(db, tenant, "P-4", 1000, None, coupon=cancelled_coupon)
    first = report(db, tenant, "P-1", 1000, None, coupon=coupon)
    assert order(db, first).customer_id == ana
    report(db, tenant, "P-1", 1000, None, coupon=coupon)  # the same order again: still its
    second = report(db, tenant, "P-2", 1000, None, coupon=coupon)
    with db.session(readonly=True) as session:
        linked = dict(session.execute(select(Redemption.external_code, Redemption.order_id)).all())
    assert linked == {coupon: first, cancelled_coupon: None}
    others = (second, elsewhere, unknown, of_cancelled)
    assert [order(db, o).customer_id for o in others] == [None] * 4


def test_a_single_point_is_taken_back_too(db):
    tenant = shop(db)
    ana = member(db, tenant)
    oid = report(db, tenant, "P-1", 100, ana, completed=True)  # 1 point, 5 cents
    undone = cancel(db, oid)
    assert (undone.points, undone.cashback) == (1, 5)
    assert entries(db, ana)[-2:] == [
        ("points", "reverse", -1, "order-cancel", str(oid)),
        ("cashback", "reverse", -5, "order-cancel", str(oid)),
    ]
    assert balances(db, ana) == (0, 0)
