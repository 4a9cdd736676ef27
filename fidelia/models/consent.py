from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from fidelia.kit.clock import now
from fidelia.models.base import Base, BigId, UTCDateTime


class Consent(Base):
    """Append-only history of a member's consents (sms, email, whatsapp, terms, gdpr): the
    latest row per kind is the current answer, with when it was given or withdrawn."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_customer_kind", "customer_id", "kind", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    kind: Mapped[str] = mapped_column(String(16))
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(40), default="api")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
