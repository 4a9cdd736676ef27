"""Crashes under load. ``fidelia serve`` runs as real processes; a steady load of signed
credit webhooks (each a fresh PIN) goes on while the Fidelia processes are killed with -9
and restarted, and, on PostgreSQL, while the database server is killed with -9 and
restarted. Every request's outcome is recorded. Afterwards:

- every webhook answered 2xx is reflected exactly once (its message recorded, its PIN used
  by its sender, one credit);
- every webhook that failed is either wholly applied (the commit won the race with the
  crash) or not at all: message, PIN, credit, customer and reply go together;
- delivered again, as Meta does, every webhook ends up credited exactly once;
- every reply in the outbox is delivered, also those a killed worker had leased, and
  sent again at most once a batch per kill (the worker records a batch's outcomes together:
  docs/decisions.md, "The outbox records a batch's outcomes at once");
- ``fidelia check`` finds the ledger invariants intact.

PostgreSQL runs in the production shape: two web processes and a separate outbox worker,
which is also killed alone in the middle of a batch of replies: the fake Meta answers a few
of them, then holds the next request, and the worker is killed while it waits, with replies
handed over that it has not recorded yet.
SQLite runs the embedded default: one process with the worker inside.
"""

import secrets
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from fidelia.kit.clock import now
from fidelia.kit.db import Database
from fidelia.kit.migrate import upgrade
from fidelia.kit.settings import Settings
from fidelia.models import (
    Balance,
    CustomerIdentifier,
    InboundMessage,
    LedgerEntry,
    OutboxMessage,
    Pin,
)
from fidelia.pins.guard import GuessPolicy
from fidelia.tenants.service import create_tenant
from tests.fakes.graph import FakeGraph
from tests.reliability.harness import (
    BOT_NUMBER,
    LEASE_SECONDS,
    Fidelia,
    Job,
    Load,
    check_problems,
    credit_job,
    environment,
    redeliver,
)
from tests.reliability.summary import DATABASES, SUMMARY, pick, pickf
from tests.support.postgres import PostgresServer, free_port

POINTS = 10
RATE = pickf(60, 80)  # webhooks a second
CYCLES = pick(1, 3)  # each: kill Fidelia, then kill Fidelia again (SQLite) or PostgreSQL
BETWEEN = pickf(3, 6)  # seconds of load between faults
DOWNTIME = 1.0  # seconds a killed server stays down
SENDERS = 25  # customers sharing the load, so balances chain through many entries
BATCH = Settings.model_fields["worker_batch_size"].default  # replies a worker delivers at once

pytestmark = pytest.mark.timeout(900)


def pins_for(url: str, n: int) -> list[tuple[int, str]]:
    """A merchant and ``n`` open PINs, made before the load (the load is the credits): distinct
    codes of the length the generator would use for that many, inserted at once."""
    upgrade(url)
    db = Database(url, pool_size=1)
    try:
        with db.session() as session:
            tenant = create_tenant(session, slug="carga", name="Carga")
            tenant.points_per_pin = POINTS
            length = GuessPolicy().length_for(n)
            codes: set[str] = set()
            while len(codes) < n:
                codes.add(f"{secrets.randbelow(10**length):0{length}d}")
            created = now()
            rows = [
                {
                    "tenant_id": tenant.id,
                    "namespace": BOT_NUMBER,
                    "code": code,
                    "points": POINTS,
                    "status": "open",
                    "created_at": created,
                    "expires_at": created + timedelta(days=1),
                }
                for code in sorted(codes, key=lambda _: secrets.randbits(32))
            ]
            session.execute(insert(Pin), rows)
            made = session.execute(select(Pin.id, Pin.code).order_by(Pin.id)).tuples().all()
            return [(pin_id, code) for pin_id, code in made]
    finally:
        db.dispose()


