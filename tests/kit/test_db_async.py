"""The database boundary's newer parts (fidelia/kit/db.py): PostgreSQL's async engines, made
on first use and disposed with the rest, and SQLite's ``write_now``, which takes the one
writer's place at once or not at all."""

import asyncio
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from sqlalchemy import (
    JSON,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    event,
    select,
    text,
)
from sqlalchemy.exc import DataError, DBAPIError

from fidelia.kit.db import (
    Database,
    WriterBusy,
    is_stale_connection,
    on_driver,
    rows_now,
    sqlite_path,
)
from fidelia.models.base import UTCDateTime
from tests.support.postgres import app_connections

PROBE = "CREATE TABLE IF NOT EXISTS probe (n INTEGER)"


def test_the_async_engines_are_postgresql_s_their_own_transactions_and_disposed(database_url):
    db = Database(database_url, pool_size=2)
    try:
        if db.is_sqlite:
            for name in ("async_engine", "async_autocommit"):
                with pytest.raises(RuntimeError):
                    getattr(db, name)
            return
        assert db.async_engine is db.async_engine  # made once

        async def work() -> list[int]:
            async with db.async_autocommit.connect() as conn:
                await conn.execute(text(PROBE))
                await conn.execute(text("INSERT INTO probe VALUES (1)"))  # durable at once
            with pytest.raises(RuntimeError):
                async with db.async_engine.begin() as conn:
                    await conn.execute(text("INSERT INTO probe VALUES (2)"))
                    raise RuntimeError("rolled back")
            async with db.async_engine.begin() as conn:
                await conn.execute(text("INSERT INTO probe VALUES (3)"))
            async with db.async_engine.connect() as conn:
                found = await conn.execute(text("SELECT n FROM probe ORDER BY n"))
                return [n for (n,) in found]

        assert asyncio.run(work()) == [1, 3]
        assert app_connections(database_url) >= 2  # both pools hold theirs
    finally:
        db.dispose()
    if not db.is_sqlite:
        # closed, though their loop has ended (a backend leaves pg_stat_activity a moment
        # after its client closed the socket)
        deadline = time.monotonic() + 10
        while (left := app_connections(database_url)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert left == 0


def test_write_now_takes_the_writer_at_once_or_refuses_at_once(database_url):
    db = Database(database_url, pool_size=2)
    try:
        if not db.is_sqlite:
            with pytest.raises(RuntimeError):
                with db.write_now():
                    pass
            return
        with db.write_now() as conn:
            conn.execute(text(PROBE))
            conn.execute(text("INSERT INTO probe VALUES (1)"))

        # Another process holds SQLite's lock: refused at once, not after the busy timeout.
        path = sqlite_path(db.url)
        assert path is not None
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(WriterBusy), db.write_now() as conn:
            conn.execute(text("INSERT INTO probe VALUES (2)"))
        assert time.monotonic() - started < 1
        other.execute("COMMIT")
        other.close()

        # This process's writer (the worker's batch) holds the place: refused, nothing taken.
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            with db.session() as session:
                session.execute(text("INSERT INTO probe VALUES (3)"))
                holding.set()
                release.wait(10)

        thread = threading.Thread(target=hold)
        thread.start()
        assert holding.wait(10)
        with pytest.raises(WriterBusy), db.write_now():
            pass
        release.set()
        thread.join(10)

        with db.write_now() as conn:  # free again; SQLite waits for other writers again
            conn.execute(text("INSERT INTO probe VALUES (4)"))
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        with db.session(readonly=True) as session:
            assert list(session.scalars(text("SELECT n FROM probe ORDER BY n"))) == [1, 3, 4]
    finally:
        db.dispose()


def test_on_driver_uses_the_engine_s_pool_and_raises_as_sqlalchemy_does(database_url):
    """``on_driver`` on a loop the statement pool does not serve (a test's, the CLI's): the
    driver's connection from the autocommit engine's pool, given back after
    the work; a database error comes out as SQLAlchemy's own class (a DataError stays one,
    its connection kept), and a connection the server dropped as a stale one
    (``is_stale_connection``), replaced on the next call."""
    if database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL's async engine")
    db = Database(database_url, pool_size=2)
    engine = db.async_autocommit

    async def backend(conn: psycopg.AsyncConnection) -> int:
        cursor = await conn.execute("SELECT pg_backend_pid()")
        row = await cursor.fetchone()
        assert row is not None
        return int(row[0])

    async def divide(conn: psycopg.AsyncConnection) -> None:
        await conn.execute("SELECT 1 / 0")

    async def work() -> None:
        first = await on_driver(db, backend)
        assert engine.sync_engine.pool.checkedout() == 0  # given back
        with pytest.raises(DataError) as refused:
            await on_driver(db, divide)
        assert isinstance(refused.value.orig, psycopg.errors.DivisionByZero)
        assert not is_stale_connection(refused.value)
        assert await on_driver(db, backend) == first  # the same connection, still good

        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
            while admin.execute(
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (first,)
            ).fetchone():
                time.sleep(0.02)
        with pytest.raises(DBAPIError) as dropped:
            await on_driver(db, backend)
        assert is_stale_connection(dropped.value)
        assert await on_driver(db, backend) != first  # a new connection
        assert engine.sync_engine.pool.checkedout() == 0

    try:
        asyncio.run(work())
    finally:
        db.dispose()


@pytest.mark.parametrize("pooled", [False, True], ids=["engine", "statement-pool"])
def test_rows_now_gives_what_sqlalchemy_gives_for_the_same_statement(database_url, pooled):
    """``rows_now``: a Core statement sent on the driver's connection gives the rows
    SQLAlchemy's execution gives, with the columns' type processing both ways (an aware
    datetime stored as UTC and read back as UTC, JSON written and read), the statement's own
    literals held, and each statement told to the engine's listeners; on the autocommit
    engine's connection, and on the statement pool's (the serving loop's: its connections
    made with the engine's dialect's arguments, the same type adapters)."""
    if database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL's async engine")
    metadata = MetaData()
    probe = Table(
        "driver_probe",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("kind", String(10)),
        Column("at", UTCDateTime),
        Column("doc", JSON),
    )
    db = Database(database_url, pool_size=2)
    metadata.create_all(db.engine)
    insert_ = (
        probe.insert()
        .values(kind="kept", at=bindparam("at"), doc=bindparam("doc"))
        .returning(probe.c.id, probe.c.kind, probe.c.at, probe.c.doc)
    )
    query = select(probe.c.kind, probe.c.at, probe.c.doc).where(
        probe.c.kind == "kept", probe.c.at >= bindparam("since")
    )
    moment = datetime(2026, 5, 1, 9, 30, tzinfo=timezone(timedelta(hours=-3)))
    told: list[str] = []
    listener = lambda *args: told.append(args[2])  # noqa: E731
    event.listen(db.async_autocommit.sync_engine, "before_cursor_execute", listener)

    async def work() -> tuple[list[Any], list[Any]]:
        if pooled:
            assert await db.open_statements()
        try:
            inserted = await rows_now(db, insert_, {"at": moment, "doc": {"a": [1]}})
            found = await rows_now(db, query, {"since": moment})
            # the statement pool's connection, or the engine's
            assert db.async_autocommit.sync_engine.pool.checkedin() == (0 if pooled else 1)
        finally:
            db.close_statements()
        return inserted, found

    try:
        inserted, found = asyncio.run(work())
        with db.session(readonly=True) as session:
            expected = [tuple(row) for row in session.execute(query, {"since": moment})]
    finally:
        event.remove(db.async_autocommit.sync_engine, "before_cursor_execute", listener)
        metadata.drop_all(db.engine)
        db.dispose()
    assert inserted[0][1:] == ("kept", moment, {"a": [1]})
    assert inserted[0][2].tzinfo == UTC
    assert found == expected == [("kept", moment, {"a": [1]})]
    assert len(told) == 2 and told[0].startswith("INSERT INTO driver_probe")
