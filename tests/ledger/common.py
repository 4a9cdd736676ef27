"""Plain helpers of the ledger's service-level tests: a merchant, its members, and what
the database holds afterwards (balances, ledger rows with their lots)."""

from datetime import UTC, datetime

from sqlalchemy import select

from fidelia.customers.service import identify
from fidelia.kit.db import Database
from fidelia.ledger.service import POINTS, Account, Source, credit, debit
from fidelia.models import Balance, LedgerEntry, Tenant
from tests.support.helpers import make_shop

T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)


def shop(db: Database, slug: str = "cafe", **columns: object) -> Tenant:
    return make_shop(db, slug, **columns)


def member(db: Database, tenant: Tenant, phone: str = "+50688887777") -> Account:
    with db.session() as session:
        who = identify(session, session.get_one(Tenant, tenant.id), {"phone": phone})
        return Account(who.program_id, who.id, POINTS)


def earn(db, tenant, acct, amount, ref, **kw) -> int:
    with db.session() as session:
        return credit(session, acct, amount, Source(tenant.id, "test", ref), **kw).id


def spend(db, tenant, acct, amount, ref, **kw) -> int:
    with db.session() as session:
        return debit(session, acct, amount, Source(tenant.id, "test", ref), **kw).id


def balances(db: Database) -> dict[tuple[int, str], int]:
    """(customer, account) -> amount, for every balance row."""
    with db.session(readonly=True) as session:
        rows = session.execute(select(Balance.customer_id, Balance.account, Balance.amount))
        return {(c, a): int(n) for c, a, n in rows}


def lots(db: Database) -> dict[str, int | None]:
    """source id -> what the entry still holds (None for debits)."""
    with db.session(readonly=True) as session:
        rows = session.scalars(select(LedgerEntry).order_by(LedgerEntry.id))
        return {row.source_id: row.remaining for row in rows}


def rows(db: Database) -> list[LedgerEntry]:
    with db.session(readonly=True) as session:
        found = list(session.scalars(select(LedgerEntry).order_by(LedgerEntry.id)))
        session.expunge_all()
        return found
