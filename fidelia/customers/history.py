"""A customer's history at a merchant, for the panel's customer page: ledger entries
(newest first, keyset pages by id), redemptions, orders and vouchers, each bounded."""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from fidelia.models import Customer, LedgerEntry, Order, Redemption, Reward, Tenant, Voucher

ENTRIES_PER_PAGE = 25
RECENT = 20


@dataclass(frozen=True)
class EntryPage:
    entries: list[LedgerEntry]
    next_before: int | None  # the ``before`` of the next (older) page, None at the end


def ledger_page(
    session: Session,
    customer: Customer,
    before: int | None = None,
    per_page: int = ENTRIES_PER_PAGE,
) -> EntryPage:
    """Entries of both accounts of the customer in their program, newest first; ``before``
    an entry id gives the page of older ones (ix_ledger_entries_customer, then by id)."""
    query = select(LedgerEntry).where(
        LedgerEntry.program_id == customer.program_id,
        LedgerEntry.customer_id == customer.id,
        LedgerEntry.account.in_(("points", "cashback")),
    )
    if before is not None:
        query = query.where(LedgerEntry.id < before)
    rows = list(session.scalars(query.order_by(LedgerEntry.id.desc()).limit(per_page + 1)))
    more = len(rows) > per_page
    rows = rows[:per_page]
    return EntryPage(rows, rows[-1].id if more and rows else None)


def redemptions_of(
    session: Session, tenant: Tenant, customer: Customer, limit: int = RECENT
) -> list[tuple[Redemption, str]]:
    """The customer's latest redemptions at this merchant with their reward's title."""
    rows = session.execute(
        select(Redemption, Reward.title)
        .join(Reward, Reward.id == Redemption.reward_id)
        .where(Redemption.tenant_id == tenant.id, Redemption.customer_id == customer.id)
        .order_by(Redemption.id.desc())
        .limit(limit)
    )
    return [(r, title) for r, title in rows]


def orders_of(
    session: Session, tenant: Tenant, customer: Customer, limit: int = RECENT
) -> list[Order]:
    return list(
        session.scalars(
            select(Order)
            .where(Order.customer_id == customer.id, Order.tenant_id == tenant.id)
            .order_by(Order.id.desc())
            .limit(limit)
        )
    )


def vouchers_of(
    session: Session, tenant: Tenant, customer: Customer, limit: int = 50
) -> list[Voucher]:
    """The customer's vouchers at this merchant, oldest first (no count: the page shows
    the list only)."""
    return list(
        session.scalars(
            select(Voucher)
            .where(Voucher.tenant_id == tenant.id, Voucher.customer_id == customer.id)
            .order_by(Voucher.id)
            .limit(limit)
        )
    )
