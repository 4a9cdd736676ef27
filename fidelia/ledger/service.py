"""The ledger: the single source of truth for points and cashback.

Every change is an append-only entry plus a conditional update of the balance row in the
same transaction. Debits use ``UPDATE ... SET amount = amount - x WHERE amount >= x``: the
row lock makes concurrent debits queue, and the condition makes the loser fail instead of
overspending. Earn entries are lots, spent soonest-to-expire first.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, func, insert, select, update
from sqlalchemy.orm import Session

from fidelia.kit.clock import now
from fidelia.kit.db import insert_for
from fidelia.kit.errors import BalanceLimit, InsufficientPoints, InvalidInput
from fidelia.kit.money import MAX_MINOR
from fidelia.models import Balance, LedgerEntry, Tenant

POINTS = "points"
CASHBACK = "cashback"
# No balance goes past this (points, or minor units of cashback): the same cap as every
# amount a door accepts, so a balance can always take the next credit and fit a BIGINT.
MAX_BALANCE = MAX_MINOR


@dataclass(frozen=True)
class Source:
    """Where the points came from or went: the merchant and a unique reference."""

    tenant_id: int
    type: str
    id: str


@dataclass(frozen=True)
class Account:
    program_id: int
    customer_id: int
    account: str = POINTS


def balance(session: Session, acct: Account) -> int:
    amount = session.scalar(
        select(Balance.amount).where(
            Balance.program_id == acct.program_id,
            Balance.customer_id == acct.customer_id,
            Balance.account == acct.account,
        )
    )
    return int(amount or 0)


def credit(
    session: Session,
    acct: Account,
    amount: int,
    source: Source,
    *,
    kind: str = "earn",
    expires_at: datetime | None = None,
) -> LedgerEntry:
    """Add ``amount`` (> 0) as a new lot (a reversed debit comes back as a fresh lot).
    Refused (BalanceLimit) when it would take the balance past ``MAX_BALANCE``: the upsert
    only updates under that condition, so concurrent credits cannot pass it either.
    An earning (``kind`` earn) expires after the merchant's ``points_validity_days``."""
    if kind == "earn" and expires_at is None:
        expires_at = validity_end(session.get(Tenant, source.tenant_id))
    if amount <= 0:
        raise InvalidInput("A credit must be positive.")
    if amount > MAX_BALANCE:
        raise BalanceLimit(f"A credit is at most {MAX_BALANCE}.")
    insert = insert_for(session)
    stmt = insert(Balance).values(
        program_id=acct.program_id,
        customer_id=acct.customer_id,
        account=acct.account,
        amount=amount,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["program_id", "customer_id", "account"],
        set_={"amount": Balance.amount + amount},
        where=Balance.amount <= MAX_BALANCE - amount,
    ).returning(Balance.amount)
    found = session.execute(stmt).scalar_one_or_none()
    if found is None:
        raise BalanceLimit(f"This would take the balance past {MAX_BALANCE}.")
    after = int(found)
    # A credit first pays off a negative balance (a reversal of points already spent): only
    # what it leaves above zero is a lot that can be spent, so the lots add up to the balance.
    lot = min(amount, max(after, 0))
    entry = LedgerEntry(
        program_id=acct.program_id,
        tenant_id=source.tenant_id,
        customer_id=acct.customer_id,
        account=acct.account,
        kind=kind,
        amount=amount,
        balance_after=after,
        source_type=source.type,
        source_id=source.id,
        remaining=lot,
        expires_at=expires_at,
        created_at=now(),
    )
    session.add(entry)
    session.flush()
    return entry


def validity_end(tenant: Tenant | None) -> datetime | None:
    """When a lot earned now at ``tenant`` expires (None: it never does)."""
    return expiry_after(tenant.points_validity_days if tenant is not None else 0)


def expiry_after(days: int) -> datetime | None:
    """When a lot earned now expires with a validity of ``days`` (0: never)."""
    return now() + timedelta(days=days) if days > 0 else None


@dataclass(frozen=True)
class Credit:
    """One earning of ``credit_many``: what ``credit`` takes, its expiry worked out."""

    acct: Account
    amount: int
    source: Source
    expires_at: datetime | None


_entries = cast(Table, LedgerEntry.__table__)
_balances = cast(Table, Balance.__table__)
_ADD_ENTRIES = insert(_entries)
_ADD_TO_BALANCES: dict[str, Any] = {}  # per dialect, built once


def _add_to_balances(session: Session) -> Any:
    """The balance upsert of ``credit`` for many accounts (executemany), by dialect."""
    dialect = session.get_bind().dialect.name
    stmt = _ADD_TO_BALANCES.get(dialect)
    if stmt is None:
        upsert = insert_for(session)(_balances)
        stmt = _ADD_TO_BALANCES[dialect] = upsert.on_conflict_do_update(
            index_elements=["program_id", "customer_id", "account"],
            set_={"amount": _balances.c.amount + upsert.excluded.amount},
            where=_balances.c.amount <= MAX_BALANCE - upsert.excluded.amount,
        ).returning(
            _balances.c.program_id, _balances.c.customer_id, _balances.c.account, _balances.c.amount
        )
    return stmt


