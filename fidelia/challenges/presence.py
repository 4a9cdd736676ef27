"""One rule for every door that spends: at a merchant that validates customers
(``should_validate_customer``), points or credit leave a balance only with a proof of
presence from that customer, checked in the same transaction as the debit.

The proof is a code the customer received and that was verified within the last 60 minutes
and not used by another spend: a POS challenge (seed 001 ``challengevalidate``), a retail
short code (seed 002 ``/member/shortCode`` verify), or the code the WhatsApp bot gives the
customer for redeeming at the counter (seed 000 ``canjear`` with ``codigo``). One proof
covers every debit of one transaction (a sale paid with points and credit needs one code)."""

from sqlalchemy import event
from sqlalchemy.orm import Session

from fidelia.challenges.service import consume_verification
from fidelia.models import Customer, Tenant

_PROVEN = "fidelia_presence_proven"


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PROVEN, None)


def require_presence(session: Session, tenant: Tenant, customer: Customer) -> None:
    """Raise Forbidden (``CHALLENGE_REQUIRED``) unless the merchant does not validate
    customers or a verified code of this customer is consumed now (once per transaction)."""
    if not tenant.should_validate_customer:
        return
    proven: set[tuple[int, int]] = session.info.setdefault(_PROVEN, set())
    if (tenant.id, customer.id) in proven:
        return
    consume_verification(session, tenant, customer)
    proven.add((tenant.id, customer.id))
