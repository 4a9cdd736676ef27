from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fidelia.kit.clock import now
from fidelia.models.base import Base, BigId, UTCDateTime


class SimulatorMessage(Base):
    """A line of the built-in WhatsApp simulator's chat (development only)."""

    __tablename__ = "simulator_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    wa_number: Mapped[str] = mapped_column(String(20), index=True)
    direction: Mapped[str] = mapped_column(String(4))  # in (customer->bot) | out
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
