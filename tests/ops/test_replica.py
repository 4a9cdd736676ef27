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
from fidelia.customers.service import find
from fidelia.kit.migrate import upgrade
from fidelia.kit.settings import Settings
from fidelia.models import Tenant
from fidelia.ops.replica import MayLagSessionDep
from tests.panel.support import make_merchant, post, sign_in, tenant_of
from tests.support.helpers import generate_pin, make_reward, make_tenant, send_whatsapp
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


def test_the_routes_that_may_lag_read_the_replica_and_a_redemption_reads_the_primary(pair):
    """Replay paused on the replica: what happens on the primary afterwards (a customer
    credited by PIN, a new reward) is missing from the public lookups and the panel lists,
    which read the replica; the redemption, which decides money, reads the primary and
    succeeds; the page right after one's own panel change reads the primary too."""
    primary, replica = pair
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=primary.url("fidelia"),
        database_replica_url=replica.url("fidelia"),
        public_url="http://testserver",
        whatsapp_app_secret="test-app-secret",
        bot_number="50600000000",
        tenant_cache_seconds=0,
    )
    app: FastAPI = create_app(settings, run_worker=False)
    db = app.state.fidelia.db
    shop = make_merchant(db, "rezagada")
    with db.session() as session:
        session.get_one(Tenant, shop.tenant_id).points_per_pin = 10
    reward = make_reward(db, tenant_of(db, shop.tenant_id), points=10, title="Cafe replicado")
    wa, digits = "+50687770001", "87770001"
    wait_replayed(primary, replica)
    replica.psql("SELECT pg_wal_replay_pause()")
    try:
        with TestClient(app) as client:
            code = generate_pin(client, shop.api_key)
            send_whatsapp(client, settings, wa, f"Quiero activar mi PIN: {code}")
            late = make_reward(db, tenant_of(db, shop.tenant_id), points=5, title="Recien creada")
            with db.session(readonly=True) as session:
                customer = find(session, shop_program(session, shop), "whatsapp", wa)
                assert customer is not None and customer.id > 0
                customer_id = customer.id
            # Public lookups (seed 000): the replica, which has seen neither.
            assert client.get(f"/api/v1/redimir/puntos/%2B{wa[1:]}").status_code == 404
            shown = client.get(f"/api/v1/redimir/comercio/{shop.slug}").json()["promociones"]
            assert [p["id"] for p in shown] == [reward]
            assert late not in [p["id"] for p in shown]
            # The redemption reads the primary: the credit and the visit are there.
            answer = client.post(
                "/api/v1/redimir/canjear",
                json={"whatsapp": wa, "id_comercio": shop.tenant_id, "id_promocion": reward},
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["puntos_restantes"] == 0
            # Panel lists and history: the replica.
            sign_in(client, shop.owner)
            assert digits not in client.get("/panel/customers").text
            assert client.get(f"/panel/customers/{customer_id}").status_code == 404
            assert client.get("/panel/dashboard").status_code == 200
            assert client.get("/panel/messages").status_code == 200
            assert client.get("/panel/vouchers").status_code == 200
            # One's own change, then its page (the redirect with the notice): the primary.
            changed = post(
                client,
                f"/panel/customers/{customer_id}/adjust",
                {"account": "points", "amount": "7", "direction": "credit", "reason": "gift"},
                follow_redirects=False,
            )
            assert changed.status_code == 303, changed.text
            after = client.get(changed.headers["location"])
            assert after.status_code == 200 and "gift" in after.text
            # The notice is shown once; the next view of the page reads the replica again.
            assert client.get(f"/panel/customers/{customer_id}").status_code == 404
            with db.session(readonly=True, may_lag=True) as session:
                assert in_recovery(session)
    finally:
        replica.psql("SELECT pg_wal_replay_resume()")
    wait_replayed(primary, replica)
    with TestClient(app) as client:
        points = client.get(f"/api/v1/redimir/puntos/%2B{wa[1:]}")
        assert points.status_code == 200
        assert points.json()["data"][0]["puntos"] == 7  # 10 credited, 10 redeemed, 7 adjusted
        sign_in(client, shop.owner)
        assert digits in client.get("/panel/customers").text
    db.dispose()


def shop_program(session, shop) -> int:
    return session.get_one(Tenant, shop.tenant_id).program_id
