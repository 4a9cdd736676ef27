"""A loyalty payment the member already made for the bill becomes part of the sale
(fidelia/orders/checkout.py ``link_payment``): the one named by its confirmation code, else
one made for the transaction with the same kind and amount; never twice, never another
member's, a cancelled one or one made for another transaction."""

import pytest
from sqlalchemy import update

from fidelia.kit.errors import Conflict, InvalidInput, NotFound
from fidelia.models import Customer, LoyaltyPayment, Tenant
from fidelia.orders import checkout
from fidelia.payments import service as payments
from tests.orders.common import BIA, CASHBACK, balances, give, member, said, shop


def paid(db, tenant, customer, amount, reference="TX-1", cancelled=False) -> str:
    with db.session() as session:
        mine = session.get_one(Tenant, tenant.id)
        who = session.get_one(Customer, customer)
        code = payments.pay(session, mine, who, "credit", amount, reference=reference)
        if cancelled:
            payments.cancel(session, mine, code.confirmation_code)
        return code.confirmation_code


def sale(session, tenant, customer, total=1000, tx="TX-1"):
    who = session.get_one(Customer, customer) if customer else None
    return checkout.open_sale(session, session.get_one(Tenant, tenant.id), tx, who, total, [])


def refused(error, code, call, *args, **kw):
    with pytest.raises(error) as caught:
        call(*args, **kw)
    said(caught.value, code)
    return caught.value


def test_a_payment_for_the_transaction_is_linked_by_kind_and_amount_once(db):
    tenant = shop(db)
    ana = member(db, tenant)
    bia = member(db, tenant, BIA)
    give(db, tenant, ana, 5000, CASHBACK)
    give(db, tenant, bia, 5000, CASHBACK)
    paid(db, tenant, bia, 300)  # another member's payment for the same transaction id
    first, second = paid(db, tenant, ana, 300), paid(db, tenant, ana, 300)
    paid(db, tenant, ana, 300, reference="TX-2")
    paid(db, tenant, ana, 300, cancelled=True)
    paid(db, tenant, ana, 200)
    with db.session() as session:
        # A new row version: PostgreSQL's scan now meets it last, so only ORDER BY id
        # keeps "the oldest first".
        session.execute(
            update(LoyaltyPayment)
            .where(LoyaltyPayment.confirmation_code == first)
            .values(created_at=LoyaltyPayment.created_at)
        )
    with db.session() as session:
        mine = sale(session, tenant, ana)
        assert checkout.link_payment(session, mine, "credit", 300).confirmation_code == first
        assert checkout.link_payment(session, mine, "credit", 300).confirmation_code == second
        assert checkout.link_payment(session, mine, "credit", 300) is None
        assert checkout.link_payment(session, mine, "points", 200) is None
        assert mine.paid_with_loyalty == 600
    assert balances(db, ana) == (0, 3900)  # linked, not charged again


def test_a_payment_named_by_its_code_joins_the_sale(db):
    tenant = shop(db)
    ana = member(db, tenant)
    give(db, tenant, ana, 5000, CASHBACK)
    loose = paid(db, tenant, ana, 400, reference=None)
    with db.session() as session:
        mine = sale(session, tenant, ana)
        linked = checkout.link_payment(session, mine, "credit", 400, f" {loose.lower()} ")
        assert (linked.confirmation_code, linked.reference) == (loose, "TX-1")
        error = refused(
            InvalidInput,
            "INVALID_PAYMENT",
            checkout.link_payment,
            session,
            mine,
            "credit",
            400,
            loose,
        )
        assert str(error) == "This payment is listed twice in the transaction."


def test_a_named_payment_must_be_this_members_live_payment_for_this_bill(db):
    tenant = shop(db)
    ana = member(db, tenant)
    bia = member(db, tenant, BIA)
    for who in (ana, bia):
        give(db, tenant, who, 5000, CASHBACK)
    theirs = paid(db, tenant, bia, 300)
    cancelled = paid(db, tenant, ana, 300, cancelled=True)
    elsewhere = paid(db, tenant, ana, 300, reference="TX-9")
    mine_300 = paid(db, tenant, ana, 300)
    big = paid(db, tenant, ana, 1200, reference=None)
    other_shop = shop(db, "bar")
    with db.session() as session:
        link = checkout.link_payment
        anonymous = sale(session, tenant, None)
        refused(InvalidInput, "MEMBER_REQUIRED", link, session, anonymous, "credit", 300, mine_300)
        refused(InvalidInput, "MEMBER_REQUIRED", link, session, anonymous, "credit", 300)
        mine = sale(session, tenant, ana, tx="TX-2")
        refused(NotFound, "PAYMENT_NOT_FOUND", link, session, mine, "credit", 300, theirs)
        refused(NotFound, "PAYMENT_NOT_FOUND", link, session, mine, "credit", 300, "LP-NOPE")
        refused(Conflict, "PAYMENT_CANCELLED", link, session, mine, "credit", 300, cancelled)
        error = refused(Conflict, "PAYMENT_LINKED", link, session, mine, "credit", 300, elsewhere)
        assert "'TX-9'" in str(error)
        error = refused(InvalidInput, "INVALID_PAYMENT", link, session, mine, "points", 300, big)
        assert str(error) == f"The payment {big} was 1200 in CREDIT, not 300 in POINTS."
        refused(InvalidInput, "INVALID_PAYMENT", link, session, mine, "credit", 300, big)
        refused(InvalidInput, "PAYMENT_EXCEEDS_TOTAL", link, session, mine, "credit", 1200, big)
        bill = sale(session, tenant, ana, total=300)
        assert link(session, bill, "credit", 300, mine_300).confirmation_code == mine_300
        elsewhere_sale = sale(session, other_shop, ana, total=300)
        refused(NotFound, "PAYMENT_NOT_FOUND", link, session, elsewhere_sale, "credit", 300, big)


def test_a_payment_found_by_amount_must_still_fit_the_bill(db):
    tenant = shop(db)
    ana = member(db, tenant)
    give(db, tenant, ana, 5000, CASHBACK)
    paid(db, tenant, ana, 600)
    with db.session() as session:
        mine = sale(session, tenant, ana, total=500)
        refused(
            InvalidInput,
            "PAYMENT_EXCEEDS_TOTAL",
            checkout.link_payment,
            session,
            mine,
            "credit",
            600,
        )
