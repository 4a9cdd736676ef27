from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, true
from sqlalchemy.orm import Mapped, mapped_column

from fidelia.kit.clock import now
from fidelia.models.base import Base, BigId, UTCDateTime


class Event(Base):
    """A behavioural event (visit, signup, referral, review, or a custom type)."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_customer_type_time", "customer_id", "type", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    type: Mapped[str] = mapped_column(String(40))
    sub_type: Mapped[str | None] = mapped_column(String(40))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    points: Mapped[int] = mapped_column(Integer, default=0)  # what earning rules gave
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class EarningRule(Base):
    """'5 points per visit, at most one a day': points for an event type, capped per local day."""

    __tablename__ = "earning_rules"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    event_type: Mapped[str] = mapped_column(String(40))
    points: Mapped[int] = mapped_column(Integer)
    max_per_day: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class Segment(Base):
    """A group of members defined by a rule over their events, tags and balances:
    {"event_type": "visit", "min_count": 3, "within_days": 30}, {"tag": "vip"},
    {"min_points": 100}; every key given must hold."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    rule: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class Deal(Base):
    """An automatic promotion: applies to a transaction when its member is in ``segment_id``
    (or anyone, when empty) and the basket meets the conditions."""

    __tablename__ = "deals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id"))
    min_total: Mapped[int] = mapped_column(Integer, default=0)  # minor units
    item_code: Mapped[str | None] = mapped_column(String(80))
    department_code: Mapped[str | None] = mapped_column(String(80))
    discount_type: Mapped[str] = mapped_column(String(16))  # percent | fixed | points
    value: Mapped[int] = mapped_column(Integer)  # basis points | minor units | bonus points
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