# What a fault may take beyond its downtime on a slow, busy machine (the processes' start,
# PostgreSQL's recovery, the wait for the worker's batch): the load sends one job every
# 1/RATE s of wall time whatever happens, and a load that runs out of jobs before the last
# fault sends no more webhooks, so no more replies (a CI run once waited 120 s for one).
FAULT_SECONDS = 20


def jobs_for(url: str, tag: str, faults: int) -> list[Job]:
    seconds = BETWEEN * (faults * CYCLES + 1) + faults * CYCLES * (DOWNTIME + FAULT_SECONDS)
    made = pins_for(url, int(RATE * seconds * 1.2) + 50)
    senders = [f"+5511{9876_00000 + n}" for n in range(SENDERS)]
    return [
        credit_job(i, pin_id, code, senders[i % SENDERS], tag)
        for i, (pin_id, code) in enumerate(made)
    ]


def state_of(db: Database, tag: str) -> dict[str, object]:
    with db.session(readonly=True) as s:
        return {
            # Processed by the worker (stored first, then processed: see inbound_drains).
            "inbound": set(
                s.scalars(
                    select(InboundMessage.message_id).where(
                        InboundMessage.message_id.like(f"wamid.{tag}.%"),
                        InboundMessage.status == "done",
                    )
                )
            ),
            "credits": Counter(
                s.scalars(select(LedgerEntry.source_id).where(LedgerEntry.source_type == "pin"))
            ),
            "pins": {
                pin_id: (status, customer)
                for pin_id, status, customer in s.execute(
                    select(Pin.id, Pin.status, Pin.customer_id)
                )
            },
            "customers": {
                value: customer
                for value, customer in s.execute(
                    select(CustomerIdentifier.value, CustomerIdentifier.customer_id).where(
                        CustomerIdentifier.kind == "whatsapp"
                    )
                )
            },
            "replies": int(s.scalar(select(func.count()).select_from(OutboxMessage)) or 0),
            "failed_replies": int(
                s.scalar(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.status == "failed")
                )
                or 0
            ),
            "points": int(s.scalar(select(func.sum(Balance.amount))) or 0),
        }


def atomicity(db: Database, jobs: list[Job], tag: str, *, after_redelivery: bool) -> list[str]:
    """Each job all-or-nothing; 2xx (and, after redelivery, every sent job) exactly once."""
    state = state_of(db, tag)
    inbound, credits = state["inbound"], state["credits"]
    pin_rows, customers = state["pins"], state["customers"]
    assert isinstance(inbound, set) and isinstance(credits, Counter)
    assert isinstance(pin_rows, dict) and isinstance(customers, dict)
    problems = []
    for job in jobs:
        n = credits[str(job.pin_id)]
        status, customer = pin_rows[job.pin_id]
        parts = {
            "message recorded": job.message_id in inbound,
            "PIN used": status == "used",
            "credited": n >= 1,
            "customer linked": customer is not None and customer == customers.get(job.sender),
        }
        if n > 1:
            problems.append(f"{job.message_id}: credited {n} times")
        if len(set(parts.values())) != 1:
            problems.append(f"{job.message_id}: half-applied {parts} (answer {job.status})")
        applied = parts["message recorded"]
        if not job.sent and applied:
            problems.append(f"{job.message_id}: never sent, yet applied")
        if job.ok and not applied:
            problems.append(f"{job.message_id}: answered {job.status} but not applied")
        if job.ok and job.retries == 0 and job.processed != 1:
            problems.append(f"{job.message_id}: a fresh message answered processed={job.processed}")
        if after_redelivery and job.sent and not applied:
            problems.append(f"{job.message_id}: redelivered until 2xx, yet not applied")
    credited = sum(1 for job in jobs if credits[str(job.pin_id)])
    if state["points"] != POINTS * credited:
        problems.append(f"balances hold {state['points']} points for {credited} credited PINs")
    if state["replies"] != len(inbound):
        problems.append(f"{state['replies']} replies for {len(inbound)} processed messages")
    if state["failed_replies"]:
        problems.append(f"{state['failed_replies']} replies failed for good")
    return problems


