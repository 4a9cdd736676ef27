"""The one-statement paths' connections on the serving event loop (PostgreSQL; issue 14).

The public lookup, a PIN and the webhook's insert are each one statement in autocommit,
sent on psycopg's own async connection (``kit/db.py on_driver``). Through SQLAlchemy's
async pool that connection costs a greenlet per statement (its pool checks connections out
and back in one): with requests in flight, a greenlet that waits on the socket is switched
out and in with its stack copied each way, about 40 µs a statement and as much again in
the pool's own checkout, half of such a statement's CPU (BENCHMARKS.md *Stop 33*). Here
the connections are taken and given back on the loop itself, with no greenlet.

What it keeps from SQLAlchemy's pool, which the app used before and which every other loop
(a test's, the CLI's, a worker thread's) still uses:

- A connection is made when one is needed and none is idle, up to ``size``, and made
  inline: a database that does not answer fails the request at once, with the driver's
  error as SQLAlchemy raises it (a clean 503), as before. A request past ``size`` waits for
  a connection given back, up to ``timeout``, then fails as SQLAlchemy's pool does
  (``sqlalchemy.exc.TimeoutError``).
- A connection is checked before it is lent, with no round trip (``dead``: the server
  wrote to or closed an idle connection only to end it); one found dead is closed with
  every other idle one (a restart ended them all), and a new one made.
- A statement's error is SQLAlchemy's class; one that lost its connection says so
  (``connection_invalidated``), so the callers' one retry (``once_more_if_stale``) runs.
- A connection older than ``recycle`` seconds, or given back mid-statement or in a
  transaction (a cancelled request), is closed rather than lent again.

psycopg's own pool (``psycopg_pool``) was weighed: it connects in background tasks and
retries with a growing backoff while its clients wait, so a database that is down would
hold each request for the whole timeout instead of failing it (docs/decisions.md).

Made by ``Database.open_statements`` inside the loop it serves (the app's lifespan), and
closed there."""

import asyncio
import select
from collections import deque
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import Any, TypeVar

from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

T = TypeVar("T")


def dead(conn: Any) -> str | None:
    """Why a pooled, idle psycopg connection cannot be used, or None: closed or broken, or
    its socket readable (an idle connection has nothing to read: PostgreSQL writes to it
    unasked only to end it). No round trip."""
    try:
        if conn.closed or conn.broken:
            return "connection closed"
        poller = select.poll()
        poller.register(conn.pgconn.socket, select.POLLIN | select.POLLERR | select.POLLHUP)
        if poller.poll(0):
            return "the server wrote to or closed an idle connection"
    except Exception as exc:  # the socket is gone: psycopg raises OperationalError
        return str(exc)
    return None


def as_sqlalchemy(engine: Engine, exc: Exception, stale: bool) -> BaseException:
    """The driver's error as SQLAlchemy's (``OperationalError``, ``DataError``...)."""
    return DBAPIError.instance(
        None,
        None,
        exc,
        engine.dialect.loaded_dbapi.Error,
        hide_parameters=engine.hide_parameters,
        connection_invalidated=stale,
        dialect=engine.dialect,
    )


