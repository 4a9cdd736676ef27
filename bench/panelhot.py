"""CPU cost of one panel request, measured in process (the panel's `bench/hotpath.py`):
the owner's customer search, customer page and dashboard over a seeded PostgreSQL at the
size `bench/run.py --only panel,dashboard` measures, through the whole ASGI app, one
request at a time, with no HTTP server or load generator.

    python bench/panelhot.py                      # seed, measure every page, drop the database
    python bench/panelhot.py --seed-only          # seed, print the URL, keep PostgreSQL running
    python bench/panelhot.py --url URL search customer -n 500   # measure on that database
    python bench/panelhot.py --url URL customer --profile py-spy

Each page reports CPU ms per request (``time.process_time`` of this process over ``-n``
requests after a warm-up), wall ms, and SQL statements per request (counted on the
engine). The database server's CPU is not included. The in-process figure leaves out
what only the real server does (uvicorn's HTTP parsing, the multiprocess metrics files),
so it is a lower bound of the `CPU ms/req` column of `bench/run.py`, and much steadier
on a shared machine. ``--customers`` and the dashboard's ``--dashboard-merchants`` /
``--dashboard-entries`` keep the bench's sizes per merchant (100,000 customers of 10
entries; 10,000 entries per merchant over 365 days) at a fraction of the seeding time.
"""

import argparse
import asyncio
import functools
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from bench import load, seed  # noqa: E402
from bench import profile as profiling  # noqa: E402
from bench.hotpath import drive  # noqa: E402
from bench.services import fidelia_env  # noqa: E402
from fidelia.kit.migrate import upgrade  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402

PAGES = ("search", "customer", "dashboard", "account", "healthz")
RESULTS = Path(tempfile.gettempdir()) / "fidelia-panelhot"  # profiles, not kept


def seed_database(url: str, customers: int, merchants: int, entries: int) -> None:
    """The panel's merchant (``customers`` of 10 entries each, an owner) and ``merchants``
    more with the dashboard's rollups for ``entries`` entries (an owner each)."""
    rng = random.Random(20_261_121)
    data = seed.Dataset()
    started = time.monotonic()
    with seed.Loader(url) as db:
        seed.add_merchants(db, data, 1, customers, entries_each=10)
        db.analyze()
    panel = data.merchants[0]
    seed.add_owner(url, panel)
    with seed.Loader(url) as db:
        seed.add_merchants(db, data, merchants, 10)
        dashboard = seed.Dataset(merchants=data.merchants[1:], customers={})
        seed.add_dashboard(db, dashboard, entries, 365, rng)
        db.analyze()
    print(
        f"seeded {customers:,} customers ({10 * customers:,} entries) and dashboard rollups "
        f"for {entries:,} entries over {merchants:,} merchants in "
        f"{time.monotonic() - started:.0f} s",
        flush=True,
    )


class Pages:
    """The requests of each page, built from what the database holds."""

    def __init__(self, url: str, secret: str) -> None:
        from fidelia.panel.security import SESSION, Signer

        with seed.Loader(url) as db:
            # The panel's merchant: the one whose owner signed up through the users service
            # (a real digest); the dashboard's owners were written directly ("x").
            uid, key, tenant_id = db.conn.execute(
                "SELECT id, session_key, tenant_id FROM users WHERE password_digest <> 'x' "
                "ORDER BY id LIMIT 1"
            ).fetchone()
            rows = db.conn.execute(
                "SELECT c.id, i.value FROM customers c JOIN customer_identifiers i "
                "ON i.customer_id = c.id AND i.kind = 'whatsapp' WHERE c.tenant_id = %s",
                (tenant_id,),
            ).fetchall()
            owners = db.conn.execute(
                "SELECT id, session_key FROM users WHERE password_digest = 'x'"
            ).fetchall()
        signer = Signer(secret, "session")
        now = int(time.time())
        self.cookie = f"{SESSION}={signer.sign({'u': uid, 'k': key, 't': now})}"
        self.owners = [f"{SESSION}={signer.sign({'u': u, 'k': k, 't': now})}" for u, k in owners]
        self.customers = [seed.Customer(cid, 0, tenant_id, number) for cid, number in rows]
        self.rng = random.Random(7)

    def build(self, page: str, n: int) -> list[bytes]:
        rng, host = self.rng, "bench"
        if page == "search":
            return load.panel_search_requests(self.customers, host, self.cookie, n, rng)
        if page == "customer":
            return load.panel_customer_requests(self.customers, host, self.cookie, n, rng)
        if page == "dashboard":
            return [
                load.http_request(
                    "GET",
                    f"/panel/dashboard?days={rng.choice((7, 30, 90))}",
                    host,
                    {"Cookie": rng.choice(self.owners)},
                )
                for _ in range(n)
            ]
        if page == "account":
            return [load.http_request("GET", "/panel/account", host, {"Cookie": self.cookie})] * n
        return [load.http_request("GET", "/healthz", host)] * n


