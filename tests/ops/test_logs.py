"""Structured logs: one JSON line per request with its route template, status, duration,
merchant and request id; the client's X-Request-ID kept (a new one otherwise) and returned;
and, over a run that touches every door, the panel, the webhook, challenges by SMS and
e-mail and the worker, not one key, code, phone number, e-mail address or password in the
log."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fidelia.app import create_app
from fidelia.kit.settings import Settings
from fidelia.messaging.channels import senders_for
from fidelia.messaging.worker import Worker
from fidelia.ops import jobs
from fidelia.ops import logging as ops_logging
from tests.fakes.sms import FakeSmsGateway
from tests.fakes.smtp import FakeSmtp
from tests.panel.support import post
from tests.support.helpers import make_tenant
from tests.support.world import POS, two_merchants


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for raw in text.splitlines():
        raw = raw.strip()
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


@pytest.fixture
def prod_settings(settings: Settings) -> Iterator[Settings]:
    sms, smtp = FakeSmsGateway(), FakeSmtp()
    yield settings.model_copy(
        update={
            "log_format": "json",
            "rate_limits_enabled": False,
            "sms_gateway_url": sms.url,
            "sms_gateway_token": sms.token,
            "smtp_url": smtp.url,
        }
    )
    sms.close()
    smtp.close()
    ops_logging.configure("console")


def test_request_lines_carry_route_status_merchant_and_request_id(prod_settings, capsys):
    app = create_app(prod_settings, run_worker=False)
    with TestClient(app) as client:
        capsys.readouterr()
        tenant, key = make_tenant(app.state.fidelia.db)
        given = client.post(
            "/api/v1/integraciones/pin/generar",
            headers={"X-API-Key": key, "X-Request-ID": "req-abc.123"},
        )
        assert given.status_code == 200 and given.headers["x-request-id"] == "req-abc.123"
        fresh = client.post(
            f"{POS}/customers/52998224725/challenge", json={}, headers={"X-Request-ID": "a b"}
        )
        new_id = fresh.headers["x-request-id"]
        assert new_id != "a b" and len(new_id) == 32  # not an id: replaced
    app.state.fidelia.db.dispose()
    lines = [line for line in json_lines(capsys.readouterr().err) if line["event"] == "request"]
    first = next(line for line in lines if line["request_id"] == "req-abc.123")
    assert first["route"] == "/api/v1/integraciones/pin/generar"
    assert first["method"] == "POST" and first["status"] == 200 and first["door"] == "pin"
    assert first["merchant_id"] == tenant.id and first["duration_ms"] >= 0
    assert first["level"] == "info" and "timestamp" in first
    second = next(line for line in lines if line["request_id"] == new_id)
    assert second["status"] == 401 and second["door"] == "pos"
    assert second["route"] == "/v1/pvt/POS/customers/{document}/challenge"
    assert second["merchant_id"] is None
    # The path held a CPF: only the route template is written.
    assert "52998224725" not in json.dumps(lines)


def test_routes_of_prefixed_routers_are_written_whole(prod_settings, capsys):
    """The REST door's routes (included under /v2) and the retail door's (under /v1), by
    their full template, whether the edge's lane or the framework answered them; the two
    doors' customer routes are two labels, not one."""
    app = create_app(prod_settings, run_worker=False)
    with TestClient(app) as client:
        capsys.readouterr()
        client.post("/v2/sales", json={"sale_amount": 1})  # no token: the lane's refusal
        client.post("/v2/sales", content=b"{", headers={"Content-Type": "application/json"})  # 422
        client.get("/v2/customers/52998224725")
        client.post("/v1/transaction", json={"transaction": {}})
        client.post("/v1/member/details", json={})
    app.state.fidelia.db.dispose()
    lines = [line for line in json_lines(capsys.readouterr().err) if line["event"] == "request"]
    assert [(line["route"], line["status"]) for line in lines] == [
        ("/v2/sales", 401),
        ("/v2/sales", 422),
        ("/v2/customers/{customer_id}", 401),
        ("/v1/transaction", 401),
        ("/v1/member/details", 401),
    ]


