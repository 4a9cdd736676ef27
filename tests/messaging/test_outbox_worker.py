"""The outbox worker's parts, each checked exactly (fidelia/messaging/worker.py, outbox.py):
which rows a claim takes and for how long, what a delivery records for each outcome, how
long a retry waits, what is scrubbed from an error, what the sweep expires, and the loop
started and stopped. Deliveries go to the fake Graph API on loopback. Killing mutmut's
mutants of the worker (docs/testing.md)."""

import contextlib
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import event, select

from fidelia.kit import clock
from fidelia.kit.db import Database
from fidelia.kit.settings import Settings
from fidelia.messaging import intake, outbox
from fidelia.messaging.bot import Bot, Inbound
from fidelia.messaging.channels import senders_for
from fidelia.messaging.worker import (
    JOBS_SECONDS,
    REDACTED,
    ROUND_SECONDS,
    Worker,
    backoff,
    scrub,
)
from fidelia.models import Customer, MessageLog, OutboxMessage, Pin
from tests.support.helpers import make_tenant, signed_headers, webhook_body

T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
ANA = "+50688887777"


@pytest.fixture(autouse=True)
def _frozen():
    clock.freeze(T0)
    yield
    clock.freeze(None)


def queue(db, text="hola", channel="whatsapp", secret=False, **columns) -> int:
    with db.session() as session:
        if channel == "whatsapp":
            row = outbox.whatsapp_text(session, text=text, wa_number=ANA, wa_user_id=None)
        else:
            row = outbox.enqueue(session, channel, {"to": ANA, "text": text})
        if secret:
            row.payload = {**row.payload, "secret": True}
        for name, value in columns.items():
            setattr(row, name, value)
        session.flush()
        return row.id


def row(db, id_: int) -> OutboxMessage:
    with db.session(readonly=True) as session:
        found = session.get_one(OutboxMessage, id_)
        session.expunge(found)
        return found


def test_scrub_hides_every_run_of_four_digits_of_a_secret_only():
    error = "400: bad 'Tu código es 4829 13 y 123456789'"
    assert scrub(error, {"secret": True}) == f"400: bad 'Tu código es {REDACTED} 13 y {REDACTED}'"
    assert scrub(error, {}) == error
    assert scrub(error, {"secret": False}) == error
    assert REDACTED == "[redacted]"


def test_a_retry_waits_twice_as_long_each_time_within_a_fifth_up_to_an_hour():
    for attempts, base in ((0, 1), (1, 2), (5, 32), (11, 2048), (12, 3600), (40, 3600)):
        waits = [backoff(attempts).total_seconds() for _ in range(200)]
        assert base * 0.8 <= min(waits) and max(waits) <= base * 1.2
        assert max(waits) - min(waits) > base * 0.2  # jittered, not fixed


def test_a_claim_takes_the_due_unleased_pending_rows_oldest_first_up_to_the_batch(
    db, graph, settings
):
    later = queue(db, "b", next_attempt_at=T0 - timedelta(minutes=1))
    first = queue(db, "a", next_attempt_at=T0 - timedelta(minutes=2))
    now_due = queue(db, "c", next_attempt_at=T0)
    same_time = queue(db, "d", next_attempt_at=T0)
    queue(db, "not due", next_attempt_at=T0 + timedelta(seconds=1))
    queue(db, "leased", locked_until=T0)
    lease_over = queue(db, "lease over", locked_until=T0 - timedelta(seconds=1))
    queue(db, "sent", status="sent")
    queue(db, "failed", status="failed")
    worker = Worker(db, senders_for(settings), batch=4, lease=timedelta(seconds=90))
    claimed = worker.claim()
    assert [r.id for r in claimed] == [first, later, now_due, same_time]
    assert {r.id: row(db, r.id).locked_until for r in claimed} == dict.fromkeys(
        [first, later, now_due, same_time], T0 + timedelta(seconds=90)
    )
    assert [r.id for r in worker.claim()] == [lease_over]  # the rest is leased now
    assert worker.claim() == []
    assert Worker(db, {}).batch == 20 and Worker(db, {}).max_attempts == 12
    assert Worker(db, {}).lease == outbox.LEASE == timedelta(seconds=60)
    assert graph.sent == []


def test_a_delivery_records_the_outcome(db, graph, settings):
    worker = Worker(db, senders_for(settings))
    sent = queue(db, "uno")
    clock.freeze(T0 + timedelta(seconds=5))
    (claimed,) = worker.claim()
    assert worker.deliver(claimed) == "sent"
    done = row(db, sent)
    assert (done.status, done.attempts, done.sent_at) == ("sent", 1, T0 + timedelta(seconds=5))
    assert (done.locked_until, done.last_error) == (None, None)
    assert done.payload["text"]["body"] == "uno" and graph.texts_to(ANA) == ["uno"]


def test_a_channel_without_a_sender_fails_for_good(db, graph, settings, caplog):
    fax = queue(db, "uno", channel="fax")
    with caplog.at_level(logging.WARNING, logger="fidelia.worker"):
        assert Worker(db, senders_for(settings)).run_once() == 1
    assert [r.getMessage() for r in caplog.records if r.name == "fidelia.worker"] == [
        f"outbox {fax} failed for good: no sender for channel 'fax'"
    ]
    failed = row(db, fax)
    assert (failed.status, failed.attempts, failed.locked_until) == ("failed", 1, None)
    assert failed.last_error == "no sender for channel 'fax'"
    assert failed.next_attempt_at == T0 and failed.sent_at is None


