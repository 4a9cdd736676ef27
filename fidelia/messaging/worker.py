"""The outbox worker: lease due rows, deliver them, record the outcome.

A lease (``locked_until``) is taken in a short transaction, so no database lock is held
while talking to the outside world (on SQLite that would stop every writer). Rows are
claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers share the load;
a worker that dies leaves its lease to expire and the row is retried. Delivery is at least
once; failures back off exponentially and stay visible (``status='failed'``, ``last_error``).
"""

import logging
import random
import re
import threading
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import or_, select

from fidelia.kit.clock import now
from fidelia.kit.db import Database
from fidelia.ledger import expiry
from fidelia.messaging import automations, intake, outbox
from fidelia.messaging.bot import Bot
from fidelia.messaging.channels import Permanent, Sender
from fidelia.messaging.outbox import LEASE
from fidelia.models import OutboxMessage
from fidelia.ops import heartbeat
from fidelia.pins.service import expire_stale
from fidelia.rollups import service as rollups
from fidelia.vouchers import birthdays

log = logging.getLogger("fidelia.worker")


REDACTED = "[redacted]"
_CODE = re.compile(r"\d{4,}")


def scrub(error: str, payload: dict[str, Any]) -> str:
    """An error about a secret message without the secret: a gateway that echoes the text in
    its error (or an exception that quotes the request) must not put the code in last_error
    or the log."""
    if not payload.get("secret"):
        return error
    return _CODE.sub(REDACTED, error)


class Jobs(Protocol):
    """Work a connector adds to the worker (connectors/bling/jobs.py)."""

    def run_once(self) -> int: ...

    def sweep(self) -> None: ...


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(2**attempts, 3600) * random.uniform(0.8, 1.2))


class Worker:
    def __init__(
        self,
        db: Database,
        senders: dict[str, Sender],
        batch: int = 20,
        max_attempts: int = 12,
        lease: timedelta = LEASE,
        jobs: "Jobs | None" = None,
        bot: "Bot | None" = None,
        inbound_batch: int = 50,
    ) -> None:
        self.db = db
        self.jobs = jobs
        self.bot = bot  # processes stored inbound WhatsApp messages (messaging/intake.py)
        self.inbound_batch = inbound_batch
        self.senders = senders
        self.batch = batch
        self.max_attempts = max_attempts
        self.lease = lease
        self._stop = threading.Event()

    def claim(self) -> list[OutboxMessage]:
        with self.db.session() as session:
            at = now()
            query = (
                select(OutboxMessage)
                .where(
                    OutboxMessage.status == "pending",
                    OutboxMessage.next_attempt_at <= at,
                    or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until < at),
                )
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                .limit(self.batch)
            )
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            rows = list(session.scalars(query))
            for row in rows:
                row.locked_until = at + self.lease
            return rows

    def deliver(self, row: OutboxMessage) -> str:
        sender = self.senders.get(row.channel)
        error: str | None = None
        permanent = False
        sent_as: str | None = None
        reason: str | None = None
        try:
            if sender is None:
                raise Permanent(f"no sender for channel {row.channel!r}")
            sent_as = sender(row.payload)
        except Permanent as exc:
            error, permanent, reason = str(exc), True, exc.reason
        except Exception as exc:  # any transport failure is retried
            error = f"{type(exc).__name__}: {exc}"
        with self.db.session() as session:
            fresh = session.get_one(OutboxMessage, row.id)
            fresh.attempts += 1
            fresh.locked_until = None
            if error is None:
                fresh.status, fresh.sent_at, fresh.last_error = "sent", now(), None
                if sent_as is not None:  # the 131047 fallback: the template went, not the text
                    fresh.payload = {**fresh.payload, "sent_as": sent_as}
                    automations.delivered_as(session, row.id, form=sent_as)
            else:
                error = scrub(error, fresh.payload)
                fresh.last_error = error[:2000]
                if permanent or fresh.attempts >= self.max_attempts:
                    fresh.status = "failed"
                    log.warning("outbox %s failed for good: %s", row.id, error)
                    if reason is not None:
                        automations.delivered_as(session, row.id, skipped=reason)
                else:
                    fresh.next_attempt_at = now() + backoff(fresh.attempts)
            if fresh.status != "pending" and fresh.payload.get("secret"):
                # A code, delivered or failed for good: keep no readable copy either way.
                fresh.payload = {**fresh.payload, "text": f"{REDACTED} ({fresh.status})"}
            return fresh.status

    def run_once(self) -> int:
        """Process a batch of stored inbound messages, then deliver what is due; returns how
        much was done (0: nothing waiting)."""
        done = 0
        if self.bot is not None:
            done += intake.process_batch(self.db, self.bot, self.inbound_batch)
        rows = self.claim()
        for row in rows:
            self.deliver(row)
        return done + len(rows) + (self.jobs.run_once() if self.jobs is not None else 0)

    def drain(self, rounds: int = 50) -> None:
        """Deliver until nothing is due (tests and the CLI)."""
        for _ in range(rounds):
            if self.run_once() == 0:
                return

    def sweep(self) -> None:
        """Housekeeping: expire stale PINs, give today's birthday gifts, expire points past
        their validity, send reminders and come-back messages, fold new rows into the
        dashboard's rollups, record the heartbeat (all idempotent)."""
        heartbeat.beat(self.db)
        with self.db.session() as session:
            expire_stale(session)
        birthdays.run(self.db)
        expiry.run(self.db)
        automations.run(self.db)
        if self.jobs is not None:
            self.jobs.sweep()
        rollups.update(self.db)

    def _listen(self) -> None:
        """PostgreSQL: wake this worker when another process stores work (NOTIFY)."""
        import psycopg

        url = self.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {intake.CHANNEL}")
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            outbox.wakeup.set()
            except Exception:
                log.exception("LISTEN connection lost; reconnecting")
                self._stop.wait(1.0)

    def run_forever(self, poll_seconds: float = 0.5) -> None:
        if not self.db.is_sqlite:
            threading.Thread(target=self._listen, name="worker-listen", daemon=True).start()
        sweeps = 0
        while not self._stop.is_set():
            try:
                busy = self.run_once()
                heartbeat.beat(self.db)
                sweeps += 1
                if sweeps % 120 == 1:  # at start, then about once a minute
                    self.sweep()
            except Exception:
                log.exception("outbox worker round failed")
                busy = 0
            if not busy:
                outbox.wakeup.wait(poll_seconds)
                outbox.wakeup.clear()

    def start_thread(self, poll_seconds: float = 0.5) -> threading.Thread:
        thread = threading.Thread(
            target=self.run_forever, args=(poll_seconds,), name="outbox-worker", daemon=True
        )
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
        outbox.wakeup.set()
