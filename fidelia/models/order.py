from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fidelia.kit.clock import now
from fidelia.models.base import Base, BigId, UTCDateTime

# Seed 001's order states.
INITIAL, PENDING, COMPLETE, CANCELLED, IGNORED = 0, 1, 2, 3, 4


class Order(Base):
    """A sale reported by a POS, upserted by its ``original_id``. Earns when complete;
    ``earned_*`` and ``reversed_*`` make refunds exact and never double."""

    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("tenant_id", "original_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    original_id: Mapped[str] = mapped_column(String(120))
    state: Mapped[int] = mapped_column(Integer, default=INITIAL)
    status_text: Mapped[str | None] = mapped_column(String(60))
    total: Mapped[int] = mapped_column(BigInteger)  # minor units, paid, without discounts
    coupon: Mapped[str | None] = mapped_column(String(120))
    earned_points: Mapped[int] = mapped_column(BigInteger, default=0)
    earned_cashback: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded: Mapped[int] = mapped_column(BigInteger, default=0)  # minor units
    reversed_points: Mapped[int] = mapped_column(BigInteger, default=0)
    reversed_cashback: Mapped[int] = mapped_column(BigInteger, default=0)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # products, payments...
    placed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, onupdate=now)


class OrderRefund(Base):
    """One partial cancellation, idempotent on the POS's ``CancelKey``."""

    __tablename__ = "order_refunds"
    __table_args__ = (UniqueConstraint("order_id", "cancel_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    cancel_key: Mapped[str] = mapped_column(String(200))
    value: Mapped[int] = mapped_column(BigInteger)
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    cashback: Mapped[int] = mapped_column(BigInteger, default=0)
    products: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
