"""The pool hands out live PostgreSQL connections without a round trip per checkout
(``kit/db.py _refuse_dead``): a connection the server ended while it sat in the pool is
replaced before a request gets it, so the first request after a restart succeeds."""

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, text

from fidelia.kit.db import Database
from tests.support.postgres import PostgresServer


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    pg = PostgresServer().start()
    yield pg
    pg.destroy()


def _backend(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(text("SELECT pg_backend_pid()")) or 0)


def test_a_checkout_costs_no_round_trip(server: PostgresServer, tmp_path: Path) -> None:
    """pool_pre_ping sent an empty query (``;``) on every checkout and waited for it: the
    client's side of the protocol (libpq's trace) shows none now."""
    db = Database(server.url(), pool_size=1)
    trace = (tmp_path / "trace").open("w")
    event.listen(db.engine, "connect", lambda conn, _rec: conn.pgconn.trace(trace.fileno()))
    try:
        for _ in range(3):
            _backend(db)
        trace.flush()
        sent = [line for line in (tmp_path / "trace").read_text().splitlines() if "\tF\t" in line]
        queries = [line for line in sent if "Query" in line or "Parse" in line]
        assert len([q for q in queries if "pg_backend_pid" in q]) == 3, sent
        assert not [q for q in queries if '";"' in q], sent
    finally:
        db.dispose()
        trace.close()


@pytest.mark.parametrize("end", ["terminate", "restart", "kill9"])
def test_a_connection_the_server_ended_is_replaced_at_checkout(
    server: PostgresServer, end: str
) -> None:
    db = Database(server.url(), pool_size=2)
    try:
        first = _backend(db)  # now idle in the pool
        ends: dict[str, Callable[[], None]] = {
            "terminate": lambda: server.psql(f"SELECT pg_terminate_backend({first})"),
            "restart": lambda: (server.stop("fast"), server.pg_ctl_start()),  # type: ignore[func-returns-value]
            "kill9": lambda: (server.kill9(), server.pg_ctl_start()),  # type: ignore[func-returns-value]
        }
        ends[end]()
        # pg_terminate_backend returns before the backend has gone: wait until it has (its
        # goodbye is then on the pooled socket), as for a connection ended while it sat idle.
        deadline = time.monotonic() + 10
        while server.psql(f"SELECT count(*) FROM pg_stat_activity WHERE pid = {first}") != "0":
            assert time.monotonic() < deadline, "the backend did not end"
            time.sleep(0.05)
        # The very next session works, on a new connection, without an error first.
        second = _backend(db)
        assert second != first
        with db.session() as session:
            assert session.scalar(text("SELECT 1")) == 1
    finally:
        db.dispose()
