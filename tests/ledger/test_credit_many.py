"""``credit_many`` (fidelia/ledger/service.py): a batch of credits written set-based, with
the same result as crediting one by one in order (entries, lots, balances), all or nothing."""

from datetime import timedelta

import pytest

from fidelia.kit import clock
from fidelia.kit.errors import BalanceLimit, InvalidInput
from fidelia.ledger.service import CASHBACK, MAX_BALANCE, Account, Credit, Source, credit_many
from tests.ledger.common import T0, balances, earn, member, rows, shop, spend
from tests.support.helpers import ledger_invariants


@pytest.fixture(autouse=True)
def _frozen():
    clock.freeze(T0)
    yield
    clock.freeze(None)


def batch(db, *credits, kind="earn"):
    with db.session() as session:
        return credit_many(session, list(credits), kind=kind)


def test_a_batch_is_the_credits_one_by_one_in_order(db):
    tenant = shop(db)
    other = shop(db, "bar")
    ana = member(db, tenant)
    bia = member(db, tenant, "+50688886666")
    cash = Account(ana.program_id, ana.customer_id, CASHBACK)
    earn(db, tenant, ana, 5, "before")
    spend(db, tenant, cash, 3, "debt", kind="reverse", allow_negative=True)
    soon = T0 + timedelta(days=3)
    after = batch(
        db,
        Credit(ana, 10, Source(tenant.id, "sale", "1"), soon),
        Credit(bia, 7, Source(other.id, "sale", "2"), None),
        Credit(cash, 2, Source(tenant.id, "sale", "3"), None),
        Credit(ana, 4, Source(tenant.id, "sale", "4"), None),
        Credit(cash, 5, Source(tenant.id, "sale", "5"), None),
        kind="bonus",
    )
    assert after == [15, 7, -1, 19, 4]
    written = [
        (r.tenant_id, r.customer_id, r.account, r.kind, r.amount, r.balance_after, r.remaining)
        + (r.source_type, r.source_id, r.expires_at, r.created_at, r.program_id)
        for r in rows(db)[2:]
    ]
    a, b, p = ana.customer_id, bia.customer_id, ana.program_id
    assert written == [
        (tenant.id, a, "points", "bonus", 10, 15, 10, "sale", "1", soon, T0, p),
        (other.id, b, "points", "bonus", 7, 7, 7, "sale", "2", None, T0, p),
        (tenant.id, a, "cashback", "bonus", 2, -1, 0, "sale", "3", None, T0, p),
        (tenant.id, a, "points", "bonus", 4, 19, 4, "sale", "4", None, T0, p),
        (tenant.id, a, "cashback", "bonus", 5, 4, 4, "sale", "5", None, T0, p),
    ]
    assert balances(db) == {(a, "points"): 19, (a, "cashback"): 4, (b, "points"): 7}
    assert ledger_invariants(db) == []


def test_an_empty_batch_writes_nothing_and_the_default_kind_is_earn(db):
    tenant = shop(db)
    ana = member(db, tenant)
    assert batch(db) == []
    assert batch(db, Credit(ana, 3, Source(tenant.id, "sale", "1"), None)) == [3]
    assert [r.kind for r in rows(db)] == ["earn"]


@pytest.mark.parametrize("amount", [0, -1])
def test_a_batch_with_a_credit_of_nothing_is_refused_whole(db, amount):
    tenant = shop(db)
    ana = member(db, tenant)
    with pytest.raises(InvalidInput):
        batch(
            db,
            Credit(ana, 3, Source(tenant.id, "sale", "1"), None),
            Credit(ana, amount, Source(tenant.id, "sale", "2"), None),
        )
    assert rows(db) == [] and balances(db) == {}


def test_a_batch_past_the_cap_is_refused_whole(db):
    tenant = shop(db)
    ana = member(db, tenant)
    bia = member(db, tenant, "+50688886666")
    half = MAX_BALANCE // 2 + 1
    with pytest.raises(BalanceLimit):  # the batch's own sum passes it
        batch(
            db,
            Credit(ana, half, Source(tenant.id, "sale", "1"), None),
            Credit(ana, half, Source(tenant.id, "sale", "2"), None),
        )
    earn(db, tenant, ana, MAX_BALANCE - 5, "big")
    with pytest.raises(BalanceLimit):  # the balance would pass it
        batch(
            db,
            Credit(bia, 1, Source(tenant.id, "sale", "3"), None),
            Credit(ana, 6, Source(tenant.id, "sale", "4"), None),
        )
    assert len(rows(db)) == 1 and balances(db) == {(ana.customer_id, "points"): MAX_BALANCE - 5}
    assert batch(
        db,
        Credit(ana, 5, Source(tenant.id, "sale", "5"), None),
        Credit(bia, MAX_BALANCE, Source(tenant.id, "sale", "6"), None),
    ) == [MAX_BALANCE, MAX_BALANCE]