def inbound_drains(db: Database) -> list[str]:
    """Every stored message is processed by the (restarted) worker: none is lost, also
    those of a batch the worker was killed in the middle of."""
    seconds = 60
    pending = InboundMessage.status.in_(("pending", "failed"))
    deadline = time.monotonic() + seconds
    while True:
        with db.session(readonly=True) as s:
            left = int(
                s.scalar(select(func.count()).select_from(InboundMessage).where(pending)) or 0
            )
        if left == 0:
            return []
        if time.monotonic() > deadline:
            return [f"{left} stored messages still unprocessed {seconds} s after the load"]
        time.sleep(0.2)


def outbox_drains(db: Database) -> list[str]:
    """The restarted worker delivers every reply, also those a killed worker had leased
    (once their lease runs out): nothing written is lost, nothing stays stuck."""
    seconds = LEASE_SECONDS + 30
    pending = OutboxMessage.status == "pending"
    deadline = time.monotonic() + seconds
    while True:
        with db.session(readonly=True) as s:
            left = int(
                s.scalar(select(func.count()).select_from(OutboxMessage).where(pending)) or 0
            )
        if left == 0:
            return []
        if time.monotonic() > deadline:
            return [f"{left} replies still undelivered {seconds} s after the load"]
        time.sleep(0.5)


def leased_replies(db: Database) -> int:
    """Replies a worker has claimed and not recorded yet (a batch in flight)."""
    with db.session(readonly=True) as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status == "pending", OutboxMessage.locked_until > now())
            )
            or 0
        )


def sent_again(db: Database, graph: FakeGraph, kills: int) -> list[str]:
    """Meta got every reply, and a reply twice only within the documented window: what a
    worker had handed over and not recorded when it died, at most a batch per kill."""
    with db.session(readonly=True) as s:
        sent = int(
            s.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status == "sent")
            )
            or 0
        )
    time.sleep(1.0)  # a request still on its way
    with graph.lock:
        received = len(graph.sent)
    extra = received - sent
    SUMMARY.note(f"  replies: {sent} sent, {extra} of them twice ({kills} kills, batch {BATCH})")
    if extra < 0:
        return [f"{sent} replies recorded as sent, Meta received {received}"]
    if extra > BATCH * kills:
        return [
            f"{extra} replies sent twice: more than a batch ({BATCH}) for each of {kills} kills"
        ]
    return []


def crash_run(
    backend: str,
    url: str,
    server: Fidelia,
    faults: list[tuple[str, Callable[[], None]]],
    graph: FakeGraph,
) -> None:
    tag = f"crash{backend}"
    jobs = jobs_for(url, tag, len(faults))
    db = Database(url, pool_size=2)
    started = time.monotonic()
    server.start()
    try:
        with Load(server.url, jobs, RATE):
            time.sleep(BETWEEN)
            for _ in range(CYCLES):
                for _label, inject in faults:
                    inject()
                    SUMMARY.fault()
                    time.sleep(BETWEEN)
        # systemd's Restart=always: a process started just before a fault (the worker, started
        # again moments before PostgreSQL is killed) may have found the database down and exited.
        revived = server.revive()
        sent = [job for job in jobs if job.sent]
        problems = SUMMARY.violated(f"crash {backend}", inbound_drains(db))
        first = atomicity(db, jobs, tag, after_redelivery=False)
        problems += SUMMARY.violated(f"crash {backend}", first)
        failed = [job for job in sent if not job.ok]
        state = state_of(db, tag)
        inbound = state["inbound"]
        assert isinstance(inbound, set)
        committed = sum(1 for job in failed if job.message_id in inbound)
        problems += SUMMARY.violated(f"crash {backend}", redeliver(server.url, sent))
        problems += SUMMARY.violated(f"crash {backend}", inbound_drains(db))
        problems += SUMMARY.violated(
            f"crash {backend}", atomicity(db, jobs, tag, after_redelivery=True)
        )
        problems += SUMMARY.violated(f"crash {backend}", outbox_drains(db))
        kills = len(faults) * CYCLES
        problems += SUMMARY.violated(f"crash {backend}", sent_again(db, graph, kills))
    finally:
        server.stop()
        db.dispose()
    problems += SUMMARY.violated(f"crash {backend} fidelia check", check_problems(url))
    ok = sum(1 for job in sent if job.ok)
    how = Counter(job.error or str(job.status) for job in failed)
    SUMMARY.note(
        f"crash [{backend}]: {len(sent)} credit webhooks, {ok} 2xx, {len(failed)} failed "
        f"({', '.join(f'{n} {what}' for what, n in how.most_common())}; {committed} of them "
        f"had committed before the answer was lost), {len(faults) * CYCLES} kill -9 "
        f"({', '.join(label for label, _ in faults)} x{CYCLES}), "
        f"{sum(job.retries for job in jobs)} redeliveries, {revived} processes restarted "
        "after the load; each credited exactly once; "
        f"{time.monotonic() - started:.0f} s"
    )
    assert not problems, "\n".join(problems[:30])
    assert len(failed) > 0, "the faults should have failed some requests"


