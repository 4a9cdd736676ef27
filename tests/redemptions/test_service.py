"""Redemptions at the service level (fidelia/redemptions): what a redemption debits and
records, what refuses it (a debt, no recent visit, no stock, a cashback value under the
minimum), how one is found, and what a cancel gives back, once. Killing mutmut's mutants of
fidelia/redemptions (docs/testing.md)."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from fidelia.customers.service import find, identify
from fidelia.kit import clock
from fidelia.kit.db import Database
from fidelia.kit.errors import Conflict, Forbidden, InsufficientPoints, InvalidInput, NotFound
from fidelia.ledger.service import (
    CASHBACK,
    POINTS,
    Account,
    Source,
    credit,
    debit,
    last_earning_at,
)
from fidelia.models import (
    Balance,
    Customer,
    LedgerEntry,
    Order,
    OutboxMessage,
    Redemption,
    Reward,
    Tenant,
)
from fidelia.models.order import COMPLETE, PENDING
from fidelia.redemptions.service import (
    cancel,
    find_redeemer,
    find_redemption,
    new_external_code,
    redeem,
    require_recent_visit,
    wallet_of,
)
from fidelia.rewards.eligibility import Wallet
from tests.support.helpers import make_tenant, sent

T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
ANA = "+50688887777"
BIA = "+50688886666"


@pytest.fixture(autouse=True)
def _frozen():
    clock.freeze(T0)
    yield
    clock.freeze(None)


def shop(db: Database, slug: str = "cafe", **columns: object) -> Tenant:
    tenant, _ = make_tenant(db, slug=slug, name=slug.title())
    with db.session() as session:
        row = session.get_one(Tenant, tenant.id)
        for name, value in columns.items():
            setattr(row, name, value)
    return tenant


def member(db: Database, tenant: Tenant, number: str = ANA) -> int:
    with db.session() as session:
        return identify(session, session.get_one(Tenant, tenant.id), {"whatsapp": number}).id


def give(db, tenant, customer, amount, account=POINTS, ref="e-1") -> None:
    with db.session() as session:
        who = session.get_one(Customer, customer)
        credit(
            session,
            Account(who.program_id, who.id, account),
            amount,
            Source(tenant.id, "test", ref),
        )


def take(db, tenant, customer, amount, account=POINTS) -> None:
    with db.session() as session:
        who = session.get_one(Customer, customer)
        debit(
            session,
            Account(who.program_id, who.id, account),
            amount,
            Source(tenant.id, "test", "debt"),
            kind="reverse",
            allow_negative=True,
        )


def reward(db, tenant, points=50, **columns: object) -> int:
    with db.session() as session:
        row = Reward(tenant_id=tenant.id, title="Café", points_required=points, **columns)
        session.add(row)
        session.flush()
        return row.id


def buy(db, tenant, customer, reward_id, **given):
    with db.session() as session:
        done = redeem(
            session,
            session.get_one(Tenant, tenant.id),
            session.get_one(Customer, customer),
            session.get_one(Reward, reward_id),
            origin=given.pop("origin", "pdv"),
            **given,
        )
        session.flush()
        return (
            done.redemption.id,
            (done.points_entry.id if done.points_entry else None),
            done.points_left,
        )


def balances(db, customer) -> tuple[int, int]:
    with db.session(readonly=True) as session:
        rows = dict(
            session.execute(
                select(Balance.account, Balance.amount).where(Balance.customer_id == customer)
            ).all()
        )
    return rows.get(POINTS, 0), rows.get(CASHBACK, 0)


def entries(db, customer=None) -> list[tuple[str, str, int, str, str]]:
    with db.session(readonly=True) as session:
        query = select(LedgerEntry).order_by(LedgerEntry.id)
        if customer is not None:
            query = query.where(LedgerEntry.customer_id == customer)
        return [
            (e.account, e.kind, e.amount, e.source_type, e.source_id)
            for e in session.scalars(query)
        ]


def stored(db, redemption_id) -> Redemption:
    with db.session(readonly=True) as session:
        row = session.get_one(Redemption, redemption_id)
        session.expunge(row)
        return row


def stock(db, reward_id) -> int | None:
    with db.session(readonly=True) as session:
        return session.get_one(Reward, reward_id).stock


def notices(db) -> list[str]:
    with db.session(readonly=True) as session:
        rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        return [row.payload["text"]["body"] for row in rows]


def test_a_redemption_debits_the_points_and_records_what_was_taken(db):
    tenant = shop(db)
    ana = member(db, tenant)
    give(db, tenant, ana, 120)
    give(db, tenant, ana, 300, CASHBACK, "e-2")  # told as what is left too
    prize = reward(db, tenant, points=50, reward_type="fixed", value=700, stock=2)
    clock.freeze(T0 + timedelta(minutes=1))
    redemption, entry, left = buy(db, tenant, ana, prize, origin="retail", original_key="K-1")
    row = stored(db, redemption)
    assert (row.tenant_id, row.customer_id, row.reward_id, row.origin) == (
        tenant.id,
        ana,
        prize,
        "retail",
    )
    assert (row.points, row.value, row.status, row.original_key) == (50, 700, "done", "K-1")
    assert row.created_at == T0 + timedelta(minutes=1) and row.order_id is None
    assert re.fullmatch(r"FD-[0-9A-F]{10}", row.external_code)
    with db.session(readonly=True) as session:
        assert row.program_id == session.get_one(Customer, ana).program_id
        debit_row = session.get_one(LedgerEntry, entry)
        assert (debit_row.amount, debit_row.balance_after) == (-50, 70)
    assert left == 70 and balances(db, ana) == (70, 300)
    assert entries(db, ana)[-1] == (POINTS, "redeem", -50, "redemption", str(redemption))
    assert stock(db, prize) == 1
    assert notices(db) == [
        "Cafe: se usaron 50 puntos de tu saldo en «Café». Te queda: 70 puntos + 3,00 US$. "
        "Si no fuiste vos, avisale al comercio."
    ]


def test_external_codes_differ():
    codes = {new_external_code() for _ in range(50)}
    assert len(codes) == 50 and all(re.fullmatch(r"FD-[0-9A-F]{10}", c) for c in codes)


def test_a_free_reward_debits_nothing_and_reports_the_balance(db):
    tenant = shop(db)
    ana = member(db, tenant)
    give(db, tenant, ana, 30)
    prize = reward(db, tenant, points=0)
    redemption, entry, left = buy(db, tenant, ana, prize)
    assert (entry, left) == (None, 30)
    assert (stored(db, redemption).points, stored(db, redemption).value) == (0, 0)
    assert entries(db, ana) == [(POINTS, "earn", 30, "test", "e-1")]
    assert notices(db) == []  # nothing spent, nothing to tell


def test_a_one_point_reward_takes_its_point(db):
    tenant = shop(db)
    ana = member(db, tenant)
    give(db, tenant, ana, 5)
    redemption, entry, left = buy(db, tenant, ana, reward(db, tenant, points=1))
    assert (stored(db, redemption).points, left, balances(db, ana)) == (1, 4, (4, 0))


def test_not_enough_points_is_refused(db):
    tenant = shop(db)
    ana = member(db, tenant)
    give(db, tenant, ana, 49)
    prize = reward(db, tenant, points=50)
    with pytest.raises(InsufficientPoints):
        buy(db, tenant, ana, prize)
    assert balances(db, ana) == (49, 0)


@pytest.mark.parametrize("account", [POINTS, CASHBACK])
def test_a_debt_on_either_account_blocks_every_redemption(db, account):
    tenant = shop(db)
    ana = member(db, tenant)
    give(db, tenant, ana, 100)
    give(db, tenant, ana, 100, CASHBACK, "e-2")
    take(db, tenant, ana, 101, account)
    prize = reward(db, tenant, points=0)
    with pytest.raises(InsufficientPoints) as refused:
        buy(db, tenant, ana, prize)
    assert str(refused.value) == "The customer owes points from a refund; earn them back first."
    with db.session(readonly=True) as session:
        assert session.scalar(select(Redemption.id)) is None


def test_a_merchant_that_validates_customers_needs_a_verified_code(db):
    tenant = shop(db, should_validate_customer=True)
    ana = member(db, tenant)
    give(db, tenant, ana, 100)
    with pytest.raises(Forbidden) as refused:
        buy(db, tenant, ana, reward(db, tenant, points=10))
    assert refused.value.code == "CHALLENGE_REQUIRED"
    assert balances(db, ana) == (100, 0)


def test_the_wallet_holds_both_balances_of_this_customer(db):
    tenant = shop(db)
    ana = member(db, tenant)
    bia = member(db, tenant, BIA)
    with db.session(readonly=True) as session:
        assert wallet_of(session, session.get_one(Customer, ana)) == Wallet(0, 0)
    give(db, tenant, ana, 12)
    give(db, tenant, ana, 34, CASHBACK, "e-2")
    give(db, tenant, ana, 56, "other", "e-3")
    give(db, tenant, bia, 78, POINTS, "e-4")
    with db.session(readonly=True) as session:
        assert wallet_of(session, session.get_one(Customer, ana)) == Wallet(12, 34)


def test_a_redeemer_is_read_in_one_statement_as_the_separate_reads_read_it(db):
    """``find_redeemer``: the customer, the wallet, the last earning here and the WhatsApp
    contact, in one statement, the same as ``find``, ``wallet_of``, ``last_earning_at`` and
    the notice's read."""
    tenant = shop(db)
    elsewhere = shop(db, "bar")
    ana = member(db, tenant)
    bia = member(db, tenant, BIA)
    with db.session() as session:
        here = session.get_one(Tenant, tenant.id)
        identify(session, here, {"whatsapp": ANA, "wa_user": "wa-ana", "cpf": "52998224725"})
        fresh = find_redeemer(session, here, "whatsapp", BIA, visit=True)
        assert fresh is not None and fresh.customer.id == bia
        assert (fresh.wallet, fresh.last_earning_at) == (Wallet(0, 0), None)
        assert fresh.contact == (BIA, None)
    clock.freeze(T0 - timedelta(hours=2))
    give(db, tenant, ana, 12)
    clock.freeze(T0)
    give(db, elsewhere, ana, 5, ref="e-2")  # the same program's other merchant
    give(db, elsewhere, ana, 34, CASHBACK, "e-3")
    take(db, tenant, ana, 50)  # a debt on points
    give(db, tenant, bia, 78, POINTS, "e-4")
    with db.session() as session:
        here = session.get_one(Tenant, tenant.id)
        read, statements = sent(
            db, lambda: find_redeemer(session, here, "cpf", "52998224725", visit=True)
        )
        assert len(statements) == 1
        assert read is not None
        customer = find(session, here.program_id, "cpf", "52998224725")
        assert read.customer is customer  # the session's one object for the row
        assert read.wallet == wallet_of(session, customer) == Wallet(12 + 5 - 50, 34)
        last = last_earning_at(session, tenant.id, ana)
        assert read.last_earning_at == last == T0 - timedelta(hours=2)  # here, not elsewhere
        assert read.contact == (ANA, "wa-ana")
        assert read.visit
        unvisited = find_redeemer(session, here, "whatsapp", ANA)
        assert unvisited is not None and unvisited.last_earning_at is None and not unvisited.visit
        for who in (read, unvisited):  # the last earning read with it, or read then
            with pytest.raises(Forbidden):  # two hours ago: past the window
                require_recent_visit(session, here, who)
        assert find_redeemer(session, here, "whatsapp", "+50600000001") is None
        assert not session.dirty and not session.new  # read as loaded: nothing to write


