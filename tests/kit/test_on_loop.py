"""A door's write transaction (``Resources.in_transaction``): on PostgreSQL on the event loop
(``Database.on_loop``), each statement awaited, no thread; on SQLite in a database thread.
Either way: committed when the work returns, rolled back on any exception, the driver's own
statements (``kit/driver.py``) in the same transaction, and on PostgreSQL the first write
after the server ended the pooled connections succeeds."""

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from fidelia.kit import driver
from fidelia.kit.deps import Resources
from fidelia.kit.migrate import upgrade
from fidelia.kit.settings import Settings
from fidelia.models import Tenant
from tests.support.helpers import make_tenant, returned_when_cancelled
from tests.support.postgres import PostgresServer

NAME = select(Tenant.name).where(Tenant.id == bindparam("t"))  # built once, as hot paths do


def resources(url: str, pool_size: int = 10) -> Resources:
    settings = Settings(_env_file=None, database_url=url, database_pool_size=pool_size)  # type: ignore[call-arg]
    return Resources(settings)


def rename(session: Session, tenant_id: int, name: str, fail: bool = False) -> tuple[str, str]:
    """Rename the merchant (through the ORM), read the name back on the driver's way, and
    say which thread did it."""
    session.get_one(Tenant, tenant_id).name = name
    session.flush()
    seen = driver.execute(session, NAME, {"t": tenant_id}).scalar()
    if fail:
        raise ValueError("refused after writing")
    return seen, threading.current_thread().name


def name_of(state: Resources, tenant_id: int) -> str:
    with state.db.session(readonly=True) as session:
        return session.get_one(Tenant, tenant_id).name


def first_tenant(state: Resources, slug: str = "loop") -> int:
    return make_tenant(state.db, slug=slug, name="Loop")[0].id


def test_commits_on_return_and_rolls_back_on_an_exception(database_url: str) -> None:
    state = resources(database_url)
    try:
        tenant_id = first_tenant(state)

        async def both() -> tuple[str, str]:
            seen = await state.in_transaction(rename, tenant_id, "Renamed")
            with pytest.raises(ValueError):
                await state.in_transaction(rename, tenant_id, "Never", fail=True)
            return seen

        (seen, thread) = asyncio.run(both())
        assert seen == "Renamed"  # the driver's read saw the ORM's write: one transaction
        assert name_of(state, tenant_id) == "Renamed"  # the failed one left nothing
        on_loop = thread == threading.current_thread().name
        assert on_loop == (not state.db.is_sqlite), thread
    finally:
        state.db.dispose()


def test_transactions_in_flight_share_the_loop_and_the_pool(pg_url: str) -> None:
    """More transactions at once than connections: they wait for a slot in the event loop,
    each on a connection of its own, and every one commits."""
    state = resources(pg_url, pool_size=2)
    try:
        tenant_id = first_tenant(state)

        def bump(session: Session, n: int) -> int:
            session.execute(text("SELECT pg_sleep(0.02)"))
            tenant = session.get_one(Tenant, tenant_id, with_for_update=True)
            tenant.name = f"{tenant.name}+"
            return n

        async def burst() -> list[int]:
            return await asyncio.gather(*(state.in_transaction(bump, n) for n in range(12)))

        assert asyncio.run(burst()) == list(range(12))
        assert name_of(state, tenant_id) == "Loop" + "+" * 12
    finally:
        state.db.dispose()


def test_a_cancelled_caller_waits_for_its_transaction_to_end(pg_url: str) -> None:
    """A request cancelled while its transaction is under way (a deadline, a shutdown) does
    not cut it short: the transaction ends as it would have (here it commits), its
    connection goes back to the pool, and only then does the cancellation reach the
    request, as with a transaction in a worker thread (``kit/threads.run``)."""
    state = resources(pg_url, pool_size=2)
    try:
        tenant_id = first_tenant(state)
        ended: list[float] = []

        def slow_rename(session: Session) -> None:
            session.execute(text("SELECT pg_sleep(0.3)"))
            rename(session, tenant_id, "Finished")
            ended.append(time.monotonic())

        back = returned_when_cancelled(lambda: state.in_transaction(slow_rename))
        assert ended and ended[0] <= back
        assert name_of(state, tenant_id) == "Finished"
        assert state.db.async_engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        state.db.dispose()


def test_a_connection_given_back_mid_transaction_is_rolled_back(pg_url: str) -> None:
    """The async pool resets a connection only when a transaction is still open on it
    (``_rollback_if_open``): one given back mid-transaction (here by code that used the
    driver's connection itself) comes out of the pool again idle, its write undone."""
    state = resources(pg_url, pool_size=1)  # one connection: the second checkout gets it
    try:
        tenant_id = first_tenant(state)

        async def give_back_open() -> tuple[bool, TransactionStatus]:
            engine = state.db.async_engine
            async with engine.connect() as conn:
                first = (await conn.get_raw_connection()).driver_connection
                await first.execute(
                    "UPDATE tenants SET name = 'Left open' WHERE id = %s", (tenant_id,)
                )
                assert first.info.transaction_status == TransactionStatus.INTRANS
            async with engine.connect() as conn:
                again = (await conn.get_raw_connection()).driver_connection
                return again is first, again.info.transaction_status

        same, status = asyncio.run(give_back_open())
        assert same and status == TransactionStatus.IDLE
        assert name_of(state, tenant_id) == "Loop"
    finally:
        state.db.dispose()


def test_the_metrics_see_the_loops_pool_once_it_is_made(pg_url: str) -> None:
    state = resources(pg_url, pool_size=3)
    try:
        assert [(db, kind) for db, kind, _ in state.db.pools()] == [("primary", "sync")]
        tenant_id = first_tenant(state)
        asyncio.run(state.in_transaction(rename, tenant_id, "Seen"))
        pools = {kind: pool for _, kind, pool in state.db.pools()}
        assert set(pools) == {"sync", "loop"}
        loop_pool: Any = pools["loop"]
        assert loop_pool.size() == 3 and loop_pool.checkedout() == 0
    finally:
        state.db.dispose()


@pytest.fixture(scope="module")
def own_pg() -> Iterator[PostgresServer]:
    """A server of this module's own, migrated once: a restart must not touch the other
    tests' server."""
    pg = PostgresServer().start()
    pg.psql("CREATE DATABASE loop")
    upgrade(pg.url("loop"))
    yield pg
    pg.destroy()


@pytest.mark.parametrize("end", ["terminate", "restart"])
def test_the_first_write_after_the_server_ended_the_pool_succeeds(
    own_pg: PostgresServer, end: str
) -> None:
    pg = own_pg
    state = resources(pg.url("loop"), pool_size=2)
    try:
        tenant_id = first_tenant(state, slug=f"loop-{end}")

        def backend(session: Session) -> int:
            return int(session.scalar(text("SELECT pg_backend_pid()")) or 0)

        first = asyncio.run(state.in_transaction(backend))  # now idle in the async pool
        if end == "terminate":
            pg.psql(f"SELECT pg_terminate_backend({first})")
        else:
            pg.stop("fast")
            pg.pg_ctl_start()
        deadline = time.monotonic() + 10
        while pg.psql(f"SELECT count(*) FROM pg_stat_activity WHERE pid = {first}") != "0":
            assert time.monotonic() < deadline, "the backend did not end"
            time.sleep(0.05)
        seen: Any = asyncio.run(state.in_transaction(rename, tenant_id, "After"))
        assert seen[0] == "After" and name_of(state, tenant_id) == "After"
    finally:
        state.db.dispose()
