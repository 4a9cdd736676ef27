"""``fidelia doctor``: is this a production configuration? Each finding is an error (unsafe
or broken: exit 1), a warning (works, but probably not what you want) or an ok.

It reads the same environment as ``fidelia serve`` (FIDELIA_* and .env) and is told how
many processes will run it (``--web``, ``--workers``), since that is what makes Redis and
PostgreSQL necessary. It connects to the database (and replica, and Redis) to see that
they answer and that the schema is this code's.
"""

import os
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from fidelia.kit.settings import DEV_SECRET, DEV_VERIFY_TOKEN, Settings

Level = Literal["error", "warning", "ok"]
MIN_SECRET = 32


@dataclass(frozen=True)
class Finding:
    level: Level
    setting: str
    message: str

    def render(self) -> str:
        return f"{self.level}: {self.setting}: {self.message}"


def _settings() -> tuple[Settings, list[Finding]]:
    """The settings as configured; the production refusals of Settings become findings
    and the rest is read as development would, so every other check still runs."""
    findings: list[Finding] = []
    try:
        return Settings(), findings
    except ValidationError as exc:
        for error in exc.errors():
            message = str(error.get("msg", "")).removeprefix("Value error, ")
            findings.append(Finding("error", "FIDELIA_ENV=production", message))
    return Settings(env="development"), findings


def diagnose(web: int = 2, workers: int = 1, *, connect: bool = True) -> list[Finding]:
    settings, found = _settings()
    production = os.environ.get("FIDELIA_ENV", settings.env) == "production"

    def add(level: Level, setting: str, message: str) -> None:
        found.append(Finding(level, setting, message))

    if not production:
        add("error", "FIDELIA_ENV", "not 'production': development defaults are allowed")
    for name, value, dev in (
        ("FIDELIA_SECRET_KEY", settings.secret_key, DEV_SECRET),
        ("FIDELIA_WHATSAPP_APP_SECRET", settings.whatsapp_app_secret, DEV_SECRET),
        ("FIDELIA_WHATSAPP_VERIFY_TOKEN", settings.whatsapp_verify_token, DEV_VERIFY_TOKEN),
        ("FIDELIA_WHATSAPP_TOKEN", settings.whatsapp_token, "dev-token"),
    ):
        if value == dev:
            add("error", name, "still the development default")
        elif name == "FIDELIA_SECRET_KEY" and len(value) < MIN_SECRET:
            add("error", name, f"shorter than {MIN_SECRET} characters")
        else:
            add("ok", name, "set")
    if settings.simulator:
        add("error", "FIDELIA_SIMULATOR", "the WhatsApp simulator is on (set it to 0)")
    if not settings.whatsapp_api_base:
        add("error", "FIDELIA_WHATSAPP_API_BASE", "empty: messages go to the simulator")
    if not settings.sms_gateway_url and not settings.smtp_url:
        add("error", "FIDELIA_SMS_GATEWAY_URL", "no SMS gateway and no SMTP: codes cannot leave")
    else:
        for name, value in (
            ("FIDELIA_SMS_GATEWAY_URL", settings.sms_gateway_url),
            ("FIDELIA_SMTP_URL", settings.smtp_url),
        ):
            if value:
                add("ok", name, "set")
            else:
                add("warning", name, "empty: this channel's codes are only logged (scrubbed)")
    public = urlsplit(settings.public_url)
    if public.scheme != "https":
        add("error", "FIDELIA_PUBLIC_URL", f"{settings.public_url} is not an HTTPS URL")
    elif public.hostname in ("127.0.0.1", "localhost"):
        add("error", "FIDELIA_PUBLIC_URL", "points at this machine, not a public name")
    else:
        add("ok", "FIDELIA_PUBLIC_URL", settings.public_url)
    if not settings.trusted_proxies:
        add(
            "warning",
            "FIDELIA_TRUSTED_PROXIES",
            "empty: behind nginx every client has the proxy's address (limits count together)",
        )
    processes = web + workers
    if settings.is_sqlite:
        if web > 1 or workers > 1:
            add(
                "error",
                "FIDELIA_DATABASE_URL",
                "SQLite with several processes: use PostgreSQL (one writer at a time)",
            )
        else:
            add("warning", "FIDELIA_DATABASE_URL", "SQLite: fine for one machine and one process")
    if web > 1 and not settings.redis_url:
        add(
            "error",
            "FIDELIA_REDIS_URL",
            f"{web} web processes without Redis: each counts its own rate limits",
        )
    elif settings.redis_url:
        add("ok", "FIDELIA_REDIS_URL", "set")
    if not settings.rate_limits_enabled:
        add("error", "FIDELIA_RATE_LIMITS_ENABLED", "rate limits are off")
    if not settings.metrics_token:
        add("warning", "FIDELIA_METRICS_TOKEN", "empty: /metrics is off (nothing to scrape)")
    elif len(settings.metrics_token) < 16:
        add("error", "FIDELIA_METRICS_TOKEN", "shorter than 16 characters")
    if settings.bling_client_id and not settings.encryption_keys:
        add(
            "error",
            "FIDELIA_ENCRYPTION_KEYS",
            "Bling is on and its tokens would be keyed by the secret key",
        )
    if production and settings.log_format == "console":
        add("warning", "FIDELIA_LOG_FORMAT", "readable lines in production (JSON is the default)")
    if settings.embedded_worker and processes > 2:
        add("warning", "FIDELIA_EMBEDDED_WORKER", "a worker in every web process")
    if connect:
        found.extend(_connections(settings, web, workers))
    return found