def test_a_transient_failure_is_retried_later_then_fails_for_good(db, graph, settings):
    graph.fail_next = [500, 500]
    graph.echo_in_errors = True
    long = queue(db, "x" * 5000)
    worker = Worker(db, senders_for(settings), max_attempts=2)
    worker.drain()
    waiting = row(db, long)
    assert (waiting.status, waiting.attempts, waiting.locked_until) == ("pending", 1, None)
    assert waiting.last_error is not None
    assert waiting.last_error.startswith('RuntimeError: 500 {"error": {"message": "injected')
    assert T0 + timedelta(seconds=1.6) <= waiting.next_attempt_at <= T0 + timedelta(seconds=2.4)
    assert waiting.payload["text"]["body"] == "x" * 5000
    clock.freeze(waiting.next_attempt_at)
    worker.drain()
    failed = row(db, long)  # the second attempt is the last
    assert (failed.status, failed.attempts, failed.sent_at) == ("failed", 2, None)
    assert failed.payload["text"]["body"] == "x" * 5000  # not a secret: kept for the operator
    assert graph.sent == []


@pytest.mark.parametrize("fails", [False, True])
def test_a_secret_is_redacted_once_delivered_or_failed(db, graph, settings, fails):
    if fails:
        graph.fail_next = [400]
    secret = queue(db, "Tu código es 482913", secret=True)
    Worker(db, senders_for(settings)).drain()
    status = "failed" if fails else "sent"
    done = row(db, secret)
    assert done.status == status
    assert done.payload["text"] == f"{REDACTED} ({status})"
    assert done.payload["secret"] is True and done.payload["to"] == ANA.lstrip("+")


def test_run_once_counts_what_it_delivered(db, graph, settings):
    worker = Worker(db, senders_for(settings), batch=2)
    for n in range(3):
        queue(db, f"m{n}")
    assert [worker.run_once(), worker.run_once(), worker.run_once()] == [2, 1, 0]
    assert graph.texts_to(ANA) == ["m0", "m1", "m2"]


def test_drain_stops_after_its_rounds(db, graph, settings):
    for n in range(3):
        queue(db, f"m{n}")
    Worker(db, senders_for(settings), batch=1).drain(rounds=2)
    assert graph.texts_to(ANA) == ["m0", "m1"]
    Worker(db, senders_for(settings), batch=1).drain()
    assert graph.texts_to(ANA) == ["m0", "m1", "m2"]


def test_the_sweep_expires_the_pins_that_are_due(db, settings):
    tenant, _ = make_tenant(db)
    with db.session() as session:
        for code, expires in (("1111", T0), ("2222", T0 + timedelta(seconds=1))):
            session.add(
                Pin(tenant_id=tenant.id, namespace="1", code=code, points=1, expires_at=expires)
            )
    Worker(db, senders_for(settings)).sweep()
    with db.session(readonly=True) as session:
        assert dict(session.execute(select(Pin.code, Pin.status)).all()) == {
            "1111": "expired",
            "2222": "open",
        }


def test_enqueue_wakes_the_worker_after_its_commit_only(db):
    outbox.wakeup.clear()
    with db.session() as session:
        outbox.enqueue(session, "sms", {"to": ANA, "text": "hola"}, None)
        session.rollback()  # nothing was queued after all
        session.add(OutboxMessage(channel="sms", payload={}))  # not through enqueue
        session.commit()
        assert not outbox.wakeup.is_set()
        message = outbox.enqueue(session, "sms", {"to": ANA, "text": "hola"}, 7)
        assert (message.channel, message.payload, message.tenant_id) == (
            "sms",
            {"to": ANA, "text": "hola"},
            7,
        )
        assert not outbox.wakeup.is_set()
        message.tenant_id = None
        session.commit()
        assert outbox.wakeup.is_set()
        outbox.wakeup.clear()
        session.add(OutboxMessage(channel="sms", payload={}))
        session.commit()
        assert not outbox.wakeup.is_set()  # the flag went with the first commit


def test_a_savepoint_released_wakes_the_worker_only_at_the_transactions_commit(db):
    """SQLAlchemy sends after_commit for a released savepoint too: the wake-up waits for the
    transaction's commit (a worker woken before it finds nothing and sleeps to its poll)."""
    outbox.wakeup.clear()
    with db.session() as session:
        with session.begin_nested():
            outbox.enqueue(session, "sms", {"to": ANA, "text": "hola"}, None)
        with session.begin_nested():
            session.add(OutboxMessage(channel="sms", payload={}))
        assert not outbox.wakeup.is_set()
    assert outbox.wakeup.is_set()
    outbox.wakeup.clear()


def test_a_whatsapp_text_goes_to_a_number_or_a_user_id(db):
    tenant, _ = make_tenant(db)
    with db.session() as session:
        to_number = outbox.whatsapp_text(
            session, text="a", wa_number=ANA, wa_user_id="u1", tenant_id=tenant.id
        )
        assert to_number.tenant_id == tenant.id
        to_user = outbox.whatsapp_text(
            session, text="b", wa_number=None, wa_user_id="u1", tenant_id=None
        )
        assert to_number.payload == {
            "messaging_product": "whatsapp",
            "type": "text",
            "text": {"body": "a"},
            "to": ANA.lstrip("+"),
        }
        assert to_user.payload == {
            "messaging_product": "whatsapp",
            "type": "text",
            "text": {"body": "b"},
            "recipient": "u1",
        }
        assert to_number.channel == to_user.channel == "whatsapp"


