from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from fidelia.kit.clock import now
from fidelia.models.base import Base, BigId, UTCDateTime


class Pin(Base):
    """A single-use code for one sale. ``namespace`` is the bot number the customer sends
    it to; the database keeps it unique among the OPEN pins of that namespace."""

    __tablename__ = "pins"
    __table_args__ = (
        Index(
            "uq_pins_open_code",
            "namespace",
            "code",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_pins_namespace_status_expires", "namespace", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    namespace: Mapped[str] = mapped_column(String(20))
    code: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(8), default="open")  # open | used | expired
    amount: Mapped[int | None] = mapped_column(BigInteger)  # invoice total, minor units
    points: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
