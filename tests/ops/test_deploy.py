"""deploy/: the environment file lists every setting, ``fidelia doctor`` passes it once
filled in and names every problem of a development configuration, and the nginx site
terminates TLS in front of Fidelia with the proxy headers it expects."""

import re
import secrets
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from fidelia.kit.migrate import upgrade
from fidelia.kit.settings import Settings
from tests.fakes.redis import RedisServer
from tests.reliability.harness import FIDELIA, Fidelia, environment
from tests.support.nginx import Nginx
from tests.support.postgres import PostgresServer, free_port

ENV_FILE = Path(__file__).resolve().parents[2] / "deploy" / "fidelia.env"


def env_file_values() -> dict[str, str]:
    values = {}
    for line in ENV_FILE.read_text().splitlines():
        match = re.match(r"^([A-Z_]+)=(.*)$", line)
        if match:
            values[match.group(1)] = match.group(2)
    return values


def doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FIDELIA), "doctor", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_environment_file_lists_every_setting():
    text = ENV_FILE.read_text()
    missing = [
        f"FIDELIA_{name.upper()}"
        for name in Settings.model_fields
        if not re.search(rf"^#? ?FIDELIA_{name.upper()}=", text, re.M)
    ]
    assert missing == []


def test_doctor_names_what_a_development_configuration_lacks(tmp_path):
    env = environment(f"sqlite:///{tmp_path}/fidelia.db")
    result = doctor(env, "--web", "2", "--workers", "1")
    assert result.returncode == 1
    out = result.stdout
    for expected in (
        "error: FIDELIA_ENV: not 'production'",
        "error: FIDELIA_SECRET_KEY: still the development default",
        "error: FIDELIA_WHATSAPP_VERIFY_TOKEN: still the development default",
        "error: FIDELIA_SIMULATOR: the WhatsApp simulator is on",
        "error: FIDELIA_SMS_GATEWAY_URL: no SMS gateway and no SMTP",
        "error: FIDELIA_PUBLIC_URL: http://127.0.0.1:8000 is not an HTTPS URL",
        "error: FIDELIA_DATABASE_URL: SQLite with several processes",
        "error: FIDELIA_REDIS_URL: 2 web processes without Redis",
        "error: FIDELIA_RATE_LIMITS_ENABLED: rate limits are off",
        "error: FIDELIA_DATABASE_URL: cannot query it",  # never migrated
        "warning: FIDELIA_METRICS_TOKEN: empty",
    ):
        assert expected in out, out
    # Production with development secrets: the refusals of Settings are reported too.
    env.update(FIDELIA_ENV="production", FIDELIA_SIMULATOR="0")
    result = doctor(env)
    assert "error: FIDELIA_ENV=production: set FIDELIA_WHATSAPP_APP_SECRET" in result.stdout


def test_doctor_passes_the_deploy_file_once_filled_in(pg: PostgresServer):
    name = f"d_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    upgrade(pg.url(name))
    redis = RedisServer()
    try:
        values = env_file_values()
        values.pop("PROMETHEUS_MULTIPROC_DIR")
        for key, value in values.items():
            if "CHANGE-ME" in value and "://" not in value:
                values[key] = secrets.token_urlsafe(40)
        from cryptography.fernet import Fernet

        values["FIDELIA_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
        values["FIDELIA_DATABASE_URL"] = pg.url(name)
        values["FIDELIA_DATABASE_REPLICA_URL"] = pg.url(name)
        values["FIDELIA_REDIS_URL"] = redis.url
        values["FIDELIA_SMTP_URL"] = "smtps://fidelia:pw@smtp.example.com:465"
        env = environment(pg.url(name))
        env = {k: v for k, v in env.items() if not k.startswith("FIDELIA_")} | values
        result = doctor(env, "--web", "4", "--workers", "2")
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip().endswith("ready for production")
        assert "error" not in result.stdout
        # What the processes' pools may open, against what the server allows (400 less
        # the superusers' reserve): 4 web x 5 pools x 10 and 2 workers x 3 pools x 10.
        assert re.search(
            r"^ok: FIDELIA_DATABASE_POOL_SIZE: .*up to 260 connections to the primary of the "
            r"\d+ allowed$",
            result.stdout,
            re.M,
        ), result.stdout
        wide = doctor(env | {"FIDELIA_DATABASE_POOL_SIZE": "50"}, "--web", "4", "--workers", "2")
        assert wide.returncode == 0, wide.stdout  # a warning: it works until the burst comes
        assert re.search(
            r"^warning: FIDELIA_DATABASE_POOL_SIZE: .*up to 1300 connections to the primary, "
            r"PostgreSQL allows \d+: lower the pool size",
            wide.stdout,
            re.M,
        ), wide.stdout
        # The same file with Redis gone: the doctor says so.
        redis.stop()
        result = doctor(env, "--web", "4", "--workers", "2")
        assert result.returncode == 1
        assert "error: FIDELIA_REDIS_URL: no answer" in result.stdout
    finally:
        if redis.process.poll() is None:
            redis.stop()
        with psycopg.connect(pg.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.timeout(120)
def test_the_nginx_site_terminates_tls_in_front_of_fidelia(tmp_path, sqlite_template):
    target = tmp_path / "fidelia.db"
    shutil.copy(sqlite_template, target)
    env = environment(
        f"sqlite:///{target}", FIDELIA_TRUSTED_PROXIES="127.0.0.1", FIDELIA_METRICS_TOKEN="m" * 20
    )
    web = Fidelia(env, free_port(), tmp_path)
    web.start()
    # The second upstream is down: nginx skips it (and retries a GET it failed on).
    front = Nginx([web.port, free_port()]).start()
    try:
        with httpx.Client(base_url=front.url, verify=False, timeout=10) as client:
            for _ in range(4):
                assert client.get("/healthz").json() == {"status": "ok"}
            given = client.get("/healthz", headers={"X-Request-ID": "from-the-client-1"})
            assert given.headers["x-request-id"] == "from-the-client-1"
            missing = client.get("/api/v1/nothing-here")
            made = missing.headers["x-request-id"]
            assert missing.status_code == 404
            assert re.fullmatch(r"[0-9a-f]{32}", made)  # nginx's $request_id
            scraped = client.get("/metrics", headers={"Authorization": "Bearer " + "m" * 20})
            assert scraped.status_code == 200 and "fidelia_http_requests_total" in scraped.text
            assert client.get("/metrics").status_code == 401
        plain = httpx.get(f"http://127.0.0.1:{front.http_port}/v2/x", follow_redirects=False)
        assert plain.status_code == 301
        assert plain.headers["location"].startswith("https://")
        # Fidelia's log line of the request carries nginx's request id; no access lines.
        log = (tmp_path / "serve-1.log").read_text()
        assert re.search(rf"request .*request_id={made} route=unmatched status=404", log), log
        assert "uvicorn.access" not in log
    finally:
        front.stop()
        web.stop()