def wait_for(check, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def pin_status(db, pin: int) -> str:
    with db.session(readonly=True) as session:
        return session.get_one(Pin, pin).status


def due_pin(db, tenant, code: str) -> int:
    with db.session() as session:
        pin = Pin(
            tenant_id=tenant.id,
            namespace="1",
            code=code,
            points=1,
            expires_at=datetime.now(UTC) - timedelta(minutes=1),
        )
        session.add(pin)
        session.flush()
        return pin.id


def test_the_loop_sweeps_at_start_not_every_round_delivers_and_stops(db, graph, settings):
    clock.freeze(None)
    tenant, _ = make_tenant(db)
    first = due_pin(db, tenant, "1111")
    worker = Worker(db, senders_for(settings))
    thread = worker.start_thread(poll_seconds=1.0)
    try:
        assert thread.daemon and thread.name == "outbox-worker"
        assert wait_for(lambda: pin_status(db, first) == "expired")  # the sweep at start
        later = due_pin(db, tenant, "2222")
        queue(db, "uno", next_attempt_at=datetime.now(UTC))
        assert wait_for(lambda: graph.texts_to(ANA) == ["uno"])  # woken by the commit
        time.sleep(0.5)  # rounds go by: the next sweep is a minute away
        assert pin_status(db, later) == "open"
        # Due in a second: the commit wakes the loop too early; it polls again, unwoken.
        queue(db, "dos", next_attempt_at=datetime.now(UTC) + timedelta(seconds=1))
        assert wait_for(lambda: graph.texts_to(ANA) == ["uno", "dos"], 20)
    finally:
        worker.stop()
        thread.join(10)
    assert not thread.is_alive()


class Counting:
    """A connector's jobs (the Jobs protocol): counts its calls, reports 3 done a round."""

    def __init__(self) -> None:
        self.rounds = 0
        self.sweeps = 0

    def run_once(self) -> int:
        self.rounds += 1
        return 3

    def sweep(self) -> None:
        self.sweeps += 1


class Failing(Counting):
    """A connector whose work fails every round."""

    def run_once(self) -> int:
        super().run_once()
        raise RuntimeError("the connector's API is down")


def test_a_failed_round_is_logged_and_the_next_waits_for_the_poll(db, caplog):
    clock.freeze(None)
    jobs = Failing()
    worker = Worker(db, {}, jobs=jobs)
    outbox.wakeup.clear()
    with caplog.at_level(logging.ERROR, logger="fidelia.worker"):
        thread = worker.start_thread(poll_seconds=120)
        try:
            assert wait_for(lambda: jobs.rounds >= 1)
            time.sleep(3)
            assert jobs.rounds == 1  # the next round waits for the poll, not a busy loop
        finally:
            worker.stop()
            thread.join(10)
    # (A previous test's LISTEN thread may still log its database going away.)
    failed = [r for r in caplog.records if r.getMessage() == "outbox worker round failed"]
    assert len(failed) == 1 and failed[0].name == "fidelia.worker" and failed[0].exc_info


class Stuck(Counting):
    """A connector whose sweep (a reconciliation over a slow API) hangs until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def sweep(self) -> None:
        super().sweep()
        self.release.wait(60)


def test_a_long_sweep_holds_up_no_round(db, graph, settings):
    """The housekeeping runs in a thread of its own: while it hangs, messages still go."""
    clock.freeze(None)
    make_tenant(db)
    jobs = Stuck()
    worker = Worker(db, senders_for(settings), jobs=jobs)
    thread = worker.start_thread(poll_seconds=0.2)
    try:
        assert wait_for(lambda: jobs.sweeps == 1)  # the sweep at start, hanging
        queue(db, "uno", next_attempt_at=datetime.now(UTC))
        assert wait_for(lambda: graph.texts_to(ANA) == ["uno"], 10)
        rounds = jobs.rounds
        assert wait_for(lambda: jobs.rounds > rounds) and jobs.sweeps == 1
        sweeper = [t for t in threading.enumerate() if t.name == "worker-sweep"]
        assert len(sweeper) == 1 and sweeper[0].daemon
    finally:
        jobs.release.set()
        worker.stop()
        thread.join(10)
    assert not thread.is_alive() and not sweeper[0].is_alive()


class Idle(Counting):
    """A connector with nothing to do, or with ``backlog`` jobs to do first, one a call."""

    def __init__(self, backlog: int = 0) -> None:
        super().__init__()
        self.backlog = backlog

    def run_once(self) -> int:
        self.rounds += 1
        if self.backlog:
            self.backlog -= 1
            return 1
        return 0


class RoundsCounted(Worker):
    rounds = 0

    def _take_inbound(self) -> int:
        self.rounds += 1
        return super()._take_inbound()


def rounds_woken_for(worker: RoundsCounted, seconds: float) -> None:
    """The worker's loop woken without pause for ``seconds`` (as webhooks under load do)."""
    thread = worker.start_thread(poll_seconds=0.5)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            outbox.wakeup.set()
            time.sleep(0.001)
    finally:
        worker.stop()
        thread.join(10)


def test_jobs_that_find_nothing_go_at_most_every_jobs_seconds_however_often_rounds_come(db):
    """Every round used to run the connector's jobs, ~1 ms of CPU even with nothing to do,
    a hundred or more times a second under a load of webhooks (issue 14)."""
    clock.freeze(None)
    jobs = Idle()
    worker = RoundsCounted(db, {}, jobs=jobs)
    rounds_woken_for(worker, 1.0)
    assert worker.rounds >= 20  # a round each GATHER_SECONDS
    assert 3 <= jobs.rounds <= 1.0 / JOBS_SECONDS + 2 < worker.rounds


class Taking(RoundsCounted):
    """Each round takes ``taken`` stored messages (none are stored: the count stands in)."""

    taken = 0

    def _take_inbound(self) -> int:
        super()._take_inbound()
        return self.taken


def test_under_load_a_round_short_of_a_batch_lets_work_gather_before_the_next(db):
    """Under load the loop never idles, and each round took what came during the one
    before: batches of a few messages, each costing twice as much a credit as a full one
    (issue 14). A round that found work but less than a batch waits out ROUND_SECONDS from
    its start before the next."""
    clock.freeze(None)
    worker = Taking(db, {}, jobs=Idle(), inbound_batch=50)
    worker.taken = 3
    rounds_woken_for(worker, 1.0)
    assert 0.5 / ROUND_SECONDS <= worker.rounds <= 1.0 / ROUND_SECONDS + 3


def test_a_full_batch_is_a_backlog_and_the_next_round_goes_at_once(db):
    clock.freeze(None)
    worker = Taking(db, {}, jobs=Idle(), inbound_batch=50)
    worker.taken = 50
    rounds_woken_for(worker, 0.5)
    assert worker.rounds > 3 * 0.5 / ROUND_SECONDS


class ClaimsCounted(Worker):
    claims: list[int]

    def claim(self):  # type: ignore[no-untyped-def]
        found = super().claim()
        self.claims.append(len(found))
        return found


def test_a_claim_short_of_a_batch_took_all_that_was_due_and_the_next_waits_to_be_woken(
    db, graph, settings
):
    """Under load each round's replies were followed by a claim that found nothing (a round
    trip and an UPDATE's plan); now the deliveries' thread claims again only when woken,
    and at once when it was woken while delivering."""
    clock.freeze(None)
    for n in range(3):
        queue(db, f"m{n}")
    worker = ClaimsCounted(db, senders_for(settings), batch=20)
    worker.claims = []
    thread = threading.Thread(target=worker._deliver_forever, args=(30.0,), daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: len(graph.texts_to(ANA)) == 3)
        time.sleep(0.3)
        assert worker.claims == [3]
        for n in range(3, 5):
            queue(db, f"m{n}")
        worker._due.set()  # as the rounds' thread does once it queued replies
        assert wait_for(lambda: len(graph.texts_to(ANA)) == 5)
        time.sleep(0.3)
        assert worker.claims == [3, 2]
    finally:
        worker.stop()
        thread.join(10)


def test_jobs_that_find_work_go_again_at_once(db):
    clock.freeze(None)
    jobs = Idle(backlog=50)
    worker = RoundsCounted(db, {}, jobs=jobs)
    rounds_woken_for(worker, 1.5)  # throttled, fifty would take five seconds
    assert jobs.backlog == 0 and jobs.rounds >= 51


def test_the_loop_sweeps_in_its_first_round(db):
    clock.freeze(None)
    tenant, _ = make_tenant(db)
    due = due_pin(db, tenant, "1111")
    worker = Worker(db, {})
    outbox.wakeup.clear()
    thread = worker.start_thread(poll_seconds=120)  # a second round is two minutes away
    try:
        assert wait_for(lambda: pin_status(db, due) == "expired")
    finally:
        worker.stop()
        thread.join(10)


def test_a_round_counts_the_inbound_messages_the_deliveries_and_the_jobs(
    app, client, db, settings, graph
):
    make_tenant(db)
    for text in ("hola", "ayuda"):
        body = webhook_body(settings, ANA, text)
        answer = client.post(
            "/webhooks/whatsapp", content=body, headers=signed_headers(settings, body)
        )
        assert answer.status_code == 200
    jobs = Counting()
    worker = Worker(
        db, senders_for(settings), bot=app.state.fidelia.bot, inbound_batch=1, jobs=jobs
    )
    assert [worker.run_once() for _ in range(3)] == [1 + 1 + 3, 1 + 1 + 3, 3]
    assert len(graph.texts_to(ANA)) == 2 and jobs.rounds == 3
    Worker(db, {}, jobs=jobs).sweep()
    assert jobs.sweeps == 1
    assert Worker(db, {}).run_once() == 0  # no bot, no jobs, nothing queued


# A batch's outcomes, recorded together (issue 14; docs/decisions.md, "The outbox records a
# batch's outcomes at once"): what a crash or a refused record leaves, and the lease.


def refuse_sent(db, ids: list[int]) -> None:
    """A trigger: the database refuses to mark these rows sent (a record that fails)."""
    listed = ", ".join(str(i) for i in ids)
    with db.engine.begin() as conn:
        if db.is_sqlite:
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_sent BEFORE UPDATE ON outbox "
                f"WHEN NEW.status = 'sent' AND NEW.id IN ({listed}) "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse_sent() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.status = 'sent' AND NEW.id IN ({listed}) THEN "
                "RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_sent BEFORE UPDATE ON outbox "
                "FOR EACH ROW EXECUTE FUNCTION refuse_sent()"
            )