@pytest.mark.parametrize(
    ("after", "allowed"), [(timedelta(minutes=30), True), (timedelta(minutes=30, seconds=1), False)]
)
def test_a_redemption_needs_an_earning_here_within_the_window(db, after, allowed):
    tenant = shop(db, verification_window_minutes=30)
    elsewhere = shop(db, "bar")
    ana = member(db, tenant)
    clock.freeze(T0 - timedelta(days=1))
    give(db, tenant, ana, 10)
    clock.freeze(T0)
    give(db, tenant, ana, 10, ref="e-2")
    clock.freeze(T0 + after)

    def check(where: Tenant) -> None:
        with db.session(readonly=True) as session:
            require_recent_visit(
                session, session.get_one(Tenant, where.id), session.get_one(Customer, ana)
            )

    if allowed:
        check(tenant)
    else:
        with pytest.raises(Forbidden) as refused:
            check(tenant)
        assert refused.value.code == "VERIFICATION_REQUIRED"
        assert str(refused.value) == (
            "No accreditation at this merchant within the verification window."
        )
    with pytest.raises(Forbidden):
        check(elsewhere)


def test_the_last_unit_of_stock_goes_once_and_comes_back_on_cancel(db):
    tenant = shop(db)
    ana = member(db, tenant)
    give(db, tenant, ana, 100)
    prize = reward(db, tenant, points=10, stock=1)
    plenty = reward(db, tenant, points=10)
    other = reward(db, tenant, points=10, stock=5)
    first, _, _ = buy(db, tenant, ana, prize)
    assert (stock(db, prize), stock(db, other)) == (0, 5)
    with pytest.raises(Conflict) as refused:
        buy(db, tenant, ana, prize)
    assert (refused.value.code, str(refused.value)) == (
        "OUT_OF_STOCK",
        "This reward is out of stock.",
    )
    assert stock(db, prize) == 0 and balances(db, ana) == (90, 0)
    buy(db, tenant, ana, plenty)
    assert stock(db, plenty) is None
    with db.session() as session:
        cancel(session, find_redemption(session, session.get_one(Tenant, tenant.id), id=first))
    assert (stock(db, prize), stock(db, other)) == (1, 5)