def test_kill9_fidelia_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    DATABASES.append(url)
    graph = FakeGraph(token="reliability-token")
    env = environment(
        url, FIDELIA_WHATSAPP_API_BASE=graph.url, FIDELIA_WHATSAPP_TOKEN="reliability-token"
    )
    server = Fidelia(env, free_port(), tmp_path)

    def kill_fidelia() -> None:
        server.kill9()
        time.sleep(DOWNTIME)
        server.start()

    try:
        crash_run(
            "sqlite",
            url,
            server,
            [("fidelia", kill_fidelia), ("fidelia", kill_fidelia)],
            graph,
        )
    finally:
        graph.close()


def test_kill9_fidelia_then_postgresql(tmp_path: Path, crash_pg: PostgresServer) -> None:
    crash_pg.psql("CREATE DATABASE crash")
    url = crash_pg.url("crash")
    DATABASES.append(url)
    graph = FakeGraph(token="reliability-token")
    env = environment(
        url, FIDELIA_WHATSAPP_API_BASE=graph.url, FIDELIA_WHATSAPP_TOKEN="reliability-token"
    )
    server = Fidelia(env, free_port(), tmp_path, workers=2, separate_worker=True)

    def kill_fidelia() -> None:
        server.kill9()
        time.sleep(DOWNTIME)
        server.start()

    db = Database(url, pool_size=1)
    in_flight: list[int] = []

    def kill_worker() -> None:
        """In the middle of a batch of replies (the load never stops): Meta takes three
        more, then holds the worker's next request; the worker is killed while it waits."""
        graph.stall(after=3)
        try:
            # Replies come as fast as the restarted processes store and credit webhooks: on
            # a machine this busy, that can take a while after the previous fault.
            assert graph.stalled.wait(120), "the worker sent no reply for 120 s"
            in_flight.append(leased_replies(db))
            server.kill9_worker()
        finally:
            graph.release()
        time.sleep(DOWNTIME)
        server.start_worker(wait=True)  # running before PostgreSQL is killed

    def kill_postgres() -> None:
        crash_pg.kill9()
        time.sleep(DOWNTIME)
        crash_pg.pg_ctl_start()

    try:
        crash_run(
            "postgresql",
            url,
            server,
            [("fidelia", kill_fidelia), ("worker", kill_worker), ("postgresql", kill_postgres)],
            graph,
        )
    finally:
        graph.close()
        db.dispose()
    SUMMARY.note(f"  worker killed with {in_flight} replies claimed and not recorded")
    assert len(in_flight) == CYCLES and all(in_flight), "a worker kill found no batch in flight"