def allow_sent(db) -> None:
    with db.engine.begin() as conn:
        if db.is_sqlite:
            conn.exec_driver_sql("DROP TRIGGER refuse_sent")
        else:
            conn.exec_driver_sql("DROP TRIGGER refuse_sent ON outbox")
            conn.exec_driver_sql("DROP FUNCTION refuse_sent()")


def state(db, ids: list[int]) -> list[tuple]:
    found = [row(db, i) for i in ids]
    return [(r.status, r.attempts, r.locked_until, r.sent_at) for r in found]


def test_a_batch_is_claimed_and_recorded_in_two_transactions(db, graph, settings):
    graph.fail_next = [500, 400]  # the first retried, the second refused for good
    ids = [queue(db, f"m{n}", secret=n == 4) for n in range(6)]
    commits, statements = [], []

    def commit(conn):
        commits.append(len(statements))

    def execute(conn, cursor, statement, parameters, context, executemany):
        statements.append((" ".join(statement.split()[:3]), executemany))

    event.listen(db.engine, "commit", commit)
    event.listen(db.engine, "before_cursor_execute", execute)
    try:
        assert Worker(db, senders_for(settings)).run_once() == 6
    finally:
        event.remove(db.engine, "commit", commit)
        event.remove(db.engine, "before_cursor_execute", execute)
    assert len(commits) == 2  # the claim, then every outcome
    recorded = [s for s in statements[commits[0] :] if s[0].startswith("UPDATE")]
    # The plain deliveries in one UPDATE, the rest (a retry, a failure, a secret) in one
    # executemany.
    assert recorded == [("UPDATE outbox SET", False), ("UPDATE outbox SET", True)]
    retried, failed, *sent = (row(db, i) for i in ids)
    assert (retried.status, retried.attempts, retried.locked_until) == ("pending", 1, None)
    assert T0 + timedelta(seconds=1.6) <= retried.next_attempt_at <= T0 + timedelta(seconds=2.4)
    assert retried.last_error is not None and retried.last_error.startswith("RuntimeError: 500")
    assert (failed.status, failed.attempts, failed.next_attempt_at) == ("failed", 1, T0)
    assert failed.last_error is not None and failed.last_error.startswith("400")
    assert {(r.status, r.attempts, r.locked_until, r.sent_at, r.last_error) for r in sent} == {
        ("sent", 1, None, T0, None)
    }
    assert sent[2].payload["text"] == f"{REDACTED} (sent)"
    assert [r.payload["text"]["body"] for r in (sent[0], sent[1], sent[3])] == ["m2", "m3", "m5"]
    assert graph.texts_to(ANA) == ["m2", "m3", "m4", "m5"]


