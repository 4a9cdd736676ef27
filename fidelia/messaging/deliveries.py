"""The outbox as people see it: a merchant's messages by status (pending, sent, failed) with
the error of failed ones, a retry of a failed one, and a customer's message history.

Codes are never shown: a message that carries one (``secret``) is shown redacted whatever
its state (the worker already replaces its text once delivered or failed), and so is any
run of digits in its error."""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from fidelia.kit.clock import now
from fidelia.kit.errors import Conflict, InvalidInput, NotFound
from fidelia.models import CustomerIdentifier, OutboxMessage

STATUSES = ("pending", "sent", "failed")
CHANNELS = ("whatsapp", "sms", "email", "webhook")
REDACTED = "[redacted]"
_DIGITS = re.compile(r"\d{4,}")


@dataclass(frozen=True)
class Shown:
    id: int
    channel: str
    status: str
    to: str
    text: str
    attempts: int
    error: str | None
    created_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime


def recipient(payload: dict[str, Any]) -> str:
    return str(payload.get("to") or payload.get("recipient") or payload.get("email") or "")


def text_of(payload: dict[str, Any]) -> str:
    if payload.get("secret"):
        return REDACTED
    body = payload.get("text")
    if isinstance(body, dict):
        body = body.get("body")
    if body is None:
        body = payload.get("subject") or payload.get("event") or ""
    return str(body)


def shown(row: OutboxMessage) -> Shown:
    error = row.last_error
    if error and row.payload.get("secret"):
        error = _DIGITS.sub(REDACTED, error)
    return Shown(
        id=row.id,
        channel=row.channel,
        status=row.status,
        to=recipient(row.payload),
        text=text_of(row.payload),
        attempts=row.attempts,
        error=error,
        created_at=row.created_at,
        sent_at=row.sent_at,
        next_attempt_at=row.next_attempt_at,
    )


def _check(status: str | None, channel: str | None) -> None:
    if status and status not in STATUSES:
        raise InvalidInput(f"Status is one of {', '.join(STATUSES)}.", code="INVALID_FILTER")
    if channel and channel not in CHANNELS:
        raise InvalidInput(f"Channel is one of {', '.join(CHANNELS)}.", code="INVALID_FILTER")


def listing(
    session: Session,
    tenant_id: int,
    *,
    status: str | None = None,
    channel: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[Shown]:
    """The merchant's messages, newest first, ``limit`` at a time (``before_id`` pages)."""
    _check(status, channel)
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.tenant_id == tenant_id)
        .order_by(OutboxMessage.id.desc())
        .limit(limit)
    )
    if status:
        query = query.where(OutboxMessage.status == status)
    if channel:
        query = query.where(OutboxMessage.channel == channel)
    if before_id:
        query = query.where(OutboxMessage.id < before_id)
    return [shown(row) for row in session.scalars(query)]


def counts(session: Session, tenant_id: int) -> dict[str, int]:
    found = dict(
        session.execute(
            select(OutboxMessage.status, func.count())
            .where(OutboxMessage.tenant_id == tenant_id)
            .group_by(OutboxMessage.status)
        ).all()
    )
    return {status: int(found.get(status, 0)) for status in STATUSES}


def retry(session: Session, tenant_id: int, message_id: int) -> OutboxMessage:
    """A failed message of the merchant goes back to pending, due now, with a fresh count
    of attempts; its last error stays visible until the next attempt."""
    row = session.scalar(
        select(OutboxMessage).where(
            OutboxMessage.id == message_id, OutboxMessage.tenant_id == tenant_id
        )
    )
    if row is None:
        raise NotFound("No such message.", code="NOT_FOUND")
    if row.payload.get("secret"):
        # Its code was already redacted: sending it again would send "[redacted]".
        raise Conflict("A message with a code cannot be sent again.", code="NOT_RETRYABLE")
    changed = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == row.id, OutboxMessage.status == "failed")
        .values(status="pending", attempts=0, next_attempt_at=now(), locked_until=None)
    )
    if changed.rowcount == 0:  # type: ignore[attr-defined]
        raise Conflict("Only a failed message can be retried.", code="NOT_RETRYABLE")
    session.info["outbox_wakeup"] = True
    session.refresh(row)
    return row


def for_customer(
    session: Session, tenant_id: int, customer_id: int, limit: int = 50
) -> list[Shown]:
    """The messages the merchant sent to this customer (by the WhatsApp number, phone or
    user id on file), newest first, codes redacted. For the customer page."""
    identifiers = list(
        session.scalars(
            select(CustomerIdentifier.value).where(
                CustomerIdentifier.customer_id == customer_id,
                CustomerIdentifier.kind.in_(("whatsapp", "phone", "wa_user", "email")),
            )
        )
    )
    if not identifiers:
        return []
    addresses = set(identifiers) | {value.lstrip("+") for value in identifiers}
    query = (
        select(OutboxMessage)
        .where(
            OutboxMessage.tenant_id == tenant_id,
            or_(
                OutboxMessage.payload["to"].as_string().in_(addresses),
                OutboxMessage.payload["recipient"].as_string().in_(addresses),
                OutboxMessage.payload["email"].as_string().in_(addresses),
            ),
        )
        .order_by(OutboxMessage.id.desc())
        .limit(limit)
    )
    return [shown(row) for row in session.scalars(query)]


# -- platform health ------------------------------------------------------------------------


def health(session: Session, hours: int = 24) -> dict[str, Any]:
    """Backlog (pending now), the failure rate and deliveries per channel over ``hours``."""
    since = now() - timedelta(hours=hours)
    backlog = int(
        session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "pending")
        )
        or 0
    )
    oldest = session.scalar(
        select(func.min(OutboxMessage.created_at)).where(OutboxMessage.status == "pending")
    )
    per_channel: dict[str, dict[str, int]] = {}
    for channel, status, count in session.execute(
        select(OutboxMessage.channel, OutboxMessage.status, func.count())
        .where(OutboxMessage.created_at >= since)
        .group_by(OutboxMessage.channel, OutboxMessage.status)
    ):
        per_channel.setdefault(channel, dict.fromkeys(STATUSES, 0))[status] = int(count)
    sent = sum(c["sent"] for c in per_channel.values())
    failed = sum(c["failed"] for c in per_channel.values())
    return {
        "backlog": backlog,
        "oldest_pending": oldest,
        "per_channel": dict(sorted(per_channel.items())),
        "sent": sent,
        "failed": failed,
        "failure_rate": (failed / (sent + failed)) if sent + failed else None,
        "hours": hours,
    }
