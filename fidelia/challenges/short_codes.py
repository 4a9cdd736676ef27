"""Short login codes (seed 002's ``/member/shortCode``): 6 digits, valid 10 minutes, single
use, at most 5 wrong tries. They are identity challenges (same table, same keyed digest,
same uniform failures) under their own purpose, so a new code voids the previous one.

A code is sent over WhatsApp when the member has a number and consented to WhatsApp, else
by SMS when they consented to SMS; never on a channel without consent. It goes through the
outbox, written in the same transaction as the code.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from fidelia.challenges.service import issue_code, validate
from fidelia.customers.profile import allows
from fidelia.kit.errors import DomainError
from fidelia.messaging import outbox
from fidelia.messaging.texts import say
from fidelia.models import Customer, CustomerIdentifier, Tenant

PURPOSE = "short-code"  # Challenge.transaction_id of these codes
LIFETIME = timedelta(minutes=10)


class NoChannel(DomainError):
    status = 422
    code = "NO_CHANNEL"


@dataclass(frozen=True)
class ShortCode:
    code: str
    expires_at: datetime
    channel: str | None  # whatsapp | sms | None (handed to the caller)


def issue(session: Session, tenant: Tenant, customer: Customer, secret_key: str) -> ShortCode:
    """A fresh code; earlier open codes of this member stop working."""
    challenge, code = issue_code(session, tenant, customer, PURPOSE, LIFETIME, secret_key)
    return ShortCode(code, challenge.expires_at, None)


def channel_for(session: Session, customer: Customer) -> tuple[str, str] | None:
    """(channel, E.164 number) the member may be messaged on, WhatsApp first."""
    rows = session.execute(
        select(CustomerIdentifier.kind, CustomerIdentifier.value).where(
            CustomerIdentifier.customer_id == customer.id,
            CustomerIdentifier.kind.in_(("whatsapp", "phone")),
        )
    )
    numbers = {kind: value for kind, value in rows}
    whatsapp = numbers.get("whatsapp") or numbers.get("phone")
    if whatsapp and allows(session, customer, "whatsapp"):
        return "whatsapp", whatsapp
    phone = numbers.get("phone") or numbers.get("whatsapp")
    if phone and allows(session, customer, "sms"):
        return "sms", phone
    return None


def send(session: Session, tenant: Tenant, customer: Customer, secret_key: str) -> ShortCode:
    found = channel_for(session, customer)
    if found is None:
        raise NoChannel(
            "The member has no phone number with WhatsApp or SMS consent to send a code to."
        )
    channel, number = found
    issued = issue(session, tenant, customer, secret_key)
    text = say(tenant.locale, "short_code", merchant=tenant.name, code=issued.code)
    if channel == "whatsapp":
        message = outbox.whatsapp_text(
            session, text=text, wa_number=number, wa_user_id=None, tenant_id=tenant.id
        )
        message.payload = {**message.payload, "secret": True}  # redacted once delivered
    else:
        outbox.enqueue(session, "sms", {"to": number, "text": text, "secret": True}, tenant.id)
    return ShortCode(issued.code, issued.expires_at, channel)


def verify(
    session: Session, tenant: Tenant, customer: Customer, code: str, secret_key: str
) -> bool:
    """True once for the right code within its lifetime; every failure looks the same."""
    return validate(session, tenant, customer, PURPOSE, code, secret_key)
