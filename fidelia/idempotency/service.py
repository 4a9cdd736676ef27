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

from sqlalchemy import Row, Select, Table, bindparam, delete, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from fidelia.kit import driver
from fidelia.kit.clock import now
from fidelia.kit.db import insert_for, rows_in
from fidelia.kit.errors import Conflict, DomainError
from fidelia.models import IdempotencyKey

# A read to run with the claim (``claim``'s ``along``): a SELECT built once and its
# parameters.
Along = tuple[Select[Any], dict[str, Any]]


class KeyReused(DomainError):
    status = 422
    code = "IDEMPOTENCY_KEY_REUSED"


@dataclass(frozen=True)
class KeyRow:
    """The key row this request inserted, where its answer is stored."""

    session: Session
    id: int


_keys = cast(Table, IdempotencyKey.__table__)
# The answer stored: a hot statement, sent on the driver's side of the connection
# (``rows_in``), its SET written out (bind parameters named apart from the columns).
_STORE = (
    update(_keys)
    .where(_keys.c.id == bindparam("key_id"))
    .values(
        response=bindparam("key_response", type_=_keys.c.response.type),
        status_code=bindparam("key_status", type_=_keys.c.status_code.type),
    )
)
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
    # The ``along`` read's row (None: replaying, or no row): its columns as attributes and
    # by name in ``_mapping``, as SQLAlchemy's ``Row``.
    along: Any = None

    def store(self, response: dict[str, Any], status_code: int = 200) -> None:
        if self.row is not None:
            stored = {"key_id": self.row.id, "key_response": response, "key_status": status_code}
            rows_in(self.row.session, _STORE, stored)


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


def _claiming_with(query: Select[Any]) -> Any:
    """PostgreSQL: the key's ``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` (a CTE) and
    ``query`` in one statement, one row whatever either finds: the id claimed (NULL: the
    key is held) and ``query``'s first row outer-joined (NULLs and ``along_found`` NULL
    when it has none). Its bind parameters are named apart from the keys' columns."""
    stmt = _WITH.get(query)
    if stmt is None:
        claimed = (
            pg_insert(_keys)
            .values(
                tenant_id=bindparam("claim_tenant_id", type_=_keys.c.tenant_id.type),
                scope=bindparam("claim_scope", type_=_keys.c.scope.type),
                key=bindparam("claim_key", type_=_keys.c.key.type),
                request_hash=bindparam("claim_hash", type_=_keys.c.request_hash.type),
                status_code=200,
                created_at=bindparam("claim_at", type_=_keys.c.created_at.type),
            )
            .on_conflict_do_nothing(index_elements=["tenant_id", "scope", "key"])
            .returning(_keys.c.id)
            .cte("claimed")
        )
        key_row = select(select(claimed.c.id).scalar_subquery().label("claimed_id")).subquery(
            "key_row"
        )
        found = query.add_columns(true().label("along_found")).limit(1).subquery("along")
        stmt = _WITH[query] = (
            select(key_row.c.claimed_id, *found.c).select_from(key_row).outerjoin(found, true())
        )
    return stmt


_WITH: dict[Select[Any], Any] = {}  # ``_claiming_with``'s, one per read, built once
_KEY_COLUMNS = frozenset(_keys.c.keys())


def claim(
    session: Session,
    tenant_id: int,
    scope: str,
    key: str,
    payload: Any,
    *,
    retry: bool = True,
    along: Along | None = None,
) -> Claim:
    """Claim ``key`` for this request, or the first answer to replay (``Claim.replay``).

    ``along``: a read the claimer needs next (a SELECT built once, and its parameters),
    returned as ``Claim.along`` when the key is claimed. On PostgreSQL it is sent in the
    claim's statement (one round trip for both); its snapshot is then the claim's, taken
    before the claim waited for a concurrent holder of the key, if it had to (the holder
    rolled back: nothing it did is missed; a replay reads the stored answer afresh). On
    SQLite it is run after the claim."""
    if along is not None and _KEY_COLUMNS.intersection(along[1]):
        # They would be added to the key row's INSERT (named like its columns).
        raise ValueError("an along read's parameters are named like the keys' columns")
    if along is not None and session.get_bind().dialect.name == "postgresql":
        return _claim_along(session, tenant_id, scope, key, payload, along, retry)
    claimed = _claim(session, tenant_id, scope, key, payload, retry)
    if along is not None and claimed.row is not None:
        claimed.along = _first(session, *along)
    return claimed


def _claim_along(
    session: Session,
    tenant_id: int,
    scope: str,
    key: str,
    payload: Any,
    along: Along,
    retry: bool,
) -> Claim:
    query, params = along
    digest = fingerprint(payload)
    statement = _claiming_with(query)
    # A hot statement: on the driver's side of the connection (``kit/driver``), as a Row.
    row = driver.execute(
        session,
        statement,
        {
            **params,
            "claim_tenant_id": tenant_id,
            "claim_scope": scope,
            "claim_key": key,
            "claim_hash": digest,
            "claim_at": now(),
        },
    ).one()
    if row.claimed_id is not None:
        return Claim(KeyRow(session, int(row.claimed_id)), along=row if row.along_found else None)
    # Held: replay (or refuse) as without a read; claimed on the retry after all (the key
    # was forgotten meanwhile), the read is run then.
    claimed = _held(session, tenant_id, scope, key, payload, digest, retry)
    if claimed.row is not None:
        claimed.along = _first(session, query, params)
    return claimed


def _first(session: Session, query: Select[Any], params: dict[str, Any]) -> Row[Any] | None:
    return session.execute(query, params).first()


def _claim(
    session: Session, tenant_id: int, scope: str, key: str, payload: Any, retry: bool
) -> Claim:
    digest = fingerprint(payload)
    # Another broken rule than the key's (a merchant that does not exist) raises here.
    row_id = driver.execute(
        session,
        _insert(session),
        {
            "tenant_id": tenant_id,
            "scope": scope,
            "key": key,
            "request_hash": digest,
            "status_code": 200,  # until the answer is stored
            "created_at": now(),
        },  # given, not the columns' defaults: sent as it is (``driver.execute``)
    ).scalar()
    if row_id is not None:
        return Claim(KeyRow(session, int(row_id)))
    return _held(session, tenant_id, scope, key, payload, digest, retry)


def _held(
    session: Session,
    tenant_id: int,
    scope: str,
    key: str,
    payload: Any,
    digest: str,
    retry: bool,
) -> Claim:
    """The key is held by a committed request: its answer to replay, or a refusal."""
    existing = session.execute(_FIND, {"tenant_id": tenant_id, "scope": scope, "key": key}).first()
    if existing is None:
        # No row holds the key any more: it was forgotten between our insert and read
        # (try once more).
        if not retry:
            raise Conflict("The idempotency key is in use; try again.", code="IDEMPOTENCY_BUSY")
        return _claim(session, tenant_id, scope, key, payload, False)
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
