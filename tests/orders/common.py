"""Plain helpers of the orders tests: a merchant that earns, its members, and what the
database holds afterwards (balances, ledger rows, order rows)."""

from datetime import UTC, datetime

from sqlalchemy import select

from fidelia.customers.service import identify
from fidelia.kit.db import Database
from fidelia.ledger.service import CASHBACK, POINTS, Account, Source, credit
from fidelia.models import (
    Balance,
    Customer,
    LedgerEntry,
    MessageLog,
    Order,
    OutboxMessage,
    Tenant,
)
from fidelia.orders import service as orders
from tests.support.helpers import make_shop

T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
ANA = "+50688887777"
BIA = "+50688886666"


def shop(db: Database, slug: str = "cafe", **columns: object) -> Tenant:
    """A merchant earning 1 point per dollar and 5 % cashback (USD) and telling its members
    so, unless told otherwise."""
    columns = {
        "earn_milli_points_per_unit": 1000,
        "cashback_basis_points": 500,
        "message_benefit_earned": True,
        **columns,
    }
    return make_shop(db, slug, **columns)


def member(db: Database, tenant: Tenant, number: str = ANA, email: str | None = None) -> int:
    ids = {"whatsapp": number} | ({"email": email} if email else {})
    with db.session() as session:
        return identify(session, session.get_one(Tenant, tenant.id), ids).id


def give(db: Database, tenant: Tenant, customer: int, amount: int, account: str = POINTS) -> None:
    with db.session() as session:
        who = session.get_one(Customer, customer)
        credit(
            session,
            Account(who.program_id, who.id, account),
            amount,
            Source(tenant.id, "test", f"give-{customer}-{account}-{amount}"),
        )


def report(db: Database, tenant: Tenant, original_id: str, total: int, customer=None, **kw):
    """``orders.upsert`` in its own transaction; returns the order's id."""
    with db.session() as session:
        who = session.get_one(Customer, customer) if customer else None
        data = orders.OrderData(original_id=original_id, total=total, customer=who, **kw)
        return orders.upsert(session, session.get_one(Tenant, tenant.id), data).id


def order(db: Database, order_id: int) -> Order:
    with db.session(readonly=True) as session:
        row = session.get_one(Order, order_id)
        session.expunge(row)
        return row


def balances(db: Database, customer: int) -> tuple[int, int]:
    with db.session(readonly=True) as session:
        rows = dict(
            session.execute(
                select(Balance.account, Balance.amount).where(Balance.customer_id == customer)
            ).all()
        )
    return rows.get(POINTS, 0), rows.get(CASHBACK, 0)


def entries(db: Database, customer: int | None = None) -> list[tuple[str, str, int, str, str]]:
    with db.session(readonly=True) as session:
        query = select(LedgerEntry).order_by(LedgerEntry.id)
        if customer is not None:
            query = query.where(LedgerEntry.customer_id == customer)
        return [
            (e.account, e.kind, e.amount, e.source_type, e.source_id)
            for e in session.scalars(query)
            if e.source_type != "test"
        ]


def outbox_texts(db: Database) -> list[str]:
    with db.session(readonly=True) as session:
        rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        return [str(row.payload) for row in rows]


def messages(db: Database) -> list[tuple[str, str]]:
    with db.session(readonly=True) as session:
        rows = session.scalars(select(MessageLog).order_by(MessageLog.id))
        return [(row.event, row.key) for row in rows]


# What each refusal says (the doors show it): checked by ``said``.
MESSAGES = {
    "INVALID_AMOUNT": "A sale's total cannot be negative.",
    "TRANSACTION_EXISTS": "This transactionId is already recorded at this merchant.",
    "MEMBER_REQUIRED": "Paying with points or credit needs the member.",
    "PAYMENT_EXCEEDS_TOTAL": "Loyalty payments exceed what is left to pay.",
    "PAYMENT_NOT_FOUND": "No payment with this confirmation code.",
    "PAYMENT_CANCELLED": "This payment was cancelled.",
    "TRANSACTION_NOT_FOUND": "No transaction with this confirmation code.",
    "CANCEL_KEY_REUSED": "This CancelKey was already used with another refund.",
    "INVALID_REFUND": "ValueToRefund must be positive.",
    "REFUND_MISMATCH": "The products' ValueToRefund must add up to ValueToRefund.",
    "ORDER_CANCELLED": "The order is cancelled.",
    "ORDER_NOT_COMPLETE": (
        "Only a complete order is refunded in part; update a pending order's OrderTotal."
    ),
    "REFUND_EXCEEDS_TOTAL": "The refund exceeds what is left of the order.",
}


def said(error: Exception, code: str) -> None:
    """The refusal has this code and, when it is one of ours, its exact message."""
    assert getattr(error, "code", None) == code
    if code in MESSAGES:
        assert str(error) == MESSAGES[code]
