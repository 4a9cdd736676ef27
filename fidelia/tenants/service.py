"""Merchants, their settings, their credentials, and merchant groups."""

import base64
import hashlib
import hmac
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.numbers import list_currencies
from sqlalchemy import func, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from fidelia.kit.clock import now
from fidelia.kit.db import Database
from fidelia.kit.errors import Conflict, InvalidInput, NotFound
from fidelia.kit.money import exponent, from_minor, to_minor
from fidelia.kit.security import digest, new_secret
from fidelia.models import ApiKey, Customer, Program, Tenant
from fidelia.ops.context import binds_merchant
from fidelia.tenants.setting_help import SETTING_HELP

log = logging.getLogger("fidelia.tenants")
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?$")
INT_SETTINGS = {
    "birthday_gift_days": (1, 366),
    "pin_lifetime_minutes": (1, 24 * 60),
    "points_per_pin": (1, 1_000_000),
    "verification_window_minutes": (1, 7 * 24 * 60),
    "points_validity_days": (0, 3650),
    "expiry_reminder_days": (0, 365),
    "come_back_days": (1, 3650),
    "message_cap": (0, 100),
    "message_cap_days": (1, 365),
}
MESSAGE_SWITCHES = (
    "message_benefit_earned",
    "message_voucher_issued",
    "message_points_expiring",
    "message_come_back",
)
BOOL_SETTINGS = ("should_validate_customer", "sandbox", *MESSAGE_SWITCHES)
SETTINGS = tuple(SETTING_HELP)
assert set(INT_SETTINGS) | set(BOOL_SETTINGS) <= set(SETTINGS)
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class IssuedKey:
    token: str
    api_key: str
    tenant_id: int
    id: int = 0


def validate_currency(code: str) -> str:
    code = code.strip().upper()
    if code not in list_currencies():
        raise InvalidInput(f"Unknown ISO 4217 currency {code!r}")
    return code


def validate_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"Unknown time zone {name!r}") from exc
    return name


def validate_locale(code: str) -> str:
    try:
        Locale.parse(code.replace("-", "_"))
    except (UnknownLocaleError, ValueError) as exc:
        raise InvalidInput(f"Unknown locale {code!r}") from exc
    return code


def create_tenant(
    session: Session,
    *,
    slug: str,
    name: str,
    currency: str = "USD",
    timezone: str = "UTC",
    locale: str = "es",
    min_purchase: str = "0",
) -> Tenant:
    if not SLUG.match(slug):
        raise InvalidInput("A slug is lower-case letters, digits and dashes.")
    if not name.strip():
        raise InvalidInput("A name is required.")
    if session.scalar(select(Tenant.id).where(Tenant.slug == slug)) is not None:
        raise Conflict(f"A merchant with slug {slug!r} already exists.")
    currency = validate_currency(currency)
    program = Program(name=name.strip(), kind="individual")
    session.add(program)
    session.flush()
    tenant = Tenant(
        program_id=program.id,
        slug=slug,
        name=name.strip(),
        currency=currency,
        timezone=validate_timezone(timezone),
        locale=validate_locale(locale),
        min_purchase=to_minor(min_purchase, currency),
    )
    session.add(tenant)
    session.flush()
    return tenant


def get_by_slug(session: Session, slug: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        raise NotFound(f"No merchant {slug!r}.", code="TENANT_NOT_FOUND")
    return tenant


def get_by_id(session: Session, tenant_id: int) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"No merchant {tenant_id}.", code="TENANT_NOT_FOUND")
    return tenant


