"""Bling's webhooks: stored first (deduplicated on ``eventId``, one transaction, answered at
once), processed by the worker: map ``companyId`` to the connection, fetch the order's
current state, apply it. Failures back off and stay visible (``status``, ``last_error``)."""

import logging
import random
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from fidelia.connectors.bling import sync
from fidelia.connectors.bling.client import AuthLost, Bling, BlingError, Link, NotConnected
from fidelia.kit.clock import now
from fidelia.kit.db import Database, insert_for
from fidelia.kit.errors import DomainError
from fidelia.models import BlingConnection, BlingEvent, Tenant

log = logging.getLogger("fidelia.bling")
LEASE = timedelta(seconds=120)
MAX_ATTEMPTS = 12
ORDER_EVENTS = ("order.created", "order.updated", "order.deleted")


class MalformedEvent(DomainError):
    status = 400
    code = "BAD_REQUEST"


def _text(value: Any, limit: int) -> str | None:
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = str(value).strip()
    return text if text and "\x00" not in text and len(text) <= limit else None


def store(session: Session, payload: Any) -> bool:
    """Keep one delivery; False when its ``eventId`` was stored before (a repeat)."""
    if not isinstance(payload, dict):
        raise MalformedEvent("Expected a JSON object.")
    event_id = _text(payload.get("eventId"), 128)
    company = _text(payload.get("companyId"), 64)
    event = _text(payload.get("event"), 64)
    if not event_id or not company or not event:
        raise MalformedEvent("eventId, companyId and event are required.")
    data = payload.get("data")
    resource = _text(data.get("id"), 64) if isinstance(data, dict) else None
    at = now()
    insert = insert_for(session)
    statement = (
        insert(BlingEvent)
        .values(
            event_id=event_id,
            company_id=company,
            event=event,
            resource_id=resource,
            payload=payload,
            status="pending",
            attempts=0,
            next_attempt_at=at,
            received_at=at,
        )
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(BlingEvent.id)
    )
    stored = session.execute(statement).scalar() is not None
    if stored:
        session.info["outbox_wakeup"] = True  # wake the in-process worker after the commit
    return stored


def claim(db: Database, batch: int) -> list[BlingEvent]:
    with db.session() as session:
        at = now()
        query = (
            select(BlingEvent)
            .where(
                BlingEvent.status == "pending",
                BlingEvent.next_attempt_at <= at,
                or_(BlingEvent.locked_until.is_(None), BlingEvent.locked_until < at),
            )
            .order_by(BlingEvent.next_attempt_at, BlingEvent.id)
            .limit(batch)
        )
        if not db.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        rows = list(session.scalars(query))
        for row in rows:
            row.locked_until = at + LEASE
        return rows


def _finish(db: Database, event_id: int, status: str, error: str | None = None) -> None:
    with db.session() as session:
        row = session.get_one(BlingEvent, event_id)
        row.status, row.last_error, row.locked_until = status, error, None
        row.processed_at = now()


def _retry(db: Database, event_id: int, error: str, tenant_id: int | None = None) -> None:
    with db.session() as session:
        row = session.get_one(BlingEvent, event_id)
        row.attempts += 1
        row.locked_until = None
        row.last_error = error[:2000]
        if row.attempts >= MAX_ATTEMPTS:
            row.status = "failed"
            log.warning("Bling event %s failed for good: %s", row.event_id, error)
        else:
            pause = min(2**row.attempts, 3600) * random.uniform(0.8, 1.2)
            row.next_attempt_at = now() + timedelta(seconds=pause)
        if tenant_id is not None:
            connection = session.scalar(
                select(BlingConnection).where(BlingConnection.tenant_id == tenant_id)
            )
            if connection is not None:
                connection.last_error, connection.last_error_at = error[:2000], now()


def process(db: Database, bling: Bling, row: BlingEvent) -> str:
    """One stored event, to its end: done, ignored, or back to pending with a delay."""
    with db.session(readonly=True) as session:
        connection = session.scalar(
            select(BlingConnection).where(BlingConnection.company_id == row.company_id)
        )
        link = (
            Link.of(connection, session.get_one(Tenant, connection.tenant_id))
            if connection is not None and connection.status != "disconnected"
            else None
        )
    if link is None:
        _finish(db, row.id, "ignored", f"no connected merchant for company {row.company_id}")
        return "ignored"
    if row.event not in ORDER_EVENTS or not row.resource_id:
        _finish(db, row.id, "ignored", f"event {row.event!r} is not about a sale")
        return "ignored"
    try:
        prepared = sync.prepare_detail(db, bling, link, row.resource_id)
        with db.session() as session:
            outcome = sync.apply_all(session, link, [prepared])[0]
            fresh = session.get_one(BlingEvent, row.id)
            fresh.tenant_id = link.tenant_id
            fresh.status, fresh.locked_until, fresh.processed_at = "done", None, now()
            fresh.last_error = None
            connection = session.get_one(BlingConnection, link.id)
            connection.last_sync_at = now()
        return outcome.state
    except (AuthLost, NotConnected) as exc:
        _retry(db, row.id, str(exc), link.tenant_id)
    except BlingError as exc:
        _retry(db, row.id, str(exc), link.tenant_id)
    except Exception as exc:  # a bug or bad data: retried, then failed, never lost
        log.exception("processing Bling event %s", row.event_id)
        _retry(db, row.id, f"{type(exc).__name__}: {exc}", link.tenant_id)
    return "retry"


def process_due(db: Database, bling: Bling, batch: int = 20) -> int:
    rows = claim(db, batch)
    for row in rows:
        process(db, bling, row)
    return len(rows)