def test_an_idle_round_is_one_transaction(db, settings):
    commits = []
    listener = lambda conn: commits.append(conn)  # noqa: E731
    event.listen(db.engine, "commit", listener)
    try:
        assert Worker(db, senders_for(settings)).run_once() == 0
    finally:
        event.remove(db.engine, "commit", listener)
    assert len(commits) == 1  # the claim that found nothing; nothing to record


def test_a_row_the_database_will_not_record_is_sent_again_alone(db, graph, settings, caplog):
    """One outcome refused: the others are recorded; that row stays leased, and is sent
    again once its lease is over (the one duplicate)."""
    ids = [queue(db, f"m{n}") for n in range(3)]
    refuse_sent(db, [ids[1]])
    worker = Worker(db, senders_for(settings), lease=timedelta(seconds=30))
    with caplog.at_level(logging.ERROR, logger="fidelia.worker"):
        assert worker.run_once() == 3
    logged = [r.getMessage() for r in caplog.records if r.name == "fidelia.worker"]
    assert [m for m in logged if m.startswith("outbox")] == [
        "outbox: recording 3 outcomes failed; one at a time",
        f"outbox {ids[1]}: outcome not recorded (sent again)",
    ]
    leased = T0 + timedelta(seconds=30)
    assert state(db, ids) == [("sent", 1, None, T0), ("pending", 0, leased, None)] + [
        ("sent", 1, None, T0)
    ]
    allow_sent(db)
    assert worker.run_once() == 0  # leased: not sent again yet
    clock.freeze(leased + timedelta(seconds=1))
    assert worker.run_once() == 1
    assert row(db, ids[1]).status == "sent" and row(db, ids[1]).attempts == 1
    assert graph.texts_to(ANA) == ["m0", "m1", "m2", "m1"]


def test_a_batch_not_recorded_is_sent_again_after_its_lease_and_no_more(db, graph, settings):
    """The duplicate-send window: a batch delivered and not recorded (the database refused
    the record, as when the worker dies before it) goes again, the next batches do not."""
    ids = [queue(db, f"m{n}") for n in range(5)]
    refuse_sent(db, ids[:3])
    worker = Worker(db, senders_for(settings), batch=3, lease=timedelta(seconds=30))
    assert worker.run_once() == 3
    allow_sent(db)
    assert worker.run_once() == 2
    assert state(db, ids[:3]) == [("pending", 0, T0 + timedelta(seconds=30), None)] * 3
    clock.freeze(T0 + timedelta(seconds=31))
    worker.drain()
    assert {r.status for r in map(lambda i: row(db, i), ids)} == {"sent"}
    assert graph.texts_to(ANA) == ["m0", "m1", "m2", "m3", "m4", "m0", "m1", "m2"]


class Slow:
    """A sender that takes ``seconds`` a message (on the fake Graph API), noting what the
    database holds when each message starts; the clock moves a second a message."""

    def __init__(self, db, settings, ids: list[int], seconds: float) -> None:
        self.db, self.ids, self.seconds = db, ids, seconds
        self.send = senders_for(settings)["whatsapp"]
        self.seen: list[list[tuple]] = []

    def __call__(self, payload):
        self.seen.append(state(self.db, self.ids))
        clock.freeze(T0 + timedelta(seconds=len(self.seen)))
        time.sleep(self.seconds)
        return self.send(payload)


def test_a_slow_batch_is_recorded_at_half_its_lease_and_the_rest_leased_again(db, graph, settings):
    """Deliveries that take half the lease: what went is recorded, and the rows still to go
    are leased again from then, before the next delivery starts; and again half a lease
    later. (2.4 s a message against a 6 s lease: a third of it, 2 s, would record sooner.)"""
    ids = [queue(db, f"m{n}") for n in range(5)]
    slow = Slow(db, settings, ids, 2.4)
    worker = Worker(db, {"whatsapp": slow}, lease=timedelta(seconds=6))
    assert worker.run_once() == 5
    claimed = ("pending", 0, T0 + timedelta(seconds=6), None)
    at_two = ("sent", 1, None, T0 + timedelta(seconds=2))
    renewed = ("pending", 0, T0 + timedelta(seconds=8), None)  # at T0+2s, for 6 s
    at_four = ("sent", 1, None, T0 + timedelta(seconds=4))
    again = ("pending", 0, T0 + timedelta(seconds=10), None)  # at T0+4s
    assert slow.seen == [
        [claimed] * 5,
        [claimed] * 5,  # 2.4 s: under half the lease, nothing recorded yet
        [at_two, at_two, renewed, renewed, renewed],  # 4.8 s: over it
        [at_two, at_two, renewed, renewed, renewed],  # 2.4 s since: not again
        [at_two, at_two, at_four, at_four, again],  # 4.8 s since: again
    ]
    at_five = ("sent", 1, None, T0 + timedelta(seconds=5))
    assert state(db, ids) == [at_two, at_two, at_four, at_four, at_five]
    assert graph.texts_to(ANA) == ["m0", "m1", "m2", "m3", "m4"]


def refuse_updates(db, ids: list[int]) -> None:
    """A trigger: the database refuses every change to these rows once they are leased
    (their record and the renewal of their lease; the claim that leases them goes)."""
    listed = ", ".join(str(i) for i in ids)
    with db.engine.begin() as conn:
        if db.is_sqlite:
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_updates BEFORE UPDATE ON outbox "
                f"WHEN OLD.id IN ({listed}) AND OLD.locked_until IS NOT NULL "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse_updates() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF OLD.id IN ({listed}) AND OLD.locked_until IS NOT NULL THEN "
                "RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_updates BEFORE UPDATE ON outbox "
                "FOR EACH ROW EXECUTE FUNCTION refuse_updates()"
            )


def worker_log(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "fidelia.worker"]


