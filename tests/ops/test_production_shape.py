"""The production shape on loopback, under faults. Debian's nginx (deploy/nginx, TLS) in
front of two ``fidelia serve`` processes, two ``fidelia worker`` processes, Redis for the
shared rate limits, a PostgreSQL primary and its streaming replica (the lookups read it).
A mixed load comes in through every door (seed 000: signed credit webhooks, PIN generation,
points lookups; 001: POS orders; 002: retail transactions; 004: v2 sales) while faults are
injected one after another: a web process killed (-9) and restarted, a worker killed in the
middle of its batches, Redis restarted, the primary killed and restarted.

Afterwards every request answered 2xx is there exactly once (a webhook's credit, a sale's
order and its one earning, a generated PIN), the webhooks that failed are delivered again
(as Meta does) and credited once, the stored messages and the outbox drain, ``fidelia
check`` passes, and /metrics shows the faults: process restarts, the error log lines of
the outages, the killed worker's stale heartbeat.

Short form in ``make test``; ``FIDELIA_RELIABILITY=long`` loads longer and goes through the
faults twice."""

import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from fidelia.kit.db import Database
from fidelia.models import LedgerEntry, Order, Pin
from fidelia.tenants.service import create_tenant, issue_api_key, set_setting
from tests.fakes.graph import FakeGraph
from tests.fakes.redis import RedisServer
from tests.reliability.doors import RETAIL_SOURCE
from tests.reliability.harness import (
    Fidelia,
    Job,
    Load,
    check_problems,
    credit_job,
    environment,
    redeliver,
)
from tests.reliability.summary import pick, pickf
from tests.reliability.test_crash import (
    FAULT_SECONDS,
    inbound_drains,
    outbox_drains,
    pins_for,
    state_of,
)
from tests.support.nginx import Nginx
from tests.support.postgres import PostgresServer, free_port
from tests.support.replica import start_replica
from tests.support.world import basic

RATE = pickf(25, 50)  # credit webhooks a second
DOOR_RATE = pickf(6, 12)  # requests a second through each of the other doors
BETWEEN = pickf(3, 8)  # seconds of load between faults
CYCLES = pick(1, 2)
DOWNTIME = 1.0
METRICS_TOKEN = "production-shape-metrics-token"
POS_CPF, V2_CPF, RETAIL_PHONE = "52998224725", "11144477735", "+5511987654321"
UNLIMITED = "100000/second"
Samples = dict[str, list[tuple[dict[str, str], float]]]  # metric name: (labels, value)

pytestmark = pytest.mark.timeout(pick(420, 1500))


@dataclass
class Call:
    key: str
    status: int | None = None
    error: str | None = None
    body: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0  # when it was sent (monotonic)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class DoorLoad:
    """``send(client, i)`` at ``rate`` a second from two threads until stopped; every
    outcome kept (a Call per request: the key it writes, its answer)."""

    def __init__(
        self, url: str, send: Callable[[httpx.Client, int], tuple[str, httpx.Response]], rate: float
    ) -> None:
        self.url, self.send, self.rate = url, send, rate
        self.calls: list[Call] = []
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._t0 = 0.0
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=15, verify=False) as client:
            while not self._stop.is_set():
                with self._lock:
                    i = self._next
                    self._next += 1
                delay = self._t0 + i / self.rate - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
                call = Call(key=str(i), at=time.monotonic())
                try:
                    call.key, answer = self.send(client, i)
                    call.status = answer.status_code
                    if call.ok:
                        call.body = answer.json()
                except httpx.HTTPError as exc:
                    call.error = type(exc).__name__
                with self._lock:
                    self.calls.append(call)

    def __enter__(self) -> "DoorLoad":
        self._t0 = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def tally(self) -> str:
        counts = Counter(c.error or str(c.status) for c in self.calls)
        return ", ".join(f"{n} {what}" for what, n in counts.most_common())


def make_shop(url: str) -> tuple[int, str, str]:
    """The merchant the sales doors sell for: 1 point per unit; (id, token, api key)."""
    db = Database(url, pool_size=1)
    try:
        with db.session() as session:
            tenant = create_tenant(
                session, slug="lojas", name="Lojas", currency="BRL", locale="pt_BR"
            )
            set_setting(session, "lojas", "earn_points_per_unit", "1")
            issued = issue_api_key(session, tenant)
            return tenant.id, issued.token, issued.api_key
    finally:
        db.dispose()


