"""PINs: single-use codes, unique among the open PINs of one bot number (a namespace
shared by every merchant on that number), enforced by a partial unique index.

Generation picks a random code and inserts it with ON CONFLICT DO NOTHING on that index;
when the code is taken (by another open PIN, perhaps being inserted concurrently) nothing
is written and another code is tried. The length comes from the namespace's open share
(``pins/guard.py``): longer as it fills, so that guessing stays hopeless.

The first try counts the open PINs and inserts in one statement (``INSERT ... SELECT``: the
length picked in SQL from the count, the code the first that many digits of a random
string), so a PIN costs one round trip; the count stops where the length stops growing.

That count reads up to the last step's number of index entries (6,493 with the default
policy): from the second-longest length on (649 open PINs), PostgreSQL spent 7 to 9 times
the insert's work on a PIN. A namespace seen at either of the two longest lengths
(``Longest``) gets its PINs at the longest, uncounted, for a few seconds: a PIN longer than
its namespace needs is always allowed, so a stale mark only costs a digit, never safety.
"""

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    ColumnElement,
    Row,
    String,
    Table,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.orm import Session, make_transient_to_detached

from fidelia.kit import driver
from fidelia.kit.clock import now
from fidelia.kit.db import Database, any_of, insert_for, once_more_if_stale, rows_now, unnested
from fidelia.kit.errors import DomainError, InvalidInput
from fidelia.models import Pin, Tenant
from fidelia.pins.guard import MAX_LENGTH, MIN_LENGTH, GuessPolicy

ATTEMPTS = 30
LONGEST_SECONDS = 5.0  # how long a namespace seen at a long length skips the count
MARKED_FROM = MAX_LENGTH - 1  # the lengths whose count is long enough to skip

_pins = cast(Table, Pin.__table__)
_OPEN_COUNT = (
    select(func.count())
    .select_from(_pins)
    .where(
        _pins.c.namespace == bindparam("namespace"),
        _pins.c.status == "open",
        _pins.c.expires_at > bindparam("at"),
    )
)
_INSERTED: tuple[str, ...] = ("tenant_id", "namespace", "code", "status", "amount", "points")
_INSERTED += ("created_at", "expires_at")
_INSERT_OPEN: dict[str, Any] = {}  # by dialect: SQLite's and PostgreSQL's ON CONFLICT


@dataclass(frozen=True)
class Activation:
    outcome: str  # credited | unknown | used | expired
    pin: Pin | None = None


def namespace_of(tenant: Tenant, default_bot_number: str) -> str:
    return tenant.bot_number or default_bot_number


def open_count(session: Session, namespace: str, policy: GuessPolicy | None = None) -> int:
    """The namespace's open PINs; with ``policy``, counted only as far as its PIN length
    grows (the count stops there, so it costs the same however full the namespace is)."""
    cap = _Sized.of(policy).cap if policy is not None else None
    query = _OPEN_COUNT if cap is None else _open_pins(cap)
    return int(session.scalar(query, {"namespace": namespace, "at": now()}) or 0)


def _open_pins(cap: int) -> Any:
    return select(func.count()).select_from(
        select(_pins.c.id)
        .where(
            _pins.c.namespace == bindparam("namespace"),
            _pins.c.status == "open",
            _pins.c.expires_at > bindparam("at"),
        )
        .limit(cap)
        .subquery()
    )


@dataclass(frozen=True)
class _Sized:
    """A policy's length steps: ``steps[i]`` is the fewest open PINs that make a PIN longer
    than ``MIN_LENGTH + i`` (from ``GuessPolicy.length_for``, so the SQL picks the same
    length); ``cap`` the count past which nothing changes."""

    steps: tuple[int, ...]

    @property
    def cap(self) -> int:
        return self.steps[-1]

    @staticmethod
    @lru_cache(maxsize=16)
    def of(policy: GuessPolicy) -> "_Sized":
        steps = []
        for length in range(MIN_LENGTH, MAX_LENGTH):
            low, high = 0, 1
            while policy.length_for(high) <= length:
                high *= 2
            while low < high:  # the first count whose length passes ``length``
                middle = (low + high) // 2
                low, high = (
                    (middle + 1, high) if policy.length_for(middle) <= length else (low, middle)
                )
            steps.append(low)
        return _Sized(tuple(steps))


_SIZED_INSERTS: dict[tuple[str, _Sized | None, bool], Any] = {}


