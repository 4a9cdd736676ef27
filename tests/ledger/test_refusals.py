"""The ledger's refusals word for word (the doors and the panel show them), what ``credit``
and ``debit`` return, and the smallest amounts: a credit, an adjustment and a lot of one."""

from datetime import timedelta

import pytest

from fidelia.audit.service import Actor
from fidelia.kit import clock
from fidelia.kit.errors import BalanceLimit, InsufficientPoints, InvalidInput
from fidelia.ledger.adjustments import adjust
from fidelia.ledger.service import (
    CASHBACK,
    MAX_BALANCE,
    Account,
    Credit,
    Entry,
    Source,
    credit,
    credit_many,
    debit,
)
from fidelia.models import Adjustment, Customer, Tenant
from tests.ledger.common import T0, balances, earn, lots, member, rows, shop, spend


@pytest.fixture(autouse=True)
def _frozen():
    clock.freeze(T0)
    yield
    clock.freeze(None)


def refused(error: type[Exception], call, *args, **kw) -> str:
    with pytest.raises(error) as caught:
        call(*args, **kw)
    return str(caught.value)


def test_credits_and_debits_refused_say_why(db):
    tenant = shop(db)
    ana = member(db, tenant)
    earn(db, tenant, ana, MAX_BALANCE - 10, "e-1")
    one = Credit(ana, 1, Source(tenant.id, "test", "b"), None)
    none = Credit(ana, 0, Source(tenant.id, "test", "c"), None)
    big = Credit(ana, MAX_BALANCE + 1, Source(tenant.id, "test", "d"), None)
    too_far = Credit(ana, 11, Source(tenant.id, "test", "e"), None)
    assert refused(InvalidInput, earn, db, tenant, ana, 0, "x") == "A credit must be positive."
    past = f"A credit is at most {MAX_BALANCE}."
    assert refused(BalanceLimit, earn, db, tenant, ana, MAX_BALANCE + 1, "x") == past
    beyond = f"This would take the balance past {MAX_BALANCE}."
    assert refused(BalanceLimit, earn, db, tenant, ana, 11, "x") == beyond

    def batch(*credits: Credit) -> list[int]:
        with db.session() as session:
            return credit_many(session, list(credits))

    assert refused(InvalidInput, batch, one, none) == "A credit must be positive."
    assert refused(BalanceLimit, batch, big) == past
    assert refused(BalanceLimit, batch, too_far) == f"This would take a balance past {MAX_BALANCE}."
    assert refused(InvalidInput, spend, db, tenant, ana, 0, "x") == "A debit must be positive."
    cash = Account(ana.program_id, ana.customer_id, CASHBACK)
    assert refused(InsufficientPoints, spend, db, tenant, cash, 1, "x") == "Not enough points."
    assert len(rows(db)) == 1


def test_credit_and_debit_return_their_entry_and_take_one(db):
    tenant = shop(db)
    ana = member(db, tenant)
    with db.session() as session:
        got = credit(session, ana, 1, Source(tenant.id, "test", "one"))
        assert got == Entry(got.id, 1, 1)
        got = credit(session, ana, 7, Source(tenant.id, "test", "seven"))
        assert got == Entry(got.id, 7, 8)
        got = debit(session, ana, 3, Source(tenant.id, "test", "three"))
        assert got == Entry(got.id, -3, 5)
    assert [r.id for r in rows(db)] == [got.id - 2, got.id - 1, got.id]
    assert balances(db) == {(ana.customer_id, "points"): 5}


def test_a_lot_holding_one_point_is_spent_first(db):
    tenant = shop(db)
    ana = member(db, tenant)
    earn(db, tenant, ana, 3, "soon", expires_at=T0 + timedelta(days=1))
    earn(db, tenant, ana, 5, "never")
    spend(db, tenant, ana, 2, "r-1")  # "soon" holds 1
    spend(db, tenant, ana, 1, "r-2")
    assert lots(db) == {"soon": 0, "never": 5, "r-1": None, "r-2": None}


def test_a_batch_earns_by_default(db):
    tenant = shop(db)
    ana = member(db, tenant)
    with db.session() as session:
        assert credit_many(session, [Credit(ana, 2, Source(tenant.id, "sale", "1"), None)]) == [2]
    assert [(r.kind, r.amount) for r in rows(db)] == [("earn", 2)]


def adjusted(db, tenant, customer_id, account, amount, reason, actor):
    with db.session() as session:
        return adjust(
            session,
            session.get_one(Tenant, tenant.id),
            session.get_one(Customer, customer_id),
            account,
            amount,
            reason,
            actor,
        )[0].id


def test_adjustments_refused_say_why_and_one_point_is_a_credit(db):
    tenant = shop(db)
    other = shop(db, "bar")
    ana = member(db, tenant)
    stranger = member(db, other, "+50688886666")
    cli = Actor("cli", "root@till", 987654)  # an id, but not a user's: not stored as one
    c = ana.customer_id

    def why(*args) -> str:
        with pytest.raises((InvalidInput, InsufficientPoints)) as caught:
            adjusted(db, tenant, *args, cli)
        return str(caught.value)

    assert why(c, "stars", 5, "x") == "The account is one of points, cashback."
    assert why(c, "points", 0, "x") == "An adjustment is not zero."
    assert why(c, "points", 5, "  ") == "An adjustment needs a reason."
    assert why(c, "points", 5, "x" * 301) == "The reason has at most 300 characters."
    program = "This customer is not in the merchant's program."
    assert why(stranger.customer_id, "points", 5, "x") == program
    below = "than this debit; a debit never takes a balance below zero."
    assert why(c, "points", -1, "x") == f"The customer has less points {below}"
    assert why(c, "cashback", -1, "x") == f"The customer has less cashback {below}"
    one = adjusted(db, tenant, c, "points", 1, "one", cli)
    with db.session(readonly=True) as session:
        row = session.get_one(Adjustment, one)
        assert (row.amount, row.user_id, row.actor_label) == (1, None, "root@till")
    assert balances(db) == {(c, "points"): 1}
    assert [(r.kind, r.amount, r.source_id) for r in rows(db)] == [("adjust", 1, str(one))]
