from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fidelia.kit.clock import now
from fidelia.models.base import Base, BigId, UTCDateTime


class Balance(Base):
    """The running total of one account; changed only together with a ledger entry,
    by a conditional UPDATE, so concurrent debits cannot both spend the same points."""

    __tablename__ = "balances"

    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), primary_key=True)
    account: Mapped[str] = mapped_column(String(16), primary_key=True)  # points | cashback
    amount: Mapped[int] = mapped_column(BigInteger, default=0)


class LedgerEntry(Base):
    """Append-only. Earn entries are lots (``remaining``, ``expires_at``), spent
    soonest-to-expire first. The source reference is unique: nothing applies twice."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("program_id", "account", "source_type", "source_id", "kind"),
        Index("ix_ledger_entries_customer", "program_id", "customer_id", "account"),
        Index("ix_ledger_entries_tenant_customer_time", "tenant_id", "customer_id", "created_at"),
        # The expiry job's and the reminders' scan: lots by when they expire.
        Index("ix_ledger_entries_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    account: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))  # earn | redeem | reverse | expire | adjust
    amount: Mapped[int] = mapped_column(BigInteger)  # signed
    balance_after: Mapped[int] = mapped_column(BigInteger)
    source_type: Mapped[str] = mapped_column(String(24))
    source_id: Mapped[str] = mapped_column(String(120))
    remaining: Mapped[int | None] = mapped_column(BigInteger)  # earn lots only
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
