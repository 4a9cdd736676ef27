from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fidelia.kit.clock import now
from fidelia.models.base import Base, BigId, UTCDateTime


class LoyaltyPayment(Base):
    """Part of a bill paid with points or stored credit (the cashback account); cancelled
    once by its confirmation code, which gives the balance back."""

    __tablename__ = "loyalty_payments"
    __table_args__ = (UniqueConstraint("tenant_id", "confirmation_code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    kind: Mapped[str] = mapped_column(String(8))  # points | credit
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units paid
    units: Mapped[int] = mapped_column(BigInteger)  # points or credit taken from the account
    confirmation_code: Mapped[str] = mapped_column(String(24))
    reference: Mapped[str | None] = mapped_column(String(120))  # the transaction it paid
    status: Mapped[str] = mapped_column(String(12), default="done")  # done | cancelled
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
