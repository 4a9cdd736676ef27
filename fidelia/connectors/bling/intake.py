"""Bling's webhooks: stored first (deduplicated on ``eventId``, one transaction, answered at
once), processed by the worker: map ``companyId`` to the connection, fetch the order's
current state, apply it. Failures back off and stay visible (``status``, ``last_error``)."""

import logging
import random
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from fidelia.connectors.bling import sync
from fidelia.connectors.bling.client import Bling, BlingError, Link, NotConnected
from fidelia.connectors.bling.sales import Prepared
from fidelia.kit.clock import now
from fidelia.kit.db import Database, insert_for, planned_now
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
        with planned_now(session):  # the queue's size swings: no plan kept from an empty one
            rows = list(session.scalars(query))
        for row in rows:
            row.locked_until = at + LEASE
        return rows


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


def links_for(db: Database, companies: set[str]) -> dict[str, Link]:
    """The connected merchants of these companies, read in one transaction."""
    with db.session(readonly=True) as session:
        connections = session.scalars(
            select(BlingConnection).where(
                BlingConnection.company_id.in_(sorted(companies)),
                BlingConnection.status != "disconnected",
            )
        ).all()
        return {
            c.company_id or "": Link.of(c, session.get_one(Tenant, c.tenant_id))
            for c in connections
        }


def _ignore(db: Database, ignored: list[tuple[int, str]]) -> None:
    with db.session() as session:
        for event_id, reason in ignored:
            session.execute(
                update(BlingEvent)
                .where(BlingEvent.id == event_id)
                .values(status="ignored", last_error=reason, locked_until=None, processed_at=now())
            )


def _apply(db: Database, link: Link, prepared: Prepared, event_ids: list[int]) -> str:
    """The order's current state applied, and every event of the batch about it done, in
    one transaction."""
    with db.session() as session:
        outcome = sync.apply_all(session, link, [prepared])[0]
        session.execute(
            update(BlingEvent)
            .where(BlingEvent.id.in_(event_ids))
            .values(
                tenant_id=link.tenant_id,
                status="done",
                locked_until=None,
                processed_at=now(),
                last_error=None,
            )
        )
    return outcome.state


def _failed(db: Database, event_ids: list[int], exc: Exception, link: Link) -> None:
    if isinstance(exc, (BlingError, NotConnected)):  # AuthLost is a BlingError
        error = str(exc)
    else:  # a bug or bad data: retried, then failed, never lost
        log.error("processing Bling events %s", event_ids, exc_info=exc)
        error = f"{type(exc).__name__}: {exc}"
    for event_id in event_ids:
        _retry(db, event_id, error, link.tenant_id)


def process_batch(db: Database, bling: Bling, rows: list[BlingEvent]) -> dict[int, str]:
    """Claimed events, to their end: done, ignored, or back to pending with a delay.

    Each order is fetched once however many of the batch's events are about it (deliveries
    repeat; only its current state counts), the contacts not known yet are looked up
    together, and each order is applied in its own transaction with its events (a failure
    retries that order's events only). Returns each event's outcome."""
    links = links_for(db, {row.company_id for row in rows})
    outcome: dict[int, str] = {}
    ignored: list[tuple[int, str]] = []
    groups: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        if row.company_id not in links:
            ignored.append((row.id, f"no connected merchant for company {row.company_id}"))
        elif row.event not in ORDER_EVENTS or not row.resource_id:
            ignored.append((row.id, f"event {row.event!r} is not about a sale"))
        else:
            groups.setdefault((row.company_id, row.resource_id), []).append(row.id)
    if ignored:
        _ignore(db, ignored)
        outcome.update((event_id, "ignored") for event_id, _ in ignored)
    synced: set[int] = set()
    for company in {company for company, _ in groups}:
        link = links[company]
        orders = [(order_id, ids) for (c, order_id), ids in groups.items() if c == company]
        fetched = sync.prepare_details(db, bling, link, [order_id for order_id, _ in orders])
        for order_id, ids in orders:
            try:
                found = fetched[order_id]
                if isinstance(found, Exception):
                    raise found
                state = _apply(db, link, found, ids)
            except Exception as exc:  # AuthLost, NotConnected, BlingError, a bug
                _failed(db, ids, exc, link)
                state = "retry"
            else:
                synced.add(link.id)
            outcome.update((event_id, state) for event_id in ids)
    if synced:
        with db.session() as session:
            session.execute(
                update(BlingConnection)
                .where(BlingConnection.id.in_(sorted(synced)))
                .values(last_sync_at=now())
            )
    return outcome


def process(db: Database, bling: Bling, row: BlingEvent) -> str:
    """One stored event, to its end (see ``process_batch``)."""
    return process_batch(db, bling, [row])[row.id]


def process_due(db: Database, bling: Bling, batch: int = 20) -> int:
    rows = claim(db, batch)
    if rows:
        process_batch(db, bling, rows)
    return len(rows)