def set_setting(session: Session, slug: str, key: str, value: str) -> Tenant:
    """Change one setting; running servers see it within ``tenant_cache_seconds``."""
    tenant = get_by_slug(session, slug)
    if key == "currency":
        _change_currency(tenant, validate_currency(value))
    elif key == "timezone":
        tenant.timezone = validate_timezone(value)
    elif key == "locale":
        tenant.locale = validate_locale(value)
    elif key == "min_purchase":
        tenant.min_purchase = to_minor(value, tenant.currency)
    elif key == "bot_number":
        cleared = value.strip().lower() in ("", "none", "default")
        digits = re.sub(r"[\s+()-]", "", value)
        if not cleared and not re.fullmatch(r"\d{8,15}", digits):
            raise InvalidInput("bot_number is a phone number in international form, or 'none'.")
        tenant.bot_number = None if cleared else digits
    elif key == "earn_points_per_unit":
        tenant.earn_milli_points_per_unit = _scaled(key, value, 3, 1_000_000)
    elif key == "point_value":
        tenant.point_value_milli_minor = _scaled(key, value, 3 + exponent(tenant.currency), 10**9)
    elif key == "cashback_percent":
        tenant.cashback_basis_points = _scaled(key, value, 2, 10_000)
    elif key == "min_order_value":
        tenant.min_order_value = to_minor(value, tenant.currency)
    elif key == "birthday_gift_value":
        tenant.birthday_gift_value = to_minor(value, tenant.currency)
    elif key == "retail_default_payment_type":
        kind = value.strip().upper()
        if kind not in ("POINTS", "CREDIT"):
            raise InvalidInput("retail_default_payment_type is POINTS or CREDIT.")
        tenant.retail_default_payment_type = kind
    elif key in BOOL_SETTINGS:
        flag = value.strip().lower()
        if flag not in TRUE + FALSE:
            raise InvalidInput(f"{key} takes true or false.")
        setattr(tenant, key, flag in TRUE)
    elif key == "cors_origins":
        origins = [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
        for origin in origins:
            if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d+)?", origin):
                raise InvalidInput(f"Not an origin (scheme://host[:port]): {origin!r}")
        tenant.cors_origins = ",".join(origins)
    elif key in INT_SETTINGS:
        low, high = INT_SETTINGS[key]
        try:
            number = int(value)
        except ValueError as exc:
            raise InvalidInput(f"{key} takes a whole number.") from exc
        if not low <= number <= high:
            raise InvalidInput(f"{key} must be between {low} and {high}.")
        setattr(tenant, key, number)
    else:
        raise InvalidInput(f"Unknown setting {key!r}; known: {', '.join(SETTINGS)}.")
    session.flush()
    return tenant


def _change_currency(tenant: Tenant, currency: str) -> None:
    """Amounts keep their decimal value (12.50 stays 12.50) in the new currency's minor
    units; an amount the new currency cannot express (cents in JPY) is refused."""
    old = tenant.currency
    amounts = {
        name: from_minor(getattr(tenant, name), old) for name in ("min_purchase", "min_order_value")
    }
    point_value = Decimal(tenant.point_value_milli_minor).scaleb(-3 - exponent(old))
    for name, amount in amounts.items():
        try:
            setattr(tenant, name, to_minor(amount, currency))
        except InvalidInput as exc:
            raise InvalidInput(
                f"{name} {amount} cannot be expressed in {currency}; change it first."
            ) from exc
    tenant.point_value_milli_minor = int(point_value.scaleb(3 + exponent(currency)))
    tenant.currency = currency


def _scaled(key: str, value: str, places: int, maximum: int) -> int:
    """'0.10' with places=5 -> 10000: a decimal setting kept as an exact integer."""
    try:
        number = Decimal(value.strip())
    except InvalidOperation as exc:
        raise InvalidInput(f"{key} takes a number.") from exc
    scaled = number.scaleb(places)
    if not number.is_finite() or number < 0 or scaled != scaled.to_integral_value():
        raise InvalidInput(f"{key} takes a non-negative number with at most {places} decimals.")
    if scaled > maximum:
        raise InvalidInput(f"{key} is too large.")
    return int(scaled)


def money_text(minor: int, currency: str) -> str:
    """1500 in BRL -> '15.00': always the currency's decimals, never a float."""
    return f"{from_minor(minor, currency):.{exponent(currency)}f}"


def _plain(value: Decimal, places: int = 0) -> str:
    """A decimal without trailing zeros or exponent, with at least ``places`` decimals:
    '0.1' with places 2 -> '0.10'; 100 -> '100' (never '1E+2')."""
    text = f"{value.normalize():f}"
    decimals = len(text.partition(".")[2])
    return f"{value:.{max(decimals, places)}f}"


