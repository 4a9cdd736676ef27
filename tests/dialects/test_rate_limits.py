"""Seed 000 rate limits: 30 requests a minute per client IP and endpoint, 429
TOO_MANY_REQUESTS with Retry-After; counters in memory, or in Redis shared by processes."""

import pytest
from fastapi.testclient import TestClient

from fidelia.app import create_app
from tests.fakes.redis import RedisServer
from tests.support.helpers import make_tenant


@pytest.fixture(scope="module")
def redis_server():
    server = RedisServer()
    yield server
    server.stop()


def exhaust(client, path, method="get", **kw):
    statuses = [getattr(client, method)(path, **kw).status_code for _ in range(30)]
    assert 429 not in statuses
    return getattr(client, method)(path, **kw)


def test_31st_request_is_refused(client, db):
    make_tenant(db, slug="cafe-demo")
    over = exhaust(client, "/api/v1/redimir/comercio/cafe-demo")
    assert over.status_code == 429
    assert over.json()["codigo"] == "TOO_MANY_REQUESTS"
    assert over.json()["ok"] is False
    assert 1 <= int(over.headers["Retry-After"]) <= 60
    # Per endpoint: another endpoint still answers.
    assert client.get("/api/v1/redimir/puntos/%2B50688887777").status_code == 404


def test_pin_generation_is_limited(client, db):
    _, key = make_tenant(db)
    over = exhaust(client, "/api/v1/integraciones/pin/generar", "post", headers={"X-API-Key": key})
    assert over.status_code == 429
    assert over.json()["codigo"] == "TOO_MANY_REQUESTS"


def test_limits_can_be_raised_by_setting(settings, db):
    app = create_app(settings.model_copy(update={"rate_limit_pin_door": "100/minute"}))
    with TestClient(app) as client:
        make_tenant(app.state.fidelia.db, slug="cafe-demo")
        codes = {client.get("/api/v1/redimir/comercio/cafe-demo").status_code for _ in range(60)}
    assert codes == {200}
    app.state.fidelia.db.dispose()


def test_redis_counters_are_shared_between_processes(settings, redis_server):
    """Two app instances (two web processes) count against the same Redis window."""
    shared = settings.model_copy(update={"redis_url": redis_server.url})
    first, second = create_app(shared), create_app(shared)
    with TestClient(first) as one, TestClient(second) as two:
        make_tenant(first.state.fidelia.db, slug="cafe-demo")
        statuses = [
            (one if i % 2 else two).get("/api/v1/redimir/comercio/cafe-demo").status_code
            for i in range(30)
        ]
        assert statuses == [200] * 30
        assert one.get("/api/v1/redimir/comercio/cafe-demo").status_code == 429
        assert two.get("/api/v1/redimir/comercio/cafe-demo").status_code == 429
    first.state.fidelia.limiter.reset()
    for app in (first, second):
        app.state.fidelia.db.dispose()


def test_merchants_behind_one_address_each_get_the_generation_limit(client, db):
    _, key_a = make_tenant(db, slug="uno")
    _, key_b = make_tenant(db, slug="dos")
    url = "/api/v1/integraciones/pin/generar"
    over = exhaust(client, url, "post", headers={"X-API-Key": key_a})
    assert over.status_code == 429
    assert client.post(url, headers={"X-API-Key": key_b}).status_code == 200


def test_failed_authentications_are_limited_per_address(settings, db):
    """After the limit of 401s from one address, its requests are refused with 429 in the
    door's format before credentials are checked, good ones included, on every door."""
    app = create_app(settings.model_copy(update={"rate_limit_auth_failures": "5/minute"}))
    with TestClient(app) as client:
        _, key = make_tenant(app.state.fidelia.db)
        for _ in range(5):
            bad = client.post("/api/v1/integraciones/pin/generar", headers={"X-API-Key": "nope"})
            assert bad.status_code == 401
        refused = client.post("/api/v1/integraciones/pin/generar", headers={"X-API-Key": key})
        assert refused.status_code == 429
        assert refused.json()["codigo"] == "TOO_MANY_REQUESTS"
        assert int(refused.headers["Retry-After"]) >= 1
        pos = client.post("/v1/pvt/POS/rewards/available", json={})
        assert pos.status_code == 429 and pos.json()["HasError"] is True
        v2 = client.post("/v2/auth/token", json={"api_key": key, "api_secret": key})
        assert v2.status_code == 429 and "error" in v2.json()
    app.state.fidelia.db.dispose()


@pytest.mark.parametrize("trusted", ["", "127.0.0.1"])
def test_forwarded_addresses_count_only_from_a_trusted_proxy(settings, db, trusted):
    """Behind a trusted proxy each forwarded client has its own quota; from anyone else,
    X-Forwarded-For is ignored (it would let one client pose as many)."""
    from tests.support.helpers import LiveServer

    app = create_app(
        settings.model_copy(update={"trusted_proxies": trusted, "rate_limit_pin_door": "3/minute"})
    )
    make_tenant(app.state.fidelia.db, slug="cafe-demo")
    with LiveServer(app) as server, server.client() as client:
        statuses = [
            client.get(
                "/api/v1/redimir/comercio/cafe-demo",
                headers={"X-Forwarded-For": f"203.0.113.{i}"},
            ).status_code
            for i in range(6)
        ]
    if trusted:
        assert statuses == [200] * 6  # six clients, one request each
    else:
        assert statuses == [200] * 3 + [429] * 3  # one client (the peer), three allowed
