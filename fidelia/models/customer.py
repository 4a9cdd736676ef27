from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fidelia.kit.clock import now
from fidelia.models.base import Base, BigId, UTCDateTime


class Customer(Base):
    """A person in one program, known by one or more identifiers."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))  # where they joined
    name: Mapped[str | None] = mapped_column(String(200))
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    birthday: Mapped[date | None] = mapped_column(Date)
    password_hash: Mapped[str | None] = mapped_column(String(200))  # argon2, REST v2 only
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # personal data removed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class CustomerIdentifier(Base):
    """'whatsapp' and 'phone' (E.164), 'wa_user' (business-scoped user id), 'cpf', 'cnpj',
    'email', 'external' (the integrator's id), 'membership' (a membership key)."""

    __tablename__ = "customer_identifiers"
    __table_args__ = (
        UniqueConstraint("program_id", "kind", "value"),
        Index("ix_customer_identifiers_kind_value", "kind", "value"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(200))
