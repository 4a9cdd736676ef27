from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fidelia.kit.clock import now
from fidelia.models.base import Base, BigId, UTCDateTime


class VoucherRule(Base):
    """A voucher earned by a sale: every ``threshold`` of spend (minor units, kind
    ``spend``) or every ``threshold`` purchases (kind ``purchases``), counted from the
    rule's creation; ``repeat`` false gives it only at the first threshold."""

    __tablename__ = "voucher_rules"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # spend | purchases
    threshold: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[int] = mapped_column(BigInteger, default=0)  # the voucher's, minor units
    benefit: Mapped[str] = mapped_column(String(300), default="")
    valid_days: Mapped[int] = mapped_column(Integer, default=30)  # 0: no end
    repeat: Mapped[bool] = mapped_column(Boolean, default=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
