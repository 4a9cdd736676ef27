"""The PIN door's generation and lookup by the edge's lanes (fidelia/edge.py ``Lane``,
fidelia/dialects/pin_whatsapp/lanes.py), without FastAPI's layers for their common case:
every answer is the one the framework gives, byte for byte (status, headers, body),
whatever the request (what the lane does not take is left to the framework), the effects
are the same, and the metrics name the same route."""

import json
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from fidelia.app import create_app
from fidelia.kit import clock
from fidelia.models import Pin, Redemption
from fidelia.ops import metrics
from tests.support.helpers import generate_pin, make_reward, make_tenant, send_whatsapp

PIN = "/api/v1/integraciones/pin/generar"
PUNTOS = "/api/v1/redimir/puntos/"
CANJEAR = "/api/v1/redimir/canjear"
WA = "+50688887777"
T0 = datetime(2026, 5, 4, 15, 0, tzinfo=UTC)


@pytest.fixture
def frozen():
    clock.freeze(T0)
    yield
    clock.freeze(None)


@pytest.fixture
def framework(settings):
    """The same app with its lanes closed: every request goes through FastAPI's layers."""
    app = create_app(settings, run_worker=False)
    app.state.lanes.clear()
    with TestClient(app) as client:
        yield client
    app.state.fidelia.db.dispose()


def answer(client, method, url, **kwargs):
    headers = {**kwargs.pop("headers", {}), "X-Request-ID": "req-1234567"}
    response = client.request(method, url, headers=headers, **kwargs)
    body = response.content
    code = response.json().get("pin") if response.status_code == 200 else None
    if isinstance(code, str):  # a new PIN's code is random: the rest of its answer must match
        body = body.replace(code.encode(), b"PIN")
    return response.status_code, sorted(response.headers.items()), body


def pins(db):
    with db.session(readonly=True) as session:
        return int(session.scalar(select(func.count()).select_from(Pin)) or 0)


def counted(route, status):
    return metrics.REQUESTS.labels("pin", route, "POST" if "generar" in route else "GET", status)


def test_the_lanes_are_open_for_generation_and_lookup(app):
    assert sorted(lane.path for lane in app.state.lanes if lane.path.startswith("/api/")) == [
        "/api/v1/integraciones/pin/generar",
        "/api/v1/redimir/canjear",
        "/api/v1/redimir/puntos/{wa}",
    ]


def test_generation_by_the_lane_answers_as_the_framework(app, client, framework, db, frozen):
    tenant, key = make_tenant(db, min_purchase="10.00")
    json_type = {"Content-Type": "application/json"}
    cases = [
        ("no body", {"headers": {"X-API-Key": key}}),
        ("an amount", {"headers": {"X-API-Key": key, **json_type}, "content": b'{"monto": 25}'}),
        ("empty object", {"headers": {"X-API-Key": key, **json_type}, "content": b"{}"}),
        (
            "charset",
            {
                "headers": {"X-API-Key": key, "Content-Type": "application/json; charset=utf-8"},
                "content": b'{"monto": "12.50"}',
            },
        ),  # noqa: E501
        ("below minimum", {"headers": {"X-API-Key": key, **json_type}, "content": b'{"monto": 5}'}),  # noqa: E501
        ("no key", {"headers": json_type, "content": b'{"monto": 25}'}),
        ("bad key", {"headers": {"X-API-Key": "nope", **json_type}, "content": b"{}"}),
        ("malformed JSON", {"headers": {"X-API-Key": key, **json_type}, "content": b"{nope"}),
        ("not an object", {"headers": {"X-API-Key": key, **json_type}, "content": b"[1, 2]"}),
        ("null", {"headers": {"X-API-Key": key, **json_type}, "content": b"null"}),
        ("bad amount", {"headers": {"X-API-Key": key, **json_type}, "content": b'{"monto": "x"}'}),  # noqa: E501
        ("no content type", {"headers": {"X-API-Key": key}, "content": b'{"monto": 25}'}),
        ("form", {"headers": {"X-API-Key": key, "Content-Type": "text/plain"}, "content": b"25"}),  # noqa: E501
    ]
    made = 0
    ok_before = counted(PIN, "2xx")._value.get()
    for name, request in cases:
        lane = answer(client, "POST", PIN, **request)
        assert lane == answer(framework, "POST", PIN, **request), name
        made += 2 if lane[0] == 200 else 0
        assert pins(db) == made, name  # what each way wrote: a PIN per success, nothing else
    assert made == 10  # five cases issue a PIN, each way
    assert counted(PIN, "2xx")._value.get() == ok_before + 10  # one route, both ways
    (lane,) = [lane for lane in app.state.lanes if lane.route.path == PIN]
    # taken: four PINs, the amounts refused (below the minimum, not a number), both bad
    # keys; left: what is not a JSON object under its content type (a JSON null is the
    # framework's "no body": the fifth PIN)
    assert (lane.taken, lane.left) == (8, 5)


