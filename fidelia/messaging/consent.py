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

from sqlalchemy.orm import Session

from fidelia.customers.profile import consents_of, record_consents
from fidelia.models import Customer, Tenant

STOP_WORDS = {"stop": "en", "sair": "pt", "parar": "es", "baja": "es"}
SOURCE = "whatsapp-stop"


def stop_word(text: str) -> str | None:
    """The opt-out word this message is (case-insensitive, trimmed), or None."""
    word = unquote_plus(text).strip().strip(".!¡ ").lower()
    return word if word in STOP_WORDS else None


def opt_out(session: Session, customers: list[Customer]) -> int:
    """Record the withdrawal of WhatsApp consent for each customer; returns how many rows
    were written (none for a customer already opted out)."""
    written = 0
    for customer in customers:
        if customer.erased_at is not None:
            continue
        before = consents_of(session, customer).get("whatsapp")
        if before is not None and before[0] is False:
            continue
        tenant = session.get_one(Tenant, customer.tenant_id)
        record_consents(session, tenant, customer, {"whatsapp": False}, SOURCE)
        written += 1
    return written


def permits(session: Session, customer: Customer, channel: str, marketing: bool) -> bool:
    """May this customer get an automatic message of this kind on ``channel``
    (``whatsapp`` or ``email``)?"""
    if customer.erased_at is not None:
        return False
    answer = consents_of(session, customer).get(channel)
    if marketing:
        return answer is not None and answer[0]
    return answer is None or answer[0]
