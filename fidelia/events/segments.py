"""Segments: members picked by a rule over their events, tags and balance."""

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fidelia.kit.clock import now
from fidelia.kit.errors import InvalidInput
from fidelia.ledger.service import Account, balance
from fidelia.models import Customer, Event, Segment, Tenant

KEYS = {"event_type", "min_count", "within_days", "tag", "min_points"}


def create_segment(session: Session, tenant: Tenant, name: str, rule: dict[str, Any]) -> Segment:
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


def member_in(session: Session, segment: Segment, customer: Customer) -> bool:
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
