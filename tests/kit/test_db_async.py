"""The database boundary's newer parts (fidelia/kit/db.py): PostgreSQL's async engines, made
on first use and disposed with the rest, and SQLite's ``write_now``, which takes the one
writer's place at once or not at all."""

import asyncio
import sqlite3
import threading
import time

import psycopg
import pytest
from sqlalchemy import text

from fidelia.kit.db import Database, WriterBusy, sqlite_path

PROBE = "CREATE TABLE IF NOT EXISTS probe (n INTEGER)"


def app_connections(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
        return int(row[0]) if row else 0


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
