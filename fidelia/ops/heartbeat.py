"""The worker heartbeat: each outbox worker stamps ``worker_heartbeats`` as it goes round.

``beat`` is called once per round of the run loop (fidelia/messaging/worker.py) and writes
at most every ``INTERVAL`` seconds per process, so an idle worker polling twice a second
costs one tiny upsert every few seconds. /readyz says "not ready" when the newest stamp is
older than FIDELIA_WORKER_STALE_SECONDS (nobody is delivering); the metrics give each
worker's age. Rows of workers gone for a day are pruned.
"""

import os
import socket
import threading
import time
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from fidelia.kit.clock import now
from fidelia.kit.db import Database, insert_for
from fidelia.models import WorkerHeartbeat

INTERVAL = 5.0
KEEP = timedelta(days=1)

_lock = threading.Lock()
_last: dict[tuple[str, str], float] = {}  # (database, worker) -> last write


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def beat(db: Database, worker: str | None = None, *, force: bool = False) -> bool:
    """Stamp this worker's row (at most every INTERVAL seconds); True when it wrote."""
    name = worker or worker_name()
    key = (db.url, name)  # a process may serve several databases (tests do): one each
    clock = time.monotonic()
    with _lock:
        if not force and clock - _last.get(key, -INTERVAL) < INTERVAL:
            return False
        _last[key] = clock
    at = now()
    with db.session() as session:
        insert = insert_for(session)
        session.execute(
            insert(WorkerHeartbeat)
            .values(worker=name, at=at)
            .on_conflict_do_update(index_elements=["worker"], set_={"at": at})
        )
        session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.at < at - KEEP))
    return True


def ages(session: Session, at: datetime, within: timedelta = KEEP) -> dict[str, float]:
    """Seconds since each worker's last stamp, for workers seen ``within``."""
    rows = session.execute(
        select(WorkerHeartbeat.worker, WorkerHeartbeat.at).where(WorkerHeartbeat.at > at - within)
    ).all()
    return {worker: max((at - stamp).total_seconds(), 0.0) for worker, stamp in rows}


def newest(session: Session) -> datetime | None:
    """When any worker last went round (None: never)."""
    return session.scalar(select(func.max(WorkerHeartbeat.at)))


def newest_age(session: Session, at: datetime) -> float | None:
    """Seconds since any worker's last stamp; None when no worker ever ran."""
    newest = session.scalar(select(func.max(WorkerHeartbeat.at)))
    return None if newest is None else max((at - newest).total_seconds(), 0.0)
