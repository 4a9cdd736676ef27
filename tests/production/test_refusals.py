"""``FIDELIA_ENV=production`` refuses to start ``fidelia serve`` and ``fidelia worker`` on
development secrets, the WhatsApp simulator, or no way to send codes (SMS or SMTP): each
process exits 1 with one clear line before it listens or delivers anything. The same
environment with that one thing fixed starts (so each refusal is about that thing)."""

import os
import re
import secrets
import subprocess
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from fidelia.kit.settings import DEV_SECRET, DEV_VERIFY_TOKEN, DEV_WHATSAPP_TOKEN, Settings
from tests.production.conftest import Processes
from tests.reliability.harness import FIDELIA
from tests.support.postgres import free_port

pytestmark = pytest.mark.timeout(180)


def production_env(tmp_path: Path) -> dict[str, str]:
    """A complete production configuration (nothing of it reached: no request is made)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIDELIA_")}
    env.update(
        FIDELIA_ENV="production",
        FIDELIA_DATABASE_URL=f"sqlite:///{tmp_path}/fidelia.db",
        FIDELIA_PUBLIC_URL="https://loyalty.example.com",
        FIDELIA_SECRET_KEY=secrets.token_urlsafe(40),
        FIDELIA_WHATSAPP_API_BASE="https://graph.facebook.com",
        FIDELIA_WHATSAPP_TOKEN=secrets.token_urlsafe(20),
        FIDELIA_WHATSAPP_APP_SECRET=secrets.token_urlsafe(20),
        FIDELIA_WHATSAPP_VERIFY_TOKEN=secrets.token_urlsafe(20),
        FIDELIA_SIMULATOR="0",
        FIDELIA_SMTP_URL="smtps://fidelia:pw@smtp.example.com:465",
    )
    return env


REFUSALS = {
    "secret key unset": ({"FIDELIA_SECRET_KEY": None}, "set FIDELIA_SECRET_KEY"),
    "secret key the dev one": ({"FIDELIA_SECRET_KEY": DEV_SECRET}, "set FIDELIA_SECRET_KEY"),
    "app secret unset": ({"FIDELIA_WHATSAPP_APP_SECRET": None}, "FIDELIA_WHATSAPP_APP_SECRET"),
    "verify token the dev one": (
        {"FIDELIA_WHATSAPP_VERIFY_TOKEN": DEV_VERIFY_TOKEN},
        "_VERIFY_TOKEN",
    ),
    "whatsapp token the dev one": (
        {"FIDELIA_WHATSAPP_TOKEN": DEV_WHATSAPP_TOKEN},
        "set FIDELIA_WHATSAPP_TOKEN",
    ),
    "simulator by default": ({"FIDELIA_SIMULATOR": None}, "FIDELIA_SIMULATOR=0"),
    "simulator on": ({"FIDELIA_SIMULATOR": "1"}, "FIDELIA_SIMULATOR=0"),
    "messages to the simulator": (
        {"FIDELIA_WHATSAPP_API_BASE": None},
        "set FIDELIA_WHATSAPP_API_BASE",
    ),
    "passwords hashed for a test suite": (
        {"FIDELIA_PASSWORD_HASHING": "fast"},
        "FIDELIA_PASSWORD_HASHING=fast is for test suites",
    ),
    "no sms and no smtp": (
        {"FIDELIA_SMTP_URL": None},
        "set FIDELIA_SMS_GATEWAY_URL and/or FIDELIA_SMTP_URL",
    ),
}


def changed(env: dict[str, str], changes: dict[str, str | None]) -> dict[str, str]:
    env = dict(env)
    for key, value in changes.items():
        if value is None:
            env.pop(key)
        else:
            env[key] = value
    return env


@pytest.mark.parametrize("case", list(REFUSALS))
def test_production_settings_refuse(case, tmp_path):
    """Every refusal, as the settings every process reads make it."""
    changes, reason = REFUSALS[case]
    env = changed(production_env(tmp_path), changes)
    values = {
        k.removeprefix("FIDELIA_").lower(): v for k, v in env.items() if k.startswith("FIDELIA_")
    }
    with pytest.raises(ValidationError, match=re.escape(reason)):
        Settings(_env_file=None, **values)  # type: ignore[call-arg]
    Settings(_env_file=None, **(values | {"env": "development"}))  # type: ignore[call-arg]


# The three, as an operator meets them: the processes refuse to start.
@pytest.mark.parametrize(
    "case", ["secret key the dev one", "simulator by default", "no sms and no smtp"]
)
def test_production_processes_refuse_to_start(case, tmp_path):
    changes, reason = REFUSALS[case]
    env = changed(production_env(tmp_path), changes)
    port = free_port()
    for args in (["serve", "--port", str(port), "--workers", "2"], ["worker"]):
        result = subprocess.run(
            [str(FIDELIA), *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert result.stderr.startswith("error: refusing to start: "), result.stderr
        assert reason in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert not (tmp_path / "fidelia.db").exists()  # refused before touching the database
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_the_complete_production_environment_starts(tmp_path):
    """The control: the same environment as above with nothing missing serves (without the
    simulator's routes) and runs a worker."""
    env = production_env(tmp_path)
    running = Processes(tmp_path)
    try:
        url = running.serve(env, 1)
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{url}/simulator").status_code == 404
        worker = running.spawn(env, "worker")
        with pytest.raises(subprocess.TimeoutExpired):
            worker.wait(timeout=5)  # still running: it was not refused
    finally:
        running.stop()