def test_a_cached_reward_takes_the_stock_the_database_has(db):
    """The doors redeem with the reward from the catalog cache (issue 14): the stock is
    still taken in the database; a stock the merchant removed since the copy was made
    refuses nothing, and an out-of-stock reward is refused whatever the copy says."""
    tenant = shop(db)
    ana = member(db, tenant)
    give(db, tenant, ana, 100)
    prize = reward(db, tenant, points=10, stock=1)
    with db.session(readonly=True) as session:
        copy = session.get_one(Reward, prize)
        session.expunge(copy)
    assert copy.stock == 1

    def redeem_copy() -> None:
        with db.session() as session:
            redeem(
                session,
                session.get_one(Tenant, tenant.id),
                session.get_one(Customer, ana),
                copy,
                origin="pdv",
            )

    redeem_copy()
    assert stock(db, prize) == 0
    with pytest.raises(Conflict) as refused:
        redeem_copy()  # the copy still says 1: the database decides
    assert refused.value.code == "OUT_OF_STOCK" and balances(db, ana) == (90, 0)
    with db.session() as session:
        session.get_one(Reward, prize).stock = None  # the merchant stops counting
    redeem_copy()  # the copy still counts: not refused
    assert stock(db, prize) is None and balances(db, ana) == (80, 0)


