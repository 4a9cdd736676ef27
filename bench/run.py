"""`make bench`: Fidelia under load next to what its database can do, in one invocation.

    python bench/run.py            # the full run (seeding 10M ledger entries: 4-5 min of it)
    python bench/run.py --quick    # smoke test: every scenario runs and answers correctly

Sets everything up itself: a throwaway PostgreSQL server, pgbench as the reference, the
data (bulk-loaded), Fidelia as real processes with production settings, wrk as the load
generator. Prints the table, then one ``scenario NAME rps=N p50_ms=N p99_ms=N ratio=N``
line per scenario; writes bench/results/*.json, bench/results/bench.png and the table
in BENCHMARKS.md (a quick run writes only its JSON, to --out). Exits 1 when a scenario
did not answer correctly (the credit path must really credit, and so on).
"""

import argparse
import functools
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from bench import bling, load, pgstats, reference, report, seed  # noqa: E402
from bench.services import (  # noqa: E402
    APP_SECRET,
    RATE_LIMIT,
    FideliaServer,
    FloorServer,
    GraphSink,
    PostgresServer,
    fidelia_env,
    postgres_cpu,
)
from fidelia.kit.migrate import upgrade  # noqa: E402

# What a credit writes (``run_credit`` analyses them before each run).
CREDIT_TABLES = (
    "pins",
    "inbound_messages",
    "outbox",
    "ledger_entries",
    "balances",
    "customers",
    "customer_identifiers",
    "whatsapp_contacts",
)


@dataclass
class Config:
    quick: bool
    seconds: float = 15.0  # one measurement at peak
    half_seconds: float = 10.0  # one measurement at half of the peak rate
    warmup: float = 2.0
    connections: int = 32
    threads: int = 2  # wrk and pgbench threads
    web_workers: int = 2  # `fidelia serve --workers`
    pgbench_scale: int = 10
    merchants: int = 10
    customers_each: int = 100  # base: 10 x 100 customers, one ledger entry each = 1k
    # Issue 14: flat from 1k to 10M ledger entries and from 10 to 1,000 merchants.
    levels: list[tuple[int, int]] = field(
        default_factory=lambda: [
            (100_000, 10),
            (1_000_000, 10),
            (10_000_000, 10),
            (10_000_000, 1_000),
        ]
    )
    max_rps: float = 4_000.0  # sizes the credit path's PIN pool
    # The panel: one merchant with this many customers of 10 entries each (issue 11:
    # 100,000 customers and 1M ledger entries), its owner searching and opening customers.
    panel_customers: int = 100_000
    # The dashboard: rollups standing for this many ledger entries over these merchants.
    dashboard_entries: int = 10_000_000
    dashboard_merchants: int = 1_000
    dashboard_days: int = 365
    drain_wait: float = 30.0  # longest wait for the outbox backlog between scenarios
    profile: bool = False
    pg_stats: bool = False  # pg_stat_statements over each credit run (bench/pgstats.py)
    only: set[str] | None = None  # --only: these scenarios (and what they need) alone

    @classmethod
    def for_quick(cls) -> "Config":
        return cls(
            quick=True,
            seconds=2,
            half_seconds=1,
            warmup=0.0,
            connections=8,
            pgbench_scale=1,
            customers_each=20,
            levels=[(2_000, 10), (2_000, 30)],
            max_rps=3_000,
            drain_wait=120,  # waits only as long as the backlog lasts; a loaded machine is slow
            panel_customers=2_000,
            dashboard_entries=20_000,
            dashboard_merchants=30,
            dashboard_days=90,
        )


