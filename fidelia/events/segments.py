"""Segments: members picked by a rule over their events, tags and balance."""

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fidelia.kit.clock import now
from fidelia.kit.errors import InvalidInput, NotFound
from fidelia.ledger.service import Account, balance
from fidelia.models import Customer, Event, Segment, Tenant

KEYS = {"event_type", "min_count", "within_days", "tag", "min_points"}


def create_segment(session: Session, tenant: Tenant, name: str, rule: dict[str, Any]) -> Segment:
    if not name.strip() or len(name.strip()) > 120:
        raise InvalidInput("A segment needs a name (at most 120 characters).")
    unknown = set(rule) - KEYS
    if unknown or not rule:
        raise InvalidInput(f"A segment rule uses the keys {sorted(KEYS)}.")
    for key in ("min_count", "within_days", "min_points"):
        if key in rule and (not isinstance(rule[key], int) or rule[key] < 0):
            raise InvalidInput(f"{key} is a non-negative whole number.")
    segment = Segment(tenant_id=tenant.id, name=name.strip(), rule=rule)
    session.add(segment)
    session.flush()
    return segment


def segments_of(session: Session, tenant: Tenant) -> list[Segment]:
    """The merchant's segments, disabled ones too, by id."""
    query = select(Segment).where(Segment.tenant_id == tenant.id).order_by(Segment.id)
    return list(session.scalars(query))


def set_segment_active(session: Session, tenant: Tenant, segment_id: int, active: bool) -> Segment:
    """Disable (or enable again) a segment: a disabled segment has no members, so the deals
    limited to it apply to nobody until it is enabled again; new deals cannot choose it."""
    segment = session.scalar(
        select(Segment).where(Segment.id == segment_id, Segment.tenant_id == tenant.id)
    )
    if segment is None:
        raise NotFound(f"No segment {segment_id} at this merchant.", code="SEGMENT_NOT_FOUND")
    segment.active = active
    session.flush()
    return segment


def member_in(session: Session, segment: Segment, customer: Customer) -> bool:
    if not segment.active:
        return False
    rule = segment.rule
    if "event_type" in rule or "tag" in rule:
        query = select(Event).where(Event.customer_id == customer.id)
        if "event_type" in rule:
            query = query.where(Event.type == rule["event_type"])
        if "within_days" in rule:
            query = query.where(Event.occurred_at >= now() - timedelta(days=rule["within_days"]))
        events = list(session.scalars(query))
        if "tag" in rule:
            events = [e for e in events if rule["tag"] in (e.tags or [])]
        if len(events) < max(rule.get("min_count", 1), 1):
            return False
    if "min_points" in rule:
        if balance(session, Account(customer.program_id, customer.id)) < rule["min_points"]:
            return False
    return True


def count_events(session: Session, customer: Customer, event_type: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.customer_id == customer.id, Event.type == event_type)
        )
        or 0
    )