def test_the_lookup_by_the_lane_answers_as_the_framework(app, client, framework, db, settings):
    tenant, key = make_tenant(db, points_per_pin="4")
    make_reward(db, tenant, points=10)
    send_whatsapp(client, settings, WA, f"Quiero activar mi PIN: {generate_pin(client, key)}")
    send_whatsapp(client, settings, WA, "Ana")
    for number in ["%2B50688887777", "50688887777", "+50688887777", "%2B50600000001", "abc", "%20"]:
        lane = answer(client, "GET", PUNTOS + number)
        assert lane == answer(framework, "GET", PUNTOS + number), number
    assert answer(client, "GET", PUNTOS + "%2B50688887777")[0] == 200
    assert b'"puntos":4' in answer(client, "GET", PUNTOS + "%2B50688887777")[2]
    (lane,) = [lane for lane in app.state.lanes if lane.route.path.startswith(PUNTOS)]
    assert (lane.taken, lane.left) == (8, 0)  # every lookup


def test_the_redemption_by_the_lane_answers_as_the_framework(app, client, framework, db, settings):
    tenant, key = make_tenant(db, points_per_pin="10")
    reward = make_reward(db, tenant, points=10)
    for _ in range(2):  # 20 points: a redemption each way
        send_whatsapp(client, settings, WA, f"Quiero activar mi PIN: {generate_pin(client, key)}")
    send_whatsapp(client, settings, WA, "Ana")
    json_type = {"Content-Type": "application/json"}
    good = {"whatsapp": WA, "id_comercio": tenant.id, "id_promocion": reward}
    cases = [
        ("unknown merchant", {**good, "id_comercio": 999}),
        ("unknown customer", {**good, "whatsapp": "+50670000000"}),
        ("unknown reward", {**good, "id_promocion": 999}),
        ("bad number", {**good, "whatsapp": "nope"}),
        ("bad id", {**good, "id_comercio": "x"}),
        ("missing fields", {"whatsapp": WA}),
        ("a list", [1, 2]),
    ]
    for name, body in cases:
        content = json.dumps(body).encode()
        lane = answer(client, "POST", CANJEAR, headers=json_type, content=content)
        assert lane == answer(framework, "POST", CANJEAR, headers=json_type, content=content), name
    # 10 of the 20 points each way: the same answer, but for the points left
    content = json.dumps(good).encode()
    lane = answer(client, "POST", CANJEAR, headers=json_type, content=content)
    via = answer(framework, "POST", CANJEAR, headers=json_type, content=content)
    assert lane[0] == via[0] == 200 and lane[2].replace(b":10,", b":0,") == via[2]
    refused = answer(client, "POST", CANJEAR, headers=json_type, content=content)
    assert refused == answer(framework, "POST", CANJEAR, headers=json_type, content=content)
    for name, content in [("malformed", b"{oops"), ("empty", b"")]:
        lane = answer(client, "POST", CANJEAR, headers=json_type, content=content)
        assert lane == answer(framework, "POST", CANJEAR, headers=json_type, content=content), name
    with db.session(readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(Redemption)) == 2
    (lane,) = [lane for lane in app.state.lanes if lane.route.path == CANJEAR]
    assert (lane.taken, lane.left) == (6, 5)  # left: what the model refuses, and no body
