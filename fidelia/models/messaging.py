from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fidelia.kit.clock import now
from fidelia.models.base import Base, BigId, UTCDateTime


class MessageTemplate(Base):
    """The WhatsApp template (approved by Meta) a merchant maps to an automatic message,
    sent outside the 24-hour window: its name, language and ordered body parameters."""

    __tablename__ = "message_templates"
    __table_args__ = (UniqueConstraint("tenant_id", "event", "channel"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    event: Mapped[str] = mapped_column(String(24))  # benefit_earned | voucher_issued | ...
    channel: Mapped[str] = mapped_column(String(16), default="whatsapp")
    name: Mapped[str] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(16))  # pt_BR, es, en_US ...
    params: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, onupdate=now)


class MessageLog(Base):
    """One automatic message decided for a customer: what, why (``key``, unique per merchant
    and event, so each happens once however many workers run), on which channel or why it
    was skipped. Marketing rows that were sent count against the frequency cap."""

    __tablename__ = "message_log"
    __table_args__ = (
        UniqueConstraint("tenant_id", "event", "key"),
        Index("ix_message_log_customer_time", "customer_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    event: Mapped[str] = mapped_column(String(24))
    key: Mapped[str] = mapped_column(String(120))
    marketing: Mapped[bool] = mapped_column(Boolean, default=False)
    channel: Mapped[str | None] = mapped_column(String(16))  # whatsapp | email | None: skipped
    form: Mapped[str | None] = mapped_column(String(16))  # text | template | email
    skipped: Mapped[str | None] = mapped_column(String(40))  # why nothing was sent
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when it may go out
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