def _sized_insert(dialect: str, sized: _Sized | None, *, issued: bool = False) -> Any:
    """``INSERT INTO pins ... SELECT`` the PIN whose length comes from the open count, the
    code the first ``length`` digits of ``:digits``; ON CONFLICT DO NOTHING, RETURNING the
    row (``issued``: what ``Issued`` holds). Built once per dialect, policy and returning.
    ``sized`` None: the longest length, nothing counted (``Longest``)."""
    statement = _SIZED_INSERTS.get((dialect, sized, issued))
    if statement is not None:
        return statement
    columns = [_pins.c[name] for name in _INSERTED]
    returned = (_pins.c.code, _pins.c.created_at, _pins.c.expires_at) if issued else tuple(_pins.c)
    values: list[Any]
    if sized is None:
        values = [
            bindparam("digits", type_=String())
            if name == "code"
            else bindparam(name, type_=_pins.c[name].type)
            for name in _INSERTED
        ]
        statement = _SIZED_INSERTS[(dialect, sized, issued)] = (
            insert_for(dialect)(_pins)
            .from_select(columns, select(*values))
            .on_conflict_do_nothing(
                index_elements=["namespace", "code"], index_where=text("status = 'open'")
            )
            .returning(*returned)
        )
        return statement
    counted = (
        select(func.count().label("open_pins"))
        .select_from(
            select(_pins.c.id)
            .where(
                _pins.c.namespace == bindparam("namespace"),
                _pins.c.status == "open",
                _pins.c.expires_at > bindparam("created_at"),
            )
            .limit(sized.cap)
            .subquery()
        )
        .subquery()
    )
    # The constants are in the SQL text: they are the statement's, not the call's.
    steps: list[tuple[Any, int]] = [
        (literal_column(str(step)), MIN_LENGTH + i + 1) for i, step in enumerate(sized.steps)
    ]
    length = case(
        *[(counted.c.open_pins >= step, literal_column(str(n))) for step, n in reversed(steps)],
        else_=literal_column(str(MIN_LENGTH)),
    )
    values = [
        func.substr(bindparam("digits", type_=String()), literal_column("1"), length)
        if name == "code"
        else bindparam(name, type_=_pins.c[name].type)
        for name in _INSERTED
    ]
    statement = _SIZED_INSERTS[(dialect, sized, issued)] = (
        insert_for(dialect)(_pins)
        .from_select(columns, select(*values).select_from(counted).where(true()))
        .on_conflict_do_nothing(
            index_elements=["namespace", "code"], index_where=text("status = 'open'")
        )
        .returning(*returned)
    )
    return statement


def _first_try(
    tenant: Tenant, namespace: str, amount: int | None, policy: GuessPolicy
) -> tuple[_Sized, dict[str, Any]]:
    """What every first try sends: the policy's steps and the new PIN's values (a random
    ``digits`` string whose first ``length`` digits are the code)."""
    if amount is not None and amount < tenant.min_purchase:
        raise InvalidInput("The purchase is below the merchant's minimum.", code="BELOW_MINIMUM")
    created = now()
    values = {
        "tenant_id": tenant.id,
        "namespace": namespace,
        "status": "open",
        "amount": amount,
        "points": tenant.points_per_pin,
        "created_at": created,
        "expires_at": created + timedelta(minutes=tenant.pin_lifetime_minutes),
        "digits": f"{secrets.randbelow(10**MAX_LENGTH):0{MAX_LENGTH}d}",
    }
    return _Sized.of(policy), values


class Issued(NamedTuple):
    """A PIN just issued, as the door shows it (``generate_now``: no ORM object)."""

    code: str
    created_at: datetime
    expires_at: datetime


class Longest:
    """The namespaces last seen at one of the two longest PIN lengths (one per app:
    ``State``), where the open count reads hundreds to thousands of index entries. Their
    next PINs are made at the longest length without counting until ``seconds`` pass; then
    a PIN counts again, and sets or clears the mark. A marked namespace's PIN is at most
    one digit longer than its last count gave."""

    def __init__(self, seconds: float = LONGEST_SECONDS, marked_from: int = MARKED_FROM) -> None:
        self.seconds = seconds
        self.marked_from = marked_from
        self._until: dict[str, float] = {}

    def holds(self, namespace: str) -> bool:
        until = self._until.get(namespace)
        return until is not None and time.monotonic() < until

    def saw(self, namespace: str, length: int) -> None:
        """A counted PIN of ``length`` was just made in ``namespace``."""
        if length >= self.marked_from:
            self._until[namespace] = time.monotonic() + self.seconds
        else:
            self._until.pop(namespace, None)


