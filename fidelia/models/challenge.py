from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fidelia.kit.clock import now
from fidelia.models.base import Base, BigId, UTCDateTime


class Challenge(Base):
    """A 6-digit identity code sent by SMS and/or e-mail, stored as a keyed digest;
    single-use, 60 minutes, at most 5 wrong tries."""

    __tablename__ = "challenges"
    __table_args__ = (Index("ix_challenges_lookup", "tenant_id", "customer_id", "transaction_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    transaction_id: Mapped[str] = mapped_column(String(120))
    code_digest: Mapped[str] = mapped_column(String(64))
    sent_sms: Mapped[bool] = mapped_column(Boolean, default=False)
    sent_email: Mapped[bool] = mapped_column(Boolean, default=False)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # by a redemption
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
