"""Bodies over FIDELIA_MAX_BODY_BYTES are refused with 413 in each door's format, before
they are read (Content-Length) or as soon as they pass the limit (chunked), on a real
server; nothing is written."""

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from fidelia.models import Customer, InboundMessage, OutboxMessage
from tests.support.helpers import LiveServer, make_tenant

LIMIT = 64 * 1024

# (path, headers, check of the door's error format)
DOORS = [
    ("/api/v1/integraciones/pin/generar", {}, lambda b: b["ok"] is False and b["codigo"]),
    ("/api/v1/redimir/canjear", {}, lambda b: b["ok"] is False and b["codigo"]),
    ("/v1/pvt/POS/orders", {}, lambda b: b["HasError"] is True),
    ("/v1/member/register", {}, lambda b: b["status"] == "error" and b["error"]["code"]),
    ("/v2/customers", {}, lambda b: b["error"]["code"]),
    ("/webhooks/whatsapp", {"X-Hub-Signature-256": "sha256=00"}, lambda b: b["error"]["code"]),
]


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"max_body_bytes": LIMIT, "rate_limits_enabled": False})


@pytest.fixture
def server(app) -> Iterator[LiveServer]:
    with LiveServer(app) as live:
        yield live


def counts(db):
    with db.session(readonly=True) as session:
        return [
            session.scalar(select(func.count()).select_from(t))
            for t in (Customer, InboundMessage, OutboxMessage)
        ]


def chunks(total: int, size: int = 8192) -> Iterator[bytes]:
    yield b'{"padding": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


@pytest.mark.parametrize("path,headers,check", DOORS, ids=[d[0] for d in DOORS])
def test_a_declared_oversize_body_is_refused_unread(server, db, path, headers, check):
    make_tenant(db)
    before = counts(db)
    body = b'{"padding": "' + b"x" * (LIMIT + 1) + b'"}'
    with server.client() as client:
        response = client.post(
            path, content=body, headers={"Content-Type": "application/json", **headers}
        )
    assert response.status_code == 413, response.text
    assert check(response.json())
    assert counts(db) == before


@pytest.mark.parametrize("path,headers,check", DOORS, ids=[d[0] for d in DOORS])
def test_a_chunked_oversize_body_is_refused_while_streaming(server, db, path, headers, check):
    make_tenant(db)
    before = counts(db)
    with server.client() as client:
        response = client.post(
            path,
            content=chunks(LIMIT * 4),
            headers={"Content-Type": "application/json", **headers},
        )
    assert response.status_code == 413, response.text
    assert check(response.json())
    assert counts(db) == before


def test_a_body_within_the_limit_is_served(server, db):
    _, key = make_tenant(db)
    with server.client() as client:
        response = client.post(
            "/api/v1/integraciones/pin/generar",
            headers={"X-API-Key": key},
            json={"monto": 100, "nota": "x" * (LIMIT // 2)},
        )
    assert response.status_code in (200, 400), response.text
    assert response.status_code != 413


def test_an_unsigned_webhook_is_refused_before_its_body_is_read(server):
    with server.client() as client:
        response = client.post("/webhooks/whatsapp", content=chunks(LIMIT // 2))
    assert response.status_code == 401
