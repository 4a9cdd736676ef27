"""Engine factory and the one transaction boundary.

One factory serves SQLite and PostgreSQL. On SQLite, the driver's own transaction
handling is switched off and every write transaction starts with ``BEGIN IMMEDIATE``,
so writers queue on the lock (busy timeout) instead of failing or reading a stale
balance; read-only sessions use a plain deferred ``BEGIN``.
"""

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
from psycopg.pq import TransactionStatus
from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Engine,
    String,
    any_,
    bindparam,
    create_engine,
    event,
    func,
    make_url,
)
from sqlalchemy import column as sql_column
from sqlalchemy import select as sql_select
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.exc import DataError, DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import Pool, PoolResetState
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.types import TypeEngine
from sqlalchemy.util import await_only, greenlet_spawn

from fidelia.kit import driver
from fidelia.kit.statements import StatementPool, as_sqlalchemy, dead

READONLY = "fidelia_readonly"
NOWAIT = "fidelia_nowait"
SQLITE_BUSY_SECONDS = 30
T = TypeVar("T")


def sqlite_path(url: str) -> Path | None:
    """The file of a file-backed SQLite URL (None for PostgreSQL or in-memory)."""
    if not url.startswith("sqlite"):
        return None
    path = make_url(url).database
    return Path(path) if path and path != ":memory:" else None


def make_engine(url: str, pool_size: int = 10) -> Engine:
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_SECONDS},
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        _make_sqlite_transactional(engine)
        return engine
    engine = create_engine(
        _psycopg(url, "psycopg"), pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800
    )
    event.listen(engine, "checkout", _refuse_dead)
    return engine


def most_connections(pool_size: int, *, web: bool) -> int:
    """The connections one process's pools may open to the primary: its sessions' pool and
    as many again in overflow (``make_engine``), the autocommit engine's (``make_async_engine``,
    no overflow: a worker's LISTEN, one-statement work off the serving loop) and, in a web
    process, the doors' write transactions' pool (``Database.on_loop``) and the serving
    loop's statement pool (``Database.open_statements``). What ``Database.pools`` may hold
    at most, for sizing PostgreSQL's ``max_connections`` (``fidelia doctor``)."""
    sessions = 2 * pool_size
    return sessions + pool_size + (2 * pool_size if web else 0)


