"""The resources every request shares (settings, database, limiter) and the session
dependencies endpoints use. The app's full state, with the domain's caches, extends
``Resources`` in ``fidelia/state.py``: the kit knows no domain."""

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Concatenate, ParamSpec, TypeVar

import anyio
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from fidelia.kit import threads
from fidelia.kit.db import Database
from fidelia.kit.ratelimit import RateLimiter
from fidelia.kit.settings import Settings

T = TypeVar("T")
P = ParamSpec("P")


class Resources:
    """What the kit provides one app instance: settings, database, database slots, limiter."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url, settings.database_pool_size)
        slots = db_slots(settings.database_pool_size)
        self.db_slots = anyio.Semaphore(slots)
        # One thread a slot: a call holds its slot while in its thread, so none waits.
        self.db_threads = threads.pool(slots, "fidelia-db")
        self.limiter = RateLimiter(settings.redis_url, settings.rate_limits_enabled)

    async def run_in_db_slot(self, fn: Callable[..., T], *args: object) -> T:
        """For async endpoints: run blocking database work in a thread, within a slot."""
        async with self.db_slots:
            return await threads.run(self.db_threads, fn, *args)

    async def in_transaction(
        self, fn: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """For async endpoints: ``fn(session, *args)`` in one write transaction, within a
        database slot: on PostgreSQL on the event loop (``Database.on_loop``: each
        statement awaited, no thread), on SQLite in one worker thread (its driver blocks).
        It commits before the answer is sent and rolls back on any exception, as
        ``SessionDep`` does; what ``fn`` returns is the answer."""
        if self.db.is_sqlite:
            return await self.run_in_db_slot(self._in_session, fn, args, kwargs)
        async with self.db_slots:
            return await self.db.on_loop(fn, *args, **kwargs)

    def _in_session(
        self, fn: Callable[..., T], args: tuple[object, ...], kwargs: dict[str, object]
    ) -> T:
        with self.db.session() as session:
            return fn(session, *args, **kwargs)


def db_slots(pool_size: int) -> int:
    """How many requests may use the database at once.

    A request holds its connections (a read and a write session: two) and, on SQLite, the
    write lock until its response is serialised, which needs a worker thread again. If more
    requests than the pool serves, or than there are worker threads (40), waited *inside*
    a thread for a connection or the lock, the holders could never get a thread to finish:
    a burst of requests would hang until the pool or busy timeout and end in 500s. So
    requests queue in the event loop instead, and never more than the pool (twice
    ``pool_size``: pool plus overflow) can serve at two connections each."""
    return max(1, min(pool_size, 32))


async def get_resources(request: Request) -> Resources:
    """Async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, and a
    thread hop per request just to read an attribute cost more than the lookup itself."""
    resources: Resources = request.app.state.fidelia
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def _db_slot(state: ResourcesDep) -> AsyncIterator[None]:
    """One database slot per request (cached, so shared by its read and write sessions),
    released after they commit or roll back."""
    async with state.db_slots:
        yield


DbSlot = Annotated[None, Depends(_db_slot, scope="function")]


def _write_session(state: ResourcesDep, _slot: DbSlot) -> Iterator[Session]:
    with state.db.session() as session:
        yield session


def _read_session(state: ResourcesDep, _slot: DbSlot) -> Iterator[Session]:
    with state.db.session(readonly=True) as session:
        yield session


# scope="function": the commit happens before the response is sent, so a client never
# sees a 2xx for a transaction that failed to commit.
SessionDep = Annotated[Session, Depends(_write_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(_read_session, scope="function")]
