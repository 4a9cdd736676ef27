from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fidelia.kit.clock import now
from fidelia.models.base import Base, BigId, UTCDateTime


class Voucher(Base):
    """An asset: a code issued to a customer or a campaign, worth ``value`` (minor units)
    or a described ``benefit``, valid in a window, usable ``max_uses`` times. Uses are
    taken with a conditional update, so a code never validates more often than allowed."""

    __tablename__ = "vouchers"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        # One birthday gift per customer and year ("birthday-2026"), even with two schedulers.
        Index("uq_vouchers_customer_campaign", "customer_id", "campaign", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    code: Mapped[str] = mapped_column(String(40))
    campaign: Mapped[str | None] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(16), default="voucher")  # voucher | birthday
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    benefit: Mapped[str] = mapped_column(String(300), default="")
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    max_uses: Mapped[int] = mapped_column(Integer, default=1)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(12), default="active")  # active | cancelled
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class VoucherUse(Base):
    """One validation of a voucher: at the counter, in a transaction, or over the API."""

    __tablename__ = "voucher_uses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    voucher_id: Mapped[int] = mapped_column(ForeignKey("vouchers.id"), index=True)
    reference: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