class Collections:
    """The garbage collector's runs while measuring: count and time per generation."""

    def __init__(self) -> None:
        self.started = 0.0
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.longest = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        took = time.perf_counter() - self.started
        self.count[info["generation"]] += 1
        self.seconds[info["generation"]] += took
        self.longest = max(self.longest, took)

    def summary(self, n: int) -> str:
        return (
            f"GC {1000 * sum(self.seconds) / n:.2f} ms/request (runs of gen 0/1/2: "
            + "/".join(str(c) for c in self.count)
            + f", longest {1000 * self.longest:.1f} ms)"
        )


def measure(
    app: Any, build: Callable[[int], list[bytes]], n: int, profile: str, out: Path
) -> tuple[float, float, float, int]:
    """(CPU ms, wall ms, statements) per request and the errors, over ``n`` requests."""
    import gc

    from sqlalchemy import event

    engine = app.state.fidelia.db.engine
    statements = [0]

    def count(*_: Any) -> None:
        statements[0] += 1

    asyncio.run(drive(app, build(max(30, n // 5))))  # warm up: caches, prepared statements
    raws = build(n)
    collections = Collections()
    gc.callbacks.append(collections)
    event.listen(engine, "before_cursor_execute", count)
    with profiling.this_process(profile, out):
        cpu, wall = time.process_time(), time.perf_counter()
        statuses = asyncio.run(drive(app, raws))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    event.remove(engine, "before_cursor_execute", count)
    gc.callbacks.remove(collections)
    print("  " + collections.summary(n))
    errors = sum(1 for s in statuses if s >= 400)
    return 1000 * cpu / n, 1000 * wall / n, statements[0] / n, errors


def run(url: str, pages: list[str], n: int, rounds: int, profile: str) -> None:
    env = fidelia_env(url, "http://127.0.0.1:9")
    os.environ.update({k: v for k, v in env.items() if k.startswith("FIDELIA_")})
    from fidelia.app import create_app
    from fidelia.kit.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    app = create_app(settings, run_worker=False)
    requests = Pages(url, settings.secret_key)
    best: dict[str, float] = {}
    for r in range(rounds):
        for page in pages:
            cpu, wall, statements, errors = measure(
                app,
                functools.partial(requests.build, page),
                n,
                profile,
                RESULTS / f"profile-panelhot-{page}",
            )
            best[page] = min(best.get(page, cpu), cpu)
            print(
                f"panelhot {page}: {cpu:.2f} ms CPU/request, {wall:.2f} ms wall, "
                f"{statements:.1f} statements, {errors} errors"
                + (f" (round {r + 1})" if rounds > 1 else ""),
                flush=True,
            )
    if rounds > 1:
        print("best: " + ", ".join(f"{p} {ms:.2f}" for p, ms in best.items()))
    load_avg = os.getloadavg()
    print(f"load average {load_avg[0]:.1f} {load_avg[1]:.1f} {load_avg[2]:.1f}")
    app.state.fidelia.db.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("page", nargs="*", help=f"any of {', '.join(PAGES)} (all)")
    parser.add_argument("-n", type=int, default=300, help="requests per page")
    parser.add_argument("--rounds", type=int, default=1, help="measure each page this often")
    parser.add_argument("--url", help="an already seeded database (see --seed-only)")
    parser.add_argument("--seed-only", action="store_true", help="seed, then wait (Ctrl-C)")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--dashboard-merchants", type=int, default=100)
    parser.add_argument("--dashboard-entries", type=int, default=1_000_000)
    parser.add_argument("--profile", choices=("py-spy", "pyinstrument"), default="")
    args = parser.parse_args()
    pages = args.page or list(PAGES)
    unknown = set(pages) - set(PAGES)
    if unknown:
        parser.error(f"unknown page {', '.join(sorted(unknown))}")
    if args.url:
        run(args.url, pages, args.n, args.rounds, args.profile)
        return 0
    pg = PostgresServer().start()
    try:
        pg.psql("CREATE DATABASE fidelia")
        url = pg.url("fidelia")
        upgrade(url)
        seed_database(url, args.customers, args.dashboard_merchants, args.dashboard_entries)
        if args.seed_only:
            print(f"database: {url}  (Ctrl-C to drop it)", flush=True)
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        else:
            run(url, pages, args.n, args.rounds, args.profile)
    finally:
        pg.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
