"""Point validity: lots past ``expires_at`` lose what they still hold.

Each expired lot gets one ``expire`` entry (source ``expiry``/<lot id>: the ledger's unique
source key makes it once, even if two workers run the job at the same time) for exactly
what it still holds, and the balance drops by the same amount with the guarded UPDATE
(``amount >= x``), so it never goes below what the other lots hold. The work is done per
account under its balance row lock, re-reading the lot after the lock is taken: a
redemption that spent the lot meanwhile leaves nothing to expire, and a second worker
finds the lot empty. Runs from the worker's sweep or `fidelia jobs expire` (cron).
"""

import logging
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fidelia.kit.clock import now
from fidelia.kit.db import Database
from fidelia.models import Balance, LedgerEntry

log = logging.getLogger("fidelia.expiry")
SOURCE = "expiry"
BATCH = 500

AccountKey = tuple[int, int, str]  # program, customer, account


def due(session: Session, at: datetime, after_id: int = 0, limit: int = BATCH) -> list[Any]:
    """Lots past their expiry that still hold something, in id order from ``after_id``."""
    return list(
        session.execute(
            select(
                LedgerEntry.id,
                LedgerEntry.program_id,
                LedgerEntry.customer_id,
                LedgerEntry.account,
            )
            .where(
                LedgerEntry.expires_at <= at,
                LedgerEntry.remaining > 0,
                LedgerEntry.amount > 0,
                LedgerEntry.id > after_id,
            )
            .order_by(LedgerEntry.id)
            .limit(limit)
        ).all()
    )


def expire_account(session: Session, key: AccountKey, lot_ids: list[int], at: datetime) -> int:
    """Expire these lots of one account; returns how many got their entry."""
    program_id, customer_id, account = key
    where = (
        Balance.program_id == program_id,
        Balance.customer_id == customer_id,
        Balance.account == account,
    )
    # The lock every debit and credit of this account takes: from here on the lots and
    # the balance cannot change under us (a READ COMMITTED re-read sees the latest).
    if session.execute(select(Balance.amount).where(*where).with_for_update()).first() is None:
        return 0
    expired = 0
    for lot_id in sorted(lot_ids):
        lot = session.execute(
            select(LedgerEntry.remaining, LedgerEntry.expires_at, LedgerEntry.tenant_id).where(
                LedgerEntry.id == lot_id
            )
        ).one()
        left, expires_at, tenant_id = int(lot.remaining or 0), lot.expires_at, lot.tenant_id
        if left <= 0 or expires_at is None or expires_at > at:
            continue  # spent (or expired by another worker) meanwhile
        after = session.execute(
            update(Balance)
            .where(*where, Balance.amount >= left)
            .values(amount=Balance.amount - left)
            .returning(Balance.amount)
        ).scalar_one_or_none()
        if after is None:  # the lots hold more than the balance: `fidelia check` reports it
            log.error("lot %s holds %s but its balance is lower; not expired", lot_id, left)
            continue
        session.execute(update(LedgerEntry).where(LedgerEntry.id == lot_id).values(remaining=0))
        session.add(
            LedgerEntry(
                program_id=program_id,
                tenant_id=tenant_id,
                customer_id=customer_id,
                account=account,
                kind="expire",
                amount=-left,
                balance_after=int(after),
                source_type=SOURCE,
                source_id=str(lot_id),
                created_at=now(),
            )
        )
        session.flush()
        expired += 1
    return expired


def run(db: Database, at: datetime | None = None, batch: int = BATCH) -> int:
    """Expire every lot due at ``at`` (default now); one short transaction per account.
    Returns how many lots this run expired."""
    at = at or now()
    expired = 0
    cursor = 0
    while True:
        with db.session(readonly=True) as session:
            rows = due(session, at, cursor, batch)
        if not rows:
            return expired
        cursor = rows[-1].id
        accounts: dict[AccountKey, list[int]] = defaultdict(list)
        for row in rows:
            accounts[(row.program_id, row.customer_id, row.account)].append(row.id)
        for key, lot_ids in accounts.items():
            with db.session() as session:
                expired += expire_account(session, key, lot_ids, at)
        if len(rows) < batch:
            return expired
