"""Behavioural events and the earning rules they feed ("5 points per visit, at most one a
day", the day being the merchant's local day)."""

import re
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fidelia.kit.clock import now
from fidelia.kit.errors import InvalidInput, NotFound
from fidelia.ledger.service import Account, Source, credit
from fidelia.models import Customer, EarningRule, Event, Tenant

TYPE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")


def create_rule(
    session: Session, tenant: Tenant, event_type: str, points: int, max_per_day: int | None
) -> EarningRule:
    event_type = event_type.strip().lower()
    if not TYPE.match(event_type):
        raise InvalidInput("An event type is lower-case letters, digits, '_', '.', '-'.")
    if points <= 0:
        raise InvalidInput("A rule gives at least one point.")
    if max_per_day is not None and max_per_day < 1:
        raise InvalidInput("max_per_day is at least 1 (or unlimited).")
    rule = EarningRule(
        tenant_id=tenant.id, event_type=event_type, points=points, max_per_day=max_per_day
    )
    session.add(rule)
    session.flush()
    return rule


def rules_of(session: Session, tenant: Tenant) -> list[EarningRule]:
    """The merchant's earning rules, disabled ones too, by id."""
    query = select(EarningRule).where(EarningRule.tenant_id == tenant.id)
    return list(session.scalars(query.order_by(EarningRule.id)))


def set_rule_active(session: Session, tenant: Tenant, rule_id: int, active: bool) -> EarningRule:
    """Disable (or enable again) an earning rule: events recorded while it is disabled earn
    nothing by it; points it gave before stay."""
    rule = session.scalar(
        select(EarningRule).where(EarningRule.id == rule_id, EarningRule.tenant_id == tenant.id)
    )
    if rule is None:
        raise NotFound(f"No earning rule {rule_id} at this merchant.", code="RULE_NOT_FOUND")
    rule.active = active
    session.flush()
    return rule


def local_day(tenant: Tenant, at: datetime) -> tuple[datetime, datetime]:
    zone = ZoneInfo(tenant.timezone)
    start = datetime.combine(at.astimezone(zone).date(), time(0), zone)
    return start, start + timedelta(days=1)


def record(
    session: Session,
    tenant: Tenant,
    customer: Customer | None,
    *,
    type: str,
    sub_type: str | None = None,
    occurred_at: datetime | None = None,
    payload: dict[str, Any] | None = None,
    tags: list[str] | None = None,
) -> Event:
    kind = (type or "").strip().lower()
    if not TYPE.match(kind):
        raise InvalidInput(
            "event.type is lower-case letters, digits, '_', '.', '-' (visit, signup, ...).",
            code="INVALID_EVENT",
        )
    at = occurred_at or now()
    if at > now() + timedelta(minutes=5):
        raise InvalidInput("event.dateTime is in the future.", code="INVALID_EVENT")
    event = Event(
        tenant_id=tenant.id,
        program_id=tenant.program_id,
        customer_id=customer.id if customer else None,
        type=kind,
        sub_type=sub_type,
        occurred_at=at,
        payload=payload or {},
        tags=[str(t)[:40] for t in (tags or [])][:20],
        created_at=now(),
    )
    session.add(event)
    session.flush()
    if customer is not None:
        event.points = _earn(session, tenant, customer, event)
    return event


def _earn(session: Session, tenant: Tenant, customer: Customer, event: Event) -> int:
    rules = list(
        session.scalars(
            select(EarningRule).where(
                EarningRule.tenant_id == tenant.id,
                EarningRule.event_type == event.type,
                EarningRule.active.is_(True),
            )
        )
    )
    if not rules:
        return 0
    # One member's events are counted one at a time, so a burst cannot pass the daily cap.
    session.execute(select(Customer.id).where(Customer.id == customer.id).with_for_update())
    start, end = local_day(tenant, event.occurred_at)
    earned_today = int(
        session.scalar(
            select(func.count())
            .select_from(Event)
            .where(
                Event.customer_id == customer.id,
                Event.tenant_id == tenant.id,
                Event.type == event.type,
                Event.points > 0,
                Event.occurred_at >= start,
                Event.occurred_at < end,
                Event.id != event.id,
            )
        )
        or 0
    )
    points = sum(r.points for r in rules if r.max_per_day is None or earned_today < r.max_per_day)
    if points:
        credit(
            session,
            Account(customer.program_id, customer.id),
            points,
            Source(tenant.id, "event", str(event.id)),
        )
    return points
