"""A customer's history at a merchant, for the panel's customer page: ledger entries
(newest first, keyset pages by id), redemptions, orders and vouchers, each bounded.

Each statement is built once, at import, with bound parameters: building a ``select()``
and computing its cache key on every call cost SQLAlchemy about as much CPU as running it
(the customer page runs these on every view)."""

from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from fidelia.models import Customer, LedgerEntry, Order, Redemption, Reward, Tenant, Voucher

ENTRIES_PER_PAGE = 25
RECENT = 20


@dataclass(frozen=True)
class EntryPage:
    entries: list[LedgerEntry]
    next_before: int | None  # the ``before`` of the next (older) page, None at the end


_ENTRIES = select(LedgerEntry).where(
    LedgerEntry.program_id == bindparam("program_id"),
    LedgerEntry.customer_id == bindparam("customer_id"),
    LedgerEntry.account.in_(("points", "cashback")),
)
_NEWEST_ENTRIES = _ENTRIES.order_by(LedgerEntry.id.desc()).limit(bindparam("limit"))
_OLDER_ENTRIES = (
    _ENTRIES.where(LedgerEntry.id < bindparam("before"))
    .order_by(LedgerEntry.id.desc())
    .limit(bindparam("limit"))
)
_REDEMPTIONS = (
    select(Redemption, Reward.title)
    .join(Reward, Reward.id == Redemption.reward_id)
    .where(
        Redemption.tenant_id == bindparam("tenant_id"),
        Redemption.customer_id == bindparam("customer_id"),
    )
    .order_by(Redemption.id.desc())
    .limit(bindparam("limit"))
)
_ORDERS = (
    select(Order)
    .where(Order.customer_id == bindparam("customer_id"), Order.tenant_id == bindparam("tenant_id"))
    .order_by(Order.id.desc())
    .limit(bindparam("limit"))
)
_VOUCHERS = (
    select(Voucher)
    .where(
        Voucher.tenant_id == bindparam("tenant_id"), Voucher.customer_id == bindparam("customer_id")
    )
    .order_by(Voucher.id)
    .limit(bindparam("limit"))
)


def ledger_page(
    session: Session,
    customer: Customer,
    before: int | None = None,
    per_page: int = ENTRIES_PER_PAGE,
) -> EntryPage:
    """Entries of both accounts of the customer in their program, newest first; ``before``
    an entry id gives the page of older ones (ix_ledger_entries_customer, then by id)."""
    params = {
        "program_id": customer.program_id,
        "customer_id": customer.id,
        "limit": per_page + 1,
    }
    if before is None:
        rows = list(session.scalars(_NEWEST_ENTRIES, params))
    else:
        rows = list(session.scalars(_OLDER_ENTRIES, {**params, "before": before}))
    more = len(rows) > per_page
    rows = rows[:per_page]
    return EntryPage(rows, rows[-1].id if more and rows else None)


def redemptions_of(
    session: Session, tenant: Tenant, customer: Customer, limit: int = RECENT
) -> list[tuple[Redemption, str]]:
    """The customer's latest redemptions at this merchant with their reward's title."""
    rows = session.execute(
        _REDEMPTIONS, {"tenant_id": tenant.id, "customer_id": customer.id, "limit": limit}
    )
    return [(r, title) for r, title in rows]


def orders_of(
    session: Session, tenant: Tenant, customer: Customer, limit: int = RECENT
) -> list[Order]:
    return list(
        session.scalars(
            _ORDERS, {"tenant_id": tenant.id, "customer_id": customer.id, "limit": limit}
        )
    )


def vouchers_of(
    session: Session, tenant: Tenant, customer: Customer, limit: int = 50
) -> list[Voucher]:
    """The customer's vouchers at this merchant, oldest first (no count: the page shows
    the list only)."""
    return list(
        session.scalars(
            _VOUCHERS, {"tenant_id": tenant.id, "customer_id": customer.id, "limit": limit}
        )
    )
