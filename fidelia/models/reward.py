from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fidelia.kit.clock import now
from fidelia.models.base import Base, BigId, UTCDateTime


class Reward(Base):
    """A reward (promoción) a customer buys with points. ``reward_type``: custom (a gift),
    fixed (``value`` minor units off), percent (``value`` basis points), cashback, product.

    A product reward is a discount on one product the POS adds to the sale
    (``external_product_id``, the POS's own product id): ``product_discount_mode`` percent
    (``value`` basis points off), fixed (``value`` minor units off), final_price (the unit
    costs ``value`` minor units) or gift (free); at most ``product_max_units`` units."""

    __tablename__ = "rewards"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(1000), default="")
    points_required: Mapped[int] = mapped_column(Integer)
    reward_type: Mapped[str] = mapped_column(String(16), default="custom")
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    min_purchase: Mapped[int] = mapped_column(BigInteger, default=0)
    max_share_percent: Mapped[int | None] = mapped_column(Integer)
    cumulative: Mapped[bool] = mapped_column(Boolean, default=True)
    stock: Mapped[int | None] = mapped_column(Integer)
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    external_product_id: Mapped[str | None] = mapped_column(String(120))
    product_name: Mapped[str | None] = mapped_column(String(200))
    product_discount_mode: Mapped[str | None] = mapped_column(String(16))
    product_max_units: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