def _refuse_dead(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """Before a pooled PostgreSQL connection is handed out: is it still alive? Without a
    round trip (``pool_pre_ping`` sent an empty query per checkout and waited for it).

    An idle connection in the pool has nothing to read: PostgreSQL writes to it unasked
    only to end it (a restart, a crash, ``pg_terminate_backend``: an error message, then
    the socket closes). So a socket that is readable, or already known broken, means a
    dead connection: the pool drops it and connects anew (``DisconnectionError``, up to
    three times), as after a failed ping. A server that vanished without closing its
    sockets (a host lost) is found by the first statement's error instead, which
    invalidates the whole pool (SQLAlchemy's disconnect handling); that request fails."""
    # The async engine's pool holds SQLAlchemy's adapter; the socket is its driver's.
    why = dead(getattr(dbapi_conn, "driver_connection", dbapi_conn))
    if why is not None:
        raise DisconnectionError(why)


def _psycopg(url: str, driver: str) -> str:
    """A PostgreSQL URL with psycopg's sync (``psycopg``) or async (``psycopg_async``) driver."""
    for prefix in ("postgresql://", "postgresql+psycopg://", "postgresql+psycopg_async://"):
        if url.startswith(prefix):
            return f"postgresql+{driver}://" + url.removeprefix(prefix)
    return url


def make_async_engine(url: str, pool_size: int = 10, *, autocommit: bool = False) -> AsyncEngine:
    """PostgreSQL on psycopg's async connections, for async endpoints whose database work is
    a statement or two: no worker thread, no thread hop. No ``pool_pre_ping``: its round trip
    would cost as much as such a statement; a connection the server dropped fails its
    statement instead, and the pool then replaces every connection older than that failure
    (callers whose statement may run twice retry once, see ``is_stale_connection``).
    ``autocommit``: every statement its own transaction, set once per connection."""
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    engine = create_async_engine(
        _psycopg(url, "psycopg_async"),
        pool_size=pool_size,
        max_overflow=0,
        pool_recycle=1800,
        pool_reset_on_return=None,  # _rollback_if_open instead
        **options,
    )
    event.listen(engine.sync_engine, "reset", _rollback_if_open)
    if not autocommit:
        # Its transactions are the doors' writes (``Database.on_loop``), which cannot be
        # sent twice: a connection the server ended while pooled is replaced at checkout,
        # as the sync engine's are (a poll of its socket, no round trip).
        event.listen(engine.sync_engine, "checkout", _refuse_dead)
    return engine


def _rollback_if_open(dbapi_conn: Any, _record: Any, state: PoolResetState) -> None:
    """The async pools' reset of a connection given back: a rollback only if a transaction
    is still open on it. SQLAlchemy's own reset rolls back every time, and on the async
    driver even a rollback with nothing to do is a greenlet switch and psycopg's lock: a
    tenth of a write transaction's scaffolding, on every one-statement path too (issue 14,
    BENCHMARKS.md *Stop 32*). A session or a ``Connection`` ends its transaction itself
    before it gives the connection back; this is for what did not (an error mid-commit,
    a raw connection). The connection's state is psycopg's own, known without a round
    trip. A connection closed or broken meanwhile is not IDLE either: its rollback fails,
    and the pool then drops it, as after its own reset."""
    if not state.asyncio_safe or state.transaction_was_reset:
        return
    raw = getattr(dbapi_conn, "driver_connection", dbapi_conn)
    if raw.pgconn.transaction_status != TransactionStatus.IDLE:
        dbapi_conn.rollback()


def is_stale_connection(exc: BaseException) -> bool:
    """The error of a statement sent on a connection the server had dropped (restart,
    failover, idle timeout); the pool has already thrown that connection away."""
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


async def once_more_if_stale(send: Callable[[], Awaitable[T]]) -> T:
    """``await send()``, and once more if its connection had been dropped by the server
    (a restart): the pool has thrown that one away, so the second try gets a new one. For
    one statement in its own transaction that may safely run twice (the webhook's
    deduplicated insert, a PIN's first try)."""
    try:
        return await send()
    except Exception as exc:
        if not is_stale_connection(exc):
            raise
        return await send()  # on a new connection


async def on_driver(db: "Database", work: Callable[[Any], Awaitable[T]]) -> T:
    """``await work(conn)`` on a driver's own connection (psycopg's ``AsyncConnection``) in
    autocommit, for a hot statement sent without SQLAlchemy's execution layer (compile-cache
    lookup, parameters, execution context, result), which cost more CPU than the round trip
    (issue 14: the webhook's insert). On the loop the app serves from, from the statement
    pool (``Database.open_statements``: no greenlet); on any other loop, from the
    ``async_autocommit`` engine's pool (same limits, checked out and given back as
    ``engine.connect()`` does, in one greenlet).

    A driver error is raised as SQLAlchemy raises it (``DBAPIError`` and its subclasses, so
    the app's handlers answer as before); on a connection the server had dropped, that
    connection and every older one are thrown away and ``connection_invalidated`` is set,
    so ``is_stale_connection`` (and the callers' one retry) see it as through
    ``engine.connect()``."""
    pool = db.statements_here()
    if pool is not None:
        return await pool.run(work)
    return await greenlet_spawn(_on_driver, db.async_autocommit.sync_engine, work)


async def rows_now(db: "Database", statement: Any, given: dict[str, Any]) -> list[Any]:
    """``statement``'s rows (tuples, their values as SQLAlchemy gives them), sent with
    ``given`` in autocommit on the driver's connection as a prepared statement
    (``on_driver``; compiled once, its columns' type processing kept: ``kit/driver.py``):
    for a hot one-statement path, where SQLAlchemy's execution cost more CPU than the round
    trip. The ``async_autocommit`` engine's ``before_cursor_execute`` listeners are told
    of it."""
    engine = db.async_autocommit
    sync = engine.sync_engine
    sent = driver.compiled(statement, sync.dialect, frozenset(given))
    if sent is None:  # not one the driver's way sends: through SQLAlchemy
        async with engine.connect() as conn:
            result = await conn.execute(statement, given)
            return [tuple(row) for row in result] if result.returns_rows else []
    params = sent.parameters(given)
    driver.tell(sync, sent.sql, params)

    async def run(conn: Any) -> list[Any]:
        cursor = await conn.execute(sent.sql, params, prepare=True)
        return sent.rows(await cursor.fetchall()) if sent.keys else []

    return await on_driver(db, run)


def rows_in(session: Session, statement: Any, given: dict[str, Any]) -> list[Any]:
    """``statement``'s rows as tuples, sent in ``session``'s transaction on the driver's
    side of its connection on PostgreSQL (``kit/driver.py execute``; SQLite, and what the
    driver's way does not send, through the session)."""
    result = driver.execute(session, statement, given)
    if isinstance(result, CursorResult) and not result.returns_rows:  # SQLAlchemy's way
        return []
    return [tuple(row) for row in result]


def _in_transaction(
    sessions: sessionmaker[Session],
    fn: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> T:
    with sessions.begin() as session:  # commit, or rollback on raise; then closed
        return fn(session, *args, **kwargs)


def _on_driver(engine: Engine, work: Callable[[Any], Awaitable[T]]) -> T:
    dialect = engine.dialect
    try:
        fairy = engine.raw_connection()
    except dialect.loaded_dbapi.Error as exc:  # could not connect: as ``engine.connect()``
        raise as_sqlalchemy(engine, exc, stale=False) from exc
    try:
        return await_only(work(fairy.driver_connection))
    except dialect.loaded_dbapi.Error as exc:
        stale = dialect.is_disconnect(exc, fairy.dbapi_connection, None)
        if stale:
            engine.pool._invalidate(fairy, exc)  # as SQLAlchemy does on a disconnect
        raise as_sqlalchemy(engine, exc, stale) from exc
    finally:
        fairy.close()


def _make_sqlite_transactional(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "before_cursor_execute")
    def _refuse_unstorable(
        _conn: Connection, _cursor: Any, statement: str, parameters: Any, *_: Any
    ) -> None:
        """Values PostgreSQL refuses with a DataError, refused the same way here: a NUL
        character in text (SQLite would store it) and an integer outside 64 bits (SQLite's
        driver would raise OverflowError, a 500). Both databases then answer the same 400."""
        rows = parameters if isinstance(parameters, list) else [parameters]
        for row in rows:
            for value in row.values() if isinstance(row, dict) else row or ():
                if isinstance(value, str) and "\x00" in value:
                    raise DataError(statement, row, ValueError("NUL character in text"))
                if isinstance(value, int) and not -(2**63) <= value < 2**63:
                    raise DataError(statement, row, ValueError("integer out of range"))

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get(READONLY):
            conn.exec_driver_sql("BEGIN")
        elif options.get(NOWAIT):
            # The lock now or never: no busy wait (only BEGIN IMMEDIATE waits; in WAL mode a
            # commit does not wait for readers). On the driver's connection: three
            # statements through SQLAlchemy's execution cost more than the insert after them.
            raw = conn.connection.driver_connection
            assert raw is not None
            raw.execute("PRAGMA busy_timeout=0")
            try:
                raw.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise WriterBusy from exc
            finally:
                raw.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


class WriterBusy(Exception):
    """SQLite's one writer is busy right now (``Database.write_now``); nothing was done."""


class Database:
    """An engine plus its session factories; one per app (tests make several)."""

    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size)
        self.is_sqlite = url.startswith("sqlite")
        self._writer = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        self._reader = sessionmaker(
            self.engine.execution_options(**{READONLY: True}),
            expire_on_commit=False,
            autoflush=False,
        )
        # SQLite has one writer at a time. Writers of this process queue here, woken the
        # moment the lock is free, instead of in SQLite's busy handler, which sleeps in
        # growing steps (up to 100 ms) and so turned a burst of writes into seconds of
        # tail latency. The busy timeout still covers other processes (the CLI).
        self._write_lock = threading.Lock() if self.is_sqlite else None
        self.replica_engine: Engine | None = None
        self._lagging: sessionmaker[Session] | None = None
        self._pool_size = pool_size
        self._async_engine: AsyncEngine | None = None
        self._async_autocommit: AsyncEngine | None = None
        self._now_engine: Engine | None = None  # SQLite's write_now
        self._loop_sessions: sessionmaker[Session] | None = None  # on_loop
        self._statements: StatementPool | None = None  # open_statements

    @property
    def async_engine(self) -> AsyncEngine:
        """PostgreSQL only: the primary on psycopg's async driver (``make_async_engine``),
        made on first use, disposed with the rest. Its transactions are the caller's
        (``async with db.async_engine.begin() as conn``); no ORM session, no write lock."""
        if self.is_sqlite:
            raise RuntimeError("the async engine is PostgreSQL's; SQLite goes through session()")
        if self._async_engine is None:
            self._async_engine = make_async_engine(self.url, self._pool_size)
        return self._async_engine

    @property
    def async_autocommit(self) -> AsyncEngine:
        """Like ``async_engine``, each statement its own transaction: for work that is ONE
        statement, durable when it returns, in one round trip (no ``BEGIN``, no ``COMMIT``).
        A pool of its own: switching a pooled connection to autocommit and back on every
        checkout cost a quarter of such a statement."""
        if self.is_sqlite:
            raise RuntimeError("the async engine is PostgreSQL's; SQLite goes through session()")
        if self._async_autocommit is None:
            self._async_autocommit = make_async_engine(self.url, self._pool_size, autocommit=True)
        return self._async_autocommit

    async def open_statements(self) -> bool:
        """PostgreSQL: the one-statement paths' own connections for the running event loop
        (``kit/statements.py``: no greenlet a statement), from now until
        ``close_statements``; ``on_driver`` and ``rows_now`` take theirs there when called
        on this loop. False (nothing done) on SQLite, or when another loop has them: that
        one keeps them, and this loop's statements go through ``async_autocommit``. The app
        opens them when it starts serving (its lifespan); no connection is made yet."""
        if self.is_sqlite or self._statements is not None:
            return False
        self._statements = StatementPool(self.async_autocommit.sync_engine, self._pool_size)
        return True

    def close_statements(self) -> None:
        """Ends ``open_statements``: the idle connections closed now, a lent one when it
        comes back; later statements go through ``async_autocommit``."""
        if self._statements is not None:
            self._statements.close()
            self._statements = None

    def statements_here(self) -> StatementPool | None:
        """The statement pool, if it serves the running event loop."""
        pool = self._statements
        if pool is not None and pool.loop is asyncio.get_running_loop():
            return pool
        return None

    async def on_loop(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """PostgreSQL: ``fn(session, *args, **kwargs)`` in one write transaction on the event
        loop, committed when it returns, rolled back on any exception (as ``session()``).
        ``fn`` is the same sync code a worker thread runs, with a sync ``Session`` on the
        async engine: SQLAlchemy runs it in a greenlet and awaits each statement on the
        engine's connection (``kit/driver.py`` awaits psycopg's own). No thread: with
        requests in flight the loop finds their sockets ready and goes on, where a thread
        slept and woke for every round trip (issue 14, BENCHMARKS.md *Stop 31*).

        The whole transaction, checkout to commit and check-in, is one greenlet (what
        ``AsyncSession`` does in three, each with a task of its own to shield its close:
        a fifth of the scaffolding's CPU, BENCHMARKS.md *Stop 32*). Shielded as a worker
        thread's transaction is (``kit/threads.run``): a cancelled caller waits for it to
        end, commit or rollback, its connection back in the pool; the cancellation follows."""
        if self._loop_sessions is None:
            self._loop_sessions = sessionmaker(
                self.async_engine.sync_engine, expire_on_commit=False, autoflush=False
            )
        with anyio.CancelScope(shield=True):
            done = await greenlet_spawn(_in_transaction, self._loop_sessions, fn, args, kwargs)
        return done

    def pools(self) -> list[tuple[str, str, Pool | StatementPool]]:
        """The connection pools made so far, as ``(database, kind, pool)``: the primary's
        ``sync`` one (sessions, in threads), its ``loop`` one (``on_loop``'s transactions),
        its ``statement`` one (the one-statement paths on the serving loop) and
        ``autocommit`` one (the same elsewhere, a worker's LISTEN), and a replica's (for
        the metrics)."""
        made: list[tuple[str, str, Pool | StatementPool]] = [("primary", "sync", self.engine.pool)]
        if self._async_engine is not None:
            made.append(("primary", "loop", self._async_engine.sync_engine.pool))
        if self._async_autocommit is not None:
            made.append(("primary", "autocommit", self._async_autocommit.sync_engine.pool))
        if self._statements is not None:
            made.append(("primary", "statement", self._statements))
        if self.replica_engine is not None:
            made.append(("replica", "sync", self.replica_engine.pool))
        return made

    def attach_replica(self, url: str, pool_size: int = 10) -> None:
        """A streaming replica for the reads that say they may lag (``may_lag=True``)."""
        if not url or self.is_sqlite:
            return
        self.replica_engine = make_engine(url, pool_size)
        self._lagging = sessionmaker(
            self.replica_engine.execution_options(**{READONLY: True}),
            expire_on_commit=False,
            autoflush=False,
        )

    @contextmanager
    def session(self, readonly: bool = False, may_lag: bool = False) -> Iterator[Session]:
        """The transaction boundary: commit on success, roll back on any exception.

        A read-only session that changed nothing ends with a COMMIT of its empty
        transaction, not a ROLLBACK: psycopg forgets every prepared statement of the
        connection on a rollback (and sends DEALLOCATE ALL), so rolling back each read
        made every query on that connection, reads and writes, parse and plan again.
        One that did change something is still rolled back, and that is an error.

        ``may_lag`` (read-only only) is the caller's word that the read may be a few
        seconds old: public lookups, panel lists, dashboards. With a replica attached it
        reads there (the primary when the replica does not answer). Never for a read that
        decides money or comes before a write: those read the primary."""
        factory = self._reader if readonly else self._writer
        if may_lag and readonly and self._lagging is not None and self._replica_up():
            factory = self._lagging
        lock = None if readonly else self._write_lock
        if lock is not None and not lock.acquire(timeout=SQLITE_BUSY_SECONDS):
            raise OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))
        try:
            with factory() as session:
                try:
                    yield session
                    if readonly and (session.new or session.dirty or session.deleted):
                        session.rollback()
                        raise RuntimeError("a read-only session tried to write; rolled back")
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise
        finally:
            if lock is not None:
                lock.release()

    @contextmanager
    def write_now(self) -> Iterator[Connection]:
        """SQLite: a write transaction on a Core connection, if the one writer's place is free
        right now (this process's write lock and SQLite's own lock), else ``WriterBusy`` at
        once, nothing done. For a short write from the event loop, where waiting would stall
        every request and a worker thread costs more than the write: the caller waits in a
        thread only when the database is busy."""
        lock = self._write_lock
        if lock is None:
            raise RuntimeError("write_now is SQLite's; PostgreSQL has the async engine")
        if not lock.acquire(blocking=False):
            raise WriterBusy
        try:
            # A connection of its own, free whenever the lock is: one from the shared pool
            # could make the event loop wait for requests that need the loop to give theirs
            # back.
            if self._now_engine is None:
                self._now_engine = make_engine(self.url, pool_size=1)
            with self._now_engine.connect() as conn:
                with conn.execution_options(**{NOWAIT: True}).begin():
                    yield conn
        finally:
            lock.release()

    def _replica_up(self) -> bool:
        """False while the replica refused a connection in the last few seconds."""
        import time

        if time.monotonic() < self._replica_down_until:
            return False
        assert self.replica_engine is not None
        try:
            self.replica_engine.connect().close()
            return True
        except OperationalError:
            self._replica_down_until = time.monotonic() + 5
            return False

    _replica_down_until = 0.0

    def dispose(self) -> None:
        self.close_statements()
        self.engine.dispose()
        for other in (self.replica_engine, self._now_engine):
            if other is not None:
                other.dispose()
        for engine in (self._async_engine, self._async_autocommit):
            if engine is not None:
                # Closing an async connection needs an event loop, and this may be called
                # from inside one (the app's shutdown) or after it ended (tests, the CLI): a
                # loop of its own, in a thread of its own.
                closing = threading.Thread(target=asyncio.run, args=(engine.dispose(),))
                closing.start()
                closing.join()
        self._async_engine = self._async_autocommit = None
        self._loop_sessions = None