def doors(front: str, token: str, api_key: str) -> dict[str, DoorLoad]:
    """One load per door besides the credit webhooks, against the nginx front."""
    with httpx.Client(base_url=front, verify=False, timeout=15) as client:
        traded = client.post("/v2/auth/token", json={"api_key": token, "api_secret": api_key})
        assert traded.status_code == 200, traded.text
        bearer = {"Authorization": f"Bearer {traded.json()['access_token']}"}
        member = client.post(
            "/v1/member/register",
            headers={"x-api-key": api_key, **RETAIL_SOURCE},
            json={"member": {"phoneNumber": RETAIL_PHONE}},
        )
        assert member.status_code == 200, member.text

    def pos(client: httpx.Client, i: int) -> tuple[str, httpx.Response]:
        body = {
            "OriginalId": f"pos-{i}",
            "OrderTotal": 100 + i % 50,
            "IsCompleted": True,
            "Customer": {"Document": POS_CPF, "Name": "Ana Loja"},
        }
        return f"pos-{i}", client.post(
            "/v1/pvt/POS/orders", headers=basic(token, api_key), json=body
        )

    def retail(client: httpx.Client, i: int) -> tuple[str, httpx.Response]:
        body = {
            "transaction": {"transactionId": f"rt-{i}", "totalAmount": 2500 + i % 100},
            "member": {"phoneNumber": RETAIL_PHONE},
        }
        headers = {"x-api-key": api_key, **RETAIL_SOURCE}
        return f"rt-{i}", client.post("/v1/transaction", headers=headers, json=body)

    def v2(client: httpx.Client, i: int) -> tuple[str, httpx.Response]:
        body = {"cpf": V2_CPF, "sale_amount": "15.00", "external_id": f"v2-{i}"}
        return f"v2:v2-{i}", client.post("/v2/sales", headers=bearer, json=body)

    def generar(client: httpx.Client, i: int) -> tuple[str, httpx.Response]:
        answer = client.post("/api/v1/integraciones/pin/generar", headers={"X-API-Key": api_key})
        return str(i), answer

    def puntos(client: httpx.Client, i: int) -> tuple[str, httpx.Response]:
        return str(i), client.get(f"/api/v1/redimir/puntos/%2B55119876{i % 20:05d}")

    return {
        "001 POS orders": DoorLoad(front, pos, DOOR_RATE),
        "002 retail transactions": DoorLoad(front, retail, DOOR_RATE),
        "004 v2 sales": DoorLoad(front, v2, DOOR_RATE),
        "000 PIN generation": DoorLoad(front, generar, DOOR_RATE),
        "000 points lookups": DoorLoad(front, puntos, DOOR_RATE),
    }


def sales_kept_once(db: Database, shop_id: int, loads: dict[str, DoorLoad]) -> list[str]:
    """Every sale answered 2xx: its order, with exactly the earning it answered."""
    with db.session(readonly=True) as s:
        orders = {
            o.original_id: o for o in s.scalars(select(Order).where(Order.tenant_id == shop_id))
        }
        earnings = Counter(
            s.scalars(
                select(LedgerEntry.source_id).where(
                    LedgerEntry.source_type == "order",
                    LedgerEntry.kind == "earn",
                    LedgerEntry.account == "points",
                )
            )
        )
    problems = []
    for name in ("001 POS orders", "002 retail transactions", "004 v2 sales"):
        for call in loads[name].calls:
            order = orders.get(call.key)
            if order is None:
                if call.ok:
                    problems.append(f"{name} {call.key}: answered {call.status}, no order")
                continue
            want = 1 if order.earned_points > 0 else 0
            if earnings[str(order.id)] != want:
                problems.append(
                    f"{name} {call.key}: {earnings[str(order.id)]} earnings, {want} expected"
                )
    earned = sum(1 for o in orders.values() if o.earned_points > 0)
    if earned < len(orders) // 2:
        problems.append(f"only {earned} of {len(orders)} orders earned points")
    return problems


def pins_kept(db: Database, shop_id: int, load: DoorLoad) -> list[str]:
    codes = [call.body["pin"] for call in load.calls if call.ok]
    with db.session(readonly=True) as s:
        stored = set(s.scalars(select(Pin.code).where(Pin.tenant_id == shop_id)))
    return [f"PIN {code} answered 2xx but not stored" for code in codes if code not in stored]


