from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from fidelia.kit.clock import now
from fidelia.models.base import Base, BigId, UTCDateTime


class Redemption(Base):
    """A reward bought with points; its debit is the ledger entry (source 'redemption', id)."""

    __tablename__ = "redemptions"
    __table_args__ = (
        Index("ix_redemptions_tenant_customer", "tenant_id", "customer_id"),
        Index("uq_redemptions_tenant_original_key", "tenant_id", "original_key", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id"))
    points: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[int] = mapped_column(BigInteger, default=0)  # minor units, cashback etc.
    status: Mapped[str] = mapped_column(String(16), default="done")  # done | cancelled
    origin: Mapped[str] = mapped_column(String(16))  # door: pin | pdv | retail | rest
    external_code: Mapped[str] = mapped_column(String(40), unique=True)
    original_key: Mapped[str | None] = mapped_column(String(200))  # the POS's idempotency key
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