def settings_of(tenant: Tenant) -> dict[str, object]:
    minor = exponent(tenant.currency)
    return {
        "currency": tenant.currency,
        "timezone": tenant.timezone,
        "locale": tenant.locale,
        "min_purchase": money_text(tenant.min_purchase, tenant.currency),
        "bot_number": tenant.bot_number,
        **{key: getattr(tenant, key) for key in INT_SETTINGS},
        "earn_points_per_unit": _plain(Decimal(tenant.earn_milli_points_per_unit).scaleb(-3)),
        "point_value": _plain(Decimal(tenant.point_value_milli_minor).scaleb(-3 - minor), minor),
        "cashback_percent": _plain(Decimal(tenant.cashback_basis_points).scaleb(-2)),
        "min_order_value": money_text(tenant.min_order_value, tenant.currency),
        "birthday_gift_value": money_text(tenant.birthday_gift_value, tenant.currency),
        "retail_default_payment_type": tenant.retail_default_payment_type,
        **{key: getattr(tenant, key) for key in BOOL_SETTINGS},
        "cors_origins": tenant.cors_origins,
    }


# -- suspension ----------------------------------------------------------------------------


def require_active(tenant: Tenant) -> Tenant:
    """Public lookups and redemptions treat a suspended merchant as unknown (404)."""
    if tenant.suspended_at is not None:
        raise NotFound(f"No merchant {tenant.slug!r}.", code="TENANT_NOT_FOUND")
    return tenant


def suspend(session: Session, tenant_id: int) -> Tenant:
    """Every door refuses the merchant's keys and tokens (as revoked ones: the door's 401)
    within ``tenant_cache_seconds``; its panel turns read-only; open PINs cannot be
    activated; public lookup and redemption answer 404. Nothing is deleted."""
    tenant = get_by_id(session, tenant_id)
    if tenant.suspended_at is None:
        tenant.suspended_at = now()
        session.flush()
    return tenant


def reactivate(session: Session, tenant_id: int) -> Tenant:
    tenant = get_by_id(session, tenant_id)
    tenant.suspended_at = None
    session.flush()
    return tenant


# -- credentials ---------------------------------------------------------------------------


# Which value of a key goes in which field, per door, in each door's own words (its guide's
# field names): "token" is the public token, "api_key" the secret. The CLI prints it and the
# panel's API keys page shows it beside the secret, once.
CREDENTIAL_FIELDS: dict[str, dict[str, str]] = {
    "rest_v2": {"api_key": "token", "api_secret": "api_key"},
    "pos": {"basic_user": "token", "basic_password": "api_key"},
    "retail": {"x-api-key": "api_key"},
    "pin": {"X-API-Key": "api_key"},
}
NAME_SIZE = 80


def doors(token: str, api_key: str) -> dict[str, dict[str, str]]:
    """Which value goes in which field, per door (keys as in CREDENTIAL_FIELDS)."""
    values = {"token": token, "api_key": api_key}
    return {
        door: {field: values[which] for field, which in fields.items()}
        for door, fields in CREDENTIAL_FIELDS.items()
    }


def issue_api_key(session: Session, tenant: Tenant, name: str | None = None) -> IssuedKey:
    label = (name or "").strip()
    if len(label) > NAME_SIZE:
        raise InvalidInput(f"A key's name has at most {NAME_SIZE} characters.")
    secret = new_secret("fk_live")
    token = new_secret("ftk", 12)
    row = ApiKey(
        tenant_id=tenant.id,
        token=token,
        secret_digest=digest(secret),
        hint=secret[-4:],
        name=label or None,
    )
    session.add(row)
    session.flush()
    return IssuedKey(token=token, api_key=secret, tenant_id=tenant.id, id=row.id)


