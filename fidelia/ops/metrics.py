"""Prometheus metrics (``GET /metrics``, behind FIDELIA_METRICS_TOKEN).

Two kinds:

- **Process metrics**, counted where they happen: requests and their latency per door and
  route template, status classes, webhook intake, outbox deliveries by channel and outcome,
  database pool use, process starts, error log lines per logger. With ``fidelia serve
  --workers N`` every process writes them to files in PROMETHEUS_MULTIPROC_DIR (the serve
  command makes one per run) and a scrape of any process adds them all up; a ``fidelia
  worker`` given the same directory (systemd units in deploy/) is added up too.
- **Platform metrics**, read from the database when scraped, so any process answers for the
  whole platform: outbox backlog and failures by channel and the age of the oldest due
  message, PIN namespace fill per bot number, worker heartbeat ages, database reachability.
"""

import glob
import logging
import os
import re
from collections.abc import Iterable, Iterator
from datetime import timedelta

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from fidelia.kit.clock import now
from fidelia.kit.db import Database
from fidelia.models import OutboxMessage, Pin
from fidelia.ops import heartbeat
from fidelia.pins.guard import GuessPolicy

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter(
    "fidelia_http_requests",
    "HTTP requests answered, per door, route template, method and status class.",
    ["door", "route", "method", "status"],
)
LATENCY = Histogram(
    "fidelia_http_request_duration_seconds",
    "Time to answer, per door and route template.",
    ["door", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WEBHOOKS = Counter(
    "fidelia_webhook_requests",
    "Webhook deliveries received (WhatsApp, Bling), per source and status class.",
    ["source", "status"],
)
DELIVERIES = Counter(
    "fidelia_outbox_deliveries",
    "Outbox delivery attempts, per channel and outcome (sent, retry, permanent).",
    ["channel", "outcome"],
)
DELIVERY_SECONDS = Histogram(
    "fidelia_outbox_delivery_duration_seconds",
    "Time a delivery attempt took, per channel.",
    ["channel"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
POOL_IN_USE = Gauge(
    "fidelia_db_pool_in_use",
    "Database connections checked out of this process's pools (all live processes summed), "
    "per database and pool (sync: sessions in threads; loop: the doors' write transactions "
    "on the event loop; autocommit: one-statement paths on the event loop).",
    ["database", "pool"],
    multiprocess_mode="livesum",
)
POOL_CAPACITY = Gauge(
    "fidelia_db_pool_capacity",
    "Connections the pools may open (pool size plus overflow, live processes summed).",
    ["database", "pool"],
    multiprocess_mode="livesum",
)
STARTS = Counter(
    "fidelia_process_starts",
    "Processes started, per kind (web, worker): restarts after a crash show here.",
    ["kind"],
)
ERRORS = Counter(
    "fidelia_log_errors",
    "Log records at ERROR or above, per logger (a database or Redis outage shows here).",
    ["logger"],
)


_POOL_SERIES: dict[tuple[str, str], tuple[Gauge, Gauge]] = {}


def observe_pools(db: Database) -> None:
    """Each pool's use and capacity now, as this process has them (``Database.pools``: the
    pools made so far)."""
    for database, name, pool in db.pools():
        checked_out = getattr(pool, "checkedout", None)
        size = getattr(pool, "size", None)
        if checked_out is None or size is None:
            continue
        key = (database, name)
        series = _POOL_SERIES.get(key)
        if series is None:
            series = _POOL_SERIES[key] = (POOL_IN_USE.labels(*key), POOL_CAPACITY.labels(*key))
        in_use, capacity = series
        in_use.set(checked_out())
        capacity.set(size() + max(getattr(pool, "_max_overflow", 0), 0))


class ErrorCounter(logging.Handler):
    """Counts ERROR records per logger (the top two name levels: bounded labels)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.set_name("fidelia-metrics")

    def emit(self, record: logging.LogRecord) -> None:
        ERRORS.labels(".".join(record.name.split(".")[:2])).inc()


def install_error_counter() -> None:
    root = logging.getLogger()
    if not any(h.get_name() == "fidelia-metrics" for h in root.handlers):
        root.addHandler(ErrorCounter())


class PlatformCollector(Collector):
    """Platform-wide gauges, read from the database at scrape time (a few indexed counts)."""

    def __init__(self, db: Database, policy: GuessPolicy) -> None:
        self.db = db
        self.capacity = max(policy.capacity(), 1)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("fidelia_database_up", "1 when the database answered the scrape.")
        families: list[GaugeMetricFamily] = []
        try:
            families = list(self._read())
            up.add_metric([], 1)
        except Exception:
            logging.getLogger("fidelia.metrics").warning("metrics: database unreachable")
            up.add_metric([], 0)
        yield up
        yield from families

    def _read(self) -> Iterable[GaugeMetricFamily]:
        at = now()
        backlog = GaugeMetricFamily(
            "fidelia_outbox_backlog", "Outbox messages waiting to be delivered.", labels=["channel"]
        )
        failed = GaugeMetricFamily(
            "fidelia_outbox_failed", "Outbox messages that failed for good.", labels=["channel"]
        )
        oldest = GaugeMetricFamily(
            "fidelia_outbox_oldest_due_seconds",
            "How long the oldest due outbox message has been waiting (0: none).",
        )
        fill = GaugeMetricFamily(
            "fidelia_pin_namespace_fill_ratio",
            "Open PINs of a bot number over what its namespace holds within the guessing target.",
            labels=["bot_number"],
        )
        open_pins = GaugeMetricFamily(
            "fidelia_pin_namespace_open", "Open PINs per bot number.", labels=["bot_number"]
        )
        beats = GaugeMetricFamily(
            "fidelia_worker_heartbeat_age_seconds",
            "Seconds since each worker's last round (workers seen in the last day).",
            labels=["worker"],
        )
        newest = GaugeMetricFamily(
            "fidelia_worker_heartbeat_newest_age_seconds",
            "Seconds since the last round of any worker (-1: none ever).",
        )
        with self.db.session(readonly=True) as session:
            rows = session.execute(
                select(OutboxMessage.status, OutboxMessage.channel, func.count())
                .where(OutboxMessage.status.in_(("pending", "failed")))
                .group_by(OutboxMessage.status, OutboxMessage.channel)
            ).all()
            for status, channel, count in rows:
                (backlog if status == "pending" else failed).add_metric([channel], count)
            due = session.scalar(
                select(func.min(OutboxMessage.next_attempt_at)).where(
                    OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= at
                )
            )
            oldest.add_metric([], max((at - due).total_seconds(), 0) if due else 0)
            for namespace, count in session.execute(
                select(Pin.namespace, func.count())
                .where(Pin.status == "open", Pin.expires_at > at)
                .group_by(Pin.namespace)
            ).all():
                open_pins.add_metric([namespace], count)
                fill.add_metric([namespace], count / self.capacity)
            ages = heartbeat.ages(session, at, within=timedelta(days=1))
        for worker, age in ages.items():
            beats.add_metric([worker], age)
        newest.add_metric([], min(ages.values()) if ages else -1)
        return [backlog, failed, oldest, open_pins, fill, beats, newest]


def _sweep_dead(path: str) -> None:
    """Live gauges of processes that died without saying so (kill -9) stop counting."""
    for file in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        match = re.search(r"_(\d+)\.db$", file)
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, path)
        except PermissionError:
            pass


def prepare_multiprocess() -> str:
    """Before ``uvicorn.run(workers=N)``: the directory where every process of this run
    writes its metrics (PROMETHEUS_MULTIPROC_DIR, or a fresh one), inherited by the worker
    processes uvicorn spawns, so a scrape of any of them adds up all."""
    import tempfile

    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        path = tempfile.mkdtemp(prefix="fidelia-metrics-")
        os.environ[MULTIPROC_ENV] = path
    os.makedirs(path, exist_ok=True)
    return path


def exposition(platform: Collector | None) -> bytes:
    """The text a scrape gets: this process's (or every process's) metrics, then the
    platform's."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        _sweep_dead(path)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    if platform is not None:
        extra = CollectorRegistry()
        extra.register(platform)
        body += generate_latest(extra)
    return body