def test_a_refused_record_in_a_slow_batch_still_renews_the_other_leases(
    db, graph, settings, caplog
):
    """Half a lease into a slow batch, the record of what went (row 0) is refused: it is
    retried alone (refused again, logged), and the leases of the rows still to go are
    renewed on their own before the next delivery starts. (0.6 s a message against a 1 s
    lease: each delivery passes half the lease; the clock moves a second a message.)"""
    ids = [queue(db, f"m{n}") for n in range(4)]
    refuse_sent(db, [ids[0]])
    slow = Slow(db, settings, ids, 0.6)
    worker = Worker(db, {"whatsapp": slow}, lease=timedelta(seconds=1))
    with caplog.at_level(logging.ERROR, logger="fidelia.worker"):
        assert worker.run_once() == 4
    claimed = ("pending", 0, T0 + timedelta(seconds=1), None)

    def renewed(second: int) -> tuple:  # at T0 + second, for the 1 s lease
        return ("pending", 0, T0 + timedelta(seconds=second + 1), None)

    def sent(second: int) -> tuple:
        return ("sent", 1, None, T0 + timedelta(seconds=second))

    assert slow.seen == [
        [claimed] * 4,
        [claimed, renewed(1), renewed(1), renewed(1)],  # row 0 not recorded, the rest renewed
        [claimed, sent(2), renewed(2), renewed(2)],
        [claimed, sent(2), sent(3), renewed(3)],
    ]
    assert state(db, ids) == [claimed, sent(2), sent(3), sent(4)]
    assert worker_log(caplog) == [
        "outbox: recording 1 outcomes failed; one at a time",
        f"outbox {ids[0]}: outcome not recorded (sent again)",
    ]
    assert graph.texts_to(ANA) == ["m0", "m1", "m2", "m3"]


def test_a_lease_the_database_will_not_renew_is_logged_and_the_rest_recorded(
    db, graph, settings, caplog
):
    """The last row of a slow batch refuses every change: each half-lease record fails,
    what went is recorded alone, and the renewal (one statement with that row) fails and is
    logged; at the end that row's outcome is not recorded either."""
    ids = [queue(db, f"m{n}") for n in range(3)]
    refuse_updates(db, [ids[2]])
    slow = Slow(db, settings, ids, 0.6)
    worker = Worker(db, {"whatsapp": slow}, lease=timedelta(seconds=1))
    with caplog.at_level(logging.ERROR, logger="fidelia.worker"):
        assert worker.run_once() == 3
    claimed = ("pending", 0, T0 + timedelta(seconds=1), None)
    assert slow.seen == [
        [claimed] * 3,
        [("sent", 1, None, T0 + timedelta(seconds=1)), claimed, claimed],  # not renewed
        [
            ("sent", 1, None, T0 + timedelta(seconds=1)),
            ("sent", 1, None, T0 + timedelta(seconds=2)),
            claimed,
        ],
    ]
    assert state(db, ids)[2] == claimed
    failed_record = "outbox: recording 1 outcomes failed; one at a time"
    assert worker_log(caplog) == [
        failed_record,
        "outbox: leases not renewed",
        failed_record,
        "outbox: leases not renewed",
        failed_record,
        f"outbox {ids[2]}: outcome not recorded (sent again)",
    ]
    assert all(r.exc_info for r in caplog.records if r.name == "fidelia.worker")


class Interrupted:
    """The fake Graph API's sender, stopped (Ctrl-C) at its ``at``-th message."""

    def __init__(self, settings, at: int) -> None:
        self.send, self.at, self.calls = senders_for(settings)["whatsapp"], at, 0

    def __call__(self, payload):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.send(payload)


def test_a_worker_stopped_in_the_middle_of_a_batch_records_what_went(db, graph, settings):
    ids = [queue(db, f"m{n}") for n in range(4)]
    worker = Worker(db, {"whatsapp": Interrupted(settings, 3)}, lease=timedelta(seconds=30))
    with pytest.raises(KeyboardInterrupt):
        worker.run_once()
    leased = ("pending", 0, T0 + timedelta(seconds=30), None)
    assert state(db, ids) == [("sent", 1, None, T0)] * 2 + [leased] * 2
    assert graph.texts_to(ANA) == ["m0", "m1"]


# PostgreSQL's LISTEN/NOTIFY wake-up (`_listen`): a worker in another process than the one
# that stored the work is woken at once, not at its next poll. These take the `pg` fixture
# themselves (there is no SQLite form), so scripts/mutate.py runs them too.


@pytest.fixture
def listening_worker(pg_url, graph) -> Iterator[tuple[Worker, threading.Thread]]:
    """A worker on PostgreSQL that polls every two minutes, running, with its LISTEN thread."""
    clock.freeze(None)
    db = Database(pg_url, pool_size=2)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=pg_url,
        whatsapp_api_base=graph.url,
        whatsapp_token=graph.token,
    )
    worker = Worker(db, senders_for(settings))
    before = set(threading.enumerate())
    outbox.wakeup.clear()
    # Not a daemon, as `fidelia worker` runs the loop: its listener must be one of its own.
    loop = threading.Thread(target=worker.run_forever, args=(120,))
    loop.start()
    try:
        assert wait_for(lambda: len(listeners(pg_url)) == 1)
        started = {t.name: t for t in threading.enumerate() if t not in before and t is not loop}
        assert set(started) == {"worker-listen", "worker-sweep", "worker-deliver"}
        listener = started["worker-listen"]
        assert listener.name == "worker-listen" and listener.daemon
        yield worker, listener
    finally:
        worker.stop()
        loop.join(10)
        db.dispose()
    listener.join(10)
    assert not loop.is_alive() and not listener.is_alive()  # stop() ends both


def listeners(url: str) -> list[int]:
    """The backends of this database that LISTEN for work."""
    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = %s",
            (f"LISTEN {intake.CHANNEL}",),
        )
        return [pid for (pid,) in found]