class Bench:
    def __init__(self, config: Config, out: Path, workdir: Path) -> None:
        self.c = config
        self.out = out
        self.work = workdir
        self.rng = random.Random(20_261_121)
        self.results: dict[str, Any] = {
            "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "quick": config.quick,
            "references": {},
            "scenarios": [],
            "scaling": [],
            "notes": [],
            "floors": {},  # the floor app (bench/floor.py), per scenario: its peak
        }
        self.failures: list[str] = []
        self.started = time.monotonic()
        self.floor: FloorServer | None = None
        self.floor_url = ""
        self.credit_runs = 0  # numbers the --pg-stats files
        self.last_end_to_end = 0.0
        self.last_tag = ""
        self.last_cpu: dict[str, float] = {}  # the last credit run's CPU ms per credit

    def wants(self, name: str) -> bool:
        return self.c.only is None or name in self.c.only

    # -- helpers -----------------------------------------------------------------------

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {text}", flush=True)

    def wrk(
        self,
        server: FideliaServer,
        requests: list[bytes],
        mode: str,
        seconds: float,
        rate: float = 0,
    ) -> load.LoadResult:
        prefix = self.work / f"req-{self.rng.randrange(10**9)}"
        load.write_requests(prefix, requests, self.c.threads)
        try:
            web, worker = server.cpu_seconds()
            result = load.run_wrk(
                server.url,
                prefix,
                mode=mode,
                seconds=seconds,
                connections=self.c.connections,
                threads=self.c.threads,
                rate=rate,
            )
            web_after, worker_after = server.cpu_seconds()
            done = max(1, result.requests)
            return replace(
                result,
                web_cpu_ms=1000 * (web_after - web) / done,
                worker_cpu_ms=1000 * (worker_after - worker) / done,
            )
        finally:
            for t in range(self.c.threads):
                Path(f"{prefix}.{t}").unlink(missing_ok=True)

    def check(self, name: str, ok: bool, detail: str) -> str:
        if not ok:
            self.failures.append(f"{name}: {detail}")
            self.say(f"CHECK FAILED {name}: {detail}")
            return f"FAILED: {detail}"
        return "ok"

    def reference(self, key: str, label: str, result: load.LoadResult) -> None:
        self.results["references"][key] = {"label": label, **result.as_dict()}
        self.say(f"{label}: {result.rps:,.0f}/s p50 {result.p50_ms:.2f} ms p99 {result.p99_ms:.2f}")

    def scenario(
        self,
        name: str,
        what: str,
        ref: str,
        result: load.LoadResult,
        check: str,
        target: float | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        ref_rps = self.results["references"][ref]["rps"]
        floor = self.results["floors"].get(name)
        if floor:  # credit: end to end (credited/s), the floor credits as it answers
            rps = extra.get("end_to_end_rps", result.rps)
            extra["floor_rps"] = floor["rps"]
            extra["floor_ratio"] = round(rps / floor["rps"], 4) if floor["rps"] else 0.0
            if "fidelia_at_half" in floor:
                extra["half_floor"] = floor["fidelia_at_half"]
        entry = {
            "name": name,
            "what": what,
            "reference": ref,
            **result.as_dict(),
            "ratio": round(result.rps / ref_rps, 4) if ref_rps else 0.0,
            "target": target,
            "check": check,
            **extra,
        }
        self.results["scenarios"].append(entry)
        self.say(
            f"{name}: {result.rps:,.0f}/s p50 {result.p50_ms:.2f} ms p99 {result.p99_ms:.2f} ms "
            f"ratio {entry['ratio']:.3f}"
            + (f" x floor {entry['floor_ratio']:.3f}" if "floor_ratio" in entry else "")
            + f" ({check})"
        )
        return entry

    # -- PostgreSQL ---------------------------------------------------------------------

    def postgres(self, sink: GraphSink) -> None:
        pg = PostgresServer(pgstats.SETTINGS if self.c.pg_stats else None).start()
        try:
            version = pg.psql("SHOW server_version").split()[0]
            self.results["settings_pg"] = version
            self.say(
                f"PostgreSQL {version} on port {pg.port}; pgbench scale {self.c.pgbench_scale}"
            )
            reference.pgbench_init(pg, self.c.pgbench_scale)
            seconds = max(1, round(self.c.seconds))
            for mode, key, label in (
                ("-N", "pgbench-N", "pgbench -N (write transaction)"),
                ("-S", "pgbench-S", "pgbench -S (primary-key read)"),
            ):
                result = reference.pgbench(pg, mode, self.c.connections, seconds, self.c.threads)
                self.reference(key, label, result)
            pg.psql("CREATE DATABASE fidelia")
            url = pg.url("fidelia")
            upgrade(url)
            self.pg = pg
            self.fidelia_postgres(url, sink)
            if self.wants("bling"):
                bling.run(self, pg)  # the Bling connector's import and event backlog
        finally:
            pg.destroy()

    def fidelia_postgres(self, url: str, sink: GraphSink) -> None:
        data = seed.Dataset()
        with seed.Loader(url) as db:
            seed.add_merchants(db, data, self.c.merchants, self.c.customers_each)
            db.analyze()
        # The floor's own copy of the same seeded data (a template copy: no connection open).
        self.v2_tokens = seed.v2_tokens(url, data)  # before the copy: the floor knows them
        self.pg.psql("CREATE DATABASE floor TEMPLATE fidelia")
        self.floor_url = self.pg.url("floor")
        env = fidelia_env(url, sink.url)
        server = FideliaServer(
            env, self.work, workers=self.c.web_workers, separate_worker=True, name="pg"
        )
        self.results["settings"]["serve"] = (
            f"fidelia serve --workers {self.c.web_workers} --no-worker"
        )
        self.say(f"seeded {self.describe(url, data)}; starting {self.results['settings']['serve']}")
        with server, FloorServer(self.floor_url, self.work, workers=self.c.web_workers) as floor:
            self.floor = floor
            if self.wants("credit"):
                credit = self.credit(url, data, server, "credit")
                self.scaling_point(url, data, credit)
                self.drain(url)
            if self.wants("pin"):
                self.pin(url, data, server)
            if self.wants("lookup"):
                self.lookup(data, server)
            if self.wants("redeem"):
                self.redeem(url, data, server)
            self.doors(url, data, server)
            self.drain(url)
            for entries, merchants in self.c.levels if self.wants("scaling") else []:
                with seed.Loader(url) as db:
                    started = time.monotonic()
                    missing = merchants - len(data.merchants)
                    if missing > 0:
                        seed.add_merchants(db, data, missing, 10)
                    seed.grow_ledger(db, data, entries)
                    db.analyze(vacuum=True)
                self.say(
                    f"seeded up to {self.describe(url, data)} in {time.monotonic() - started:.1f} s"
                )
                result = self.credit(url, data, server, f"credit-{entries}-{merchants}", half=False)
                self.scaling_point(url, data, result)
                self.drain(url)
            if self.wants("panel"):
                self.panel(url, data, server)
            if self.wants("dashboard"):
                self.dashboard(url, data, server)
            self.results["outbox_delivered"] = self.sink.received

    def describe(self, url: str, data: seed.Dataset) -> str:
        with seed.Loader(url) as db:
            entries = seed.count_entries(db)
        customers = sum(len(v) for v in data.customers.values())
        return f"{len(data.merchants):,} merchants, {customers:,} customers, {entries:,} entries"

    def scaling_point(self, url: str, data: seed.Dataset, result: dict[str, Any]) -> None:
        self.results["scaling"].append(
            {
                "ledger_entries": result["entries_before"],
                "tenants": len(data.merchants),
                "customers": sum(len(v) for v in data.customers.values()),
                "rps": result["rps"],
                "p50_ms": result["p50_ms"],
                "p99_ms": result["p99_ms"],
                "web_cpu_ms": result["web_cpu_ms"],
                # CPU per credit, load start to backlog done: the steady figure on a shared
                # machine (req/s moves with what else runs; these move far less)
                "cpu_ms_per_credit": result.get("cpu_ms_per_credit"),
                "end_to_end_rps": result.get("end_to_end_rps"),  # credited/s
                "load_average": round(os.getloadavg()[0], 1),
                "check": result["check"],
            }
        )

    def credits(self, url: str) -> int:
        with seed.Loader(url) as db:
            return int(db.scalar("SELECT COUNT(*) FROM ledger_entries WHERE source_type = 'pin'"))

    def run_credit(
        self, url: str, data: seed.Dataset, server: FideliaServer, seconds: float, rate: float = 0
    ) -> tuple[load.LoadResult, str]:
        """Webhooks activating fresh PINs; checks that each answered one was credited."""
        size = int((rate or self.c.max_rps) * seconds * 1.3) + 50
        with seed.Loader(url) as db:
            pool = seed.add_pin_pool(db, data, size, self.rng)
            # Planner statistics that know the pool: with the previous ones (no open PIN
            # after the last run's retire), PostgreSQL activated a batch's PINs through
            # (namespace, status, expires_at), reading every open PIN of the namespace for
            # each batch (47 ms, 15,000 buffers a batch with a 49k pool); with them, one
            # probe of uq_pins_open_code per PIN (1 ms). Production's statistics follow
            # the open PINs as they come and go; a bulk load outruns autovacuum.
            # And those of the tables the credits fill, as the last run left them: the worker
            # keeps a prepared statement's generic plan until a table is analysed again, and
            # the batch's ``done`` mark, planned while inbound_messages held 273 rows, read
            # the whole table for every batch of a run (1.6 ms for 24 messages; BENCHMARKS.md,
            # stop 29). A shop's tables are not a minute old; the floor's get the same.
            db.analyze(among=CREDIT_TABLES)
        host = server.url.removeprefix("http://")
        tag = f"{self.rng.randrange(10**9)}"
        requests = load.webhook_requests(pool, host, APP_SECRET, tag)
        before = self.credits(url)
        counted = self.c.pg_stats and server is not self.floor and not url.startswith("sqlite")
        if counted:
            pgstats.reset(url)
        cpu = (*server.cpu_seconds(), self.db_cpu(url))
        result = self.wrk(server, requests, "once", seconds, rate)
        time.sleep(0.3)  # requests in flight when wrk stopped still commit
        # Store first, then process: the webhook answers once a message is stored; the
        # worker credits it and hands its reply to the sender. Wait for both backlogs, then
        # count (end to end: the floor answers before any reply is sent).
        behind = self.wait_inbound(url, replies=server is not self.floor)
        cpu_after = (*server.cpu_seconds(), self.db_cpu(url))
        if counted:
            self.credit_runs += 1
            path = self.out / f"pg-stats-credit-{self.credit_runs}.txt"
            pgstats.write(url, path)
            self.say(f"PostgreSQL's statements over this credit run: {path}")
        credited = self.credits(url) - before
        self.last_cpu = {
            part: round(1000 * (b - a) / max(1, credited), 2)
            for part, a, b in zip(("web", "worker", "db"), cpu, cpu_after, strict=True)
        }
        end_to_end = credited / (seconds + behind) if seconds + behind else 0.0
        self.last_end_to_end = end_to_end
        self.last_tag = tag
        self.say(
            f"credit end to end: {end_to_end:,.0f}/s credited ({result.rps:,.0f}/s webhooks "
            f"answered; the credits and their replies done {behind:.1f} s after the load)"
        )
        self.retire(url, pool)
        answered = result.requests - result.errors
        ok = result.errors == 0 and answered <= credited <= result.sent and credited > 0
        detail = f"{credited} credited for {answered} answered, {result.errors} errors"
        if result.error_sample:
            detail += f" ({result.error_sample})"
        if result.exhausted:
            self.results["notes"].append(
                f"the PIN pool ran out during a credit run ({len(pool)} PINs); raise max_rps"
            )
        return result, detail if not ok else "ok"

    def db_cpu(self, url: str) -> float:
        """CPU seconds the PostgreSQL server has used so far (0 on SQLite)."""
        pg = getattr(self, "pg", None)
        return postgres_cpu(pg) if pg is not None and not url.startswith("sqlite") else 0.0

    def retire(self, url: str, pool: list[seed.PoolPin]) -> None:
        """Expire the unused PINs; a worker still crediting a backlog (a busy machine) may
        deadlock with that UPDATE: PostgreSQL aborts one of the two, here we try again."""
        import psycopg

        for attempt in range(5):
            try:
                with seed.Loader(url) as db:
                    seed.retire_pool(db, pool)
                return
            except psycopg.errors.DeadlockDetected:
                time.sleep(0.5 * (attempt + 1))
        self.results["notes"].append("a credit run's unused PINs could not be expired")

    def credit(
        self, url: str, data: seed.Dataset, server: FideliaServer, name: str, half: bool = True
    ) -> dict[str, Any]:
        with seed.Loader(url) as db:
            entries_before = seed.count_entries(db)
        if name == "credit":
            self.floor_credit(data)
        if self.c.warmup:
            self.run_credit(url, data, server, self.c.warmup)
        profiler = self.start_profile(server, name)
        result, detail = self.run_credit(url, data, server, self.c.seconds)
        self.stop_profile(profiler)
        check = self.check(name, detail == "ok", detail)
        extra: dict[str, Any] = {
            "entries_before": entries_before,
            "end_to_end_rps": round(self.last_end_to_end, 1),
            "cpu_ms_per_credit": self.last_cpu,
        }
        if half:
            self.drain(url)  # the peak's backlog of replies must not slow the paced run
            paced, paced_detail = self.run_credit(
                url, data, server, self.c.half_seconds, rate=result.rps / 2
            )
            self.check(f"{name} at half rate", paced_detail == "ok", paced_detail)
            extra["half"] = paced.as_dict()
            extra["half"]["reply_p99_ms"] = self.reply_p99_ms(url, self.last_tag)
            self.say(
                f"{name} at half rate: webhook stored to credited and reply queued, p99 "
                f"{extra['half']['reply_p99_ms']} ms (target <= 100 ms)"
            )
        if name != "credit":
            entry = {"name": name, **result.as_dict(), "check": check, **extra}
            self.say(
                f"{name}: {result.rps:,.0f}/s p50 {result.p50_ms:.2f} ms "
                f"p99 {result.p99_ms:.2f} ms ({check})"
            )
            return entry
        return self.scenario(
            "credit",
            f"signed webhook activating a fresh PIN ({extra['end_to_end_rps']:,.0f}/s credited "
            "end to end)",  # the full-speed run's, not the paced run's that came after
            "pgbench-N",
            result,
            check,
            target=0.5,
            **extra,
        )

    def reply_p99_ms(self, url: str, tag: str) -> float | None:
        """p99 of a run's webhooks from stored (``received_at``) to processed: credited and
        their reply queued, by the batch that took them (``processed_at`` is when that batch
        began; its commit follows within the batch, a few ms)."""
        with seed.Loader(url) as db:
            found = db.scalar(
                "SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM "
                "processed_at - received_at)) FROM inbound_messages WHERE message_id LIKE ? "
                "AND status = 'done'",
                f"wamid.bench.{tag}.%",
            )
        return None if found is None else round(1000 * float(found), 1)

    def floor_credit(self, data: seed.Dataset) -> None:
        """The floor's credits/s: each webhook credited before it is answered."""
        assert self.floor is not None
        if self.c.warmup:
            self.run_credit(self.floor_url, data, self.floor, self.c.warmup)
        result, detail = self.run_credit(self.floor_url, data, self.floor, self.c.seconds)
        self.floor_done("credit", result, detail)

    def floor_cycled(self, name: str, requests: list[bytes]) -> None:
        """The floor at its peak on the same requests as Fidelia's scenario ``name``."""
        assert self.floor is not None
        if self.c.warmup:
            self.wrk(self.floor, requests, "cycle", self.c.warmup)
        result = self.wrk(self.floor, requests, "cycle", self.c.seconds)
        ok = result.errors == 0 and result.requests > 0
        detail = f"{result.errors} errors ({result.error_sample})"
        self.floor_done(name, result, "ok" if ok else detail)

    def floor_done(self, name: str, result: load.LoadResult, detail: str) -> None:
        self.results["floors"][name] = {**result.as_dict(), "check": detail}
        self.check(f"floor {name}", detail == "ok", detail)
        self.say(
            f"floor {name}: {result.rps:,.0f}/s p50 {result.p50_ms:.2f} ms "
            f"p99 {result.p99_ms:.2f} ms, {result.web_cpu_ms or 0:.2f} CPU ms/req ({detail})"
        )

    def at_half_floor(self, server: FideliaServer, requests: list[bytes], name: str) -> None:
        """Issue 14's latency target: Fidelia's p99 at half of the floor's peak rate (the
        scenario's ``half`` is at half of Fidelia's own peak). Where Fidelia's peak is below
        that rate it is overloaded, and its p99 (and any timeouts, counted, not failed) says
        so."""
        floor = self.results["floors"][name]
        paced = self.wrk(server, requests, "cycle", self.c.half_seconds, rate=floor["rps"] / 2)
        floor["fidelia_at_half"] = paced.as_dict()

    def cycled(
        self,
        server: FideliaServer,
        build: Callable[[int], list[bytes]],
        counter: Callable[[], int] | None,
        name: str = "",  # with a name, the floor runs first on the same requests
        unique: bool = False,  # each request makes its own row (idempotency keys)
    ) -> tuple[load.LoadResult, load.LoadResult, str]:
        """A scenario whose requests may repeat: warm-up, peak, then half of the peak."""
        requests = build(20_000 if not self.c.quick else 2_000)
        if name:
            self.floor_cycled(name, requests)
        if self.c.warmup:
            # Requests carrying an idempotency key warm up on keys of their own: the
            # measurement's would be replays.
            warm = build(len(requests) // 4) if unique else requests
            self.wrk(server, warm, "cycle", self.c.warmup)
        before = counter() if counter else 0
        peak = self.wrk(server, requests, "cycle", self.c.seconds)
        time.sleep(0.3)
        done = (counter() - before) if counter else peak.requests
        half = self.wrk(server, requests, "cycle", self.c.half_seconds, rate=peak.rps / 2)
        if name:
            self.at_half_floor(server, requests, name)
        answered = peak.requests - peak.errors
        errors = peak.errors + half.errors
        ok = errors == 0 and peak.requests > 0 and done >= answered
        detail = f"{done} done for {answered} answered, {errors} errors"
        sample = " | ".join(r.error_sample for r in (peak, half) if r.error_sample)
        return peak, half, "ok" if ok else detail + (f" ({sample})" if sample else "")

    def pin(self, url: str, data: seed.Dataset, server: FideliaServer) -> None:
        host = server.url.removeprefix("http://")

        def generated() -> int:
            with seed.Loader(url) as db:
                return int(db.scalar("SELECT COUNT(*) FROM pins WHERE amount IS NULL"))

        peak, half, detail = self.cycled(
            server,
            lambda n: load.pin_requests(data.merchants, host, n, self.rng),
            generated,
            "pin",
        )
        self.scenario(
            "pin",
            "`POST /api/v1/integraciones/pin/generar`",
            "pgbench-N",
            peak,
            self.check("pin", detail == "ok", detail),
            half=half.as_dict(),
        )

    def lookup(self, data: seed.Dataset, server: FideliaServer) -> None:
        host = server.url.removeprefix("http://")
        customers = data.all_customers()
        peak, half, detail = self.cycled(
            server, lambda n: load.lookup_requests(customers, host, n, self.rng), None, "lookup"
        )
        self.scenario(
            "lookup",
            "`GET /api/v1/redimir/puntos/{wa}`",
            "pgbench-S",
            peak,
            self.check("lookup", detail == "ok", detail),
            target=0.25,
            half=half.as_dict(),
        )

    def redeem(self, url: str, data: seed.Dataset, server: FideliaServer) -> None:
        host = server.url.removeprefix("http://")
        customers = data.all_customers()
        rewards = {m.id: m.reward_id for m in data.merchants}

        def redemptions() -> int:
            with seed.Loader(url) as db:
                return int(db.scalar("SELECT COUNT(*) FROM redemptions"))

        peak, half, detail = self.cycled(
            server,
            lambda n: load.redeem_requests(customers, rewards, host, n, self.rng),
            redemptions,
            "redeem",
        )
        self.scenario(
            "redeem",
            f"`POST /api/v1/redimir/canjear` over {len(customers):,} customers",
            "pgbench-N",
            peak,
            self.check("redeem", detail == "ok", detail),
            half=half.as_dict(),
        )

    def doors(self, url: str, data: seed.Dataset, server: FideliaServer) -> None:
        """The POS (seed 001: redeem, order), retail (seed 002) and `/v2` (seed 004) hot
        paths, each request unique (idempotency key, order id), each against its floor."""
        host = server.url.removeprefix("http://")
        customers = data.all_customers()
        merchants = {m.id: m for m in data.merchants}
        tokens = self.v2_tokens
        scenarios: list[tuple[str, str, Callable[[int], list[bytes]], str]] = [
            (
                "pos-redeem",
                "`POST /v1/pvt/POS/rewards/{id}/redeem` by CPF, a fresh OriginalKey each",
                lambda n: load.pos_redeem_requests(customers, merchants, host, n, self.rng),
                "SELECT COUNT(*) FROM redemptions WHERE origin = 'pdv'",
            ),
            (
                "pos-order",
                "`POST /v1/pvt/POS/orders`: a completed order by CPF, earning points",
                lambda n: load.pos_order_requests(customers, merchants, host, n, self.rng),
                "SELECT COUNT(*) FROM orders",
            ),
            (
                "retail-transaction",
                "`POST /v1/transaction`: a member's sale paid in cash, earning points",
                lambda n: load.retail_requests(customers, merchants, host, n, self.rng),
                "SELECT COUNT(*) FROM orders",
            ),
            (
                "v2-sale",
                "`POST /v2/sales` by CPF with an external_id, earning points",
                lambda n: load.v2_sale_requests(customers, tokens, host, n, self.rng),
                "SELECT COUNT(*) FROM orders",
            ),
        ]
        for name, what, build, count_sql in scenarios:
            if not self.wants(name):
                continue

            def counter(sql: str = count_sql) -> int:
                with seed.Loader(url) as db:
                    return int(db.scalar(sql))

            peak, half, detail = self.cycled(server, build, counter, name, unique=True)
            self.scenario(
                name, what, "pgbench-N", peak, self.check(name, detail == "ok", detail),
                half=half.as_dict(),
            )  # fmt: skip

    def wait_inbound(self, url: str, replies: bool = True) -> float:
        """Seconds until no stored WhatsApp message and no reply is pending (bounded): the
        messages credited, their replies handed to the sender (the floor's outbox rows are
        never sent: ``replies=False``)."""
        started = time.monotonic()
        deadline = started + max(self.c.drain_wait, 30)
        while time.monotonic() < deadline:
            with seed.Loader(url) as db:
                left = int(
                    db.scalar(
                        "SELECT (SELECT COUNT(*) FROM inbound_messages WHERE status = 'pending')"
                        + (" + (SELECT COUNT(*) FROM outbox WHERE status = 'pending')" * replies)
                    )
                )
            if left == 0:
                break
            time.sleep(0.1)
        return time.monotonic() - started

    def panel(self, url: str, data: seed.Dataset, server: FideliaServer) -> None:
        """The owner's customer search and customer page on one merchant with
        ``panel_customers`` customers of 10 ledger entries each, besides everything the
        scaling runs seeded. "Server time" is the p99 at half of the peak rate, where
        requests hardly queue (at the peak, wrk's latency is mostly waiting in line)."""
        started = time.monotonic()
        with seed.Loader(url) as db:
            seed.add_merchants(db, data, 1, self.c.panel_customers, entries_each=10)
            db.analyze()
        merchant = data.merchants[-1]
        customers = data.customers[merchant.id]
        email = seed.add_owner(url, merchant)
        self.say(
            f"panel: merchant {merchant.id} with {len(customers):,} customers "
            f"({10 * len(customers):,} entries); now {self.describe(url, data)}, "
            f"seeded in {time.monotonic() - started:.1f} s"
        )
        cookie = load.panel_cookie(server.url, email, seed.PANEL_PASSWORD)
        host = server.url.removeprefix("http://")
        sample = customers[len(customers) // 2]
        for kind, build in (
            ("panel-search", load.panel_search_requests),
            ("panel-customer", load.panel_customer_requests),
        ):
            probe = (
                f"/panel/customers/{sample.id}"
                if kind == "panel-customer"
                else ("/panel/customers?q=" + sample.number.replace("+", "%2B"))
            )
            answer = httpx.get(server.url + probe, headers={"Cookie": cookie}, timeout=30)
            shown = answer.status_code == 200 and f"Cliente {sample.id}" in answer.text
            peak, half, detail = self.cycled(
                server,
                functools.partial(build, customers, host, cookie, rng=self.rng),
                None,
            )
            if not shown:
                detail = f"{probe} answered {answer.status_code} without the customer"
            what = (
                f"`GET /panel/customers?q=` (name prefix or phone) over {len(customers):,} "
                "customers"
                if kind == "panel-search"
                else f"`GET /panel/customers/{{id}}` with {10 * len(customers):,} entries"
            )
            self.scenario(
                kind,
                what,
                "pgbench-S",
                peak,
                self.check(kind, detail == "ok", detail),
                half=half.as_dict(),
                server_p99_ms=round(half.p99_ms, 2),
                load_average=round(os.getloadavg()[0], 1),  # the p99's main suspect here
            )
            self.say(
                f"{kind}: server time p99 {half.p99_ms:.2f} ms (at half of the peak rate, "
                f"{half.web_cpu_ms or 0:.2f} + {half.worker_cpu_ms or 0:.2f} CPU ms/req; "
                f"load average {os.getloadavg()[0]:.1f})"
            )

    def dashboard(self, url: str, data: seed.Dataset, server: FideliaServer) -> None:
        """The owner's dashboard over rollups standing for ``dashboard_entries`` ledger
        entries of ``dashboard_merchants`` merchants (written directly: see
        seed.add_dashboard), each request signed in as a random merchant's owner, for a
        random period (7/30/90 days). Target: p99 <= 100 ms at half of the peak rate."""
        from fidelia.panel.security import SESSION, Signer

        started = time.monotonic()
        with seed.Loader(url) as db:
            missing = self.c.dashboard_merchants - len(data.merchants)
            if missing > 0:
                seed.add_merchants(db, data, missing, 10)
            sessions = seed.add_dashboard(
                db, data, self.c.dashboard_entries, self.c.dashboard_days, self.rng
            )
            db.analyze()
            rows = int(db.scalar("SELECT COUNT(*) FROM rollup_customer_days"))
        self.say(
            f"dashboard rollups for {self.c.dashboard_entries:,} entries over "
            f"{len(data.merchants):,} merchants ({rows:,} customer-days) in "
            f"{time.monotonic() - started:.1f} s"
        )
        signer = Signer(server.env["FIDELIA_SECRET_KEY"], "session")
        cookies = [
            signer.sign({"u": uid, "k": key, "t": int(time.time())}) for uid, key in sessions
        ]
        host = server.url.removeprefix("http://")

        def build(n: int) -> list[bytes]:
            return [
                load.http_request(
                    "GET",
                    f"/panel/dashboard?days={self.rng.choice((7, 30, 90))}",
                    host,
                    {"Cookie": f"{SESSION}={self.rng.choice(cookies)}"},
                )
                for _ in range(n)
            ]

        import httpx

        probe = httpx.get(
            f"{server.url}/panel/dashboard?days=90",
            cookies={SESSION: cookies[0]},
            follow_redirects=False,
        )
        shown = probe.status_code == 200 and probe.text.count("data-chart=") == 3
        peak, half, detail = self.cycled(server, build, None)
        if not shown:
            detail = f"the dashboard answered {probe.status_code} without its three charts"
        elif not self.c.quick and half.p99_ms > 100:
            detail = f"p99 {half.p99_ms:.1f} ms at half of the peak rate (target <= 100 ms)"
        self.scenario(
            "dashboard",
            f"`GET /panel/dashboard` over {len(data.merchants):,} merchants, rollups of "
            f"{self.c.dashboard_entries:,} entries",
            "pgbench-S",
            peak,
            self.check("dashboard", detail == "ok", detail),
            half=half.as_dict(),
            load_average=round(os.getloadavg()[0], 1),
        )
        self.say(
            f"dashboard: p99 {half.p99_ms:.2f} ms at half of the peak rate "
            f"({half.web_cpu_ms or 0:.2f} + {half.worker_cpu_ms or 0:.2f} CPU ms/req; "
            f"load average {os.getloadavg()[0]:.1f})"
        )

    def drain(self, url: str) -> None:
        """Let the outbox worker catch up, so its backlog does not slow the next scenario
        (a bounded wait; what is left is reported)."""
        deadline = time.monotonic() + self.c.drain_wait
        started = time.monotonic()
        pending = 0
        while time.monotonic() < deadline:
            with seed.Loader(url) as db:
                pending = int(db.scalar("SELECT COUNT(*) FROM outbox WHERE status = 'pending'"))
            if pending == 0:
                break
            time.sleep(0.5)
        self.say(
            f"outbox: {pending} pending after {time.monotonic() - started:.1f} s; "
            f"{self.sink.received:,} replies delivered so far"
        )
        if pending and self.c.quick:
            self.check("outbox", False, f"{pending} replies still pending")

    # -- SQLite -------------------------------------------------------------------------

    def sqlite(self, sink: GraphSink) -> None:
        path = self.work / "fidelia.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        data = seed.Dataset()
        with seed.Loader(url) as db:
            seed.add_merchants(db, data, self.c.merchants, self.c.customers_each)
            db.analyze()
        ref_path = self.work / "reference.db"
        shutil.copy(path, ref_path)
        ref_url = f"sqlite:///{ref_path}"
        pool_size = int(40_000 * self.c.seconds)
        with seed.Loader(ref_url) as db:
            pool = seed.add_pin_pool(db, data, pool_size, self.rng)
        loop = reference.sqlite_loop(ref_path, pool, self.c.seconds)
        self.reference("sqlite-loop", "plain sqlite3 loop, same writes", loop)
        server = FideliaServer(fidelia_env(url, sink.url), self.work, workers=1, name="sqlite")
        with server:
            profiler = self.start_profile(server, "sqlite-credit")
            result, detail = self.run_credit(url, data, server, self.c.seconds)
            self.stop_profile(profiler)
            self.scenario(
                "sqlite-credit",
                "the credit path on SQLite (`fidelia serve`)",
                "sqlite-loop",
                result,
                self.check("sqlite-credit", detail == "ok", detail),
                target=0.5,
            )

    # -- profiling ----------------------------------------------------------------------

    def start_profile(self, server: FideliaServer, name: str) -> Any:
        if not self.c.profile:
            return None
        from bench import profile

        pids = server.web_pids() + server.worker_pids()
        # The worker is sampled for as long as it runs behind the load as well.
        return profile.start(pids, self.out / f"profile-{name}", self.c.seconds * 4)

    def stop_profile(self, profiler: Any) -> None:
        if profiler is not None:
            from bench import profile

            for line in profile.finish(profiler):
                self.say(line)

    def keep_logs(self) -> None:
        logs = self.out / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for log in self.work.glob("*.log"):
            shutil.copy(log, logs / log.name)
        self.say(f"server logs kept in {logs}")

    # -- the whole run ------------------------------------------------------------------

    def run(self) -> int:
        busy = machine_busy()
        if busy > 0.15:
            self.results["notes"].append(
                f"other processes kept {busy:.0%} of the CPU busy when the run started "
                f"(load average {os.getloadavg()[0]:.1f}): every number here understates"
            )
        self.results["settings"] = {
            "cpus": os.cpu_count(),
            "connections": self.c.connections,
            "seconds": self.c.seconds,
            "half_seconds": self.c.half_seconds,
            "web_workers": self.c.web_workers,
            "rate_limit": RATE_LIMIT,
            "pgbench_scale": self.c.pgbench_scale,
            "busy_before": round(busy, 2),
        }
        self.say(
            f"rate limits stay on; raised for the benchmark's single client address with "
            f"FIDELIA_RATE_LIMIT_PIN_DOOR={RATE_LIMIT} (production default: 30/minute)"
        )
        with GraphSink() as sink:
            self.sink = sink
            try:
                self.postgres(sink)
                if self.wants("sqlite-credit"):
                    self.sqlite(sink)
            finally:
                if self.failures:
                    self.keep_logs()
        settings = self.results["settings"]
        settings["postgres"] = self.results.pop("settings_pg", "?")
        settings["elapsed_s"] = round(time.monotonic() - self.started, 1)
        path = report.write_json(self.results, self.out)
        if not self.c.quick and self.c.only is None:  # a subset leaves the full run's block
            report.chart(self.results, self.out / "bench.png")
            report.update_markdown(self.results, report.ROOT / "BENCHMARKS.md")
        print()
        print(report.summary(self.results))
        print()
        print(f"results: {path}")
        for line in report.scenario_lines(self.results):
            print(line)
        for line in bling.lines(self.results):
            print(line)
        if self.failures:
            print("FAILED: " + "; ".join(self.failures))
            return 1
        return 0


def machine_busy(seconds: float = 1.0) -> float:
    """Share of all CPUs busy over ``seconds`` (before the run starts anything)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields[:8]), idle

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


# What a scenario picked with --only needs besides: the scaling series starts from the
# credit run on the base data (1k entries), its first point.
NEEDS = {"scaling": {"credit"}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test (CI): small and short")
    parser.add_argument("--out", type=Path, help="results folder (default bench/results)")
    parser.add_argument("--seconds", type=float, help="length of one measurement")
    parser.add_argument("--connections", type=int, help="clients for wrk and pgbench alike")
    parser.add_argument("--workers", type=int, help="web processes (fidelia serve --workers)")
    parser.add_argument("--profile", action="store_true", help="py-spy the credit path")
    parser.add_argument(
        "--pg-stats",
        action="store_true",
        help="PostgreSQL's statements by time over each credit run (pg_stat_statements)",
    )
    parser.add_argument(
        "--only",
        help="comma-separated scenarios to run (credit, pin, lookup, redeem, scaling, panel, "
        "dashboard, bling, sqlite-credit, ...); the references and the floor always run, "
        "scaling brings credit (its first point)",
    )
    args = parser.parse_args(argv)
    config = Config.for_quick() if args.quick else Config(quick=False)
    if args.seconds:
        config.seconds = args.seconds
        config.half_seconds = max(1.0, args.seconds * 0.8)
    if args.connections:
        config.connections = args.connections
    if args.workers:
        config.web_workers = args.workers
    config.profile = args.profile
    config.pg_stats = args.pg_stats
    if args.only:
        config.only = {n.strip() for n in args.only.split(",") if n.strip()}
        for name in list(config.only):
            config.only |= NEEDS.get(name, set())
    out = args.out or report.ROOT / "bench" / "results"
    with tempfile.TemporaryDirectory(prefix="fidelia-bench-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        return Bench(config, out, work).run()


if __name__ == "__main__":
    sys.exit(main())