def insert_for(where: Session | str) -> Any:
    """The dialect's INSERT construct (for ON CONFLICT), SQLite or PostgreSQL: the
    session's, or the named dialect's (a statement built for the async engine)."""
    dialect = where if isinstance(where, str) else where.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    return pg_insert


@contextmanager
def unprepared(session: Session) -> Iterator[Session]:
    """The statements sent inside are planned for the tables as they are now: on PostgreSQL
    never as prepared statements. psycopg prepares a statement after five runs, and
    PostgreSQL may keep one generic plan for it until the table is analysed again, however
    the table has grown meanwhile; a generic plan also counts ten elements for an array
    parameter, where a custom plan counts the batch's. Planning a statement costs ~0.1 ms: for
    a statement per batch whose best plan changes with a young table's size."""
    if session.get_bind().dialect.name != "postgresql":
        yield session
        return
    driver: Any = session.connection().connection.driver_connection
    saved = driver.prepare_threshold
    driver.prepare_threshold = None
    try:
        yield session
    finally:
        driver.prepare_threshold = saved


@contextmanager
def planned_now(session: Session) -> Iterator[Session]:
    """A queue's claim (``… ORDER BY due LIMIT n FOR UPDATE SKIP LOCKED``), planned for the
    table as it is now and read off its index in order. On PostgreSQL:

    - ``unprepared``: a generic plan made while the outbox was empty scanned the whole
      backlog for every batch (148 ms a claim over 20,000 replies in ``make bench``, the
      worker 4 x behind the webhooks);
    - without bitmap scans (``enable_bitmapscan``, for the claim alone): the statistics
      count the live pending rows, a few, so PostgreSQL chose to collect every entry of the
      index's pending range, then sort and take the first. But each row taken leaves an
      entry for its pending version there until a vacuum, and a bitmap scan visits the
      table for every one of them, each time: 8,644 entries and 603 pages for 16 replies
      under ``make bench``'s load (1.4 ms a claim), every entry of a backlog for each batch
      after an outage. Read in order, the scan stops at the batch, and marks the dead
      entries it passes so the next claims skip them (BENCHMARKS.md, stop 29)."""
    if session.get_bind().dialect.name != "postgresql":
        yield session
        return
    # On the driver's connection, its errors raised as SQLAlchemy's (a dropped connection
    # invalidated): the first statement of the claim's transaction.
    before = driver.execute(session, _NO_BITMAP, {}).scalar()
    with unprepared(session):
        yield session
    # Restored for the rest of the transaction (the batch's other statements); a claim that
    # failed leaves a transaction that is rolled back, which restores it anyway.
    driver.execute(session, _BITMAP, {"before": before})