def revoke_api_key(session: Session, key_or_token: str) -> None:
    result = session.execute(
        update(ApiKey)
        .where(
            (ApiKey.secret_digest == digest(key_or_token)) | (ApiKey.token == key_or_token),
            ApiKey.revoked_at.is_(None),
        )
        .values(revoked_at=now())
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound("No active API key matches.", code="API_KEY_NOT_FOUND")


def api_key_of(session: Session, tenant_id: int, key_id: int) -> ApiKey:
    """One of the merchant's keys (another merchant's id is not found)."""
    key = session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id))
    if key is None:
        raise NotFound(f"No API key {key_id} at this merchant.", code="API_KEY_NOT_FOUND")
    return key


def revoke_api_key_of(session: Session, tenant_id: int, key_id: int) -> ApiKey:
    """Revoke one of the merchant's keys by id; doors refuse it within the key cache time."""
    key = api_key_of(session, tenant_id, key_id)
    if key.revoked_at is not None:
        raise Conflict("This key is already revoked.", code="API_KEY_REVOKED")
    key.revoked_at = now()
    session.flush()
    return key


def api_keys_of(session: Session, tenant: Tenant) -> list[ApiKey]:
    """The merchant's API credentials, revoked ones too, newest first (secrets are digests:
    only the public token and the key's last characters can be shown)."""
    query = select(ApiKey).where(ApiKey.tenant_id == tenant.id).order_by(ApiKey.id.desc())
    return list(session.scalars(query))


def derived_api_key(session: Session, tenant: Tenant, secret_key: str, label: str) -> IssuedKey:
    """A credential derived from the server's secret (HMAC of ``label``): the same value every
    time it is asked for, so the development demo shows its one key on each start instead of
    issuing yet another. Created when missing; once revoked, the next derivation is used."""
    for generation in range(1000):
        message = f"{label}:{tenant.id}:{generation}".encode()
        seed = hmac.new(secret_key.encode(), message, hashlib.sha256).digest()
        raw = base64.urlsafe_b64encode(seed).decode().rstrip("=")
        secret, token = f"fk_live_{raw[:32]}", f"ftk_{raw[32:]}"
        row = session.scalar(select(ApiKey).where(ApiKey.secret_digest == digest(secret)))
        if row is None:
            session.add(
                ApiKey(
                    tenant_id=tenant.id, token=token, secret_digest=digest(secret), hint=secret[-4:]
                )
            )
            session.flush()
        elif row.revoked_at is not None:
            continue
        return IssuedKey(token=token, api_key=secret, tenant_id=tenant.id)
    raise Conflict("Every derived key was revoked.", code="API_KEY_EXHAUSTED")


class KeyCache:
    """API credentials -> tenant, for a few seconds, so a hot door does not query on every
    call; revocations and setting changes are seen within ``ttl`` seconds. A miss reads in
    a short session of its own, so no connection is held for the rest of the request.

    A key's ``last_used_at`` is recorded from the misses, at most once a minute per key and
    process (``USE_EVERY``), by one background thread in a transaction of its own (never the
    request's, never blocking it), with a conditional UPDATE so that several processes
    still write it at most about once a minute. It is therefore accurate to a minute, or to
    ``ttl`` when the cache keeps answers longer than that."""

    USE_EVERY = 60.0  # seconds

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[tuple[str, str | None], tuple[float, Tenant | None]] = {}
        self._used: dict[int, float] = {}  # key id -> when this process last recorded it
        self._recorder: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @binds_merchant
    def cached(self, secret: str, token: str | None = None) -> tuple[bool, Tenant | None]:
        """(True, tenant or None) when the answer is in the cache and fresh; (False, None)
        when only ``tenant_for`` can tell (it reads the database)."""
        hit = self._entries.get((digest(secret), token))
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return True, hit[1]
        return False, None

    @binds_merchant
    def tenant_for(self, db: Database, secret: str, token: str | None = None) -> Tenant | None:
        """The tenant of an active key; with ``token``, the key must also carry that token."""
        key = (digest(secret), token)
        hit = self._entries.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        query = (
            select(Tenant, ApiKey.id)
            .join(ApiKey, ApiKey.tenant_id == Tenant.id)
            .where(
                ApiKey.secret_digest == key[0],
                ApiKey.revoked_at.is_(None),
                Tenant.suspended_at.is_(None),  # a suspended merchant's keys answer as revoked
            )
        )
        if token is not None:
            query = query.where(ApiKey.token == token)
        key_id = None
        with db.session(readonly=True) as session:
            row = session.execute(query).first()
            tenant = row[0] if row is not None else None
            if row is not None:
                key_id = int(row[1])
                session.expunge(tenant)
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[key] = (time.monotonic(), tenant)
        if key_id is not None:
            self._note_use(db, key_id)
        return tenant

    def _note_use(self, db: Database, key_id: int) -> None:
        moment = time.monotonic()
        with self._lock:
            last = self._used.get(key_id)
            if last is not None and moment - last < self.USE_EVERY:
                return
            self._used[key_id] = moment
            if len(self._used) > 10_000:
                self._used = {key_id: moment}
            if self._recorder is None:
                self._recorder = ThreadPoolExecutor(1, thread_name_prefix="fidelia-key-use")
            self._recorder.submit(record_key_use, db, key_id, now(), self.USE_EVERY)


