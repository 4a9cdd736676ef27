"""Process-wide settings, read from the environment (prefix ``FIDELIA_``).

Tenant settings (currency, PIN lifetime, ...) live in the database; these are the
operator's knobs: where the database is, how to reach WhatsApp, rate-limit storage.
"""

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-app-secret"


def default_data_dir() -> Path:
    """Where the embedded database lives when FIDELIA_DATABASE_URL is not set: one place
    per user ($XDG_DATA_HOME/fidelia, else ~/.local/share/fidelia), so the server and the CLI
    find the same database wherever they are started from."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "fidelia"


DEV_VERIFY_TOKEN = "dev-verify-token"
DEV_WHATSAPP_TOKEN = "dev-token"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FIDELIA_", env_file=".env", extra="ignore")

    env: Literal["development", "production"] = "development"
    # Empty: SQLite at {data_dir}/fidelia.db (the embedded default).
    data_dir: Path = default_data_dir()
    database_url: str = ""
    database_pool_size: int = 10
    # A streaming replica for reads that may lag (public lookups, panel lists, dashboards);
    # everything that decides money reads the primary. Empty: every read on the primary.
    database_replica_url: str = ""
    public_url: str = "http://127.0.0.1:8000"

    # WhatsApp Cloud API. When api_base is empty the built-in simulator stands in for Meta.
    whatsapp_api_base: str = ""
    whatsapp_api_version: str = "21.0"
    whatsapp_phone_number_id: str = "100000000000001"
    whatsapp_token: str = DEV_WHATSAPP_TOKEN
    whatsapp_app_secret: str = DEV_SECRET
    whatsapp_verify_token: str = DEV_VERIFY_TOKEN
    bot_number: str = "50600000000"
    simulator: bool = True

    # Keys digests of short codes (identity challenges). Set a long random value in production.
    secret_key: str = DEV_SECRET
    # How dear a new password digest is (kit/passwords.py): "argon2id" (argon2-cffi's
    # defaults) or "fast" (test suites only; refused in production).
    password_hashing: Literal["argon2id", "fast"] = "argon2id"

    # Identity challenge codes. SMS goes to an HTTP gateway (POST JSON {"to", "text"} with a
    # Bearer token); e-mail over SMTP: smtp://user:pass@host:587 (STARTTLS) or smtps://...:465.
    # Unset in development: codes are written to the log instead (never in production).
    sms_gateway_url: str = ""
    sms_gateway_token: str = ""
    smtp_url: str = ""
    smtp_from: str = "Fidelia <no-reply@fidelia.local>"

    # Rate limits ("30/minute" per IP per endpoint on the PIN door). Counters in memory by
    # default, in Redis when redis_url is set (shared by every process).
    redis_url: str = ""
    rate_limit_pin_door: str = "30/minute"
    rate_limit_pin_failures: str = "5/hour"  # failed PIN activations per sender
    # Failed activations per bot number before it is guarded (pins/guard.py): with the
    # default, the expected number of PINs guessed stays under 0.01 a day.
    pin_namespace_failures: str = "60/hour"
    rate_limit_pdv: str = "10/second;300/minute;10000/hour"
    rate_limit_retail: str = "10/second;300/minute;10000/hour"  # seed 002, per API key
    # REST v2 (seed 004): per API credential behind the Bearer token; POST /v2/auth/token
    # per credential once it is verified (generous: clients may ask for a token per call),
    # and its FAILED attempts per client IP (an IP past it is refused before any check).
    rate_limit_rest_v2: str = "20/second;600/minute;20000/hour"
    rate_limit_rest_v2_token: str = "20/second;600/minute;20000/hour"
    rate_limits_enabled: bool = True
    # 401s answered to one client IP before its requests are refused with 429 (any door).
    rate_limit_auth_failures: str = "30/minute"
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated IPs or
    # CIDRs, e.g. "127.0.0.1" behind a local nginx). Empty: the peer's address is the
    # client's, and forwarded headers are ignored (anyone could forge them).
    trusted_proxies: str = ""

    # Largest request body accepted, in bytes (413 beyond, before it is read). 1 MiB holds a
    # retail sale of thousands of items and Meta's webhook batches many times over, while a
    # flood of oversized bodies costs the server at most this much memory per request.
    max_body_bytes: int = 1024 * 1024

    # Web panel (/panel). Self sign-up creates a merchant and its owner; 0 turns it off
    # (owners are then made with `fidelia user create`). Failed sign-ins are counted in the
    # database, per e-mail typed and per client address, so the limits hold for every process.
    panel_signup: bool = True
    panel_login_failures_account: str = "5/15minutes"
    panel_login_failures_ip: str = "30/15minutes"
    panel_session_hours: int = 12
    panel_invitation_hours: int = 72

    # Outbox worker. `fidelia serve` runs one inside the web process (embedded_worker).
    embedded_worker: bool = False
    # Set by `fidelia serve`: each web process freezes what its startup built, once it
    # serves (fidelia/ops/gcfreeze.py); off for apps built otherwise (the tests build hundreds).
    gc_freeze: bool = False
    worker_poll_seconds: float = 0.5
    worker_batch_size: int = 20
    outbox_max_attempts: int = 12
    # How long a worker holds a row it is delivering; a worker that dies (kill -9) leaves its
    # rows to be taken back by another once the lease runs out.
    outbox_lease_seconds: float = 60
    tenant_cache_seconds: float = 2.0

    # Operations (docs/operations.md). Logs: "json" (one object a line) or "console"
    # (readable); empty: JSON in production, readable otherwise.
    log_format: str = ""
    log_level: str = "INFO"
    # GET /metrics answers only with "Authorization: Bearer <this>"; empty: no /metrics.
    metrics_token: str = ""
    # /readyz fails when no outbox worker went round for this long.
    worker_stale_seconds: float = 60

    # Bling ERP connector (seed 003): the Bling app's credentials (the client secret also
    # signs Bling's webhooks), where its API and authorize page are, and how often each
    # connection is reconciled. The redirect URI to register at Bling is
    # {public_url}/connectors/bling/callback.
    bling_client_id: str = ""
    bling_client_secret: str = ""
    bling_api_base: str = "https://api.bling.com.br/Api/v3"
    bling_authorize_url: str = "https://www.bling.com.br/Api/v3/oauth/authorize"
    bling_requests_per_second: float = 3.0
    bling_reconcile_minutes: float = 10
    bling_import_days: int = 90  # how far back the import started on connect reaches
    # Keys that encrypt secrets at rest (Bling tokens): comma-separated Fernet keys, the
    # first encrypts, every one decrypts (rotation: put a new key first, run
    # `fidelia bling rotate-keys`, then drop the old one). Empty in development: one key
    # derived from secret_key.
    encryption_keys: str = ""

    @field_validator("bot_number")
    @classmethod
    def _digits_only(cls, value: str) -> str:
        """'+506 0000-0000' -> '50600000000': the form wa.me links and webhooks use."""
        digits = re.sub(r"\D", "", value)
        if not 8 <= len(digits) <= 15:
            raise ValueError("FIDELIA_BOT_NUMBER is a phone number in international form")
        return digits

    @model_validator(mode="after")
    def _embedded_database(self) -> "Settings":
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir.expanduser().resolve()}/fidelia.db"
        return self

    @model_validator(mode="after")
    def _refuse_dev_secrets_in_production(self) -> "Settings":
        if self.env == "production":
            if (
                self.whatsapp_app_secret == DEV_SECRET
                or self.whatsapp_verify_token == DEV_VERIFY_TOKEN
            ):
                raise ValueError("set FIDELIA_WHATSAPP_APP_SECRET and _VERIFY_TOKEN in production")
            if self.whatsapp_token == DEV_WHATSAPP_TOKEN:
                raise ValueError("set FIDELIA_WHATSAPP_TOKEN in production")
            if self.secret_key == DEV_SECRET:
                raise ValueError("set FIDELIA_SECRET_KEY in production")
            if not (self.sms_gateway_url or self.smtp_url):
                raise ValueError(
                    "set FIDELIA_SMS_GATEWAY_URL and/or FIDELIA_SMTP_URL in production"
                )
            if self.bling_client_id and not self.encryption_keys:
                raise ValueError("set FIDELIA_ENCRYPTION_KEYS in production (Bling tokens)")
            if self.password_hashing == "fast":
                raise ValueError("FIDELIA_PASSWORD_HASHING=fast is for test suites, not production")
            if self.simulator:
                raise ValueError(
                    "the WhatsApp simulator is for development; set FIDELIA_SIMULATOR=0"
                )
            if not self.whatsapp_api_base:
                raise ValueError(
                    "set FIDELIA_WHATSAPP_API_BASE in production (empty: the simulator's)"
                )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def graph_base(self) -> str:
        """Base URL of the Graph API: Meta's, a test fake, or the built-in simulator."""
        if self.whatsapp_api_base:
            return self.whatsapp_api_base.rstrip("/")
        return self.public_url.rstrip("/") + "/simulator/graph"


@lru_cache
def get_settings() -> Settings:
    return Settings()
