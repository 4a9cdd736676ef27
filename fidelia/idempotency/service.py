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
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.orm import Session

from fidelia.kit.db import insert_for
from fidelia.kit.errors import Conflict, DomainError
from fidelia.models import IdempotencyKey


class KeyReused(DomainError):
    status = 422
    code = "IDEMPOTENCY_KEY_REUSED"


@dataclass(frozen=True)
class KeyRow:
    """The key row this request inserted, where its answer is stored."""

    session: Session
    id: int


_keys = cast(Table, IdempotencyKey.__table__)
_STORE = update(_keys).where(_keys.c.id == bindparam("key_id"))  # SET from the parameters
_FIND = select(_keys.c.request_hash, _keys.c.response, _keys.c.status_code).where(
    _keys.c.tenant_id == bindparam("tenant_id"),
    _keys.c.scope == bindparam("scope"),
    _keys.c.key == bindparam("key"),
)
_INSERT: dict[str, Any] = {}  # per dialect, built once


@dataclass
class Claim:
    row: KeyRow | None  # ours to fill; None when replaying
    replay: dict[str, Any] | None = None
    status_code: int = 200

    def store(self, response: dict[str, Any], status_code: int = 200) -> None:
        if self.row is not None:
            self.row.session.execute(
                _STORE, {"key_id": self.row.id, "response": response, "status_code": status_code}
            )


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _insert(session: Session) -> Any:
    """``INSERT ... ON CONFLICT (tenant_id, scope, key) DO NOTHING RETURNING id``: no
    savepoint, and a concurrent holder of the key makes it wait until that one ends."""
    dialect = session.get_bind().dialect.name
    stmt = _INSERT.get(dialect)
    if stmt is None:
        stmt = _INSERT[dialect] = (
            insert_for(session)(_keys)
            .on_conflict_do_nothing(index_elements=["tenant_id", "scope", "key"])
            .returning(_keys.c.id)
        )
    return stmt


def claim(
    session: Session, tenant_id: int, scope: str, key: str, payload: Any, *, retry: bool = True
) -> Claim:
    digest = fingerprint(payload)
    # Another broken rule than the key's (a merchant that does not exist) raises here.
    row_id = session.execute(
        _insert(session),
        {
            "tenant_id": tenant_id,
            "scope": scope,
            "key": key,
            "request_hash": digest,
        },  # status_code (200 until the answer is stored) and created_at: the table's defaults
    ).scalar()
    if row_id is not None:
        return Claim(KeyRow(session, int(row_id)))
    existing = session.execute(_FIND, {"tenant_id": tenant_id, "scope": scope, "key": key}).first()
    if existing is None:
        # No row holds the key any more: it was forgotten between our insert and read
        # (try once more).
        if not retry:
            raise Conflict("The idempotency key is in use; try again.", code="IDEMPOTENCY_BUSY")
        return claim(session, tenant_id, scope, key, payload, retry=False)
    if existing.request_hash != digest:
        raise KeyReused(f"The key {key!r} was already used with a different request.")
    return Claim(None, replay=existing.response or {}, status_code=int(existing.status_code))


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
