from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from fidelia.kit.clock import now
from fidelia.models.base import Base, BigId, UTCDateTime


class AccessToken(Base):
    """A Bearer token of the REST v2 door, issued for an API key; stored as a digest, dies
    with its expiry, its own revocation, or the revocation of its API key."""

    __tablename__ = "access_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
