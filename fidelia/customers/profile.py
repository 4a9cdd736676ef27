"""Members' profiles, consents and erasure.

Consents are an append-only history (kind, granted, when, where from); the latest row per
kind is the answer. Erasure removes personal data and keeps the ledger consistent and
anonymous: the customer row stays (its balances and entries still add up), without a name,
identifiers, birthday or password, and with every consent withdrawn.
"""

from datetime import date, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from fidelia.kit.clock import now
from fidelia.kit.errors import InvalidInput
from fidelia.models import (
    Adjustment,
    Consent,
    Customer,
    CustomerIdentifier,
    Event,
    OutboxMessage,
    Tenant,
)

CONSENTS = ("sms", "email", "whatsapp", "terms", "gdpr")


def set_names(customer: Customer, first: str | None, last: str | None) -> None:
    if first is not None:
        customer.first_name = first.strip()[:100] or None
    if last is not None:
        customer.last_name = last.strip()[:100] or None
    full = " ".join(p for p in (customer.first_name, customer.last_name) if p)
    if full:
        customer.name = full


def parse_birthday(raw: str | None) -> date | None:
    if raw is None or raw == "":
        return None
    try:
        birthday = date.fromisoformat(raw[:10])
    except ValueError as exc:
        raise InvalidInput(
            f"birthday: not a date (YYYY-MM-DD): {raw!r}", code="INVALID_DATE"
        ) from exc
    if not date(1900, 1, 1) <= birthday <= now().date():
        raise InvalidInput(f"birthday: out of range: {raw!r}", code="INVALID_DATE")
    return birthday


def consents_of(session: Session, customer: Customer) -> dict[str, tuple[bool, datetime]]:
    current: dict[str, tuple[bool, datetime]] = {}
    rows = session.scalars(
        select(Consent).where(Consent.customer_id == customer.id).order_by(Consent.id)
    )
    for row in rows:
        current[row.kind] = (row.granted, row.at)
    return current


def record_consents(
    session: Session, tenant: Tenant, customer: Customer, given: dict[str, bool | None], source: str
) -> None:
    """Write a row for each consent whose answer changes (given once, kept with its time)."""
    current = consents_of(session, customer)
    for kind, granted in given.items():
        if granted is None:
            continue
        if kind not in CONSENTS:
            raise InvalidInput(f"Unknown consent {kind!r}.")
        if kind not in current or current[kind][0] != granted:
            session.add(
                Consent(
                    tenant_id=tenant.id,
                    customer_id=customer.id,
                    kind=kind,
                    granted=granted,
                    source=source,
                    at=now(),
                )
            )
    session.flush()


def allows(session: Session, customer: Customer, kind: str) -> bool:
    """May we send this member a message on this channel? Only with consent on file."""
    if customer.erased_at is not None:
        return False
    answer = consents_of(session, customer).get(kind)
    return bool(answer and answer[0])


def erase(session: Session, tenant: Tenant, customer: Customer) -> None:
    """Remove a member's personal data for good; balances and ledger stay, anonymous."""
    if customer.erased_at is not None:
        return
    values = set(
        session.scalars(
            select(CustomerIdentifier.value).where(CustomerIdentifier.customer_id == customer.id)
        )
    )
    session.execute(delete(CustomerIdentifier).where(CustomerIdentifier.customer_id == customer.id))
    customer.name = customer.first_name = customer.last_name = None
    customer.birthday = None
    customer.password_hash = None
    customer.erased_at = now()
    record_consents(session, tenant, customer, {kind: False for kind in CONSENTS}, "erasure")
    # Reasons of manual adjustments are free text about them (the amounts stay).
    session.execute(
        update(Adjustment).where(Adjustment.customer_id == customer.id).values(reason="")
    )
    for event in session.scalars(select(Event).where(Event.customer_id == customer.id)):
        event.payload, event.tags = {}, []
    # Messages already queued or sent to them keep their address in the payload: scrub it.
    for message in session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.tenant_id == tenant.id, OutboxMessage.channel.in_(("sms", "email"))
        )
    ):
        to = str(message.payload.get("to", ""))
        if to in values or to.lstrip("+") in {v.lstrip("+") for v in values}:
            message.payload = {"erased": True}
            if message.status == "pending":
                message.status = "failed"
                message.last_error = "recipient erased"
