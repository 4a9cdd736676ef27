from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fidelia.models.base import Base, BigId, UTCDateTime


class DailyRollup(Base):
    """One merchant's figures for one day (its own time zone), kept up to date by the
    worker from the ledger, PINs, customers and redemptions (rollups/service.py); the
    dashboard reads these, never the ledger. ``*_net`` is every ledger movement of the
    day, so a program's liability is the sum of its rows' nets."""

    __tablename__ = "daily_rollups"
    __table_args__ = (Index("ix_daily_rollups_program", "program_id"),)

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    program_id: Mapped[int] = mapped_column(BigId)
    points_issued: Mapped[int] = mapped_column(BigInteger, default=0)
    points_redeemed: Mapped[int] = mapped_column(BigInteger, default=0)
    points_net: Mapped[int] = mapped_column(BigInteger, default=0)
    cashback_issued: Mapped[int] = mapped_column(BigInteger, default=0)
    cashback_redeemed: Mapped[int] = mapped_column(BigInteger, default=0)
    cashback_net: Mapped[int] = mapped_column(BigInteger, default=0)
    pins_issued: Mapped[int] = mapped_column(Integer, default=0)
    pins_activated: Mapped[int] = mapped_column(Integer, default=0)
    new_customers: Mapped[int] = mapped_column(Integer, default=0)
    redemptions: Mapped[int] = mapped_column(Integer, default=0)
    member_orders: Mapped[int] = mapped_column(Integer, default=0)
    member_sales: Mapped[int] = mapped_column(BigInteger, default=0)  # minor units


class CustomerDay(Base):
    """A customer active at a merchant on a day (a ledger movement), with the sales
    (activated PINs, completed orders) that earned: active customers and repeat purchases
    of any period are counted from these, not from the ledger."""

    __tablename__ = "rollup_customer_days"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    customer_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sales: Mapped[int] = mapped_column(Integer, default=0)


class RewardDay(Base):
    """Redemptions of one reward at a merchant on a day (top rewards)."""

    __tablename__ = "rollup_reward_days"

    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    reward_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    redemptions: Mapped[int] = mapped_column(Integer, default=0)
    points: Mapped[int] = mapped_column(BigInteger, default=0)


class Marker(Base):
    """A named number and moment: the rollups' watermarks (the last id of each source
    folded in) and the worker's heartbeat."""

    __tablename__ = "markers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger, default=0)
    at: Mapped[datetime | None] = mapped_column(UTCDateTime)
