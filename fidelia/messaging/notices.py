"""Messages that tell customers what happened to their balance.

A spend notice goes out whenever points or cashback leave a customer's balance by a spend
(a redemption at any door, a loyalty payment), written to the outbox in the same
transaction as the debit: the customer learns what was redeemed, where, and what is left,
and it is the alarm that tells them when someone else spent their points. It is
transactional (an account alert), not marketing, so it needs no marketing consent; it goes
only to customers with a known WhatsApp contact (they wrote to the bot)."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from fidelia.kit.money import format_money
from fidelia.ledger.service import CASHBACK, POINTS, Account, balance
from fidelia.messaging import outbox
from fidelia.messaging.texts import say, unit
from fidelia.models import Customer, CustomerIdentifier, Tenant


def _contact(session: Session, customer: Customer) -> tuple[str | None, str | None] | None:
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
) -> None:
    """Queue the spend notice for ``points`` and/or ``cashback`` (minor units) just debited
    from ``customer`` at ``tenant`` for ``what`` (a reward's title, "pago con puntos" ...).
    ``left``: the points and cashback balances after the debit, when the caller knows them
    (the debit returned them), so they are not read again."""
    if points <= 0 and cashback <= 0:
        return
    contact = _contact(session, customer)
    if contact is None:
        return
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
    outbox.whatsapp_text(
        session, text=text, wa_number=number, wa_user_id=user_id, tenant_id=tenant.id
    )