async def generate_now(
    db: Database,
    tenant: Tenant,
    namespace: str,
    amount: int | None = None,
    policy: GuessPolicy | None = None,
    longest: Longest | None = None,
) -> Issued | None:
    """PostgreSQL, from the event loop: ``generate``'s first try as ONE statement on the
    async engine in autocommit (no worker thread, no ``BEGIN``/``COMMIT``): the same
    statement, so the same count and length, durable when it returns; in a namespace
    ``longest`` holds, the longest length without the count. The PIN, or None when its code
    was taken: the caller then goes through ``generate``. A connection the server had
    dropped is replaced and the statement sent once more (a PIN written just before the
    drop would stay open, unseen, until it expires)."""
    sized, values = _first_try(tenant, namespace, amount, policy or GuessPolicy())
    counted = longest is None or not longest.holds(namespace)
    statement = _sized_insert("postgresql", sized if counted else None, issued=True)
    # On the driver's connection (``rows_now``): SQLAlchemy's execution of the one
    # statement cost more CPU than its round trip.
    rows = await once_more_if_stale(lambda: rows_now(db, statement, values))
    if not rows:
        return None
    issued = Issued(*rows[0])
    if counted and longest is not None:
        longest.saw(namespace, len(issued.code))
    return issued


def generate(
    session: Session,
    tenant: Tenant,
    namespace: str,
    amount: int | None = None,
    policy: GuessPolicy | None = None,
) -> Pin:
    policy = policy or GuessPolicy()
    sized, first = _first_try(tenant, namespace, amount, policy)
    values = {name: first[name] for name in _INSERTED if name != "code"}
    created = first["created_at"]
    dialect = session.get_bind().dialect.name
    pin = _as_pin(session, session.execute(_sized_insert(dialect, sized), first))
    if pin is not None:
        return pin
    # Taken: the tries below count once more, then insert codes of that length.
    length = policy.length_for(open_count(session, namespace, policy))
    for _ in range(ATTEMPTS - 1):
        code = f"{secrets.randbelow(10**length):0{length}d}"
        pin = _insert_open(session, {**values, "code": code})
        if pin is None:
            # Taken. If by an expired PIN still marked open (the sweep has not reached it
            # yet), that one must not block its code: expire it and take the code.
            freed = session.execute(
                update(Pin)
                .where(
                    Pin.namespace == namespace,
                    Pin.code == code,
                    Pin.status == "open",
                    Pin.expires_at <= created,
                )
                .values(status="expired")
            )
            if freed.rowcount:  # type: ignore[attr-defined]
                pin = _insert_open(session, {**values, "code": code})
        if pin is not None:
            return pin
    raise DomainError("Could not find a free PIN.", code="PIN_GENERATION_FAILED", status=500)


def _insert_open(session: Session, values: dict[str, object]) -> Pin | None:
    """One INSERT ... ON CONFLICT DO NOTHING on the open-PIN unique index (no savepoint):
    the new PIN, or None when its code is taken. A concurrent insert of the same code
    that has not committed yet is waited for, as a unique index always makes us do.

    A Core statement built once per dialect (no ORM bulk-insert machinery per call); the
    returned row becomes the session's ``Pin`` without another round trip."""
    dialect = session.get_bind().dialect.name
    statement = _INSERT_OPEN.get(dialect)
    if statement is None:
        statement = _INSERT_OPEN[dialect] = (
            insert_for(session)(_pins)
            .values({name: bindparam(name) for name in _INSERTED})
            .on_conflict_do_nothing(
                index_elements=["namespace", "code"], index_where=text("status = 'open'")
            )
            .returning(*_pins.c)
        )
    return _as_pin(session, session.execute(statement, values))


def _as_pin(session: Session, result: Any) -> Pin | None:
    """The inserted row (if any) as the session's ``Pin``, without another round trip."""
    row = result.one_or_none()
    if row is None:
        return None
    pin = Pin(**row._asdict())
    make_transient_to_detached(pin)  # a row that exists: adding it writes nothing
    session.add(pin)
    return pin


def activate(session: Session, namespace: str, code: str) -> Activation:
    """Use the open PIN ``code`` once. The conditional UPDATE makes two senders racing for
    the same PIN end with exactly one winner."""
    at = now()
    pin = session.scalars(
        update(Pin)
        .where(
            Pin.namespace == namespace,
            Pin.code == code,
            Pin.status == "open",
            Pin.expires_at > at,
            # A suspended merchant's open PINs cannot be activated (they answer as expired).
            Pin.tenant_id.not_in(select(Tenant.id).where(Tenant.suspended_at.is_not(None))),
        )
        .values(status="used", used_at=at)
        .returning(Pin)  # the whole row: no second round trip to load it
    ).one_or_none()
    if pin is not None:
        return Activation("credited", pin)
    latest = session.scalar(
        select(Pin).where(Pin.namespace == namespace, Pin.code == code).order_by(Pin.id.desc())
    )
    if latest is None:
        return Activation("unknown")
    if latest.status == "used":
        return Activation("used", latest)
    return Activation("expired", latest)


