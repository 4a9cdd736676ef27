from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fidelia.kit.clock import now
from fidelia.models.base import Base, BigId, UTCDateTime


class OutboxMessage(Base):
    """A message to the outside world, written in the transaction of the state it reports.
    The worker leases due rows (``locked_until``), delivers, and records the outcome."""

    __tablename__ = "outbox"
    __table_args__ = (
        # The worker's claim: WHERE status, next_attempt_at <= ... ORDER BY next_attempt_at,
        # id LIMIT n reads n rows off this index, whatever the backlog (messaging/worker.py).
        Index("ix_outbox_claim", "status", "next_attempt_at", "id"),
        Index("ix_outbox_tenant", "tenant_id", "id"),  # the panel's deliveries
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"))
    channel: Mapped[str] = mapped_column(String(16))  # whatsapp | sms | email | webhook
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(8), default="pending")  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