def cashback_shop(db, **columns: object) -> Tenant:
    return shop(db, point_value_milli_minor=columns.pop("point_value_milli_minor", 100), **columns)


def test_a_cashback_redemption_spends_the_cashback_then_points_at_the_point_value(db):
    tenant = cashback_shop(db)  # one point is worth 0.1 minor units
    ana = member(db, tenant)
    give(db, tenant, ana, 300, CASHBACK)
    give(db, tenant, ana, 5000, POINTS, "e-2")
    prize = reward(db, tenant, points=0, reward_type="cashback", value=100)
    redemption, entry, left = buy(db, tenant, ana, prize, cash_value=501)
    row = stored(db, redemption)
    assert (row.value, row.points) == (501, 2010)  # 201 minor units, 2010 points
    assert balances(db, ana) == (2990, 0) and left == 2990 and entry is not None
    assert entries(db, ana)[2:] == [
        (CASHBACK, "redeem", -300, "redemption", str(redemption)),
        (POINTS, "redeem", -2010, "redemption", str(redemption)),
    ]
    assert notices(db) == [
        "Cafe: se usaron 2010 puntos + 3,00 US$ de tu saldo en «Café». Te queda: 2990 puntos. "
        "Si no fuiste vos, avisale al comercio."
    ]


def test_a_cashback_redemption_covered_by_the_cashback_takes_no_points(db):
    tenant = cashback_shop(db)
    ana = member(db, tenant)
    give(db, tenant, ana, 800, CASHBACK)
    give(db, tenant, ana, 40, POINTS, "e-2")
    prize = reward(db, tenant, points=50, reward_type="cashback", value=100)  # points unused
    redemption, entry, left = buy(db, tenant, ana, prize, cash_value=800)
    assert (entry, left) == (None, 40)
    assert (stored(db, redemption).value, stored(db, redemption).points) == (800, 0)
    assert balances(db, ana) == (40, 0)
    assert entries(db, ana)[2:] == [(CASHBACK, "redeem", -800, "redemption", str(redemption))]