def test_worker_jobs_are_logged_one_line_each(prod_settings, capsys):
    app = create_app(prod_settings, run_worker=False)
    with TestClient(app) as client:
        world = two_merchants(client, app.state.fidelia.db, prod_settings)
        assert world
        capsys.readouterr()
        Worker(app.state.fidelia.db, jobs.instrument(senders_for(prod_settings)), 50).drain()
    app.state.fidelia.db.dispose()
    done = [line for line in json_lines(capsys.readouterr().err) if line["event"] == "job"]
    assert {line["channel"] for line in done} == {"whatsapp", "sms", "email"}
    assert all(line["outcome"] == "sent" and line["duration_ms"] >= 0 for line in done)


def test_no_secret_or_personal_data_in_a_whole_run_of_logs(prod_settings, capsys):
    """Everything a merchant and its customers send, through every door; the log of the whole
    run is then searched for each secret and each piece of personal data used."""
    app = create_app(prod_settings.model_copy(update={"log_level": "DEBUG"}), run_worker=False)
    used: list[str] = []
    with TestClient(app) as client:
        db = app.state.fidelia.db
        a, b = two_merchants(client, db, prod_settings)
        for merchant in (a, b):
            used += [merchant.token, merchant.api_key, merchant.document, merchant.email]
            used += [merchant.phone, merchant.whatsapp.lstrip("+"), merchant.open_pin]
            used += [merchant.used_pin, merchant.external_code]
        # A challenge by SMS and e-mail (the codes go to the fake gateways), answered wrongly
        # then rightly.
        sent = client.post(
            f"{POS}/customers/{a.document}/challenge", headers=a.pos, json={"TransactionId": "T-9"}
        )
        assert sent.json()["SentBySMS"] and sent.json()["SentByEmail"]
        code = str(sent.json()["Code"])
        used.append(code)
        for attempt in ("000000" if code != "000000" else "111111", code):
            client.post(
                f"{POS}/customers/{a.document}/challengevalidate",
                headers=a.pos,
                json={"TransactionId": "T-9", "Code": attempt},
            )
        # Mistakes that echo what was sent: a wrong key, bad input with personal data.
        client.post(
            "/api/v1/integraciones/pin/generar", headers={"X-API-Key": "wrong-key-1234567890abcdef"}
        )
        used.append("wrong-key-1234567890abcdef")
        client.post(
            f"{POS}/orders",
            headers=a.pos,
            json={
                "OriginalId": "x\u0000y",
                "OrderTotal": "lots",
                "Customer": {"Email": "zed@zed.example", "Phone": "11955554444"},
            },
        )
        used += ["zed@zed.example", "11955554444"]
        # The panel: sign-up with an e-mail and a password, then a failed sign-in.
        post(
            client,
            "/panel/signup",
            {
                "shop_name": "Padaria Log",
                "email": "dona@padaria-log.test",
                "password": "segredo muito forte",
                "currency": "BRL",
                "timezone": "America/Sao_Paulo",
                "locale": "pt_BR",
            },
            follow_redirects=False,
        )
        used += ["dona@padaria-log.test", "segredo muito forte"]
        Worker(db, jobs.instrument(senders_for(prod_settings)), 50).drain()
    app.state.fidelia.db.dispose()
    text = capsys.readouterr().err
    lines = json_lines(text)
    assert len([line for line in lines if line["event"] == "request"]) > 30
    leaked = sorted({value for value in used if value and value in text})
    assert leaked == []


def test_request_and_job_lines_follow_the_configured_level_and_format(capsys):
    """The request and delivery lines are written by structlog itself (``ops_logging.Hot``),
    not through the root logger: the configured level and format still decide them, and a
    later ``configure`` (another app in the same process) applies to loggers made before."""
    request, job = ops_logging.get("fidelia.request"), ops_logging.get("fidelia.job")
    try:
        ops_logging.configure("json", "WARNING")
        capsys.readouterr()
        request.info("request", route="/x", status=200)
        assert capsys.readouterr().err == ""
        ops_logging.configure("json", "INFO")
        request.info("request", route="/x", status=200, phone="5511999998888")
        job.info("job", job="outbox", outcome="sent")
        first, second = json_lines(capsys.readouterr().err)
        assert first["event"] == "request" and first["logger"] == "fidelia.request"
        assert first["level"] == "info" and "timestamp" in first and first["status"] == 200
        assert first["phone"] == "[redacted]"  # the same scrubbing as every other record
        assert second["logger"] == "fidelia.job" and second["outcome"] == "sent"
        ops_logging.configure("console", "INFO")
        request.info("request", route="/x", status=200)
        line = capsys.readouterr().err
        assert "[fidelia.request]" in line and "route=/x" in line and not line.startswith("{")
    finally:
        ops_logging.configure("console")