def record_key_use(db: Database, key_id: int, at: datetime, every: float = 60.0) -> bool:
    """Set the key's ``last_used_at`` unless it was set less than ``every`` seconds before
    ``at`` (by any process). Best effort: a failure is logged, never raised to a door."""
    try:
        with db.session() as session:
            result = session.execute(
                update(ApiKey)
                .where(
                    ApiKey.id == key_id,
                    (ApiKey.last_used_at.is_(None))
                    | (ApiKey.last_used_at <= at - timedelta(seconds=every)),
                )
                .values(last_used_at=at)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 (bookkeeping must not break a door)
        log.warning("could not record the use of API key %s", key_id, exc_info=True)
        return False


class TenantCache:
    """Merchants by id, kept ``ttl`` seconds (``FIDELIA_TENANT_CACHE_SECONDS``, like the
    keys), for the public doors that name a merchant by its id (seed 000's redemption): a
    setting change or a suspension is seen within ``ttl`` seconds, as through a key. A miss
    reads in the caller's session and keeps a *copy* (no session's object, safe to share
    between requests' threads); an unknown id is never kept. ``ttl`` 0: no cache."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[int, tuple[float, Tenant]] = {}

    def get(self, session: Session, tenant_id: int) -> Tenant:
        """The merchant (``get_by_id``: TENANT_NOT_FOUND when there is none)."""
        hit = self._entries.get(tenant_id)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        tenant = get_by_id(session, tenant_id)
        if self.ttl > 0:
            if len(self._entries) > 10_000:
                self._entries.clear()
            columns = sa_inspect(Tenant).column_attrs
            twin = Tenant(**{c.key: getattr(tenant, c.key) for c in columns})
            self._entries[tenant_id] = (time.monotonic(), twin)
        return tenant


# -- groups ---------------------------------------------------------------------------------


def create_group(session: Session, *, slug: str, name: str, tenant_slugs: list[str]) -> Program:
    """A group of merchants sharing one balance. A merchant joins only while its own
    program has no customers yet: merging existing balances is an operator's decision."""
    if not SLUG.match(slug):
        raise InvalidInput("A slug is lower-case letters, digits and dashes.")
    if session.scalar(select(Program.id).where(Program.slug == slug)) is not None:
        raise Conflict(f"A group {slug!r} already exists.")
    if len(tenant_slugs) < 1:
        raise InvalidInput("A group needs at least one merchant.")
    group = Program(name=name.strip(), kind="group", slug=slug)
    session.add(group)
    session.flush()
    for tenant_slug in tenant_slugs:
        tenant = get_by_slug(session, tenant_slug)
        customers = session.scalar(
            select(func.count())
            .select_from(Customer)
            .where(Customer.program_id == tenant.program_id)
        )
        if customers:
            raise Conflict(f"{tenant_slug} already has customers; it cannot join a group.")
        tenant.program_id = group.id
    session.flush()
    return group