def test_a_cashback_redemption_without_cashback_pays_in_points(db):
    tenant = cashback_shop(db, point_value_milli_minor=1000)
    ana = member(db, tenant)
    give(db, tenant, ana, 100, POINTS)
    prize = reward(db, tenant, points=0, reward_type="cashback", value=0)
    redemption, _, left = buy(db, tenant, ana, prize, cash_value=1)  # the minimum is 1
    assert (stored(db, redemption).points, left) == (1, 99)
    assert entries(db, ana)[1:] == [(POINTS, "redeem", -1, "redemption", str(redemption))]


@pytest.mark.parametrize(("minimum", "value"), [(100, None), (100, 99), (0, 0)])
def test_a_cashback_redemption_needs_a_value_of_at_least_the_minimum(db, minimum, value):
    tenant = cashback_shop(db)
    ana = member(db, tenant)
    give(db, tenant, ana, 800, CASHBACK)
    prize = reward(db, tenant, points=0, reward_type="cashback", value=minimum)
    with pytest.raises(InvalidInput) as refused:
        buy(db, tenant, ana, prize, cash_value=value)
    assert (
        str(refused.value) == "A cashback redemption needs a Value at least the reward's minimum."
    )
    assert balances(db, ana) == (0, 800)


def test_a_cashback_redemption_without_a_point_value_cannot_use_points(db):
    tenant = cashback_shop(db, point_value_milli_minor=0)
    ana = member(db, tenant)
    give(db, tenant, ana, 100, CASHBACK)
    give(db, tenant, ana, 10**6, POINTS, "e-2")
    prize = reward(db, tenant, points=0, reward_type="cashback", value=1)
    with pytest.raises(InsufficientPoints) as refused:
        buy(db, tenant, ana, prize, cash_value=101)
    assert (refused.value.code, str(refused.value)) == (
        "INSUFFICIENT_CASHBACK",
        "Not enough cashback.",
    )


def test_a_redemption_is_found_by_id_code_or_key_at_its_merchant_only(db):
    tenant = shop(db)
    other = shop(db, "bar")
    ana = member(db, tenant)
    give(db, tenant, ana, 100)
    prize = reward(db, tenant, points=10)
    first, _, _ = buy(db, tenant, ana, prize, original_key="K-1")
    second, _, _ = buy(db, tenant, ana, prize, original_key="K-2")
    code = stored(db, second).external_code
    with db.session() as session:
        here = session.get_one(Tenant, tenant.id)
        assert find_redemption(session, here, id=first).id == first
        assert find_redemption(session, here, id=first, external_code=code).id == first
        assert find_redemption(session, here, external_code=code, key="K-1").id == second
        assert find_redemption(session, here, key="K-1").id == first
        assert find_redemption(session, here, key="K-2").id == second
        there = session.get_one(Tenant, other.id)
        for where in ({"id": first}, {"external_code": code}, {"key": "K-1"}):
            with pytest.raises(NotFound) as missing:
                find_redemption(session, there, **where)  # type: ignore[arg-type]
            assert missing.value.code == "REDEMPTION_NOT_FOUND"
            assert str(missing.value) == "No such redemption at this merchant."


