"""Bearer tokens of the REST v2 door: ``api_key`` + ``api_secret`` (the merchant's API token
and API key) buy a token for an hour. Tokens are stored as digests; a token dies at its
expiry, on revocation, or when its API key is revoked."""

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from fidelia.kit.clock import now
from fidelia.kit.db import Database
from fidelia.kit.errors import Unauthorized
from fidelia.kit.security import digest, new_secret
from fidelia.models import AccessToken, ApiKey, Tenant

LIFETIME = timedelta(hours=1)


@dataclass(frozen=True)
class Issued:
    token: str
    expires_in: int


def issue(db: Database, api_key: str, api_secret: str) -> Issued:
    with db.session() as session:
        key = session.scalar(
            select(ApiKey).where(
                ApiKey.token == api_key,
                ApiKey.secret_digest == digest(api_secret),
                ApiKey.revoked_at.is_(None),
            )
        )
        if key is None:
            raise Unauthorized("Invalid or revoked api_key / api_secret.")
        token = new_secret("fat", 32)
        session.add(
            AccessToken(
                tenant_id=key.tenant_id,
                api_key_id=key.id,
                digest=digest(token),
                expires_at=now() + LIFETIME,
            )
        )
    return Issued(token, int(LIFETIME.total_seconds()))


@dataclass(frozen=True)
class Holder:
    """Who a live token speaks for: the merchant, and the API key it was bought with (the
    credential rate limits count against, however many tokens it buys)."""

    tenant: Tenant
    api_key_id: int


def holder_of(db: Database, token: str) -> Holder:
    with db.session(readonly=True) as session:
        row = session.execute(
            select(Tenant, ApiKey.id)
            .join(AccessToken, AccessToken.tenant_id == Tenant.id)
            .join(ApiKey, ApiKey.id == AccessToken.api_key_id)
            .where(
                AccessToken.digest == digest(token),
                AccessToken.revoked_at.is_(None),
                AccessToken.expires_at > now(),
                ApiKey.revoked_at.is_(None),
            )
        ).first()
        if row is None:
            raise Unauthorized("Invalid, expired or revoked access token.")
        tenant, api_key_id = row
        session.expunge(tenant)
        return Holder(tenant, api_key_id)


def tenant_for(db: Database, token: str) -> Tenant:
    return holder_of(db, token).tenant


def revoke(db: Database, token: str) -> None:
    with db.session() as session:
        session.execute(
            update(AccessToken).where(AccessToken.digest == digest(token)).values(revoked_at=now())
        )