class StatementPool:
    """Up to ``size`` autocommit connections of psycopg's, for the event loop that made it;
    made like ``engine``'s own (its URL, and its dialect's connection arguments: the same
    type adapters), errors raised as ``engine``'s."""

    def __init__(
        self, engine: Engine, size: int, *, timeout: float = 30.0, recycle: float = 1800.0
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self._engine = engine
        args, self._params = engine.dialect.create_connect_args(engine.url)
        assert not args, args
        self._size = size
        self._timeout = timeout
        self._recycle = recycle
        self._open = 0  # connections open or being made: never more than ``size``
        self._idle: deque[AsyncConnection[Any]] = deque()
        self._made: dict[AsyncConnection[Any], float] = {}  # each open one's birth
        # Callers waiting for a connection given back, or (None) for a place to make one.
        self._waiting: deque[asyncio.Future[AsyncConnection[Any] | None]] = deque()
        self._closed = False

    def checkedout(self) -> int:
        """Connections lent now (the metrics' pool gauges)."""
        return len(self._made) - len(self._idle)

    def size(self) -> int:
        return self._size

    async def run(self, work: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
        """``await work(conn)`` on a connection of the pool, given back after."""
        conn = await self._take()
        try:
            return await work(conn)
        except self._engine.dialect.loaded_dbapi.Error as exc:
            stale = conn.closed or conn.broken  # as SQLAlchemy's psycopg dialect tells
            if stale:
                self._close_idle()  # what ended this one (a restart) ended them too
            raise as_sqlalchemy(self._engine, exc, stale) from exc
        finally:
            self._give(conn)

    async def _take(self) -> AsyncConnection[Any]:
        if self._closed:
            raise RuntimeError("the statement pool is closed")
        while self._idle:
            conn = self._idle.pop()  # the one used last: its statements are prepared
            if dead(conn) is None:
                return conn
            self._close(conn)
            self._close_idle()
        if self._open < self._size:
            self._open += 1
            return await self._connect()
        waiter: asyncio.Future[AsyncConnection[Any] | None] = self.loop.create_future()
        self._waiting.append(waiter)
        try:
            async with asyncio.timeout(self._timeout):
                given = await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():  # given to it as it gave up
                passed = waiter.result()
                if passed is not None:
                    self._give(passed)
                else:
                    self._open -= 1
                    self._hand_on(None)
            if isinstance(exc, TimeoutError):
                raise PoolTimeout(
                    f"no connection of the statement pool (size {self._size}) free after "
                    f"{self._timeout:.0f} s"
                ) from exc
            raise
        # A connection handed over, or (None) a place kept for this caller: make one.
        return given if given is not None else await self._connect()

    async def _connect(self) -> AsyncConnection[Any]:
        """A new connection in a place already counted in ``_open``; the place is
        passed on if it cannot be made."""
        try:
            conn = await AsyncConnection.connect(**self._params, autocommit=True)
        except BaseException as exc:
            self._open -= 1
            self._hand_on(None)
            if isinstance(exc, self._engine.dialect.loaded_dbapi.Error):
                raise as_sqlalchemy(self._engine, exc, stale=False) from exc
            raise
        self._made[conn] = monotonic()
        return conn

    def _give(self, conn: AsyncConnection[Any]) -> None:
        """A connection back: to the first caller waiting, else idle; closed if it cannot
        serve again. Never awaits (a cancelled caller's ``finally`` runs it)."""
        made = self._made.get(conn)
        if (
            made is None
            or self._closed
            or conn.pgconn.transaction_status != TransactionStatus.IDLE
            or monotonic() - made > self._recycle
        ):
            self._close(conn)
            self._hand_on(None)
        else:
            self._hand_on(conn)

    def _hand_on(self, conn: AsyncConnection[Any] | None) -> None:
        """``conn`` to the first caller still waiting, else idle; ``None``: a free place
        (one closed, or one that could not be made) to the first caller waiting."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if waiter.done():  # cancelled, or timed out
                continue
            if conn is None:
                if self._open >= self._size:
                    self._waiting.appendleft(waiter)
                    return
                self._open += 1  # kept for that caller
            waiter.set_result(conn)
            return
        if conn is not None:
            self._idle.append(conn)

    def _close(self, conn: AsyncConnection[Any]) -> None:
        """Closed now, without a round trip (the socket shut, as psycopg does for a
        connection it cannot end politely)."""
        if self._made.pop(conn, None) is not None:
            self._open -= 1
        if not conn.closed:
            conn.pgconn.finish()

    def _close_idle(self) -> None:
        while self._idle:
            self._close(self._idle.pop())

    def close(self) -> None:
        """Closes the idle connections; one lent now is closed when given back."""
        self._closed = True
        self._close_idle()
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_exception(RuntimeError("the statement pool is closed"))
