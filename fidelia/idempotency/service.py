"""Idempotency keys (Stripe's semantics): the first answer is stored in the transaction of
its effect and replayed for the same key; the same key with another payload is refused.

The key row is inserted *first*. A concurrent duplicate's INSERT waits on the unique index
until the first transaction ends: if it committed, the duplicate replays its answer; if it
rolled back, the duplicate goes ahead as the first. Refusals (4xx) are not stored, so a
retry after the cause is fixed (more points, a validated challenge) can still succeed.
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fidelia.kit.errors import DomainError
from fidelia.models import IdempotencyKey


class KeyReused(DomainError):
    status = 422
    code = "IDEMPOTENCY_KEY_REUSED"


@dataclass
class Claim:
    row: IdempotencyKey | None  # ours to fill; None when replaying
    replay: dict[str, Any] | None = None
    status_code: int = 200

    def store(self, response: dict[str, Any], status_code: int = 200) -> None:
        if self.row is not None:
            self.row.response = response
            self.row.status_code = status_code


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def claim(
    session: Session, tenant_id: int, scope: str, key: str, payload: Any, *, retry: bool = True
) -> Claim:
    digest = fingerprint(payload)
    try:
        with session.begin_nested():
            row = IdempotencyKey(tenant_id=tenant_id, scope=scope, key=key, request_hash=digest)
            session.add(row)
            session.flush()
        return Claim(row)
    except IntegrityError as exc:
        refused = exc
    existing = session.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.tenant_id == tenant_id,
            IdempotencyKey.scope == scope,
            IdempotencyKey.key == key,
        )
    )
    if existing is None:
        # No row holds the key: the first request rolled back between our insert and read
        # (try once more), or the insert broke another rule (a merchant that does not exist),
        # which trying again cannot cure.
        if not retry:
            raise refused
        return claim(session, tenant_id, scope, key, payload, retry=False)
    if existing.request_hash != digest:
        raise KeyReused(f"The key {key!r} was already used with a different request.")
    return Claim(None, replay=existing.response or {}, status_code=existing.status_code)


def forget(session: Session, tenant_id: int, scope: str, key: str) -> None:
    """Drop a stored answer whose effect was undone (a cancelled payment), so the same key
    makes a fresh request instead of replaying an answer that is no longer true."""
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.tenant_id == tenant_id,
            IdempotencyKey.scope == scope,
            IdempotencyKey.key == key,
        )
    )
