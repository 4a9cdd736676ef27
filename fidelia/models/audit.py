from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from fidelia.kit.clock import now
from fidelia.models.base import Base, BigId, UTCDateTime


class AuditEntry(Base):
    """One change made by a person (panel or CLI): who, when, what, before and after.
    Append-only: the database refuses UPDATE and DELETE on this table (triggers)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_tenant_at", "tenant_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"))
    actor_kind: Mapped[str] = mapped_column(String(16))  # user | cli | system
    actor_id: Mapped[int | None] = mapped_column(BigId)  # the user, for kind "user"
    actor_label: Mapped[str] = mapped_column(String(200))  # e-mail, or os user@host
    action: Mapped[str] = mapped_column(String(64))  # e.g. setting.change, reward.create
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
