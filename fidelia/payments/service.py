"""Loyalty payments: part of a bill paid with points (at the merchant's point value) or
stored credit (the cashback account), and their cancellation, which gives it back once."""

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from fidelia.challenges.presence import require_presence
from fidelia.kit.clock import now
from fidelia.kit.errors import InsufficientPoints, InvalidInput, NotFound
from fidelia.ledger.service import CASHBACK, POINTS, Account, Source, credit, debit
from fidelia.messaging import notices
from fidelia.messaging.texts import say
from fidelia.models import Customer, LoyaltyPayment, Tenant
from fidelia.tenants.point_value import points_for_value

KINDS = {"points": POINTS, "credit": CASHBACK}


def pay(
    session: Session,
    tenant: Tenant,
    customer: Customer,
    kind: str,
    amount: int,
    reference: str | None = None,
) -> LoyaltyPayment:
    if kind not in KINDS:
        raise InvalidInput(
            "A loyalty payment is made with POINTS or CREDIT.", code="INVALID_PAYMENT"
        )
    if amount <= 0:
        raise InvalidInput("A payment amount is positive.", code="INVALID_AMOUNT")
    if kind == "points":
        if tenant.point_value_milli_minor <= 0:
            raise InvalidInput(
                "This merchant does not take points as payment (no point value).",
                code="INVALID_PAYMENT",
            )
        units = points_for_value(tenant, amount)
    else:
        units = amount
    require_presence(session, tenant, customer)
    payment = LoyaltyPayment(
        tenant_id=tenant.id,
        program_id=customer.program_id,
        customer_id=customer.id,
        kind=kind,
        amount=amount,
        units=units,
        confirmation_code="LP-" + secrets.token_hex(6).upper(),
        reference=reference,
        created_at=now(),
    )
    session.add(payment)
    session.flush()
    try:
        debit(
            session,
            Account(customer.program_id, customer.id, KINDS[kind]),
            units,
            Source(tenant.id, "payment", str(payment.id)),
        )
    except InsufficientPoints as exc:
        raise InsufficientPoints(
            "Insufficient credit balance." if kind == "credit" else "Insufficient points balance.",
            code="INSUFFICIENT_BALANCE",
        ) from exc
    notices.spent(
        session,
        tenant,
        customer,
        say(tenant.locale, "spent_payment"),
        points=units if kind == "points" else 0,
        cashback=units if kind != "points" else 0,
    )
    return payment


def cancel(session: Session, tenant: Tenant, confirmation_code: str) -> LoyaltyPayment:
    payment = session.scalar(
        select(LoyaltyPayment)
        .where(
            LoyaltyPayment.tenant_id == tenant.id,
            LoyaltyPayment.confirmation_code == confirmation_code.strip().upper(),
        )
        .with_for_update()
    )
    if payment is None:
        raise NotFound("No payment with this confirmation code.", code="PAYMENT_NOT_FOUND")
    if payment.status == "cancelled":
        return payment
    credit(
        session,
        Account(payment.program_id, payment.customer_id, KINDS[payment.kind]),
        payment.units,
        Source(tenant.id, "payment", str(payment.id)),
        kind="reverse",
    )
    payment.status = "cancelled"
    payment.cancelled_at = now()
    return payment
