from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, validates

from fidelia.kit.clock import now
from fidelia.kit.names import fold
from fidelia.models.base import Base, BigId, UTCDateTime

NAME_KEY = String(200).with_variant(String(200, collation="C"), "postgresql")


class Customer(Base):
    """A person in one program, known by one or more identifiers. ``name_key`` is the name
    folded (``kit/names.fold``), kept in step by the ORM, indexed with the program for the
    panel's prefix search; binary collation ("C" on PostgreSQL) so a range scan is a prefix."""

    __tablename__ = "customers"
    __table_args__ = (
        Index("ix_customers_program_name_key", "program_id", "name_key"),
        # The panel's list, newest first, of one program among many (no scan of others').
        Index("ix_customers_program_newest", "program_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))  # where they joined
    name: Mapped[str | None] = mapped_column(String(200))
    name_key: Mapped[str | None] = mapped_column(NAME_KEY)
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    birthday: Mapped[date | None] = mapped_column(Date)
    password_hash: Mapped[str | None] = mapped_column(String(200))  # argon2, REST v2 only
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # personal data removed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    @validates("name")
    def _fold_name(self, _key: str, value: str | None) -> str | None:
        self.name_key = fold(value)
        return value


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
