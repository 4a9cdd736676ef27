from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from fidelia.models.base import Base, UTCDateTime


class WorkerHeartbeat(Base):
    """When each outbox worker (``host:pid``) last finished a round (fidelia/ops/heartbeat.py):
    /readyz and the metrics tell from it whether anyone is delivering."""

    __tablename__ = "worker_heartbeats"

    worker: Mapped[str] = mapped_column(String(200), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