_NO_BITMAP = sql_select(
    func.current_setting("enable_bitmapscan", type_=String),
    func.set_config("enable_bitmapscan", "off", True),
)
_BITMAP = sql_select(func.set_config("enable_bitmapscan", bindparam("before", type_=String), True))


# PostgreSQL's batch statements take their lists as arrays: ONE parameter a list, so the
# statement's text and its parameters are the same whatever the batch's size (psycopg
# converts a statement's text once only up to 50 parameters and 4,096 characters;
# PostgreSQL parses and plans every new text, and prepares per text). SQLite keeps its
# expanding ``IN`` lists and many-row ``VALUES``.


def _element(kind: TypeEngine[Any]) -> TypeEngine[Any]:
    """An array's element type: a string's without its length (the parameter's cast to
    ``VARCHAR(n)[]`` would cut a longer value to ``n`` characters, and it could match)."""
    return String() if isinstance(kind, String) else kind


def any_of(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """``column = ANY(:name)``: ``column IN (...)`` with the list as one array parameter
    of the column's type (an empty list matches nothing, as an empty ``IN``)."""
    return column == any_(bindparam(name, type_=ARRAY(_element(column.type))))


def unnested(name: str, **arrays: TypeEngine[Any]) -> TableValuedAlias:
    """The rows of parallel array parameters: ``unnest(:a, :b, ...) WITH ORDINALITY AS
    name(a, b, ..., n)``, one column per parameter (named as it, of its element type),
    ``n`` each row's position in the arrays: order by it to take the rows in the arrays'
    order (nothing else promises it)."""
    return (
        func.unnest(*(bindparam(key, type_=ARRAY(_element(kind))) for key, kind in arrays.items()))
        .table_valued(*(sql_column(key, kind) for key, kind in arrays.items()), with_ordinality="n")
        .render_derived()
        .alias(name)
    )
