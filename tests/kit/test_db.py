"""The pool hands out live PostgreSQL connections without a round trip per checkout
(``kit/db.py _refuse_dead``): a connection the server ended while it sat in the pool is
replaced before a request gets it, so the first request after a restart succeeds."""

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import text

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


def test_a_checkout_costs_no_round_trip() -> None:
    """pool_pre_ping sent a ``SELECT 1`` on every checkout: the server logs none now."""
    server = PostgresServer({"log_statement": "all"}).start()
    db = Database(server.url(), pool_size=1)
    try:
        for _ in range(3):
            _backend(db)
        logged = (server.dir / "log").read_text()
        assert logged.count("SELECT pg_backend_pid()") == 3
        assert "SELECT 1" not in logged
    finally:
        db.dispose()
        server.destroy()


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
        # The very next session works, on a new connection, without an error first.
        second = _backend(db)
        assert second != first
        with db.session() as session:
            assert session.scalar(text("SELECT 1")) == 1
    finally:
        db.dispose()
