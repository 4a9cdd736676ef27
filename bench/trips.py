"""Worker-thread hops and PostgreSQL round trips per request on the door paths, counted
(not timed), so a change that removes one is seen even on a machine too busy for
``bench/hotpath.py``'s CPU figures to resolve it.

    python bench/trips.py pin redeem pos-order    # any of bench/hotpath.py's door scenarios

The requests are ``bench/hotpath.py``'s, through the whole ASGI app, one at a time, on a
seeded PostgreSQL with the merchant caches warm (``tenant_cache_seconds`` one hour). Round
trips are read from libpq's trace of every pooled connection (each ``Sync`` or simple
``Query`` the client sends waits for the server); thread hops are the calls of anyio's
``to_thread.run_sync`` (what ``def`` endpoints and dependencies and ``run_in_threadpool``
go through) and of ``fidelia.kit.threads.run`` (``State.in_transaction`` and
``run_in_db_slot``), counted by wrappers installed before the app is built.
"""

import asyncio
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anyio.to_thread  # noqa: E402
from sqlalchemy import event  # noqa: E402

from bench import hotpath  # noqa: E402
from fidelia.kit import threads  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402

N = 100
_hops = [0]
_run_sync = anyio.to_thread.run_sync
_run_in_pool = threads.run


async def _counted(*args: Any, **kwargs: Any) -> Any:
    _hops[0] += 1
    return await _run_sync(*args, **kwargs)


async def _counted_in_pool(*args: Any) -> Any:
    _hops[0] += 1
    return await _run_in_pool(*args)


def main(names: list[str]) -> None:
    anyio.to_thread.run_sync = _counted  # type: ignore[assignment]
    threads.run = _counted_in_pool
    pg = PostgresServer().start()
    try:
        pg.psql("CREATE DATABASE fidelia")
        url = pg.url("fidelia")
        app, data = hotpath.seeded_app(url, tenant_cache_seconds=3600)
        path = Path(tempfile.mkdtemp(prefix="fidelia-trips-")) / "trace"
        trace = path.open("w")
        db = app.state.fidelia.db

        # The pooled connections of every engine: the sync one, the async one (the doors'
        # write transactions on the event loop) and the async autocommit one
        # (one-statement paths from the event loop: the webhook, PIN generation).
        def traced(conn: Any, _record: Any) -> None:
            driver = getattr(conn, "driver_connection", None) or conn
            driver.pgconn.trace(trace.fileno())

        for engine in (db.engine, db.async_engine.sync_engine, db.async_autocommit.sync_engine):
            event.listen(engine, "connect", traced)
        rng = random.Random(7)
        for name in names:
            asyncio.run(hotpath.drive(app, hotpath.requests_for(name, url, data, 20, rng)))
            raws = hotpath.requests_for(name, url, data, N, rng)
            trace.flush()
            start, _hops[0] = path.stat().st_size, 0
            statuses = asyncio.run(hotpath.drive(app, raws))
            trace.flush()
            with path.open() as f:
                f.seek(start)
                sent = [line for line in f if "\tF\t" in line]
            trips = sum(1 for line in sent if "\tSync" in line or "\tQuery\t" in line)
            pings = sum(1 for line in sent if '";"' in line)
            errors = sum(1 for s in statuses if s >= 400)
            print(
                f"trips {name}: {_hops[0] / N:.2f} thread hops, {trips / N:.2f} round trips "
                f"({pings / N:.2f} pings) per request, {errors} errors",
                flush=True,
            )
    finally:
        pg.destroy()


if __name__ == "__main__":
    main(sys.argv[1:] or ["pin", "lookup", "redeem", "pos-redeem", "pos-order"])