def _connections(settings: Settings, web: int, workers: int) -> list[Finding]:
    from fidelia.kit.db import make_engine
    from fidelia.kit.migrate import HEAD

    found = []
    targets = [("FIDELIA_DATABASE_URL", settings.database_url)]
    if settings.database_replica_url:
        targets.append(("FIDELIA_DATABASE_REPLICA_URL", settings.database_replica_url))
    for name, url in targets:
        engine = make_engine(url, pool_size=1)
        try:
            with engine.connect() as conn:
                version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
                allowed = _allowed_connections(conn) if name == "FIDELIA_DATABASE_URL" else None
            if version != HEAD:
                found.append(
                    Finding("error", name, f"schema at {version}, this code needs {HEAD}: migrate")
                )
            else:
                found.append(Finding("ok", name, "reachable, schema up to date"))
            if allowed is not None:
                found.append(_connection_budget(settings.database_pool_size, web, workers, allowed))
        except Exception as exc:
            found.append(Finding("error", name, f"cannot query it: {type(exc).__name__}"))
        finally:
            engine.dispose()
    if settings.redis_url:
        import redis

        try:
            redis.Redis.from_url(settings.redis_url, socket_timeout=3).ping()
            found.append(Finding("ok", "FIDELIA_REDIS_URL", "answers"))
        except Exception as exc:
            found.append(Finding("error", "FIDELIA_REDIS_URL", f"no answer: {type(exc).__name__}"))
    return found


def _allowed_connections(conn: Connection) -> int | None:
    """The connections PostgreSQL lets ordinary roles open (``max_connections`` less the
    superusers' reserve); None on SQLite, or behind a pooler that does not say."""
    if conn.dialect.name != "postgresql":
        return None
    try:
        limit = int(conn.execute(text("SHOW max_connections")).scalar_one())
        reserved = int(conn.execute(text("SHOW superuser_reserved_connections")).scalar_one())
    except DBAPIError:  # PgBouncer and the like answer SHOW for their own settings only
        return None
    return limit - reserved


def _connection_budget(pool_size: int, web: int, workers: int, allowed: int) -> Finding:
    from fidelia.kit.db import most_connections

    each_web, each_worker = (
        most_connections(pool_size, web=True),
        most_connections(pool_size, web=False),
    )
    most = web * each_web + workers * each_worker
    counted = (
        f"{web} web process(es) x {each_web} and {workers} worker(s) x {each_worker} "
        f"(pool size {pool_size}): up to {most} connections to the primary"
    )
    if most > allowed:
        return Finding(
            "warning",
            "FIDELIA_DATABASE_POOL_SIZE",
            f"{counted}, PostgreSQL allows {allowed}: lower the pool size, raise "
            "max_connections or put a pooler (PgBouncer) in front",
        )
    return Finding("ok", "FIDELIA_DATABASE_POOL_SIZE", f"{counted} of the {allowed} allowed")
