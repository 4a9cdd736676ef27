"""Identity challenges: a 6-digit code by SMS and/or e-mail that the customer tells the
cashier. Stored as a keyed digest, valid 60 minutes, single-use, 5 wrong tries at most.
Every failure answers the same way, so a guesser learns nothing about why."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from fidelia.kit.clock import now
from fidelia.kit.errors import Forbidden, RateLimited
from fidelia.messaging import outbox
from fidelia.models import Challenge, Customer, Tenant

LIFETIME = timedelta(minutes=60)
MAX_FAILURES = 5
# Codes sent to one customer at one merchant (SMS costs money and annoys), every purpose
# together: counted in the database, so the limit holds across any number of processes.
SEND_LIMITS = ((5, timedelta(minutes=10)), (20, timedelta(days=1)))


@dataclass(frozen=True)
class Sent:
    challenge: Challenge
    code: str


def code_digest(secret_key: str, challenge_salt: str, code: str) -> str:
    return hmac.new(
        secret_key.encode(), f"{challenge_salt}:{code}".encode(), hashlib.sha256
    ).hexdigest()


def issue_code(
    session: Session,
    tenant: Tenant,
    customer: Customer,
    transaction_id: str,
    lifetime: timedelta,
    secret_key: str,
) -> tuple[Challenge, str]:
    """A fresh 6-digit code, stored only as its keyed digest; the open codes of the same
    customer and transaction stop working. Returns the row and the code to send.

    At most ``SEND_LIMITS`` codes per customer and merchant: the customer's row is locked
    (FOR NO KEY UPDATE) while the codes already issued are counted, so concurrent requests
    in any number of processes cannot pass the limit."""
    session.execute(
        select(Customer.id).where(Customer.id == customer.id).with_for_update(key_share=True)
    )
    at = now()
    for limit, window in SEND_LIMITS:
        issued = session.scalars(
            select(Challenge.created_at)
            .where(
                Challenge.tenant_id == tenant.id,
                Challenge.customer_id == customer.id,
                Challenge.created_at > at - window,
            )
            .order_by(Challenge.created_at)
        ).all()
        if len(issued) >= limit:
            wait = issued[len(issued) - limit] + window - at
            raise RateLimited(
                f"At most {limit} codes per {_spoken(window)} for one customer; try again later.",
                retry_after=max(1, int(wait.total_seconds()) + 1),
            )
    for old in session.scalars(
        select(Challenge).where(
            Challenge.tenant_id == tenant.id,
            Challenge.customer_id == customer.id,
            Challenge.transaction_id == transaction_id,
            Challenge.verified_at.is_(None),
            Challenge.expires_at > now(),
        )
    ):
        old.expires_at = now()
    code = f"{secrets.randbelow(10**6):06d}"
    challenge = Challenge(
        tenant_id=tenant.id,
        customer_id=customer.id,
        transaction_id=transaction_id,
        code_digest="",
        expires_at=now() + lifetime,
    )
    session.add(challenge)
    session.flush()
    challenge.code_digest = code_digest(secret_key, str(challenge.id), code)
    return challenge, code


def _spoken(window: timedelta) -> str:
    minutes = int(window.total_seconds() // 60)
    return f"{minutes} minutes" if minutes < 60 * 24 else f"{minutes // (60 * 24)} day(s)"


def start(
    session: Session,
    tenant: Tenant,
    customer: Customer,
    transaction_id: str,
    *,
    phone: str | None,
    email: str | None,
    secret_key: str,
) -> Sent:
    """Issue a fresh code (earlier open codes of this transaction stop working) and queue
    it to every contact given; the caller checks there is at least one."""
    challenge, code = issue_code(session, tenant, customer, transaction_id, LIFETIME, secret_key)
    challenge.sent_sms, challenge.sent_email = bool(phone), bool(email)
    text = f"{tenant.name}: seu código de verificação é {code}. Válido por 60 minutos."
    if phone:
        outbox.enqueue(session, "sms", {"to": phone, "text": text, "secret": True}, tenant.id)
    if email:
        outbox.enqueue(
            session,
            "email",
            {
                "to": email,
                "subject": f"{tenant.name}: código de verificação",
                "text": text,
                "secret": True,
            },
            tenant.id,
        )
    return Sent(challenge, code)


def validate(
    session: Session,
    tenant: Tenant,
    customer: Customer,
    transaction_id: str,
    code: str,
    secret_key: str,
) -> bool:
    challenge = session.scalar(
        select(Challenge)
        .where(
            Challenge.tenant_id == tenant.id,
            Challenge.customer_id == customer.id,
            Challenge.transaction_id == transaction_id,
        )
        .order_by(Challenge.id.desc())
        .limit(1)
        .with_for_update()
    )
    if challenge is None or challenge.verified_at is not None:
        return False
    if challenge.expires_at <= now() or challenge.failures >= MAX_FAILURES:
        return False
    expected = code_digest(secret_key, str(challenge.id), (code or "").strip())
    if not hmac.compare_digest(expected, challenge.code_digest):
        challenge.failures += 1
        return False
    challenge.verified_at = now()
    session.flush()  # a spend in the same transaction may consume it at once
    return True


def consume_verification(session: Session, tenant: Tenant, customer: Customer) -> None:
    """A redemption at a merchant that validates customers needs a code verified within the
    last 60 minutes and not yet used by another redemption."""
    verified = session.scalar(
        select(Challenge)
        .where(
            Challenge.tenant_id == tenant.id,
            Challenge.customer_id == customer.id,
            Challenge.verified_at > now() - LIFETIME,
            Challenge.consumed_at.is_(None),
        )
        .order_by(Challenge.id.desc())
        .limit(1)
        .with_for_update()
    )
    if verified is None:
        raise Forbidden(
            "This merchant validates customers: run the challenge before redeeming.",
            code="CHALLENGE_REQUIRED",
        )
    verified.consumed_at = now()
