"""Bearer tokens of the REST v2 door: an API credential (its public token and its secret
key) buys a token for an hour. Tokens are stored as digests; a token dies at its expiry,
on revocation, or when its API key is revoked.

A credential asking again while its newest token has more than ``REUSE_MIN_LEFT`` to live
gets that same token back (clients that ask for a token per call do not mint thousands).
The token is not stored: it is ``HMAC(secret, row id)``, so only a caller holding the
secret can be handed it again, and the database alone (digests) never yields it."""

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update

from fidelia.kit.clock import now
from fidelia.kit.db import Database
from fidelia.kit.errors import Unauthorized
from fidelia.kit.security import digest, new_secret
from fidelia.models import AccessToken, ApiKey, Tenant
from fidelia.ops.context import binds_merchant

LIFETIME = timedelta(hours=1)
REUSE_MIN_LEFT = timedelta(minutes=5)


@dataclass(frozen=True)
class Issued:
    token: str
    expires_at: datetime
    expires_in: int
    api_key_id: int
    reused: bool


def _derive(secret: str, token_id: int) -> str:
    mac = hmac.new(secret.encode(), f"fidelia-access-token:{token_id}".encode(), hashlib.sha256)
    return "fat_" + base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def issue(db: Database, token: str, secret: str) -> Issued:
    """A live access token for the credential (public ``token``, ``secret``): the newest
    one still valid for a while, else a new one. Unauthorized with code
    ``UNKNOWN_API_KEY`` (no active credential has this token) or ``WRONG_API_SECRET``."""
    with db.session() as session:
        # Locked: concurrent first calls of one credential queue here and share one token.
        key = session.scalar(select(ApiKey).where(ApiKey.token == token).with_for_update())
        if key is None or key.revoked_at is not None:
            raise Unauthorized("Unknown or revoked API token.", code="UNKNOWN_API_KEY")
        if session.scalar(select(Tenant.suspended_at).where(Tenant.id == key.tenant_id)):
            # A suspended merchant's credentials answer as revoked ones.
            raise Unauthorized("Unknown or revoked API token.", code="UNKNOWN_API_KEY")
        if not hmac.compare_digest(key.secret_digest, digest(secret)):
            raise Unauthorized("Wrong secret for this API token.", code="WRONG_API_SECRET")
        moment = now()
        live = session.scalars(
            select(AccessToken)
            .where(
                AccessToken.api_key_id == key.id,
                AccessToken.revoked_at.is_(None),
                AccessToken.expires_at > moment + REUSE_MIN_LEFT,
            )
            .order_by(AccessToken.expires_at.desc())
            .limit(1)
        ).first()
        if live is not None:
            again = _derive(secret, live.id)
            if hmac.compare_digest(live.digest, digest(again)):  # older tokens were random
                left = _seconds(live.expires_at - moment)
                return Issued(again, live.expires_at, left, key.id, True)
        row = AccessToken(
            tenant_id=key.tenant_id,
            api_key_id=key.id,
            digest=digest(new_secret("pending")),  # unique placeholder until the id is known
            expires_at=moment + LIFETIME,
        )
        session.add(row)
        session.flush()
        fresh = _derive(secret, row.id)
        row.digest = digest(fresh)
        return Issued(fresh, row.expires_at, _seconds(LIFETIME), key.id, False)


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())


@dataclass(frozen=True)
class Holder:
    """Who a live token speaks for: the merchant, and the API key it was bought with (the
    credential rate limits count against, however many tokens it buys)."""

    tenant: Tenant
    api_key_id: int


_HOLDER = (
    select(Tenant, ApiKey.id, AccessToken.expires_at)
    .join(AccessToken, AccessToken.tenant_id == Tenant.id)
    .join(ApiKey, ApiKey.id == AccessToken.api_key_id)
    .where(
        AccessToken.digest == bindparam("digest"),
        AccessToken.revoked_at.is_(None),
        AccessToken.expires_at > bindparam("at"),
        ApiKey.revoked_at.is_(None),
        Tenant.suspended_at.is_(None),
    )
)


class HolderCache:
    """Token digest -> (when read, the holder, the token's expiry): the live tokens this
    app instance has seen, kept ``ttl`` seconds, as API keys are (``tenants.service.
    KeyCache``); one per app instance (``State.tokens``). ``ttl`` 0: no cache."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Holder, datetime]] = {}

    @binds_merchant
    def cached(self, token: str) -> Holder | None:
        """The holder when this token's answer is in the cache and fresh (no database)."""
        hit = self._entries.get(digest(token)) if self.ttl > 0 else None
        if hit is not None and time.monotonic() - hit[0] < self.ttl and hit[2] > now():
            return hit[1]
        return None

    @binds_merchant
    def holder_of(self, db: Database, token: str) -> Holder:
        """Who ``token`` speaks for. A live token's answer is kept ``ttl`` seconds (never
        past the token's expiry), so a hot door does not open a session on every call: a
        revocation (of the token, its key, or a suspension) is then seen within ``ttl``
        seconds by the other processes, at once by this one (``revoke``)."""
        found = self.cached(token)
        if found is not None:
            return found
        key = digest(token)
        with db.session(readonly=True) as session:
            row = session.execute(_HOLDER, {"digest": key, "at": now()}).first()
            if row is None:
                self._entries.pop(key, None)
                raise Unauthorized("Invalid, expired or revoked access token.")
            tenant, api_key_id, expires_at = row
            session.expunge(tenant)
        holder = Holder(tenant, api_key_id)
        if self.ttl > 0:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key] = (time.monotonic(), holder, expires_at)
        return holder

    def forget(self, token: str) -> None:
        self._entries.pop(digest(token), None)


def tenant_for(db: Database, token: str) -> Tenant:
    return HolderCache(0).holder_of(db, token).tenant


def revoke(db: Database, token: str, holders: HolderCache | None = None) -> None:
    """Revoke ``token``; ``holders``, the cache of this app instance, forgets it at once."""
    if holders is not None:
        holders.forget(token)
    with db.session() as session:
        session.execute(
            update(AccessToken).where(AccessToken.digest == digest(token)).values(revoked_at=now())
        )
