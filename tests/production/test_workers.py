"""Several ``fidelia worker`` processes on one PostgreSQL database, as production scales out:
they share the outbox (every message reaches the fake Graph API or SMS gateway exactly
once) and they all run the periodic jobs, which still happen once (PIN expiry, birthday
gifts, point expiry, reminders and come-back messages, the dashboard's rollups).

Mutations these tests catch (checked by hand, issue 16):
- ``claim()`` without its row lock (no ``with_for_update``): two workers claim the same
  rows and deliver them twice -> ``test_workers_share_the_outbox_and_send_each_message_once``.
- ``claim()`` with ``FOR UPDATE`` but without ``SKIP LOCKED``: still exactly once (a blocked
  claim re-reads the row and skips it), but every worker waits on the rows another one is
  claiming -> ``test_a_claim_does_not_wait_for_rows_another_worker_holds``.
"""

import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from sqlalchemy import func, select

from fidelia.kit import clock
from fidelia.kit.clock import now
from fidelia.kit.db import Database
from fidelia.messaging import intake, outbox
from fidelia.messaging.worker import Worker
from fidelia.models import (
    DailyRollup,
    LedgerEntry,
    MessageLog,
    OutboxMessage,
    Pin,
    Voucher,
    WorkerHeartbeat,
)
from tests.dialects.retail_v1.conftest import ANA, make_shop, ok, register, sale
from tests.fakes.graph import FakeGraph
from tests.fakes.sms import FakeSmsGateway
from tests.production.conftest import Processes, fidelia_env, wait_for
from tests.support.helpers import ledger_invariants, send_whatsapp

pytestmark = pytest.mark.timeout(240)
WORKERS = 3


@pytest.fixture
def sms() -> FakeSmsGateway:
    fake = FakeSmsGateway()
    yield fake
    fake.close()


def worker_env(url: str, graph: FakeGraph, sms: FakeSmsGateway, **extra: str) -> dict[str, str]:
    return fidelia_env(
        url,
        FIDELIA_WHATSAPP_API_BASE=graph.url,
        FIDELIA_WHATSAPP_TOKEN=graph.token,
        FIDELIA_SMS_GATEWAY_URL=sms.url,
        FIDELIA_SMS_GATEWAY_TOKEN=sms.token,
        **extra,
    )


def start_workers(processes: Processes, env: dict[str, str], n: int, db: Database) -> None:
    """``n`` worker processes, returned once each has gone round (its heartbeat row)."""
    pids = [str(processes.spawn(env, "worker").pid) for _ in range(n)]

    def all_beating() -> bool:
        with db.session(readonly=True) as session:
            names = list(session.scalars(select(WorkerHeartbeat.worker)))
        return all(any(name.endswith(f":{pid}") for name in names) for pid in pids)

    wait_for(all_beating, 60, f"{n} workers going round", every=0.2)


def outbox_rows(db: Database) -> list[OutboxMessage]:
    with db.session(readonly=True) as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def all_delivered(db: Database) -> bool:
    """Nothing due is left pending or leased (rows scheduled later do not count)."""
    with db.session(readonly=True) as session:
        left = session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now())
        )
    return left == 0


def test_workers_share_the_outbox_and_send_each_message_once(pg_db, graph, sms, processes):
    n = 240
    env = worker_env(pg_db.url, graph, sms, FIDELIA_WORKER_BATCH_SIZE="4")
    start_workers(processes, env, WORKERS, pg_db)
    # Everything at once, in one transaction with the NOTIFY that wakes every worker at the
    # same moment: they all claim together, which is where a missing lock shows.
    with pg_db.session() as session:
        for i in range(n):
            if i % 3:
                outbox.whatsapp_text(
                    session, text=f"m-{i}", wa_number=f"+5511{i:09d}", wa_user_id=None
                )
            else:
                outbox.enqueue(session, "sms", {"to": f"+5521{i:09d}", "text": f"s-{i}"})
        intake.notify(session)
    wait_for(lambda: all_delivered(pg_db), 90, "the outbox drained", every=0.2)
    time.sleep(1.0)  # a duplicate delivery would still be on its way
    at_graph = Counter(m["text"]["body"] for m in graph.sent)
    at_sms = Counter(m["text"] for m in sms.sent)
    twice = {t: c for t, c in (at_graph + at_sms).items() if c > 1}
    print(f"\n{WORKERS} workers, {n} messages: {len(twice)} delivered more than once")
    assert twice == {}
    assert sorted(at_graph) == sorted(f"m-{i}" for i in range(n) if i % 3)
    assert sorted(at_sms) == sorted(f"s-{i}" for i in range(n) if i % 3 == 0)
    rows = outbox_rows(pg_db)
    assert {(r.status, r.attempts) for r in rows} == {("sent", 1)}


