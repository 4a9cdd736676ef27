"""A real streaming replica (pg_basebackup -R from the test primary): reads that say they
may lag go to it, every other session (writes, read-only sessions that decide money or
precede a write) stays on the primary, and a replica that stops answering sends the lagging
reads back to the primary."""

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from fidelia.app import create_app
from fidelia.kit.migrate import upgrade
from fidelia.kit.settings import Settings
from fidelia.models import Tenant
from fidelia.ops.replica import MayLagSessionDep
from tests.support.helpers import make_tenant
from tests.support.postgres import PostgresServer
from tests.support.replica import start_replica, wait_replayed

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[PostgresServer, PostgresServer]]:
    primary = PostgresServer().start()
    primary.psql("CREATE DATABASE fidelia")
    upgrade(primary.url("fidelia"))
    replica = start_replica(primary)
    yield primary, replica
    replica.destroy()
    primary.destroy()


def in_recovery(session) -> bool:
    return bool(session.scalar(text("SELECT pg_is_in_recovery()")))


def test_lagging_reads_go_to_the_replica_and_money_reads_to_the_primary(pair):
    primary, replica = pair
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=primary.url("fidelia"),
        database_replica_url=replica.url("fidelia"),
        public_url="http://testserver",
    )
    app: FastAPI = create_app(settings, run_worker=False)

    @app.get("/test/merchants")
    def merchants(session: MayLagSessionDep) -> dict[str, object]:
        count = session.scalar(select(func.count()).select_from(Tenant))
        return {"count": count, "replica": in_recovery(session)}

    db = app.state.fidelia.db
    tenant, _ = make_tenant(db, slug="replicada")
    wait_replayed(primary, replica)
    with db.session(readonly=True, may_lag=True) as session:
        assert in_recovery(session)
        assert session.get(Tenant, tenant.id) is not None  # replicated
    with db.session(readonly=True) as session:
        assert not in_recovery(session)  # a plain read-only session: the primary
    with db.session() as session:
        assert not in_recovery(session)
    with TestClient(app) as client:
        answer = client.get("/test/merchants").json()
        assert answer["replica"] is True and answer["count"] >= 1
        # The replica stops answering: lagging reads fall back to the primary.
        replica.stop()
        try:
            with db.session(readonly=True, may_lag=True) as session:
                assert not in_recovery(session)
            assert client.get("/test/merchants").json()["replica"] is False
        finally:
            replica.pg_ctl_start()
    db.dispose()