def credits_once(db: Database, jobs: list[Job]) -> list[str]:
    """Each credit webhook delivered until 2xx: credited exactly once."""
    credits = state_of(db, "shape")["credits"]
    assert isinstance(credits, Counter)
    problems = []
    for job in jobs:
        n = credits[str(job.pin_id)]
        if job.sent and n != 1:
            problems.append(f"{job.message_id}: credited {n} times (first answer {job.status})")
        if not job.sent and n:
            problems.append(f"{job.message_id}: never sent, yet credited")
    return problems


def scrape(front: str) -> Samples:
    answer = httpx.get(
        f"{front}/metrics",
        headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
        verify=False,
        timeout=15,
    )
    assert answer.status_code == 200, answer.text
    found: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def total(metrics: Samples, name: str, **labels: str) -> float:
    return sum(
        value
        for have, value in metrics.get(name, [])
        if all(have.get(k) == v for k, v in labels.items())
    )


def by_status(metrics: Samples) -> dict[str, float]:
    classes: Counter[str] = Counter()
    for labels, value in metrics.get("fidelia_http_requests_total", []):
        classes[labels["status"]] += int(value)
    return dict(classes)


def test_the_production_shape_under_faults(tmp_path: Path) -> None:
    primary = PostgresServer({"synchronous_commit": "on"}).start()
    replica = redis = front = graph = None
    webs: list[Fidelia] = []
    marks: list[tuple[float, str]] = []
    revived = 0
    started = time.monotonic()
    try:
        primary.psql("CREATE DATABASE fidelia")
        url = primary.url("fidelia")
        seconds = BETWEEN * (4 * CYCLES + 1) + 4 * CYCLES * (DOWNTIME + FAULT_SECONDS)
        made = pins_for(url, int(RATE * seconds * 1.3) + 100)  # migrates first
        senders = [f"+5511{987600000 + n}" for n in range(20)]
        jobs = [credit_job(i, p, c, senders[i % 20], "shape") for i, (p, c) in enumerate(made)]
        shop_id, token, api_key = make_shop(url)
        replica = start_replica(primary)
        redis = RedisServer()
        graph = FakeGraph(token="shape-token")
        limits = {
            f"FIDELIA_{name.upper()}": UNLIMITED
            for name in (
                "rate_limit_pin_door",
                "rate_limit_pin_failures",
                "rate_limit_pdv",
                "rate_limit_retail",
                "rate_limit_rest_v2",
                "rate_limit_rest_v2_token",
                "rate_limit_auth_failures",
            )
        }
        env = environment(
            url,
            FIDELIA_DATABASE_REPLICA_URL=replica.url("fidelia"),
            FIDELIA_REDIS_URL=redis.url,
            FIDELIA_RATE_LIMITS_ENABLED="true",
            FIDELIA_TRUSTED_PROXIES="127.0.0.1",
            FIDELIA_METRICS_TOKEN=METRICS_TOKEN,
            FIDELIA_WHATSAPP_API_BASE=graph.url,
            FIDELIA_WHATSAPP_TOKEN="shape-token",
            FIDELIA_LOG_FORMAT="json",  # as in production: one JSON object a line
            PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
            **limits,
        )
        (tmp_path / "metrics").mkdir()
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            web = Fidelia(env, free_port(), tmp_path / name, separate_worker=True)
            web.start()
            webs.append(web)
        front = Nginx([web.port for web in webs]).start()
        marks.append((time.monotonic(), "started"))
        loads = doors(front.url, token, api_key)
        a, b = webs

        def kill_web() -> None:
            a.kill9_web()
            time.sleep(DOWNTIME)
            a.start_web()

        def kill_worker() -> None:  # the load never stops: it is in the middle of a batch
            b.kill9_worker()
            time.sleep(DOWNTIME)
            b.start_worker(wait=True)  # running before the next fault: one started in the
            # primary's outage would exit, and be restarted only after the last fault

        def restart_redis() -> None:
            redis.restart(DOWNTIME)

        def restart_primary() -> None:
            primary.kill9()
            time.sleep(DOWNTIME)
            primary.pg_ctl_start()

        faults = [
            ("web kill -9", kill_web),
            ("worker kill -9", kill_worker),
            ("redis restart", restart_redis),
            ("primary kill -9", restart_primary),
        ]
        with Load(front.url, jobs, RATE, threads=6, verify=False):
            for load in loads.values():
                load.__enter__()
            try:
                time.sleep(BETWEEN)
                for _ in range(CYCLES):
                    for label, inject in faults:
                        marks.append((time.monotonic(), label))
                        inject()
                        marks.append((time.monotonic(), f"{label} done"))
                        time.sleep(BETWEEN)
                        revived += sum(web.revive() for web in webs)  # systemd's Restart=
            finally:
                for load in loads.values():
                    load.__exit__()
        sent = [job for job in jobs if job.sent]
        timeouts = sorted(
            round(c.at - started)
            for load in loads.values()
            for c in load.calls
            if c.error == "ReadTimeout"
        )
        failed_at = Counter(
            round(c.at - started)
            for load in loads.values()
            for c in load.calls
            if c.status is not None and c.status >= 500
        )
        first = Counter(job.error or str(job.status) for job in sent)
        marks.append((time.monotonic(), "load stopped"))
        db = Database(url, pool_size=2)
        try:
            problems = redeliver(front.url, sent, verify=False)
            marks.append((time.monotonic(), "redelivered"))
            problems += inbound_drains(db)
            problems += credits_once(db, jobs)
            problems += sales_kept_once(db, shop_id, loads)
            problems += pins_kept(db, shop_id, loads["000 PIN generation"])
            marks.append((time.monotonic(), "checked"))
            problems += outbox_drains(db)
            marks.append((time.monotonic(), "outbox drained"))
        finally:
            db.dispose()
        metrics = scrape(front.url)
    finally:
        if front is not None:
            for log in ("error.log", "access.log"):  # kept with the Fidelia logs
                shutil.copy(front.dir / log, tmp_path / f"nginx-{log}")
            front.stop()
        for web in webs:
            web.stop()
    try:
        problems += check_problems(url)
    finally:
        if redis is not None:
            redis.stop()
        if graph is not None:
            graph.close()
        if replica is not None:
            replica.destroy()
        primary.destroy()
    report = [
        f"credit webhooks: {len(sent)} sent, first answers {dict(first)}",
        *(f"{name}: {load.tally()}" for name, load in loads.items()),
        f"faults at: {[(round(t - started), label) for t, label in marks]}",
        f"timeouts sent at: {timeouts}",
        f"5xx sent at (s: count): {dict(sorted(failed_at.items()))}",
        f"processes found dead and restarted (as systemd would): {revived}",
        "errors logged: "
        + str({k["logger"]: v for k, v in metrics.get("fidelia_log_errors_total", [])}),
        f"answers by status class: {by_status(metrics)}",
        f"{time.monotonic() - started:.0f} s",
    ]
    print("\n".join(report))
    assert not problems, "\n".join(problems[:30] + report)
    # Every door was served through the faults.
    assert sum(job.ok for job in sent) > RATE * BETWEEN, report
    for name, load in loads.items():
        assert sum(c.ok for c in load.calls) > DOOR_RATE * BETWEEN, (name, report)
    # Reads that may lag went on from the replica while the primary was down.
    down = [t for t, label in marks if label.startswith("primary kill -9")]
    during = [c for c in loads["000 points lookups"].calls if down[0] <= c.at <= down[1]]
    assert during and all(c.status in (200, 404) for c in during), report
    # The metrics show the faults: the restarts, the Redis and database outages logged (one
    # line each, not a traceback a request), the 5xx answered while the primary was down,
    # and the killed worker's heartbeat going stale next to the live ones.
    assert total(metrics, "fidelia_process_starts_total", kind="web") >= 2 + CYCLES, report
    assert total(metrics, "fidelia_process_starts_total", kind="worker") >= 2 + CYCLES, report
    assert total(metrics, "fidelia_log_errors_total", logger="fidelia.ratelimit") > 0, report
    assert total(metrics, "fidelia_log_errors_total", logger="fidelia.errors") > 0, report
    assert by_status(metrics).get("5xx", 0) > 0, report
    ages = sorted(age for _, age in metrics.get("fidelia_worker_heartbeat_age_seconds", []))
    assert len(ages) >= 2 + CYCLES and ages[-1] > ages[0] + 2, (ages, report)
