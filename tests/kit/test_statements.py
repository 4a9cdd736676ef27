"""The one-statement paths' pool on the serving loop (``fidelia/kit/statements.py``): at most
its size in connections, made when needed and given back; a database that does not answer
fails at once; a connection the server ended is never lent, and one that dies mid-statement
is stale (the callers retry once); a cancelled caller's connection is closed, not lent
again; any other loop goes through the autocommit engine. On a real PostgreSQL server."""

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from fidelia.kit.db import Database, is_stale_connection, on_driver, once_more_if_stale
from fidelia.kit.statements import StatementPool
from tests.support.postgres import app_connections, free_port


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url, pool_size=2)
    yield database
    database.dispose()


async def backend(conn: psycopg.AsyncConnection[Any]) -> int:
    row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
    assert row is not None
    return int(row[0])


def sleeping(seconds: float) -> Any:
    async def work(conn: psycopg.AsyncConnection[Any]) -> int:
        await conn.execute("SELECT pg_sleep(%s)", (seconds,))
        return await backend(conn)

    return work


def ended(url: str, pid: int) -> None:
    """``pid``'s backend terminated, and gone (pg_terminate_backend returns before)."""
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            time.sleep(0.02)


def test_the_serving_loop_s_statements_take_its_connections_at_most_size(db: Database) -> None:
    async def work() -> tuple[set[int], int]:
        assert await db.open_statements()
        assert not await db.open_statements()  # open already: nothing done
        pool = db.statements_here()
        assert pool is not None and pool.checkedout() == 0
        pids = await asyncio.gather(*(on_driver(db, sleeping(0.05)) for _ in range(6)))
        assert pool.checkedout() == 0  # all given back
        again = await on_driver(db, backend)
        return set(pids), again

    pids, again = asyncio.run(work())
    assert len(pids) == 2 and again in pids  # two connections (its size), kept and reused
    # the autocommit engine's pool never lent one
    assert db.async_autocommit.sync_engine.pool.checkedin() == 0


def test_another_loop_goes_through_the_autocommit_engine(db: Database) -> None:
    opened = asyncio.new_event_loop()
    try:
        assert opened.run_until_complete(db.open_statements())

        async def elsewhere() -> int:
            assert db.statements_here() is None  # the pool serves the other loop only
            return await on_driver(db, backend)

        assert asyncio.run(elsewhere()) > 0
        assert db.async_autocommit.sync_engine.pool.checkedin() == 1  # the engine's
    finally:
        db.close_statements()
        opened.close()


def test_past_its_size_a_caller_waits_then_times_out_as_sqlalchemy_s_pool(pg_url: str) -> None:
    db = Database(pg_url, pool_size=1)

    async def work() -> None:
        pool = StatementPool(db.async_autocommit.sync_engine, 1, timeout=0.1)
        held = asyncio.ensure_future(pool.run(sleeping(0.5)))
        await asyncio.sleep(0.05)
        with pytest.raises(PoolTimeout):
            await pool.run(backend)
        await held
        assert await pool.run(backend) > 0  # the place given back to the next caller
        assert pool.checkedout() == 0
        pool.close()

    try:
        asyncio.run(work())
    finally:
        db.dispose()


def test_a_database_that_does_not_answer_fails_at_once() -> None:
    db = Database(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing", pool_size=2)

    async def work() -> float:
        await db.open_statements()
        started = time.monotonic()
        with pytest.raises(OperationalError):
            await on_driver(db, backend)
        with pytest.raises(OperationalError):  # the place given back: tried again
            await on_driver(db, backend)
        return time.monotonic() - started

    try:
        assert asyncio.run(work()) < 5  # not the pool's 30 s wait
    finally:
        db.dispose()


def test_a_connection_the_server_ended_while_idle_is_not_lent(db: Database) -> None:
    async def work() -> None:
        await db.open_statements()
        first, second = await asyncio.gather(on_driver(db, sleeping(0.02)), on_driver(db, backend))
        ended(db.url, first)  # one of the two idle ones: both are dropped at the next take
        assert await on_driver(db, backend) not in (first, second)

    asyncio.run(work())


def test_a_connection_that_dies_mid_statement_is_stale_and_the_retry_gets_another(
    db: Database,
) -> None:
    async def suicide(conn: psycopg.AsyncConnection[Any]) -> int:
        await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return 0

    async def work() -> None:
        await db.open_statements()
        first = await on_driver(db, backend)
        with pytest.raises(DBAPIError) as dropped:
            await on_driver(db, suicide)
        assert is_stale_connection(dropped.value)
        tries = iter([suicide, backend])
        assert await once_more_if_stale(lambda: on_driver(db, next(tries))) not in (0, first)
        pool = db.statements_here()
        assert pool is not None and pool.checkedout() == 0

    asyncio.run(work())


def test_an_error_keeps_its_class_and_its_connection(db: Database) -> None:
    async def divide(conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute("SELECT 1 / 0")

    async def work() -> None:
        await db.open_statements()
        first = await on_driver(db, backend)
        with pytest.raises(DataError) as refused:
            await on_driver(db, divide)
        assert isinstance(refused.value.orig, psycopg.errors.DivisionByZero)
        assert not is_stale_connection(refused.value)
        assert await on_driver(db, backend) == first

    asyncio.run(work())


def test_a_cancelled_caller_s_connection_is_closed_not_lent_again(db: Database) -> None:
    async def work() -> None:
        await db.open_statements()
        pool = db.statements_here()
        assert pool is not None
        slow = asyncio.ensure_future(on_driver(db, sleeping(5)))
        await asyncio.sleep(0.2)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        assert pool.checkedout() == 0
        # mid-statement when given back: closed (its answer would have come to the next)
        assert len(await asyncio.gather(*(on_driver(db, backend) for _ in range(2)))) == 2

    started = time.monotonic()
    asyncio.run(work())
    assert time.monotonic() - started < 4


def test_closing_closes_the_idle_ones_and_a_lent_one_when_it_comes_back(pg_url: str) -> None:
    db = Database(pg_url, pool_size=2)

    async def work() -> None:
        await db.open_statements()
        held = asyncio.ensure_future(on_driver(db, sleeping(0.3)))
        await on_driver(db, backend)  # the other, idle after
        await asyncio.sleep(0.05)
        db.close_statements()
        await held  # ends on its connection, which is then closed
        assert db.statements_here() is None

    try:
        asyncio.run(work())
        deadline = time.monotonic() + 5
        while app_connections(pg_url) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app_connections(pg_url) == 0
    finally:
        db.dispose()
