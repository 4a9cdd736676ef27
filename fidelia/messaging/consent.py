"""Who may get an automatic message on which channel (LGPD), and the opt-out by reply.

- Marketing (the come-back message) goes only where consent is on file: the latest
  ``whatsapp`` / ``email`` consent of the customer is a grant.
- Transactional messages (about the customer's own account: a benefit earned, a voucher
  issued, points about to expire) rest on legitimate interest and need no marketing
  consent, but an explicit withdrawal on a channel (a STOP reply, an API or panel answer)
  stops them on that channel too: "stop" means stop.
- A reply of STOP / SAIR / PARAR / BAJA to the bot withdraws WhatsApp consent (a row in the
  consent history, source ``whatsapp-stop``) for every customer that contact is.
"""

from urllib.parse import unquote_plus

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from fidelia.customers.profile import consents_of, record_consents
from fidelia.models import Consent, Customer, CustomerIdentifier, Tenant

STOP_WORDS = {"stop": "en", "sair": "pt", "parar": "es", "baja": "es"}
SOURCE = "whatsapp-stop"


def stop_word(text: str) -> str | None:
    """The opt-out word this message is (case-insensitive, trimmed), or None."""
    word = unquote_plus(text).strip().strip(".!¡ ").lower()
    return word if word in STOP_WORDS else None


def customers_of(session: Session, number: str | None, user_id: str | None) -> list[Customer]:
    """Every customer, in any program, this WhatsApp user is: by WhatsApp number, by the
    same number as their phone, or by business-scoped user id."""
    conditions = []
    if number:
        conditions.append(
            CustomerIdentifier.kind.in_(("whatsapp", "phone"))
            & (CustomerIdentifier.value == number)
        )
    if user_id:
        conditions.append(
            (CustomerIdentifier.kind == "wa_user") & (CustomerIdentifier.value == user_id)
        )
    if not conditions:
        return []
    return list(
        session.scalars(
            select(Customer)
            .join(CustomerIdentifier, CustomerIdentifier.customer_id == Customer.id)
            .where(or_(*conditions))
            .distinct()
            .order_by(Customer.id)
        )
    )


def opt_out(session: Session, number: str | None, user_id: str | None) -> int:
    """Record the withdrawal of WhatsApp consent for each customer this WhatsApp user is;
    returns how many rows were written (none for a customer already opted out)."""
    written = 0
    for customer in customers_of(session, number, user_id):
        if customer.erased_at is not None:
            continue
        before = consents_of(session, customer).get("whatsapp")
        if before is not None and before[0] is False:
            continue
        tenant = session.get_one(Tenant, customer.tenant_id)
        record_consents(session, tenant, customer, {"whatsapp": False}, SOURCE)
        written += 1
    return written


def stopped(session: Session, customer: Customer, number: str | None, user_id: str | None) -> bool:
    """Did this WhatsApp user reply STOP (for any customer they are, even one made after
    the reply, say by a later POS order with their phone) and not opt in again since?"""
    values = [v for v in (number, user_id) if v]
    if not values:
        return False
    stop_at = session.scalar(
        select(func.max(Consent.at))
        .join(CustomerIdentifier, CustomerIdentifier.customer_id == Consent.customer_id)
        .where(
            Consent.source == SOURCE,
            CustomerIdentifier.kind.in_(("whatsapp", "phone", "wa_user")),
            CustomerIdentifier.value.in_(values),
        )
    )
    if stop_at is None:
        return False
    answer = consents_of(session, customer).get("whatsapp")
    return not (answer is not None and answer[0] and answer[1] > stop_at)


def permits(session: Session, customer: Customer, channel: str, marketing: bool) -> bool:
    """May this customer get an automatic message of this kind on ``channel``
    (``whatsapp`` or ``email``)?"""
    if customer.erased_at is not None:
        return False
    answer = consents_of(session, customer).get(channel)
    if marketing:
        return answer is not None and answer[0]
    return answer is None or answer[0]
