from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fidelia.kit.clock import now
from fidelia.models.base import Base, BigId, UTCDateTime


class Tenant(Base):
    """A merchant (comercio) and its settings."""

    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    locale: Mapped[str] = mapped_column(String(16), default="es")
    min_purchase: Mapped[int] = mapped_column(Integer, default=0)  # minor units
    pin_lifetime_minutes: Mapped[int] = mapped_column(Integer, default=30)
    points_per_pin: Mapped[int] = mapped_column(Integer, default=1)
    verification_window_minutes: Mapped[int] = mapped_column(Integer, default=30)
    bot_number: Mapped[str | None] = mapped_column(String(20))  # own bot; else the platform's
    # Money-based earning (seed 001). Rates are integers so SQLite and PostgreSQL agree:
    # points per currency unit x 1000, point value in minor units x 1000, cashback in bp.
    earn_milli_points_per_unit: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    point_value_milli_minor: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cashback_basis_points: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    min_order_value: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    should_validate_customer: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default="0"
    )
    sandbox: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    cors_origins: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Birthday gifts (seed 002 assets): a voucher worth this much on the member's birthday.
    birthday_gift_value: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    birthday_gift_days: Mapped[int] = mapped_column(Integer, default=30, server_default="30")
    # Seed 002: what a /payment without a type pays with (POINTS | CREDIT).
    retail_default_payment_type: Mapped[str] = mapped_column(
        String(8), default="POINTS", server_default="POINTS"
    )
    # Issue 13: validity of earned points/cashback (0: never) and the automatic messages.
    points_validity_days: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    expiry_reminder_days: Mapped[int] = mapped_column(Integer, default=7, server_default="7")
    come_back_days: Mapped[int] = mapped_column(Integer, default=30, server_default="30")
    message_cap: Mapped[int] = mapped_column(Integer, default=2, server_default="2")
    message_cap_days: Mapped[int] = mapped_column(Integer, default=7, server_default="7")
    message_benefit_earned: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    message_voucher_issued: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    message_points_expiring: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default="0"
    )
    message_come_back: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # Set by an operator: every door refuses the merchant's keys and tokens, its panel is
    # read-only (operator console); None is active.
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
