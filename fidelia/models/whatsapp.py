from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from fidelia.kit.clock import now
from fidelia.models.base import Base, BigId, UTCDateTime


class WhatsAppContact(Base):
    """The bot's contact book (platform-wide: the bot number is shared by merchants).
    Keyed on whichever identity Meta sends: phone number, business-scoped user id, or both."""

    __tablename__ = "whatsapp_contacts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    wa_number: Mapped[str | None] = mapped_column(String(20), unique=True)
    wa_user_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default="new")  # new | awaiting_name | ready
    last_tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, onupdate=now)


class InboundMessage(Base):
    """An inbound WhatsApp message, stored as it arrives (deduplicated on Meta's id) and
    processed later by the worker: ``pending`` until then, ``done`` once its effect (credit,
    reply) committed in the same transaction that marks it (``failed`` after too many tries).
    Store first, then process: a 2xx to Meta means the message is in this table."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        Index(
            "ix_inbound_messages_pending",
            "received_at",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )

    message_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("whatsapp_contacts.id"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    status: Mapped[str] = mapped_column(String(8), default="pending", server_default="done")
    wa_number: Mapped[str | None] = mapped_column(String(20))
    wa_user_id: Mapped[str | None] = mapped_column(String(64))
    bot_number: Mapped[str] = mapped_column(String(20), default="", server_default="")
    profile_name: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="", server_default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PinFailure(Base):
    """A failed PIN attempt by a sender, for the per-sender limit (kept in the database so
    every web process sees the same count)."""

    __tablename__ = "pin_failures"
    __table_args__ = (Index("ix_pin_failures_namespace_created", "namespace", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("whatsapp_contacts.id"), index=True)
    # The bot number the PIN was sent to: failures are also budgeted per namespace.
    namespace: Mapped[str] = mapped_column(String(20), default="", server_default="")
    attempted: Mapped[str] = mapped_column(String(32))
    failures: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, index=True)
