from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from fidelia.kit.clock import now
from fidelia.models.base import Base, BigId, UTCDateTime


class Adjustment(Base):
    """A manual credit or debit of points or cashback made by a person (the panel's owner,
    or the CLI): who, why, how much. Its ledger entry has kind 'adjust' and source
    ('adjustment', id). The reason is free text about a customer: erasure blanks it."""

    __tablename__ = "adjustments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    account: Mapped[str] = mapped_column(String(16))  # points | cashback
    amount: Mapped[int] = mapped_column(BigInteger)  # signed: + credit, - debit
    reason: Mapped[str] = mapped_column(String(300))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: the CLI
    actor_label: Mapped[str] = mapped_column(String(200))  # e-mail, or os user@host
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
