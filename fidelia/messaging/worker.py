"""The outbox worker: lease due rows, deliver them, record the outcomes.

A lease (``locked_until``) is taken in a short transaction, so no database lock is held
while talking to the outside world (on SQLite that would stop every writer). Rows are
claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers share the load;
a worker that dies leaves its lease to expire and the row is retried. Delivery is at least
once; failures back off exponentially and stay visible (``status='failed'``, ``last_error``).

The outcomes of a batch are recorded together, in one transaction after its last delivery
(issue 14: a transaction per reply was most of the worker's time). The duplicate-send
window after a crash is therefore one batch, precisely: the messages handed to a sender
since the last record (at most ``batch``, 20 by default) are sent again, once their lease
runs out, by whichever worker claims them next; nothing that was recorded is sent again.
To keep it at that, a batch whose deliveries have taken half the lease is recorded at that
point and the leases of its rows not yet delivered are renewed in the same transaction, so
no lease runs out (and no other worker takes a row) while its outcome waits in memory: a
delivery (the bundled senders time out after 10 s) starts with at least half the lease left.
A stop in the middle of a batch (Ctrl-C) records what went before it ends.
"""

import logging
import random
import re
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple, Protocol, cast

from sqlalchemy import Integer, Table, Update, bindparam, literal_column, or_, select, update

from fidelia.kit import driver
from fidelia.kit.clock import now
from fidelia.kit.db import Database, planned_now
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
# Woken from idle, the worker lets work gather this long before it takes a batch: a batch
# costs about the same for one message as for ten, and one message a round (each webhook
# wakes it) cost three times the CPU per credit, on the cores the webhooks need. A reply
# waits this much longer (its target: 100 ms at p99).
GATHER_SECONDS = 0.02
# Under load the rounds never go idle, and each took what came in during the one before it:
# batches of five to ten, whose fixed cost per statement made a credit cost twice what it
# does at 50 (issue 14, BENCHMARKS.md). A round that found less than a full batch is
# therefore followed by the next no sooner than this after it began: the work of one
# ROUND_SECONDS goes in one batch. A full batch (a backlog) is followed at once. A message
# waits at most this much longer (the reply's target: 100 ms at p99).
ROUND_SECONDS = 0.02
# The housekeeping's period (``Worker.sweep``: PIN expiry, birthdays, point expiry,
# automatic messages, the rollups), whatever the load: by rounds, it went ten times as often
# under load as when idle.
SWEEP_SECONDS = 60.0
# The connector's jobs (``Jobs.run_once``: due Bling events, a page of an import), when they
# last found nothing, go again at most this often in ``run_forever``: they cost ~0.9 ms of
# the worker's CPU and ~0.2 ms of PostgreSQL's even when there is nothing to do, and under
# a load of webhooks the rounds come a hundred or more times a second. An event stored in
# between waits for the next round after it (the rounds' poll: at most ``poll_seconds``).
JOBS_SECONDS = 0.1
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


_OUTBOX = cast(Table, OutboxMessage.__table__)


class Claimed(NamedTuple):
    """A row this worker leased, as the claim read it (nobody else touches it while leased)."""

    id: int
    channel: str
    payload: dict[str, Any]
    attempts: int
    next_attempt_at: datetime


class Outcome(NamedTuple):
    """What a delivery found, to be recorded with the rest of its batch."""

    id: int
    status: str  # sent | pending (retried later) | failed
    payload: dict[str, Any] | None  # the payload to store instead (None: unchanged, sent)
    last_error: str | None
    next_attempt_at: datetime  # the retry's time; the claimed one when not retried
    form: str | None  # the 131047 fallback: the template went, not the text
    skipped: str | None  # why an automatic message did not go after all


# The claim, one statement: lease the due rows and return them. On PostgreSQL the rows
# another worker is claiming right now are skipped, not waited for (``SKIP LOCKED``).
_DUE = (
    select(_OUTBOX.c.id)
    .where(
        _OUTBOX.c.status == "pending",
        _OUTBOX.c.next_attempt_at <= bindparam("at"),
        or_(_OUTBOX.c.locked_until.is_(None), _OUTBOX.c.locked_until < bindparam("at")),
    )
    .order_by(_OUTBOX.c.next_attempt_at, _OUTBOX.c.id)
)
_CLAIMED = (
    _OUTBOX.c.id,
    _OUTBOX.c.channel,
    _OUTBOX.c.payload,
    _OUTBOX.c.attempts,
    _OUTBOX.c.next_attempt_at,
)


