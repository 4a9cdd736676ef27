"""Bling ERP connector (seed 003): a merchant's connection, the single-use OAuth states,
the webhook events stored before they are processed, and import jobs."""

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fidelia.kit.clock import now
from fidelia.models.base import Base, BigId, UTCDateTime


class BlingConnection(Base):
    """One merchant's link to one Bling company. Tokens are stored encrypted (MultiFernet);
    ``token_version`` grows on every refresh, so a process that waited for the row lock can
    tell another one already refreshed."""

    __tablename__ = "bling_connections"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), unique=True)
    # Bling's company id (webhooks carry it as companyId); freed on disconnect.
    company_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    company_name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="connected")  # | broken | disconnected
    access_token: Mapped[str | None] = mapped_column(Text)  # encrypted
    refresh_token: Mapped[str | None] = mapped_column(Text)  # encrypted
    access_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    # The merchant's choice of Bling order situations (ids): those that mean "sale done"
    # earn; those that mean "cancelled" reverse what was earned.
    earning_situations: Mapped[list[Any]] = mapped_column(JSON, default=list)
    cancelled_situations: Mapped[list[Any]] = mapped_column(JSON, default=list)
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Reconciliation: orders changed since this instant have been looked at.
    reconciled_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, onupdate=now)


class BlingOAuthState(Base):
    """A single-use OAuth ``state``, bound to the merchant and to the browser that started
    the connection (digests only: neither value is readable from the database)."""

    __tablename__ = "bling_oauth_states"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    state_digest: Mapped[str] = mapped_column(String(64), unique=True)
    binding_digest: Mapped[str] = mapped_column(String(64), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class BlingEvent(Base):
    """A webhook delivery, stored (deduplicated on Bling's ``eventId``) before it is
    processed by the worker; failures back off and stay visible."""

    __tablename__ = "bling_events"
    __table_args__ = (Index("ix_bling_events_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), unique=True)
    company_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"))
    # pending | done | ignored | failed
    status: Mapped[str] = mapped_column(String(8), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BlingImport(Base):
    """Contacts, then sales, since a date: paged, with the next page stored in the same
    transaction as the page's effects (a crash resumes there). ``runner`` is who holds
    the lease (host:pid)."""

    __tablename__ = "bling_imports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    since: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(8), default="pending")  # running | done | failed
    phase: Mapped[str] = mapped_column(String(8), default="contacts")  # | orders | done
    page: Mapped[int] = mapped_column(Integer, default=1)  # next page of the phase
    contacts: Mapped[int] = mapped_column(Integer, default=0)  # seen so far
    orders: Mapped[int] = mapped_column(Integer, default=0)
    earned: Mapped[int] = mapped_column(Integer, default=0)  # orders that earned in this import
    runner: Mapped[str | None] = mapped_column(String(120))
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, onupdate=now)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
