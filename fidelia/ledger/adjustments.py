"""Manual adjustments: a person credits or debits a customer's points or cashback, with a
reason. Each is a row of ``adjustments`` (who: the user id and their e-mail, or the CLI
account; why; how much) and one ledger entry of kind 'adjust' whose source is
('adjustment', that row's id), written through the ledger's credit and debit in the same
transaction, so every rule of the ledger holds (the balance lock, lots, the cap).

A debit never takes a balance below zero: a negative balance means a debt from a refund
of points already spent, which blocks redemptions; a person correcting a mistake takes
back at most what is there (the customer may have spent the rest, which is theirs)."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from fidelia.audit.service import Actor
from fidelia.kit.clock import now
from fidelia.kit.errors import InsufficientPoints, InvalidInput
from fidelia.ledger.service import CASHBACK, POINTS, Account, Entry, Source, credit, debit
from fidelia.models import Adjustment, Customer, LedgerEntry, Tenant

KIND = "adjust"
SOURCE = "adjustment"
ACCOUNTS = (POINTS, CASHBACK)
REASON_MAX = 300


def adjust(
    session: Session,
    tenant: Tenant,
    customer: Customer,
    account: str,
    amount: int,
    reason: str,
    actor: Actor,
) -> tuple[Adjustment, Entry]:
    """Credit (``amount`` > 0) or debit (< 0) ``account`` ('points', or 'cashback' in
    minor units of the merchant's currency). Raises InvalidInput for a zero amount, an
    unknown account or a blank reason, InsufficientPoints when a debit is more than the
    balance, BalanceLimit past the ledger's cap."""
    if account not in ACCOUNTS:
        raise InvalidInput(f"The account is one of {', '.join(ACCOUNTS)}.", code="INVALID_ACCOUNT")
    if amount == 0:
        raise InvalidInput("An adjustment is not zero.", code="INVALID_AMOUNT")
    reason = " ".join((reason or "").split())
    if not reason:
        raise InvalidInput("An adjustment needs a reason.", code="REASON_REQUIRED")
    if len(reason) > REASON_MAX:
        raise InvalidInput(
            f"The reason has at most {REASON_MAX} characters.", code="REASON_TOO_LONG"
        )
    if customer.program_id != tenant.program_id:
        raise InvalidInput("This customer is not in the merchant's program.")
    row = Adjustment(
        tenant_id=tenant.id,
        program_id=tenant.program_id,
        customer_id=customer.id,
        account=account,
        amount=amount,
        reason=reason,
        user_id=actor.id if actor.kind == "user" else None,
        actor_label=actor.label[:200],
        created_at=now(),
    )
    session.add(row)
    session.flush()
    acct = Account(customer.program_id, customer.id, account)
    source = Source(tenant.id, SOURCE, str(row.id))
    if amount > 0:
        entry = credit(session, acct, amount, source, kind=KIND)
    else:
        try:
            entry = debit(session, acct, -amount, source, kind=KIND)
        except InsufficientPoints as exc:
            what = "points" if account == POINTS else "cashback"
            raise InsufficientPoints(
                f"The customer has less {what} than this debit; a debit never takes a "
                "balance below zero.",
                code="INSUFFICIENT_BALANCE",
            ) from exc
    return row, entry


def reasons_by_entry(session: Session, entries: list[LedgerEntry]) -> dict[int, Adjustment]:
    """entry id -> its adjustment, for the entries of kind 'adjust' in ``entries``."""
    ids = {int(e.source_id): e.id for e in entries if e.source_type == SOURCE}
    if not ids:
        return {}
    rows = session.scalars(select(Adjustment).where(Adjustment.id.in_(ids)))
    return {ids[row.id]: row for row in rows}
