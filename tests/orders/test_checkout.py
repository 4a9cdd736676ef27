"""A retail sale step by step (fidelia/orders/checkout.py): opening it, the deals and
vouchers that come off the bill (each capped at what is left), paying part in points or
credit, closing it as a complete order that earns on what was paid with money, finding it by
its confirmation code, and cancelling it once."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from fidelia.events.deals import DealCache, Line, create_deal, set_deal_active
from fidelia.kit.errors import Conflict, Forbidden, InvalidInput, NotFound
from fidelia.models import Customer, Order, Tenant, Voucher, VoucherUse
from fidelia.models.order import CANCELLED, COMPLETE
from fidelia.orders import checkout
from fidelia.vouchers import service as vouchers
from fidelia.vouchers.rules import create_rule
from tests.orders.common import (
    BIA,
    CASHBACK,
    T0,
    balances,
    entries,
    give,
    member,
    messages,
    order,
    outbox_texts,
    report,
    said,
    shop,
)


def opened(session, tenant, customer, total=1000, tx="TX-1", lines=()):
    who = session.get_one(Customer, customer) if customer else None
    mine = session.get_one(Tenant, tenant.id)
    return checkout.open_sale(session, mine, tx, who, total, list(lines))


def deal(db, tenant, discount_type, value, **kw) -> int:
    with db.session() as session:
        mine = session.get_one(Tenant, tenant.id)
        return create_deal(
            session,
            mine,
            name=f"{discount_type} {value}",
            discount_type=discount_type,
            value=value,
            **kw,
        ).id


def test_a_sale_opens_once_per_transaction_id_and_never_below_zero(db):
    tenant = shop(db)
    ana = member(db, tenant)
    report(db, tenant, "TX-1", 500)
    report(db, shop(db, "bar"), "TX-2", 500)
    with db.session() as session:
        with pytest.raises(Conflict) as refused:
            opened(session, tenant, ana, tx="TX-1")
        said(refused.value, "TRANSACTION_EXISTS")
        with pytest.raises(InvalidInput) as refused:
            opened(session, tenant, ana, total=-1, tx="TX-2")
        said(refused.value, "INVALID_AMOUNT")
        sale = opened(session, tenant, ana, total=0, tx="TX-2")
        assert (sale.transaction_id, sale.customer.id, sale.total) == ("TX-2", ana, 0)
        assert (sale.to_pay, sale.discount, sale.paid_with_loyalty, sale.bonus_points) == (
            0,
            0,
            0,
            0,
        )


def test_deals_come_off_the_bill_capped_at_what_is_left(db):
    tenant = shop(db)
    ana = member(db, tenant)
    ten_percent = deal(db, tenant, "percent", 1000)
    fixed = deal(db, tenant, "fixed", 850)
    bonus = deal(db, tenant, "points", 20)
    deal(db, tenant, "fixed", 100, min_total=1001)  # the basket is too small
    with db.session() as session:
        sale = opened(session, tenant, ana, total=1000)
        applied = checkout.apply_deals(session, sale)
        assert [(a.applied.deal.id, a.discount) for a in applied] == [
            (ten_percent, 100),
            (fixed, 850),
            (bonus, 0),
        ]
        assert (sale.discount, sale.to_pay, sale.bonus_points) == (950, 50, 20)
        capped = opened(session, tenant, ana, total=1000, tx="TX-2")
        only = {checkout.deal_key(fixed), checkout.deal_key(ten_percent)}
        checkout.apply_deals(session, capped, only={checkout.deal_key(fixed)})
        checkout.apply_deals(session, capped, only=only)  # each capped at what is left
        assert [a.discount for a in capped.deals] == [850, 100, 50]
        assert capped.to_pay == 0  # never below zero
    assert checkout.deal_key(7) == "DEAL-7"


def test_a_voucher_takes_its_value_off_what_is_left_and_is_used_under_the_sale(db):
    tenant = shop(db)
    ana = member(db, tenant)
    bia = member(db, tenant, BIA)
    with db.session() as session:
        mine = session.get_one(Tenant, tenant.id)
        codes = [vouchers.issue(session, mine, value=v).code for v in (300, 900)]
        theirs = vouchers.issue(session, mine, value=100, customer=session.get_one(Customer, bia))
        codes.append(theirs.code)
    with db.session() as session:
        sale = opened(session, tenant, ana, total=1000)
        used = checkout.use_voucher(session, sale, codes[0].lower())
        assert (used.voucher.code, used.discount) == (codes[0], 300)
        assert checkout.use_voucher(session, sale, codes[1]).discount == 700
        assert (sale.discount, sale.to_pay) == (1000, 0)
        with pytest.raises(Forbidden) as refused:  # the sale's member is asked for
            checkout.use_voucher(session, sale, codes[2])
        said(refused.value, "VOUCHER_NOT_YOURS")
        session.flush()
        uses = session.scalars(select(VoucherUse.reference)).all()
    assert uses == ["retail:TX-1", "retail:TX-1"]


def test_paying_with_credit_needs_the_member_and_at_most_what_is_left(db):
    tenant = shop(db)
    ana = member(db, tenant)
    give(db, tenant, ana, 5000, CASHBACK)
    with db.session() as session:
        anonymous = opened(session, tenant, None)
        with pytest.raises(InvalidInput) as refused:
            checkout.pay(session, anonymous, "credit", 100)
        said(refused.value, "MEMBER_REQUIRED")
        sale = opened(session, tenant, ana, tx="TX-2")
        checkout.pay(session, sale, "credit", 600)
        with pytest.raises(InvalidInput) as refused:
            checkout.pay(session, sale, "credit", 401)
        said(refused.value, "PAYMENT_EXCEEDS_TOTAL")
        last = checkout.pay(session, sale, "credit", 400)
        assert (last.reference, last.amount, sale.paid_with_loyalty) == ("TX-2", 400, 1000)
        with pytest.raises(InvalidInput) as refused:
            checkout.pay(session, sale, "credit", 1)
        said(refused.value, "PAYMENT_EXCEEDS_TOTAL")
        # A voucher used after the payments leaves less to pay than they paid: still a
        # payment of nothing is the payment's own refusal, not an excess.
        code = vouchers.issue(session, session.get_one(Tenant, tenant.id), value=100).code
        checkout.use_voucher(session, sale, code)
        with pytest.raises(InvalidInput) as refused:
            checkout.pay(session, sale, "credit", 0)
        assert (refused.value.code, str(refused.value)) == (
            "INVALID_AMOUNT",
            "A payment amount is positive.",
        )
    assert balances(db, ana) == (0, 4000)


def test_closing_records_a_complete_order_earning_on_the_money_paid(db):
    tenant = shop(db)
    ana = member(db, tenant, email="ana@example.com")  # told by e-mail (no WhatsApp window)
    give(db, tenant, ana, 5000, CASHBACK)
    deal(db, tenant, "fixed", 500)
    bonus = deal(db, tenant, "points", 20)
    one = deal(db, tenant, "points", 1)
    done_at = T0 - timedelta(minutes=2)
    with db.session() as session:
        sale = opened(session, tenant, ana, total=3000)
        checkout.apply_deals(session, sale)
        checkout.pay(session, sale, "credit", 1000)
        receipt = checkout.close(
            session, sale, placed_at=T0, completed_at=done_at, details={"till": 3}
        )
        oid, code = receipt.order.id, receipt.confirmation_code
        assert (receipt.earned_points, receipt.earned_credit) == (36, 75)
        assert receipt.sale is sale
    assert re.fullmatch(rf"TX-{oid}-[A-HJ-NP-Z2-9]{{6}}", code)
    row = order(db, oid)
    assert (row.original_id, row.total, row.state, row.customer_id) == ("TX-1", 1500, COMPLETE, ana)
    assert row.details == {"till": 3, "confirmation_code": code}
    assert (row.placed_at, row.completed_at) == (T0, done_at)
    assert entries(db, ana)[-4:] == [
        ("points", "earn", 15, "order", str(oid)),
        ("cashback", "earn", 75, "order", str(oid)),
        ("points", "earn", 20, "deal", f"{oid}:{bonus}"),
        ("points", "earn", 1, "deal", f"{oid}:{one}"),
    ]
    assert balances(db, ana) == (36, 4075)
    assert messages(db) == [("benefit_earned", f"order:{oid}")]
    # The message is decided once the deals' points are in: it tells all 36.
    assert "36 puntos" in outbox_texts(db)[-1]


def issued(db) -> list[tuple[int | None, str | None]]:
    with db.session(readonly=True) as session:
        rows = session.execute(select(Voucher.customer_id, Voucher.campaign).order_by(Voucher.id))
        return [tuple(row) for row in rows]


def test_closing_issues_the_vouchers_of_the_rules_the_caller_has_else_reads_them(db):
    """The doors pass the merchant's active voucher rules from their cache (State.rules):
    those decide, without a read; given none, ``close`` reads them. A rule the cache does
    not hold yet issues nothing through it."""
    tenant = shop(db)
    ana, bia = member(db, tenant), member(db, tenant, BIA)
    with db.session() as session:
        rule = create_rule(
            session, session.get_one(Tenant, tenant.id), kind="purchases", threshold=1, value=500
        ).id
    with db.session() as session:
        checkout.close(session, opened(session, tenant, ana, tx="TX-1"), voucher_rules=[])
    assert issued(db) == []
    with db.session() as session:
        checkout.close(session, opened(session, tenant, bia, tx="TX-2"))
    assert issued(db) == [(bia, f"rule-{rule}-1")]


def test_a_sale_paid_all_in_credit_earns_nothing(db):
    tenant = shop(db)
    ana = member(db, tenant)
    give(db, tenant, ana, 5000, CASHBACK)
    with db.session() as session:
        sale = opened(session, tenant, ana, total=800)
        checkout.pay(session, sale, "credit", 800)
        receipt = checkout.close(session, sale)
        assert (receipt.order.total, receipt.earned_points, receipt.earned_credit) == (0, 0, 0)
    assert balances(db, ana) == (0, 4200)


def test_deals_on_lines_act_on_the_lines_they_name(db):
    tenant = shop(db)
    ana = member(db, tenant)
    coffee = deal(db, tenant, "percent", 5000, item_code="CAFE")
    lines = [Line("CAFE", "BAR", 400), Line("PAN", "BAR", 600), Line("CAFE", "BAR", 200)]
    with db.session() as session:
        sale = opened(session, tenant, ana, total=1200, lines=lines)
        applied = checkout.apply_deals(session, sale)
        assert [(a.applied.deal.id, a.discount) for a in applied] == [(coffee, 300)]


def test_a_sale_without_a_member_earns_nothing_and_gets_no_bonus(db):
    tenant = shop(db)
    deal(db, tenant, "points", 20)
    with db.session() as session:
        sale = opened(session, tenant, None, total=1000)
        checkout.apply_deals(session, sale)
        receipt = checkout.close(session, sale)
        assert (receipt.earned_points, receipt.earned_credit, sale.deals) == (0, 0, [])
        assert receipt.order.details == {"confirmation_code": receipt.confirmation_code}
    assert entries(db) == [] and messages(db) == []


def test_a_sale_is_found_by_its_confirmation_code_at_its_merchant(db):
    tenant = shop(db)
    other = shop(db, "bar")
    report(db, tenant, "P-0", 100)  # an earlier order, no sale
    with db.session() as session:
        code = checkout.close(session, opened(session, tenant, None)).confirmation_code
        oid = int(code.split("-")[1])
    with db.session() as session:
        mine = session.get_one(Tenant, tenant.id)
        assert checkout.find_sale(session, mine, f"  {code.lower()} ").id == oid
        wrong = [
            f"TX-{oid}-AAAAAA" if not code.endswith("AAAAAA") else f"TX-{oid}-BBBBBB",
            f"TX-{oid}",
            f"TX-{oid}-{code[-6:]}-X",
            f"XX-{oid}-{code[-6:]}",
            f"TX-{oid + 1}-{code[-6:]}",
            f"TX-A{oid}-{code[-6:]}",
        ]
        for attempt in wrong:
            with pytest.raises(NotFound) as refused:
                checkout.find_sale(session, mine, attempt)
            said(refused.value, "TRANSACTION_NOT_FOUND")
        with pytest.raises(NotFound):
            checkout.find_sale(session, session.get_one(Tenant, other.id), code)
    report(db, tenant, "P-1", 100)  # an order without a code is no sale
    with db.session() as session, pytest.raises(NotFound):
        pos = session.scalar(select(Order.id).where(Order.original_id == "P-1"))
        checkout.find_sale(session, session.get_one(Tenant, tenant.id), f"TX-{pos}-AAAAAA")


def test_cancelling_a_sale_gives_everything_back_once(db):
    tenant = shop(db)
    ana = member(db, tenant)
    give(db, tenant, ana, 5000, CASHBACK)
    bonus = deal(db, tenant, "points", 20)
    extra = deal(db, tenant, "points", 3)  # two deals' bonuses, both taken back
    with db.session() as session:
        mine = session.get_one(Tenant, tenant.id)
        code = vouchers.issue(session, mine, value=100).code
        sale = opened(session, tenant, ana, total=2000)
        checkout.apply_deals(session, sale)
        checkout.use_voucher(session, sale, code)
        paid = checkout.pay(session, sale, "credit", 900).confirmation_code
        oid = checkout.close(session, sale).order.id
    assert balances(db, ana) == (33, 4150)  # 10 + 20 + 3 points, 4100 + 50 credit
    with db.session() as session:
        mine = session.get_one(Tenant, tenant.id)
        reversal = checkout.cancel(session, mine, session.get_one(Order, oid))
        assert (reversal.points, reversal.credit, reversal.already) == (33, 50, False)
        assert [p.confirmation_code for p in reversal.payments] == [paid]
        assert [v.code for v in reversal.vouchers] == [code]
        assert reversal.order.id == oid
    assert balances(db, ana) == (0, 5000)
    assert entries(db, ana)[-1] == ("cashback", "reverse", 900, "payment", entries(db, ana)[-1][4])
    assert ("points", "reverse", -20, "deal", f"{oid}:{bonus}") in entries(db, ana)
    assert ("points", "reverse", -3, "deal", f"{oid}:{extra}") in entries(db, ana)
    with db.session() as session:
        mine = session.get_one(Tenant, tenant.id)
        again = checkout.cancel(session, mine, session.get_one(Order, oid))
        assert (again.points, again.credit, again.payments, again.vouchers) == (0, 0, [], [])
        assert again.already and again.order.state == CANCELLED
    assert balances(db, ana) == (0, 5000)


def test_cached_deals_give_what_a_fresh_read_gives_and_a_change_waits_for_the_cache(db):
    """A retail sale takes the merchant's active deals from ``DealCache`` (``State.deals``,
    kept ``FIDELIA_TENANT_CACHE_SECONDS``): the cached copies take the same amounts off the
    bill and credit the same bonus points as a fresh read; a deal switched off while they are
    fresh still counts, and no longer once the cache's time has passed."""
    tenant = shop(db)
    ana = member(db, tenant)
    fixed = deal(db, tenant, "fixed", 300)
    bonus = deal(db, tenant, "points", 20)
    cache = DealCache(ttl=3600)

    def cached_sale(tx: str) -> list[tuple[int, int]]:
        with db.session() as session:
            sale = opened(session, tenant, ana, total=1000, tx=tx)
            active = cache.active(session, sale.tenant)
            applied = checkout.apply_deals(session, sale, active=active)
            totals.append(checkout.close(session, sale, voucher_rules=[]).order.total)
            return [(a.applied.deal.id, a.discount) for a in applied]

    totals: list[int] = []

    with db.session() as session:
        fresh = opened(session, tenant, ana, total=1000, tx="TX-0")
        expected = [(a.applied.deal.id, a.discount) for a in checkout.apply_deals(session, fresh)]
        session.rollback()
    assert expected == [(fixed, 300), (bonus, 0)]
    assert cached_sale("TX-1") == expected
    with db.session() as session:
        set_deal_active(session, session.get_one(Tenant, tenant.id), fixed, False)
    assert cached_sale("TX-2") == expected  # the cached copies, still fresh
    cache.ttl = 0  # the cache's time has passed
    assert cached_sale("TX-3") == [(bonus, 0)]
    assert totals == [700, 700, 1000]  # what was left to pay earns
    bonuses = [(e[1], e[2]) for e in entries(db, ana) if e[3] == "deal"]
    assert bonuses == [("earn", 20)] * 3  # the cached bonus deal credited each time
    points = sum(e[2] for e in entries(db, ana) if e[0] == "points")
    assert balances(db, ana)[0] == points
