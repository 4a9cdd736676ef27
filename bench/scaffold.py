"""CPU of the database scaffolding around a door's statements on PostgreSQL, with requests in
flight: what Fidelia's way costs beyond psycopg's own on the same statement.

    python bench/scaffold.py                      # every way, three rounds
    python bench/scaffold.py transaction psycopg-transaction -n 8000 --rounds 5

The ways, each one statement (``SELECT $1 + 1``) a call, ``--in-flight`` calls at a time
(8: a web process under load) on uvloop, as ``fidelia serve`` runs:

- ``transaction``: ``Database.on_loop``, as a door's write runs (a session on the async
  engine's pool, ``BEGIN``, the statement sent by ``kit/driver.py``, ``COMMIT``, the
  connection back); ``psycopg-transaction``: the same on a bare queue of psycopg's async
  connections, as ``bench/floor.py`` does it.
- ``statement``: ``rows_now`` on the statement pool (``kit/statements.py``), as the
  lookup, PIN generation and the webhook send their one statement from the loop the app
  serves; ``engine-statement``: the same through the autocommit engine's pool, as from any
  other loop (and on every loop before stop 33); ``psycopg-statement``: the same on
  psycopg alone.

Prints the CPU ms a call (``time.process_time``: this process, not the server) of each way
in each round, the ways in turn within a round so the machine's drift touches them alike,
then each way's median. A seeded app's requests are ``bench/hotpath.py``'s; this isolates
what no door's own work hides (issue 14, BENCHMARKS.md *Stop 32*).
"""

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
import uvloop  # noqa: E402
from sqlalchemy import Integer, bindparam, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from fidelia.kit import driver  # noqa: E402
from fidelia.kit.db import Database, rows_now  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402

WAYS = (
    "transaction",
    "psycopg-transaction",
    "statement",
    "engine-statement",
    "psycopg-statement",
)
STATEMENT = select(bindparam("x", type_=Integer) + 1)  # built once, as the hot paths' are
Call = Callable[[int], Awaitable[Any]]


def _plus_one(session: Session, x: int) -> Any:
    return driver.execute(session, STATEMENT, {"x": x}).first()


async def fidelia_way(db: Database, way: str) -> Call:
    if way == "transaction":
        return lambda x: db.on_loop(_plus_one, x)
    return lambda x: rows_now(db, STATEMENT, {"x": x})


async def psycopg_way(url: str, way: str, k: int) -> Call:
    idle: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
    for _ in range(k):
        idle.put_nowait(
            await psycopg.AsyncConnection.connect(url, autocommit=True, prepare_threshold=0)
        )

    async def call(x: int) -> Any:
        conn = await idle.get()
        try:
            if way == "psycopg-transaction":
                async with conn.transaction():
                    return await (await conn.execute("SELECT %s::int + 1", (x,))).fetchone()
            return await (await conn.execute("SELECT %s::int + 1", (x,))).fetchone()
        finally:
            idle.put_nowait(conn)

    return call


async def cpu_per_call(call: Call, n: int, k: int) -> float:
    """CPU ms a call, ``n`` calls ``k`` at a time (after a warm-up)."""

    async def caller(count: int) -> None:
        for x in range(count):
            await call(x)

    await asyncio.gather(*(caller(50) for _ in range(k)))
    started = time.process_time()
    await asyncio.gather(*(caller(n // k) for _ in range(k)))
    return (time.process_time() - started) / (n // k * k) * 1000


async def measure(db: Database, ways: list[str], n: int, k: int, rounds: int) -> None:
    calls = {
        way: await (
            psycopg_way(db.url, way, k) if way.startswith("psycopg") else fidelia_way(db, way)
        )
        for way in ways
    }
    seen: dict[str, list[float]] = {way: [] for way in ways}
    for r in range(1, rounds + 1):
        for way in ways:
            if way == "statement":  # the pool open on this loop, as the app's lifespan does
                await db.open_statements()
            ms = await cpu_per_call(calls[way], n, k)
            db.close_statements()
            seen[way].append(ms)
            print(f"scaffold round {r} {way}: {ms:.3f} ms CPU a call", flush=True)
    for way in ways:
        median = statistics.median(seen[way])
        print(f"scaffold {way} x{k}: median {median:.3f} ms CPU a call", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("way", nargs="*", help=f"any of {', '.join(WAYS)} (all)")
    parser.add_argument("-n", type=int, default=6000, help="calls a way a round")
    parser.add_argument("--in-flight", type=int, default=8, help="calls at a time")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ways = args.way or list(WAYS)
    unknown = set(ways) - set(WAYS)
    if unknown:
        parser.error(f"unknown way {', '.join(sorted(unknown))}")
    pg = PostgresServer().start()
    try:
        pg.psql("CREATE DATABASE scaffold")
        db = Database(pg.url("scaffold"), pool_size=args.in_flight)
        try:
            uvloop.run(measure(db, ways, args.n, args.in_flight, args.rounds))
        finally:
            db.dispose()
    finally:
        pg.destroy()


if __name__ == "__main__":
    main()