def test_a_claim_does_not_wait_for_rows_another_worker_holds(pg_db):
    """A row another worker is claiming (its row lock held) is skipped, not waited for."""
    with pg_db.session() as session:
        ids = [outbox.enqueue(session, "sms", {"to": "+1", "text": str(i)}) for i in range(3)]
        session.flush()
        ids = [row.id for row in ids]
    claimed: list[int] = []
    with psycopg.connect(pg_db.url) as other:  # another worker, in the middle of its claim
        other.execute("SELECT id FROM outbox WHERE id = %s FOR UPDATE", (ids[0],))
        claimer = threading.Thread(
            target=lambda: claimed.extend(r.id for r in Worker(pg_db, {}, batch=10).claim()),
            daemon=True,
        )
        claimer.start()
        claimer.join(timeout=5)
        waited = claimer.is_alive()
        other.rollback()
    claimer.join(timeout=30)
    assert not waited, "the claim waited for a row another worker holds"
    assert claimed == ids[1:]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_periodic_jobs_run_by_the_workers_once(client, db, settings, graph, processes):
    """Two workers start together, so both run the sweep at once; each job's effect is
    there once. The data was written in the past (frozen clock) as the API writes it."""
    zone = "America/Sao_Paulo"
    today = datetime.now(ZoneInfo(zone)).date()
    shop = make_shop(
        db,
        timezone=zone,
        birthday_gift_value="10.00",
        birthday_gift_days="30",
        points_validity_days="30",
        expiry_reminder_days="7",
        message_points_expiring="true",
        message_come_back="true",
        come_back_days="20",
    )
    birthday = today.replace(year=2000).isoformat()  # 2000: a leap year, for 29 February
    member = register(client, shop, birthday=birthday, allowedWhatsApp=True)
    send_whatsapp(client, settings, ANA, "oi")  # the 24-hour window is open: plain texts
    real = now()
    try:
        clock.freeze(real - timedelta(days=31))  # its points expired a day ago
        ok(sale(client, shop, "T-OLD", 10_000, {"phoneNumber": ANA}))
        clock.freeze(real - timedelta(days=24))  # its points expire in 6 days: a reminder
        ok(sale(client, shop, "T-MID", 5_000, {"phoneNumber": ANA}))
    finally:
        clock.freeze(None)
    with db.session() as session:
        base = {"tenant_id": shop.id, "namespace": settings.bot_number, "points": 5}
        session.add(
            Pin(
                code="111111",
                status="open",
                expires_at=real - timedelta(hours=1),
                created_at=real - timedelta(days=2),
                **base,
            )
        )
        session.add(
            Pin(
                code="222222",
                status="open",
                expires_at=real + timedelta(days=1),
                created_at=real,
                **base,
            )
        )
    with db.session(readonly=True) as session:
        old_lots = session.execute(
            select(LedgerEntry.id, LedgerEntry.amount).where(
                LedgerEntry.kind == "earn", LedgerEntry.expires_at <= real
            )
        ).all()
    assert len(old_lots) == 2  # T-OLD's points and cashback

    env = fidelia_env(
        db.url, FIDELIA_WHATSAPP_API_BASE=graph.url, FIDELIA_WHATSAPP_TOKEN=graph.token
    )
    start_workers(processes, env, 2, db)

    def swept() -> bool:
        with db.session(readonly=True) as session:
            expired = session.scalar(
                select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "expire")
            )
            decided = session.scalar(
                select(func.count())
                .select_from(MessageLog)
                .where(MessageLog.event.in_(("points_expiring", "come_back")))
            )
            gifts = session.scalar(
                select(func.count()).select_from(Voucher).where(Voucher.kind == "birthday")
            )
            rolled = session.scalar(select(func.count()).select_from(DailyRollup))
        return bool(expired and decided == 2 and gifts and rolled)

    wait_for(swept, 60, "the sweep's effects", every=0.2)
    time.sleep(8)  # a second sweep's duplicates (or a later pair's message) would be here
    wait_for(lambda: all_delivered(db), 60, "the outbox drained", every=0.2)
    time.sleep(1.0)

    with db.session(readonly=True) as session:
        pins = dict(session.execute(select(Pin.code, Pin.status)).tuples().all())
        gifts = list(session.scalars(select(Voucher).where(Voucher.kind == "birthday")))
        expiries = session.execute(
            select(LedgerEntry.source_id, LedgerEntry.amount).where(LedgerEntry.kind == "expire")
        ).all()
        decided = Counter(
            session.scalars(select(MessageLog.event).where(MessageLog.event != "benefit_earned"))
        )
        old_day = (real - timedelta(days=31)).astimezone(ZoneInfo(zone)).date()
        mid_day = (real - timedelta(days=24)).astimezone(ZoneInfo(zone)).date()
        issued = dict(
            session.execute(
                select(DailyRollup.day, DailyRollup.points_issued).where(
                    DailyRollup.tenant_id == shop.id
                )
            )
            .tuples()
            .all()
        )
        sent_rows = list(
            session.scalars(select(OutboxMessage).where(OutboxMessage.status == "sent"))
        )
    assert pins == {"111111": "expired", "222222": "open"}
    assert len(gifts) == 1 and gifts[0].customer_id == int(member["memberId"])
    assert gifts[0].campaign == f"birthday-{today.year}"
    assert sorted(expiries) == sorted((str(lot), -amount) for lot, amount in old_lots)
    assert decided == {"points_expiring": 1, "come_back": 1}
    assert issued[old_day] == 100 and issued[mid_day] == 50  # folded once, not twice
    # Every message the jobs queued reached the Graph API once (the birthday gift's too).
    bodies = Counter(
        m["text"]["body"] if m.get("type") == "text" else str(m.get("template")) for m in graph.sent
    )
    assert max(bodies.values()) == 1, bodies
    assert len(graph.sent) == len(sent_rows)
    assert {r.attempts for r in sent_rows} == {1}
    assert sum(gifts[0].code in body for body in bodies) == 1
    assert ledger_invariants(db) == []
