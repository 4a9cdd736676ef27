"""Redeeming rewards: the debit, the redemption record and its ledger entries, in one
transaction. The ledger's conditional update is what stops a double spend."""

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from fidelia.challenges.presence import require_presence
from fidelia.kit.clock import now
from fidelia.kit.errors import Conflict, Forbidden, InsufficientPoints, InvalidInput, NotFound
from fidelia.ledger.service import (
    CASHBACK,
    POINTS,
    Account,
    Entry,
    Source,
    balance,
    credit,
    debit,
    last_earning_at,
)
from fidelia.messaging import notices
from fidelia.models import Balance, Customer, LedgerEntry, Order, Redemption, Reward, Tenant
from fidelia.models.order import COMPLETE
from fidelia.rewards.eligibility import Wallet
from fidelia.rewards.service import amount_off
from fidelia.tenants.point_value import points_for_value


def new_external_code() -> str:
    return "FD-" + secrets.token_hex(5).upper()


_WALLET = select(Balance.account, Balance.amount).where(
    Balance.program_id == bindparam("p"),
    Balance.customer_id == bindparam("c"),
    Balance.account.in_((POINTS, CASHBACK)),
)


def wallet_of(session: Session, customer: Customer) -> Wallet:
    """Both balances in one query (an account never credited counts as 0)."""
    rows = session.execute(_WALLET, {"p": customer.program_id, "c": customer.id})
    amounts = {account: amount for account, amount in rows}
    return Wallet(points=int(amounts.get(POINTS, 0)), cashback=int(amounts.get(CASHBACK, 0)))


def require_recent_visit(session: Session, tenant: Tenant, customer: Customer) -> None:
    """Seed 000: a redemption needs an accreditation at this merchant within the window,
    so the customer is physically at the counter."""
    last = last_earning_at(session, tenant.id, customer.id)
    window = timedelta(minutes=tenant.verification_window_minutes)
    if last is None or now() - last > window:
        raise Forbidden(
            "No accreditation at this merchant within the verification window.",
            code="VERIFICATION_REQUIRED",
        )


def take_stock(session: Session, reward: Reward, change: int) -> None:
    """Rewards with a stock: a conditional update, so concurrent redemptions never take
    the last unit twice and stock never goes below zero.

    ``reward`` may be a cached copy (the doors' redemptions take it from the catalog cache,
    ``FIDELIA_TENANT_CACHE_SECONDS``): the stock itself is only ever read and changed in
    the database; the copy says only whether the reward keeps one. A stock the merchant
    just removed is read again before refusing; a stock just set on a reward that had none
    counts the redemptions from the cache's time on."""
    if reward.stock is None:
        return
    result = session.execute(
        update(Reward)
        .where(Reward.id == reward.id, Reward.stock.is_not(None), Reward.stock + change >= 0)
        .values(stock=Reward.stock + change)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        if session.scalar(select(Reward.stock).where(Reward.id == reward.id)) is None:
            return  # no stock kept any more
        raise Conflict("This reward is out of stock.", code="OUT_OF_STOCK")


@dataclass(frozen=True)
class Redeemed:
    redemption: Redemption
    points_entry: Entry | None
    points_left: int


def redeem(
    session: Session,
    tenant: Tenant,
    customer: Customer,
    reward: Reward,
    *,
    origin: str,
    cash_value: int | None = None,
    original_key: str | None = None,
) -> Redeemed:
    """Debit what the reward costs. A cashback reward spends ``cash_value`` minor units:
    the cashback account first, the rest in points at the merchant's point value. A debt on
    either account (a refund after the points were spent) blocks every redemption."""
    owed = wallet_of(session, customer)
    if owed.points < 0 or owed.cashback < 0:
        raise InsufficientPoints("The customer owes points from a refund; earn them back first.")
    require_presence(session, tenant, customer)
    redemption = Redemption(
        program_id=customer.program_id,
        tenant_id=tenant.id,
        customer_id=customer.id,
        reward_id=reward.id,
        # Known now except for cashback: written with the row, not by an UPDATE after.
        points=reward.points_required if reward.reward_type != "cashback" else 0,
        value=amount_off(reward),
        origin=origin,
        external_code=new_external_code(),
        original_key=original_key,
        created_at=now(),
    )
    session.add(redemption)
    session.flush()
    take_stock(session, reward, -1)
    source = Source(tenant.id, "redemption", str(redemption.id))
    points_acct = Account(customer.program_id, customer.id, POINTS)
    entry = None
    from_cashback = 0
    cashback_left = owed.cashback
    if reward.reward_type == "cashback":
        if cash_value is None or cash_value < max(reward.value, 1):
            raise InvalidInput("A cashback redemption needs a Value at least the reward's minimum.")
        redemption.value = cash_value
        cashback_acct = Account(customer.program_id, customer.id, CASHBACK)
        from_cashback = min(max(balance(session, cashback_acct), 0), cash_value)
        if from_cashback:
            cashback_left = debit(session, cashback_acct, from_cashback, source).balance_after
        rest = cash_value - from_cashback
        if rest:
            points = points_for_value(tenant, rest)
            if points <= 0:
                raise InsufficientPoints("Not enough cashback.", code="INSUFFICIENT_CASHBACK")
            entry = debit(session, points_acct, points, source)
            redemption.points = points
    elif reward.points_required > 0:
        entry = debit(session, points_acct, reward.points_required, source)
        redemption.points = reward.points_required
    left = entry.balance_after if entry is not None else balance(session, points_acct)
    # What is left is known (the debits returned it, or the wallet read above): the notice
    # does not read both balances again.
    notices.spent(
        session,
        tenant,
        customer,
        reward.title,
        points=redemption.points,
        cashback=from_cashback,
        left=(left, cashback_left),
    )
    return Redeemed(redemption, entry, left)


def find_redemption(
    session: Session,
    tenant: Tenant,
    *,
    id: int | None = None,
    key: str | None = None,
    external_code: str | None = None,
) -> Redemption:
    query = select(Redemption).where(Redemption.tenant_id == tenant.id)
    if id is not None:
        query = query.where(Redemption.id == id)
    elif external_code is not None:
        query = query.where(Redemption.external_code == external_code)
    else:
        query = query.where(Redemption.original_key == key)
    redemption = session.scalar(query.with_for_update())
    if redemption is None:
        raise NotFound("No such redemption at this merchant.", code="REDEMPTION_NOT_FOUND")
    return redemption


def cancel(
    session: Session, redemption: Redemption, *, even_if_complete: bool = False
) -> Redemption:
    """Give back what a redemption took, once. Refused once its order is complete (the
    discount was used), unless the whole order is being cancelled."""
    if redemption.status == "cancelled":
        return redemption
    if redemption.order_id is not None and not even_if_complete:
        order = session.get_one(Order, redemption.order_id)
        if order.state == COMPLETE:
            raise Conflict("The order that used this reward is complete.", code="ORDER_COMPLETE")
    taken = session.scalars(
        select(LedgerEntry).where(
            LedgerEntry.program_id == redemption.program_id,
            LedgerEntry.source_type == "redemption",
            LedgerEntry.source_id == str(redemption.id),
            LedgerEntry.kind == "redeem",
        )
    )
    for entry in list(taken):
        credit(
            session,
            Account(entry.program_id, entry.customer_id, entry.account),
            -entry.amount,
            Source(redemption.tenant_id, "redemption", str(redemption.id)),
            kind="reverse",
        )
    take_stock(session, session.get_one(Reward, redemption.reward_id), +1)
    redemption.status = "cancelled"
    redemption.cancelled_at = now()
    return redemption