def store_elsewhere(url: str, text: str) -> float:
    """What another process (a web worker) does: a reply stored and NOTIFY, committed
    together, without this process's own wake-up event. Returns when it committed."""
    payload = {"messaging_product": "whatsapp", "type": "text", "text": {"body": text}}
    payload["to"] = ANA.lstrip("+")
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO outbox (channel, payload, status, attempts, next_attempt_at, created_at)"
            " VALUES ('whatsapp', %s::json, 'pending', 0, now(), now())",
            (json.dumps(payload),),
        )
        conn.execute(f"NOTIFY {intake.CHANNEL}")
    return time.monotonic()


def test_listen_a_worker_woken_by_notify_delivers_long_before_its_poll(
    listening_worker, pg_url, graph
):
    time.sleep(2)  # its first round is over: it waits for two minutes, or a NOTIFY
    stored = store_elsewhere(pg_url, "uno")
    assert wait_for(lambda: graph.texts_to(ANA) == ["uno"], 30)
    assert time.monotonic() - stored < 30  # not the 120 s poll
    assert not outbox.wakeup.is_set()  # the loop took the wake-up


def test_listen_a_lost_connection_is_made_again(listening_worker, pg_url, graph, caplog):
    (first,) = listeners(pg_url)
    with caplog.at_level(logging.ERROR, logger="fidelia.worker"):
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (first,))
        assert wait_for(lambda: listeners(pg_url) not in ([], [first]))
    (second,) = listeners(pg_url)
    assert second != first
    assert [r.getMessage() for r in caplog.records if r.name == "fidelia.worker"] == [
        "LISTEN connection lost; reconnecting"
    ]
    store_elsewhere(pg_url, "dos")
    assert wait_for(lambda: graph.texts_to(ANA) == ["dos"], 30)


def enqueue_elsewhere(url: str, text: str) -> float:
    """What a web process does when a request enqueues a message (a redemption's notice, a
    retry from the panel): ``outbox`` in a transaction of its own, in another process, so
    this process's wake-up event knows nothing of it. Returns when it committed."""
    script = (
        "import sys\n"
        "from fidelia.kit.db import Database\n"
        "from fidelia.messaging import outbox\n"
        "db = Database(sys.argv[1], pool_size=1)\n"
        "with db.session() as session:\n"
        "    outbox.whatsapp_text(\n"
        "        session, text=sys.argv[2], wa_number=sys.argv[3], wa_user_id=None\n"
        "    )\n"
        "db.dispose()\n"
    )
    subprocess.run([sys.executable, "-c", script, url, text, ANA], check=True, timeout=120)
    return time.monotonic()


def test_listen_a_reply_enqueued_in_another_process_wakes_the_worker_long_before_its_poll(
    listening_worker, pg_url, graph
):
    time.sleep(2)  # its first round is over: it waits for two minutes, or a NOTIFY
    enqueued = enqueue_elsewhere(pg_url, "tres")
    assert wait_for(lambda: graph.texts_to(ANA) == ["tres"], 30)
    assert time.monotonic() - enqueued < 30  # not the 120 s poll
    assert not outbox.wakeup.is_set()  # the loop took the wake-up


@contextlib.contextmanager
def listening(pg_url: str) -> Iterator[Callable[[], int]]:
    """A connection that LISTENs to the workers' channel; ``heard()`` counts the NOTIFYs
    delivered to it since the last call (waiting half a second for them)."""
    with psycopg.connect(pg_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {outbox.CHANNEL}")
        yield lambda: len(list(listener.notifies(timeout=0.5)))


def test_a_transaction_that_enqueues_notifies_once_at_its_commit_and_not_when_rolled_back(
    pg_url,
):
    db = Database(pg_url, pool_size=2)
    statements: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        with listening(pg_url) as heard:

            def notifies() -> int:  # NOTIFY at the commit, or pg_notify in a Core insert
                return sum("NOTIFY fidelia_work" in s or "pg_notify" in s for s in statements)

            with db.session() as session:
                outbox.enqueue(session, "sms", {"to": ANA, "text": "uno"})
                assert statements.count("NOTIFY fidelia_work") == 0  # not before the commit
                with pytest.raises(RuntimeError), session.begin_nested():
                    outbox.enqueue(session, "sms", {"to": ANA, "text": "nunca"})
                    raise RuntimeError("a savepoint rolled back")
                # A Core insert (the spend notice's) carries the transaction's NOTIFY ...
                outbox.whatsapp_texts(session, [outbox.Text("dos", ANA, None, None)])
                assert heard() == 0  # ... delivered at the commit, not before
            assert notifies() == 1  # once for the transaction
            assert statements.count("NOTIFY fidelia_work") == 0
            assert heard() == 1
            with pytest.raises(RuntimeError), db.session() as session:
                outbox.whatsapp_texts(session, [outbox.Text("nunca", ANA, None, None)])
                raise RuntimeError("rolled back")
            assert heard() == 0  # the rollback took its NOTIFY with it
            with pytest.raises(RuntimeError), db.session() as session:
                outbox.enqueue(session, "sms", {"to": ANA, "text": "tampoco"})
                raise RuntimeError("rolled back")
            with db.session() as session:
                session.add(OutboxMessage(channel="sms", payload={}))  # not through the outbox
            assert heard() == 0
            assert notifies() == 2
            with db.session() as session:
                intake.notify(session)  # other work (Bling events, stored messages): the same
            assert heard() == 1
    finally:
        db.dispose()


def test_a_workers_own_batch_wakes_only_this_process_and_sends_no_notify(pg_url, graph):
    """The replies a worker's batch of inbound messages enqueues (intake.process_batch) wake
    this process's worker, which delivers them in its next round, and send no NOTIFY, which
    would wake every worker for nothing (``outbox.wake_this_process_only``); storing the
    messages did notify."""
    db = Database(pg_url, pool_size=2)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=pg_url,
        whatsapp_api_base=graph.url,
        whatsapp_token=graph.token,
    )
    try:
        make_tenant(db)
        with listening(pg_url) as heard:
            with db.session() as session:
                messages = [
                    Inbound(f"wamid.own{i}", ANA, None, text, settings.bot_number)
                    for i, text in enumerate(("hola", "ayuda"))
                ]
                assert intake.store(session, messages) == 2
            assert heard() == 1  # work stored: the workers are told
            outbox.wakeup.clear()
            assert intake.process_batch(db, Bot(settings)) == 2
            assert outbox.wakeup.is_set()  # this process's worker delivers the replies
            assert heard() == 0
            with db.session(readonly=True) as session:
                replies = session.scalars(
                    select(OutboxMessage.status).where(OutboxMessage.channel == "whatsapp")
                ).all()
            assert replies == ["pending", "pending"]
            with db.session() as session:  # the flag does not outlive its transaction
                outbox.enqueue(session, "sms", {"to": ANA, "text": "uno"})
            assert heard() == 1
    finally:
        outbox.wakeup.clear()
        db.dispose()