def credit_many(session: Session, credits: Sequence[Credit], *, kind: str = "earn") -> list[int]:
    """``credit`` for a batch, set-based: each balance updated once with the batch's sum
    for it (one upsert for all), the entries inserted in one executemany, each with the
    balance it leaves, as if credited one by one in this order. Returns those balances.
    All or nothing: BalanceLimit when any balance would pass ``MAX_BALANCE``."""
    if not credits:
        return []
    sums: dict[tuple[int, int, str], int] = {}
    for c in credits:
        if c.amount <= 0:
            raise InvalidInput("A credit must be positive.")
        key = (c.acct.program_id, c.acct.customer_id, c.acct.account)
        sums[key] = sums.get(key, 0) + c.amount
    if any(total > MAX_BALANCE for total in sums.values()):
        raise BalanceLimit(f"A credit is at most {MAX_BALANCE}.")
    ordered = sorted(sums)  # one lock order for every worker
    rows = session.execute(
        _add_to_balances(session),
        [
            {"program_id": p, "customer_id": c, "account": a, "amount": sums[(p, c, a)]}
            for p, c, a in ordered
        ],
    ).all()
    after = {(r.program_id, r.customer_id, r.account): int(r.amount) for r in rows}
    if len(after) != len(sums):
        raise BalanceLimit(f"This would take a balance past {MAX_BALANCE}.")
    # Each entry leaves the final balance less the credits after it (in this order).
    balances: list[int] = [0] * len(credits)
    for k in range(len(credits) - 1, -1, -1):
        c = credits[k]
        key = (c.acct.program_id, c.acct.customer_id, c.acct.account)
        balances[k] = after[key]
        after[key] -= c.amount
    at = now()
    session.execute(
        _ADD_ENTRIES,
        [
            {
                "program_id": c.acct.program_id,
                "tenant_id": c.source.tenant_id,
                "customer_id": c.acct.customer_id,
                "account": c.acct.account,
                "kind": kind,
                "amount": c.amount,
                "balance_after": left,
                "source_type": c.source.type,
                "source_id": c.source.id,
                # As in ``credit``: only what is left above zero is a lot that can be spent.
                "remaining": min(c.amount, max(left, 0)),
                "expires_at": c.expires_at,
                "created_at": at,
            }
            for c, left in zip(credits, balances, strict=True)
        ],
    )
    return balances


def debit(
    session: Session,
    acct: Account,
    amount: int,
    source: Source,
    *,
    kind: str = "redeem",
    allow_negative: bool = False,
) -> LedgerEntry:
    """Take ``amount`` (> 0). Raises InsufficientPoints unless the balance covers it;
    ``allow_negative`` is for reversals of earnings that were already spent."""
    if amount <= 0:
        raise InvalidInput("A debit must be positive.")
    where = and_(
        Balance.program_id == acct.program_id,
        Balance.customer_id == acct.customer_id,
        Balance.account == acct.account,
    )
    if not allow_negative:
        where = and_(where, Balance.amount >= amount)
    after = session.execute(
        update(Balance)
        .where(where)
        .values(amount=Balance.amount - amount)
        .returning(Balance.amount)
    ).scalar_one_or_none()
    if after is None:
        if not allow_negative:
            raise InsufficientPoints("Not enough points.")
        credit_row = insert_for(session)(Balance).values(
            program_id=acct.program_id,
            customer_id=acct.customer_id,
            account=acct.account,
            amount=-amount,
        )
        after = session.execute(credit_row.returning(Balance.amount)).scalar_one()
    _consume_lots(session, acct, amount)
    entry = LedgerEntry(
        program_id=acct.program_id,
        tenant_id=source.tenant_id,
        customer_id=acct.customer_id,
        account=acct.account,
        kind=kind,
        amount=-amount,
        balance_after=int(after),
        source_type=source.type,
        source_id=source.id,
        created_at=now(),
    )
    session.add(entry)
    session.flush()
    return entry


def _consume_lots(session: Session, acct: Account, amount: int) -> None:
    """Spend lots soonest-to-expire first (no expiry last). Runs under the balance row
    lock taken by the debit's UPDATE, so two debits never consume the same lot."""
    lots = session.scalars(
        select(LedgerEntry)
        .where(
            LedgerEntry.program_id == acct.program_id,
            LedgerEntry.customer_id == acct.customer_id,
            LedgerEntry.account == acct.account,
            LedgerEntry.remaining > 0,
        )
        .order_by(LedgerEntry.expires_at.is_(None), LedgerEntry.expires_at, LedgerEntry.id)
    )
    left = amount
    for lot in lots:
        take = min(left, lot.remaining or 0)
        lot.remaining = (lot.remaining or 0) - take
        left -= take
        if left == 0:
            break


def last_earning_at(session: Session, tenant_id: int, customer_id: int) -> datetime | None:
    """When this customer last earned at this merchant (the 'recent visit' check)."""
    return session.scalar(
        select(func.max(LedgerEntry.created_at)).where(
            LedgerEntry.tenant_id == tenant_id,
            LedgerEntry.customer_id == customer_id,
            LedgerEntry.kind == "earn",
        )
    )