@lru_cache(maxsize=8)  # a batch size or two a process; each statement kept (``driver``)
def _claim_of(postgres: bool, batch: int) -> Update:
    """The claim of ``batch`` rows. The batch is in the statement's text, not a parameter:
    PostgreSQL plans ``LIMIT $n`` for a tenth of the table, and joined the claimed ids back
    with a scan of the whole outbox (BENCHMARKS.md)."""
    due = _DUE.limit(literal_column(str(int(batch)), Integer))
    if postgres:
        due = due.with_for_update(skip_locked=True)
    return (
        update(_OUTBOX)
        .where(_OUTBOX.c.id.in_(due.scalar_subquery()))
        .values(locked_until=bindparam("until"))
        .returning(*_CLAIMED)
    )


# The usual outcome, for the whole batch at once: sent, payload as it was.
_SENT = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)))
    .values(
        status="sent",
        attempts=_OUTBOX.c.attempts + 1,
        locked_until=None,
        sent_at=bindparam("at"),
        last_error=None,
    )
)
# Every other outcome, one row each (one executemany).
_OUTCOME = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("row_id"))
    .values(
        status=bindparam("new_status"),
        attempts=_OUTBOX.c.attempts + 1,
        locked_until=None,
        sent_at=bindparam("new_sent_at"),
        last_error=bindparam("error"),
        next_attempt_at=bindparam("next_at"),
        payload=bindparam("new_payload", type_=_OUTBOX.c.payload.type),
    )
)
_RENEW = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)))
    .values(locked_until=bindparam("until"))
)


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
        self._due = threading.Event()  # wakes the deliveries' thread (run_forever)

    def claim(self) -> list[Claimed]:
        """Lease up to ``batch`` due rows, oldest first."""
        with self.db.session() as session, planned_now(session):
            at = now()
            found = driver.execute(
                session,
                _claim_of(not self.db.is_sqlite, self.batch),
                {"at": at, "until": at + self.lease},
            )
            rows = [Claimed(*row) for row in found]
        return sorted(rows, key=lambda row: (row.next_attempt_at, row.id))

    def deliver(self, row: Claimed) -> str:
        """Deliver one claimed row and record its outcome at once; returns its status."""
        return self.deliver_batch([row])[0]

    def deliver_batch(self, rows: Sequence[Claimed]) -> list[str]:
        """Deliver claimed rows one after the other, then record every outcome in one
        transaction (before half the lease is gone: see the module's docstring); returns
        each row's status, in order. ``sent_at`` is when the outcome was recorded."""
        statuses: list[str] = []
        waiting: list[Outcome] = []
        deadline = time.monotonic() + self.lease.total_seconds() / 2
        try:
            for i, row in enumerate(rows):
                if waiting and time.monotonic() >= deadline:
                    done, waiting = waiting, []
                    self._record(done, renew=[r.id for r in rows[i:]])
                    deadline = time.monotonic() + self.lease.total_seconds() / 2
                outcome = self._send(row)
                waiting.append(outcome)
                statuses.append(outcome.status)
        finally:  # also when stopped in the middle (Ctrl-C): what went out is recorded
            self._record(waiting)
        return statuses

    def _send(self, row: Claimed) -> Outcome:
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
        payload = row.payload
        if error is None:
            status, next_at, skipped = "sent", None, None
            if sent_as is not None:  # the 131047 fallback: the template went, not the text
                payload = {**payload, "sent_as": sent_as}
        else:
            error = scrub(error, payload)
            skipped = None
            if permanent or row.attempts + 1 >= self.max_attempts:
                status, next_at = "failed", None
                log.warning("outbox %s failed for good: %s", row.id, error)
                skipped = reason
            else:
                status, next_at = "pending", now() + backoff(row.attempts + 1)
        if status != "pending" and payload.get("secret"):
            # A code, delivered or failed for good: keep no readable copy either way.
            payload = {**payload, "text": f"{REDACTED} ({status})"}
        return Outcome(
            id=row.id,
            status=status,
            payload=None if payload is row.payload and status == "sent" else payload,
            last_error=None if error is None else error[:2000],
            next_attempt_at=next_at or row.next_attempt_at,
            form=sent_as,
            skipped=skipped,
        )

    def _record(self, outcomes: Sequence[Outcome], renew: Sequence[int] = ()) -> None:
        """Record the outcomes (and renew the leases of ``renew``) in one transaction; if
        that fails, each outcome in a transaction of its own, so one row the database
        refuses does not lose the others' (it stays leased, and is sent again after it)."""
        try:
            self._write(outcomes, renew)
            return
        except Exception:
            log.exception("outbox: recording %d outcomes failed; one at a time", len(outcomes))
        for outcome in outcomes:
            try:
                self._write([outcome], ())
            except Exception:
                log.exception("outbox %s: outcome not recorded (sent again)", outcome.id)
        try:
            self._write([], renew)
        except Exception:
            log.exception("outbox: leases not renewed")

    def _write(self, outcomes: Sequence[Outcome], renew: Sequence[int]) -> None:
        if not outcomes and not renew:
            return
        with self.db.session() as session:
            at = now()
            sent = [o.id for o in outcomes if o.status == "sent" and o.payload is None]
            if sent:
                session.execute(_SENT, {"ids": sent, "at": at})
            others = [
                {
                    "row_id": o.id,
                    "new_status": o.status,
                    "new_sent_at": at if o.status == "sent" else None,
                    "error": o.last_error,
                    "next_at": o.next_attempt_at,
                    "new_payload": o.payload,
                }
                for o in outcomes
                if o.payload is not None
            ]
            if others:
                session.execute(_OUTCOME, others)
            for o in outcomes:
                if o.form is not None or o.skipped is not None:
                    automations.delivered_as(session, o.id, form=o.form, skipped=o.skipped)
            if renew:
                session.execute(_RENEW, {"ids": list(renew), "until": at + self.lease})

    def run_once(self) -> int:
        """Process a batch of stored inbound messages, then deliver what is due; returns how
        much was done (0: nothing waiting)."""
        done = self._take_inbound()
        done += self._deliver_due()
        return done + self._run_jobs()

    def _take_inbound(self) -> int:
        return intake.process_batch(self.db, self.bot, self.inbound_batch) if self.bot else 0

    def _deliver_due(self) -> int:
        rows = self.claim()
        self.deliver_batch(rows)
        return len(rows)

    def _run_jobs(self) -> int:
        return self.jobs.run_once() if self.jobs is not None else 0

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

    def _sweep_forever(self) -> None:
        """The housekeeping, at start and then every ``SWEEP_SECONDS``, in a thread of its
        own: a sweep folds a minute of ledger rows into the rollups, and in the rounds'
        thread it held up every message stored meanwhile (its replies' p99 at half of the
        peak was the sweep's length). What it does is safe beside the rounds, as it is
        beside other workers' rounds."""
        while not self._stop.is_set():
            try:
                self.sweep()
            except Exception:
                log.exception("worker sweep failed")
            self._stop.wait(SWEEP_SECONDS)

    def _deliver_forever(self, poll_seconds: float) -> None:
        """The deliveries, in a thread of their own: handing a batch of replies to WhatsApp
        takes a round trip each, and in the rounds' thread a stored message waited for the
        batch before its credit (p99 from stored to credited, at half of the peak, was
        rounds of deliveries long). Woken by the rounds' thread whenever it is woken or
        has queued replies; polls otherwise, for retries coming due. A claim that found
        less than a batch took everything due: the next waits to be woken (at once if the
        rounds queued more meanwhile), not a claim that would find nothing (a round trip
        and an UPDATE's plan, once per round under load)."""
        while not self._stop.is_set():
            self._due.clear()
            try:
                delivered = self._deliver_due()
            except Exception:
                log.exception("outbox delivery round failed")
                delivered = 0
            if delivered < self.batch:
                self._due.wait(poll_seconds)

    def run_forever(self, poll_seconds: float = 0.5) -> None:
        """The rounds (stored inbound messages, the connector's jobs at most every
        ``JOBS_SECONDS`` while they find nothing, the heartbeat) in this thread; the
        deliveries, the housekeeping and PostgreSQL's LISTEN in threads of their own, ended
        with it."""
        helpers = [
            threading.Thread(target=self._sweep_forever, name="worker-sweep", daemon=True),
            threading.Thread(
                target=self._deliver_forever,
                args=(poll_seconds,),
                name="worker-deliver",
                daemon=True,
            ),
        ]
        if not self.db.is_sqlite:  # joined at the end too: none outlives the loop
            helpers.append(threading.Thread(target=self._listen, name="worker-listen", daemon=True))
        for helper in helpers:
            helper.start()
        jobs_next = 0.0  # when the connector's jobs may go again (``JOBS_SECONDS``)
        while not self._stop.is_set():
            outbox.wakeup.clear()
            began = time.monotonic()
            inbound = jobs = 0
            try:
                inbound = self._take_inbound()
                if began >= jobs_next:
                    jobs = self._run_jobs()
                    jobs_next = 0.0 if jobs else time.monotonic() + JOBS_SECONDS
                heartbeat.beat(self.db)
            except Exception:
                log.exception("outbox worker round failed")
            if inbound or jobs:
                self._due.set()  # replies were queued: the deliveries' thread goes now
                if not jobs and inbound < self.inbound_batch:  # no backlog: let work gather
                    self._stop.wait(max(0.0, began + ROUND_SECONDS - time.monotonic()))
            elif outbox.wakeup.wait(poll_seconds):
                self._due.set()  # stored work may be replies too
                self._stop.wait(GATHER_SECONDS)
        for helper in helpers:
            helper.join(SWEEP_SECONDS)

    def start_thread(self, poll_seconds: float = 0.5) -> threading.Thread:
        thread = threading.Thread(
            target=self.run_forever, args=(poll_seconds,), name="outbox-worker", daemon=True
        )
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
        self._due.set()
        outbox.wakeup.set()
