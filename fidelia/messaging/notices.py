"""Messages that tell customers what happened to their balance.

A spend notice goes out whenever points or cashback leave a customer's balance by a spend
(a redemption at any door, a loyalty payment), written to the outbox in the same
transaction as the debit: the customer learns what was redeemed, where, and what is left,
and it is the alarm that tells them when someone else spent their points. It is
transactional (an account alert), not marketing, so it needs no marketing consent; it goes
only to customers with a known WhatsApp contact (they wrote to the bot)."""

from typing import Any, cast

from sqlalchemy import ColumnElement, ScalarSelect, Table, select
from sqlalchemy.orm import Session

from fidelia.kit.money import format_money
from fidelia.ledger.service import CASHBACK, POINTS, Account, balance
from fidelia.messaging import outbox
from fidelia.messaging.texts import say, unit
from fidelia.models import Customer, CustomerIdentifier, Tenant

Contact = tuple[str | None, str | None]  # (number, user id) the bot knows a customer by


class _NotRead:
    """``spent``'s ``contact`` when the caller did not read it."""


NOT_READ = _NotRead()
_identifiers = cast(Table, CustomerIdentifier.__table__)


def contact_columns(customer_id: ColumnElement[Any]) -> tuple[ScalarSelect[Any], ScalarSelect[Any]]:
    """The customer's WhatsApp number and user id as two columns a caller's read of the
    customer can carry (correlated to ``customer_id``), so the notice does not read them
    again; ``contact_of`` turns them into ``spent``'s ``contact``. The newest of a kind wins."""

    def newest(kind: str) -> ScalarSelect[Any]:
        return (
            select(_identifiers.c.value)
            .where(_identifiers.c.customer_id == customer_id, _identifiers.c.kind == kind)
            .order_by(_identifiers.c.id.desc())
            .limit(1)
            .correlate_except(_identifiers)  # the caller's read may join identifiers too
            .scalar_subquery()
        )

    return newest("whatsapp"), newest("wa_user")


def contact_of(number: str | None, user_id: str | None) -> Contact | None:
    return None if number is None and user_id is None else (number, user_id)


def _contact(session: Session, customer: Customer) -> Contact | None:
    """(number, user id) the bot knows this customer by, or None."""
    rows = dict(
        session.execute(
            select(CustomerIdentifier.kind, CustomerIdentifier.value).where(
                CustomerIdentifier.customer_id == customer.id,
                CustomerIdentifier.kind.in_(("whatsapp", "wa_user")),
            )
        ).all()
    )
    if not rows:
        return None
    return rows.get("whatsapp"), rows.get("wa_user")


def _amounts(tenant: Tenant, points: int, cashback: int) -> str:
    parts = []
    if points:
        parts.append(f"{points} {unit(tenant.locale, points)}")
    if cashback:
        parts.append(format_money(cashback, tenant.currency, tenant.locale))
    return " + ".join(parts)


def spent(
    session: Session,
    tenant: Tenant,
    customer: Customer,
    what: str,
    *,
    points: int = 0,
    cashback: int = 0,
    left: tuple[int, int] | None = None,
    contact: Contact | None | _NotRead = NOT_READ,
) -> None:
    """Queue the spend notice for ``points`` and/or ``cashback`` (minor units) just debited
    from ``customer`` at ``tenant`` for ``what`` (a reward's title, "pago con puntos" ...).
    ``left``: the points and cashback balances after the debit, when the caller knows them
    (the debit returned them), so they are not read again; ``contact`` likewise, when the
    caller read it with the customer (``contact_columns``)."""
    text = spent_text(
        session,
        tenant,
        customer,
        what,
        points=points,
        cashback=cashback,
        left=left,
        contact=contact,
    )
    if text is not None:
        # One Core INSERT now (not an ORM object flushed at the commit).
        outbox.whatsapp_texts(session, [text])


def spent_text(
    session: Session,
    tenant: Tenant,
    customer: Customer,
    what: str,
    *,
    points: int = 0,
    cashback: int = 0,
    left: tuple[int, int] | None = None,
    contact: Contact | None | _NotRead = NOT_READ,
) -> outbox.Text | None:
    """``spent``'s notice, not queued (None: there is none to send), for a caller that
    sends it in a statement of its own (``outbox.along``)."""
    if points <= 0 and cashback <= 0:
        return None
    if isinstance(contact, _NotRead):
        contact = _contact(session, customer)
    if contact is None:
        return None
    number, user_id = contact
    if left is None:
        left = (
            balance(session, Account(customer.program_id, customer.id, POINTS)),
            balance(session, Account(customer.program_id, customer.id, CASHBACK)),
        )
    left_points, left_cashback = left
    text = say(
        tenant.locale,
        "spent",
        merchant=tenant.name,
        spent=_amounts(tenant, points, cashback),
        what=what,
        balance=_amounts(tenant, left_points, left_cashback) or f"0 {unit(tenant.locale, 0)}",
    )
    return outbox.Text(text, number, user_id, tenant.id)
