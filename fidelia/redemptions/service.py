"""Redeeming rewards: the debit, the redemption record and its ledger entry, in one
transaction. The ledger's conditional update is what stops a double spend."""

import secrets
from datetime import timedelta

from sqlalchemy.orm import Session

from fidelia.kit.clock import now
from fidelia.kit.errors import Forbidden
from fidelia.ledger.service import Account, debit, last_earning_at
from fidelia.models import Customer, Redemption, Reward, Tenant


def new_external_code() -> str:
    return "FD-" + secrets.token_hex(5).upper()


def require_recent_visit(session: Session, tenant: Tenant, customer: Customer) -> None:
    """Seed 000: a redemption needs an accreditation at this merchant within the window,
    so the customer is physically at the counter."""
    last = last_earning_at(session, tenant.id, customer.id)
    window = timedelta(minutes=tenant.verification_window_minutes)
    if last is None or now() - last > window:
        raise Forbidden(
            "No accreditation at this merchant within the verification window.",
            code="VERIFICATION_REQUIRED",
        )


def redeem(
    session: Session, tenant: Tenant, customer: Customer, reward: Reward, *, origin: str
) -> tuple[Redemption, int]:
    """Debit the reward's points; returns the redemption and the balance left."""
    redemption = Redemption(
        program_id=customer.program_id,
        tenant_id=tenant.id,
        customer_id=customer.id,
        reward_id=reward.id,
        points=reward.points_required,
        origin=origin,
        external_code=new_external_code(),
        created_at=now(),
    )
    session.add(redemption)
    session.flush()
    entry = debit(
        session,
        Account(customer.program_id, customer.id),
        tenant_id=tenant.id,
        amount=reward.points_required,
        source_type="redemption",
        source_id=str(redemption.id),
    )
    return redemption, entry.balance_after