def _activate_many(wanted: ColumnElement[bool]) -> Any:
    """``activate`` for the PINs ``wanted`` names, as one statement."""
    return (
        update(_pins)
        .where(
            wanted,
            _pins.c.status == "open",
            _pins.c.expires_at > bindparam("at"),
            _pins.c.tenant_id.not_in(select(Tenant.id).where(Tenant.suspended_at.is_not(None))),
        )
        .values(status="used", used_at=bindparam("at"))
        .returning(_pins.c.id, _pins.c.tenant_id, _pins.c.namespace, _pins.c.code, _pins.c.points)
    )


# ``activate`` for many codes at once, built once (the worker's batch), by dialect: SQLite
# gets the pairs as an expanding list, PostgreSQL as two parallel arrays (one text and two
# parameters for every batch: ``kit/db.unnested``), their distinct namespaces and codes
# also given to ``= ANY`` so that the open-code index is searched for them (the pairs
# alone were joined to a scan of every open PIN when the statistics were stale).
_WANTED = unnested("wanted", pair_namespaces=_pins.c.namespace.type, pair_codes=_pins.c.code.type)
_ACTIVATE_MANY = {
    "sqlite": _activate_many(
        tuple_(_pins.c.namespace, _pins.c.code).in_(bindparam("wanted", expanding=True))
    ),
    "postgresql": _activate_many(
        and_(
            any_of(_pins.c.namespace, "namespaces"),
            any_of(_pins.c.code, "codes"),
            tuple_(_pins.c.namespace, _pins.c.code).in_(
                select(_WANTED.c.pair_namespaces, _WANTED.c.pair_codes)
            ),
        )
    ),
}
_ASSIGN = (
    update(_pins).where(_pins.c.id == bindparam("pin_id")).values(customer_id=bindparam("customer"))
)
# PostgreSQL's: ONE statement over two array parameters, one text whatever the number of
# pairs (an executemany is one execution per row there; SQLite keeps it, cheap there).
_OWNERS = unnested("owners", pin_ids=_pins.c.id.type, customers=_pins.c.customer_id.type)
_ASSIGN_ALL = (
    update(_pins).where(_pins.c.id == _OWNERS.c.pin_ids).values(customer_id=_OWNERS.c.customers)
)


def activate_many(
    session: Session, wanted: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], Row[Any]]:
    """``activate`` for many ``(namespace, code)`` pairs in one statement, with the same
    condition and the same row locks; returns the activated ones (``id``, ``tenant_id``,
    ``namespace``, ``code``, ``points``) by pair. A pair not returned is unknown, used or
    expired: ``activate`` tells which."""
    if not wanted:
        return {}
    dialect = session.get_bind().dialect.name
    params: dict[str, Any]
    if dialect == "postgresql":
        wanted = sorted(wanted)  # the index's order: one lock order for every worker
        params = {
            "pair_namespaces": [ns for ns, _ in wanted],
            "pair_codes": [code for _, code in wanted],
            "namespaces": sorted({ns for ns, _ in wanted}),
            "codes": sorted({code for _, code in wanted}),
        }
    else:
        params = {"wanted": list(wanted)}
    rows = driver.execute(session, _ACTIVATE_MANY[dialect], {**params, "at": now()}).all()
    return {(row.namespace, row.code): row for row in rows}


def assign_customers(session: Session, pairs: Sequence[tuple[int, int]]) -> None:
    """Record who used each PIN: ``(pin id, customer id)`` pairs, one statement
    (PostgreSQL: arrays; SQLite: an executemany)."""
    if not pairs:
        return
    if session.get_bind().dialect.name == "postgresql":
        driver.execute(
            session,
            _ASSIGN_ALL,
            {"pin_ids": [p for p, _ in pairs], "customers": [c for _, c in pairs]},
        )
    else:
        session.execute(_ASSIGN, [{"pin_id": p, "customer": c} for p, c in pairs])


def expire_stale(session: Session, limit: int = 1000) -> int:
    """Mark expired open PINs (the worker's sweep); returns how many."""
    ids = list(
        session.scalars(
            select(Pin.id).where(Pin.status == "open", Pin.expires_at <= now()).limit(limit)
        )
    )
    if ids:
        session.execute(
            update(Pin).where(Pin.id.in_(ids), Pin.status == "open").values(status="expired")
        )
    return len(ids)
