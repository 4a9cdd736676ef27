"""Outages of what the web processes lean on, answered fast and cleanly: a Redis that stops
answering costs a request at most half a second (the request is allowed) and one log line
per ten seconds; a database that does not answer gets an answer in the door's format, not
a dropped connection (which nginx takes for a dead process)."""

import logging
import os
import signal
import time

from fastapi.testclient import TestClient

from fidelia.app import create_app
from fidelia.kit.ratelimit import RateLimiter
from fidelia.kit.settings import Settings
from tests.fakes.redis import RedisServer
from tests.support.helpers import signed_headers, webhook_body
from tests.support.postgres import free_port


def test_a_paused_redis_costs_half_a_second_and_one_log_line(caplog):
    redis = RedisServer()
    limiter = RateLimiter(redis.url)
    try:
        limiter.hit("5/second", "outage")
        os.kill(redis.process.pid, signal.SIGSTOP)  # answers nothing, closes nothing
        try:
            with caplog.at_level(logging.ERROR, logger="fidelia.ratelimit"):
                started = time.monotonic()
                for _ in range(3):
                    limiter.hit("5/second", "outage")  # allowed: no RateLimited
                took = time.monotonic() - started
        finally:
            os.kill(redis.process.pid, signal.SIGCONT)
        assert took < 3 * 1.0, took
        said = [r for r in caplog.records if r.name == "fidelia.ratelimit"]
        assert len(said) == 1 and "requests allowed" in said[0].getMessage()
        assert said[0].exc_info is None  # no traceback a request
        for _ in range(5):  # back: counting again, and refusing past the limit
            limiter.hit("5/second", "after")
        try:
            limiter.hit("5/second", "after")
            raise AssertionError("the sixth request within a second was allowed")
        except Exception as exc:
            assert type(exc).__name__ == "RateLimited"
    finally:
        redis.stop()


def test_a_database_that_does_not_answer_gets_a_clean_503():
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/nothing",
        whatsapp_app_secret="test-app-secret",
        bot_number="50600000000",
        public_url="http://testserver",
    )
    app = create_app(settings, run_worker=False)
    body = webhook_body(settings, "+50688881234", "Quiero activar mi PIN: 1234")
    # raise_server_exceptions (the default): an error that escaped to the server fails here.
    with TestClient(app, raise_server_exceptions=True) as client:
        answer = client.post(
            "/webhooks/whatsapp", content=body, headers=signed_headers(settings, body)
        )
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "UNAVAILABLE"
        assert answer.headers["retry-after"] == "5"
        # A door answers in its own format (its guide knows only 500 for this).
        pin = client.post(
            "/api/v1/integraciones/pin/generar", headers={"X-API-Key": "fk_live_anything"}
        )
        assert pin.status_code == 500 and pin.json()["codigo"] == "INTERNAL_ERROR", pin.text
    app.state.fidelia.db.dispose()