def test_the_notify_is_the_transactions_whatever_its_savepoints_and_flags_last_one(pg_url):
    """The NOTIFY goes at the transaction's own commit: a savepoint released inside one that
    is rolled back does not take it away (a NOTIFY made at that release would be rolled back
    with the outer savepoint); ``wake_this_process_only`` holds for one transaction of the
    session, the next one that enqueues notifies again."""
    db = Database(pg_url, pool_size=2)
    try:
        with listening(pg_url) as heard:
            with db.session() as session:
                outbox.enqueue(session, "sms", {"to": ANA, "text": "uno"})
                with pytest.raises(RuntimeError), session.begin_nested():
                    with session.begin_nested():
                        session.add(OutboxMessage(channel="sms", payload={}))
                    raise RuntimeError("the outer savepoint rolled back")
            assert heard() == 1
            outbox.wakeup.clear()
            with db.session() as session:
                outbox.wake_this_process_only(session)
                outbox.enqueue(session, "sms", {"to": ANA, "text": "dos"})
                session.commit()
                assert heard() == 0 and outbox.wakeup.is_set()
                outbox.enqueue(session, "sms", {"to": ANA, "text": "tres"})
            assert heard() == 1
    finally:
        outbox.wakeup.clear()
        db.dispose()


def test_whatsapp_texts_inserts_a_batch_in_order_and_wakes_the_worker_after_its_commit(db):
    tenant, _ = make_tenant(db)
    outbox.wakeup.clear()
    with db.session() as session:
        outbox.whatsapp_texts(session, [])
        assert "outbox_wakeup" not in session.info  # nothing queued: nothing to wake for
    assert not outbox.wakeup.is_set()
    with db.session() as session:
        outbox.whatsapp_texts(
            session,
            [
                outbox.Text("a", ANA, "u1", tenant.id),
                outbox.Text("b", None, "u2", None),
            ],
        )
        assert not outbox.wakeup.is_set()  # not before the commit
    assert outbox.wakeup.is_set()
    outbox.wakeup.clear()
    with db.session(readonly=True) as session:
        found = session.execute(
            select(
                OutboxMessage.channel,
                OutboxMessage.payload,
                OutboxMessage.tenant_id,
                OutboxMessage.status,
                OutboxMessage.next_attempt_at,
            ).order_by(OutboxMessage.id)
        ).all()
    assert [tuple(r) for r in found] == [
        (
            "whatsapp",
            {
                "messaging_product": "whatsapp",
                "type": "text",
                "text": {"body": "a"},
                "to": ANA.lstrip("+"),
            },
            tenant.id,
            "pending",
            T0,
        ),
        (
            "whatsapp",
            {
                "messaging_product": "whatsapp",
                "type": "text",
                "text": {"body": "b"},
                "recipient": "u2",
            },
            None,
            "pending",
            T0,
        ),
    ]


def test_what_a_delivery_found_goes_on_the_message_log(db, graph, settings):
    """An automatic message's log row says which form went (the 131047 fallback: the
    template), or why nothing went; a plain delivery or a retry leaves it as it was."""
    tenant, _ = make_tenant(db)
    with db.session() as session:
        customer = Customer(program_id=tenant.program_id, tenant_id=tenant.id)
        session.add(customer)
        session.flush()
        customer_id = customer.id
    numbers = [f"+5068888100{n}" for n in range(5)]
    ids = []
    for n, number in enumerate(numbers):
        with db.session() as session:
            message = outbox.whatsapp_text(session, text=f"m{n}", wa_number=number, wa_user_id=None)
            if n == 0:  # the text refused outside the window: its template instead
                template = {"name": "puntos", "language": {"code": "es"}}
                fallback = {"to": number.lstrip("+"), "type": "template", "template": template}
                message.payload = {**message.payload, "fallback": fallback}
            session.flush()
            session.add(
                MessageLog(
                    tenant_id=tenant.id,
                    customer_id=customer_id,
                    event="test",
                    key=str(n),
                    channel="whatsapp",
                    form="text",
                    outbox_id=message.id,
                )
            )
            ids.append(message.id)
    with db.session() as session:
        session.get_one(OutboxMessage, ids[3]).attempts = 1  # its last try: fails for good
    graph.close_window(numbers[0])
    graph.close_window(numbers[1])  # no template: fails for good
    worker = Worker(db, senders_for(settings), batch=3, max_attempts=2)
    assert worker.run_once() == 3
    graph.fail_next = [500, 500]  # the last two: a transient failure
    assert worker.run_once() == 2
    with db.session(readonly=True) as session:
        logs = dict(session.execute(select(MessageLog.outbox_id, MessageLog.form)).all())
        skipped = dict(session.execute(select(MessageLog.outbox_id, MessageLog.skipped)).all())
    assert [row(db, i).status for i in ids] == ["sent", "failed", "sent", "failed", "pending"]
    assert [logs[i] for i in ids] == ["template", "text", "text", "text", "text"]
    assert [skipped[i] for i in ids] == [None, "outside-window-no-template", None, None, None]
    assert row(db, ids[0]).payload["sent_as"] == "template"
    assert "sent_as" not in row(db, ids[2]).payload
