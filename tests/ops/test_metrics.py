"""``/metrics``: Prometheus text behind FIDELIA_METRICS_TOKEN, with requests per door and
route template, status classes, webhook intake, outbox backlog and deliveries, PIN namespace
fill, pool use and worker heartbeats; added up over every process of ``serve --workers 2``."""

import re
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from fidelia.app import create_app
from fidelia.messaging.channels import senders_for
from fidelia.messaging.worker import Worker
from fidelia.ops import heartbeat, jobs
from tests.reliability.harness import Fidelia, environment
from tests.support.helpers import generate_pin, make_tenant, send_whatsapp
from tests.support.postgres import free_port

TOKEN = "metrics-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    """The sum of ``name`` over the samples whose labels include ``labels``."""
    total = 0.0
    for (found, got), number in samples(text).items():
        if found == name and set(labels.items()) <= set(got):
            total += number
    return total


def test_metrics_need_the_token_and_do_not_exist_without_one(settings):
    with TestClient(create_app(settings, run_worker=False)) as client:
        assert client.get("/metrics").status_code == 404
    with TestClient(
        create_app(settings.model_copy(update={"metrics_token": TOKEN}), run_worker=False)
    ) as client:
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert client.get("/metrics", headers=AUTH).status_code == 200
        assert "/metrics" not in client.get("/openapi.json").text


def test_metrics_show_requests_outbox_pins_pool_and_heartbeats(settings):
    settings = settings.model_copy(update={"metrics_token": TOKEN, "rate_limits_enabled": False})
    app = create_app(settings, run_worker=False)
    db = app.state.fidelia.db
    with TestClient(app) as client:
        before = client.get("/metrics", headers=AUTH).text
        route = "/api/v1/integraciones/pin/generar"
        was = value(before, "fidelia_http_requests_total", route=route, status="2xx")
        _, key = make_tenant(db)
        pins = [generate_pin(client, key) for _ in range(3)]
        client.post(route, headers={"X-API-Key": "wrong"})
        send_whatsapp(client, settings, "+50688887777", f"Quiero activar mi PIN: {pins[0]}")
        text = client.get("/metrics", headers=AUTH).text
        assert value(text, "fidelia_http_requests_total", route=route, status="2xx") == was + 3
        assert value(text, "fidelia_http_requests_total", route=route, status="4xx") >= 1
        assert value(text, "fidelia_http_requests_total", door="pin", method="POST") >= 4
        assert value(text, "fidelia_http_request_duration_seconds_count", route=route) >= 4
        assert value(text, "fidelia_webhook_requests_total", source="whatsapp", status="2xx") >= 1
        # Two PINs still open in the bot number's namespace; its fill is a share of capacity.
        ns = settings.bot_number
        assert value(text, "fidelia_pin_namespace_open", bot_number=ns) == 2
        assert 0 < value(text, "fidelia_pin_namespace_fill_ratio", bot_number=ns) < 1
        # The bot's reply waits in the outbox; no worker has ever run.
        assert value(text, "fidelia_outbox_backlog", channel="whatsapp") == 1
        assert value(text, "fidelia_worker_heartbeat_newest_age_seconds") == -1
        assert value(text, "fidelia_database_up") == 1
        assert value(text, "fidelia_db_pool_capacity", database="primary", pool="sync") > 0
        if settings.database_url.startswith("postgresql"):
            # PIN generation and the webhook's insert: one statement each on the event loop,
            # on the statement pool the lifespan opened on it.
            assert value(text, "fidelia_db_pool_capacity", pool="statement") > 0
            assert value(text, "fidelia_db_pool_in_use", pool="statement") == 0
        sent = value(text, "fidelia_outbox_deliveries_total", channel="whatsapp", outcome="sent")
        Worker(db, jobs.instrument(senders_for(settings)), 50).drain()
        heartbeat.beat(db, "test-host:1", force=True)
        after = client.get("/metrics", headers=AUTH).text
        assert value(after, "fidelia_outbox_backlog", channel="whatsapp") == 0
        assert (
            value(after, "fidelia_outbox_deliveries_total", channel="whatsapp", outcome="sent")
            == sent + 1
        )
        assert 0 <= value(after, "fidelia_worker_heartbeat_age_seconds", worker="test-host:1") < 5
        assert 0 <= value(after, "fidelia_worker_heartbeat_newest_age_seconds") < 5
    db.dispose()


@pytest.mark.timeout(120)
def test_several_web_processes_add_up_in_one_scrape(tmp_path: Path, sqlite_template: Path):
    """``serve --workers 2``: each process counts in its own file; any scrape sums them."""
    import shutil

    target = tmp_path / "fidelia.db"
    shutil.copy(sqlite_template, target)
    env = environment(f"sqlite:///{target}", FIDELIA_METRICS_TOKEN=TOKEN)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = Fidelia(env, free_port(), tmp_path, workers=2)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            # The second process may still be importing when the first answers: wait
            # (bounded) until both have counted their start.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                text = client.get("/metrics", headers=AUTH).text
                if value(text, "fidelia_process_starts_total", kind="web") == 2:
                    break
                time.sleep(0.2)
            for _ in range(60):
                answer = client.get("/readyz")
                assert answer.status_code in (200, 503)
            # Every process answered some of them: sixty readiness probes, counted once each.
            text = client.get("/metrics", headers=AUTH).text
            assert value(text, "fidelia_http_requests_total", route="/readyz") == 60
            assert value(text, "fidelia_process_starts_total", kind="web") == 2
            pids = set(re.findall(r'pid="(\d+)"', text))
            assert len(pids) <= 2  # live gauges keep a pid label per process
    finally:
        server.stop()