def cancel_it(db, tenant, redemption_id, **options) -> None:
    with db.session() as session:
        found = find_redemption(session, session.get_one(Tenant, tenant.id), id=redemption_id)
        assert cancel(session, found, **options) is found


def test_a_cancel_gives_back_what_the_redemption_took_once(db):
    tenant = cashback_shop(db)
    ana = member(db, tenant)
    give(db, tenant, ana, 300, CASHBACK)
    give(db, tenant, ana, 5000, POINTS, "e-2")
    prize = reward(db, tenant, points=0, reward_type="cashback", value=100)
    kept, _, _ = buy(db, tenant, ana, reward(db, tenant, points=7))
    redemption, _, _ = buy(db, tenant, ana, prize, cash_value=501)
    with db.session() as session:  # a payment whose id is the redemption's: not reversed
        who = session.get_one(Customer, ana)
        payment = Source(tenant.id, "payment", str(redemption))
        debit(session, Account(who.program_id, ana, POINTS), 5, payment)
    assert balances(db, ana) == (2978, 0)
    clock.freeze(T0 + timedelta(minutes=5))
    cancel_it(db, tenant, redemption)
    assert balances(db, ana) == (4988, 300)
    assert entries(db, ana)[-2:] == [
        (CASHBACK, "reverse", 300, "redemption", str(redemption)),
        (POINTS, "reverse", 2010, "redemption", str(redemption)),
    ]
    row = stored(db, redemption)
    assert (row.status, row.cancelled_at) == ("cancelled", T0 + timedelta(minutes=5))
    clock.freeze(T0 + timedelta(minutes=9))
    cancel_it(db, tenant, redemption)  # again: nothing more
    assert balances(db, ana) == (4988, 300) and len(entries(db, ana)) == 8
    assert stored(db, redemption).cancelled_at == T0 + timedelta(minutes=5)
    assert stored(db, kept).status == "done"


def order(db, tenant, customer, state) -> int:
    with db.session() as session:
        row = Order(
            tenant_id=tenant.id,
            program_id=session.get_one(Customer, customer).program_id,
            customer_id=customer,
            original_id=f"O-{state}",
            state=state,
            total=1000,
        )
        session.add(row)
        session.flush()
        return row.id


def test_a_reward_used_by_a_complete_order_is_cancelled_only_with_the_order(db):
    tenant = shop(db)
    ana = member(db, tenant)
    give(db, tenant, ana, 100)
    prize = reward(db, tenant, points=10)
    used, _, _ = buy(db, tenant, ana, prize)
    open_one, _, _ = buy(db, tenant, ana, prize)
    complete, pending = order(db, tenant, ana, COMPLETE), order(db, tenant, ana, PENDING)
    with db.session() as session:
        session.get_one(Redemption, used).order_id = complete
        session.get_one(Redemption, open_one).order_id = pending
    with pytest.raises(Conflict) as refused:
        cancel_it(db, tenant, used)
    assert (refused.value.code, str(refused.value)) == (
        "ORDER_COMPLETE",
        "The order that used this reward is complete.",
    )
    assert balances(db, ana) == (80, 0) and stored(db, used).status == "done"
    cancel_it(db, tenant, open_one)
    cancel_it(db, tenant, used, even_if_complete=True)
    assert balances(db, ana) == (100, 0)
    assert [stored(db, r).status for r in (used, open_one)] == ["cancelled"] * 2
