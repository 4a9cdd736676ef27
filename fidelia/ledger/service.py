"""The ledger: the single source of truth for points and cashback.

Every change is an append-only entry plus a conditional update of the balance row in the
same transaction. Debits use ``UPDATE ... SET amount = amount - x WHERE amount >= x``: the
row lock makes concurrent debits queue, and the condition makes the loser fail instead of
overspending. Earn entries are lots, spent soonest-to-expire first.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    DateTime,
    String,
    Table,
    bindparam,
    case,
    func,
    insert,
    null,
    select,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from fidelia.kit import driver
from fidelia.kit.clock import now
from fidelia.kit.db import insert_for, rows_in, unnested
from fidelia.kit.errors import BalanceLimit, InsufficientPoints, InvalidInput
from fidelia.kit.money import MAX_MINOR
from fidelia.models import Balance, LedgerEntry, Tenant

POINTS = "points"
CASHBACK = "cashback"
OTHER = {POINTS: CASHBACK, CASHBACK: POINTS}  # a customer's two accounts
# No balance goes past this (points, or minor units of cashback): the same cap as every
# amount a door accepts, so a balance can always take the next credit and fit a BIGINT.
MAX_BALANCE = MAX_MINOR


@dataclass(frozen=True)
class Source:
    """Where the points came from or went: the merchant and a unique reference."""

    tenant_id: int
    type: str
    id: str


@dataclass(frozen=True)
class Account:
    program_id: int
    customer_id: int
    account: str = POINTS


_BALANCE = select(Balance.amount).where(
    Balance.program_id == bindparam("p"),
    Balance.customer_id == bindparam("c"),
    Balance.account == bindparam("a"),
)


def balance(session: Session, acct: Account) -> int:
    amount = session.scalar(
        _BALANCE, {"p": acct.program_id, "c": acct.customer_id, "a": acct.account}
    )
    return int(amount or 0)


@dataclass(frozen=True)
class Entry:
    """A ledger entry just written, as its callers read it back (written with one Core
    INSERT, not loaded as an ORM object)."""

    id: int
    amount: int  # signed
    balance_after: int
    # ``credit(wallet=True)``: both balances of the customer once this entry is written
    # (``WALLET`` accounts), when the statement could tell them exactly; else None.
    wallet: dict[str, int] | None = None


def credit(
    session: Session,
    acct: Account,
    amount: int,
    source: Source,
    *,
    kind: str = "earn",
    expires_at: datetime | None = None,
    tenant: Tenant | None = None,
    wallet: bool = False,
) -> Entry:
    """Add ``amount`` (> 0) as a new lot (a reversed debit comes back as a fresh lot).
    Refused (BalanceLimit) when it would take the balance past ``MAX_BALANCE``: the upsert
    only updates under that condition, so concurrent credits cannot pass it either.
    An earning (``kind`` earn) expires after the merchant's ``points_validity_days``
    (``tenant``: the source's merchant when the caller has it, else it is read).
    ``wallet``: PostgreSQL also answers the customer's other balance in the same statement
    (``Entry.wallet``), for a caller that answers both (see ``_credit_in_one``)."""
    if kind == "earn" and expires_at is None:
        expires_at = validity_end(tenant or session.get(Tenant, source.tenant_id))
    if amount <= 0:
        raise InvalidInput("A credit must be positive.")
    if amount > MAX_BALANCE:
        raise BalanceLimit(f"A credit is at most {MAX_BALANCE}.")
    if session.get_bind().dialect.name == "postgresql":
        # The balance and its entry in one round trip (the upsert a CTE of the insert).
        params = {
            "p": acct.program_id,
            "t": source.tenant_id,
            "c": acct.customer_id,
            "a": acct.account,
            "kind": kind,
            "x": amount,
            "st": source.type,
            "sid": source.id,
            "exp": expires_at,
            "at": now(),
        }
        if wallet:
            params["o"] = OTHER[acct.account]
        # Every sale's statement: on the driver's side of the connection (``kit/driver``).
        row = driver.execute(session, _CREDIT_WALLET if wallet else _CREDIT, params).first()
        if row is None:
            raise BalanceLimit(f"This would take the balance past {MAX_BALANCE}.")
        after = int(row.balance_after)
        both = None
        # The other balance is as of the statement's snapshot, this one as of its row lock:
        # the pair is exact when nothing committed to this account in between (else None,
        # and the caller reads both).
        if wallet and int(row.before or 0) + amount == after:
            both = {acct.account: after, OTHER[acct.account]: int(row.other or 0)}
        return Entry(int(row.id), amount, after, both)
    found = session.execute(
        _add_to_balances(session),
        {
            "program_id": acct.program_id,
            "customer_id": acct.customer_id,
            "account": acct.account,
            "amount": amount,
        },
    ).first()
    if found is None:
        raise BalanceLimit(f"This would take the balance past {MAX_BALANCE}.")
    after = int(found.amount)
    # A credit first pays off a negative balance (a reversal of points already spent): only
    # what it leaves above zero is a lot that can be spent, so the lots add up to the balance.
    lot = min(amount, max(after, 0))
    return _add_entry(session, acct, source, kind, amount, after, lot, expires_at)


def validity_end(tenant: Tenant | None) -> datetime | None:
    """When a lot earned now at ``tenant`` expires (None: it never does)."""
    return expiry_after(tenant.points_validity_days if tenant is not None else 0)


def expiry_after(days: int) -> datetime | None:
    """When a lot earned now expires with a validity of ``days`` (0: never)."""
    return now() + timedelta(days=days) if days > 0 else None


@dataclass(frozen=True)
class Credit:
    """One earning of ``credit_many``: what ``credit`` takes, its expiry worked out."""

    acct: Account
    amount: int
    source: Source
    expires_at: datetime | None


_entries = cast(Table, LedgerEntry.__table__)
# The columns an entry's INSERT ... SELECT fills (one credit's and credit_many's alike):
# every column but its id.
_ENTRY_COLUMNS = tuple(column.key for column in _entries.columns if column.key != "id")
_balances = cast(Table, Balance.__table__)
_ADD_ENTRIES = insert(_entries)
_ADD_TO_BALANCES: dict[str, Any] = {}  # per dialect, built once


def _add_to_balances(session: Session) -> Any:
    """The balance upsert of ``credit`` for many accounts (executemany), by dialect."""
    dialect = session.get_bind().dialect.name
    stmt = _ADD_TO_BALANCES.get(dialect)
    if stmt is None:
        upsert = insert_for(session)(_balances)
        stmt = _ADD_TO_BALANCES[dialect] = upsert.on_conflict_do_update(
            index_elements=["program_id", "customer_id", "account"],
            set_={"amount": _balances.c.amount + upsert.excluded.amount},
            where=_balances.c.amount <= MAX_BALANCE - upsert.excluded.amount,
        ).returning(
            _balances.c.program_id, _balances.c.customer_id, _balances.c.account, _balances.c.amount
        )
    return stmt


def _add_sums() -> Any:
    """PostgreSQL's ``_add_to_balances`` for a batch as ONE statement of four array
    parameters (one text whatever the batch's size: ``kit/db.unnested``), the same upsert
    and guard; the rows inserted in the arrays' order (``ORDER BY`` their position), so the
    balances are locked in the order the caller gives."""
    sums = unnested(
        "sums",
        programs=_balances.c.program_id.type,
        customers=_balances.c.customer_id.type,
        accounts=_balances.c.account.type,
        amounts=_balances.c.amount.type,
    )
    upsert = pg_insert(_balances).from_select(
        ("program_id", "customer_id", "account", "amount"),
        select(sums.c.programs, sums.c.customers, sums.c.accounts, sums.c.amounts).order_by(
            sums.c.n
        ),
    )
    return upsert.on_conflict_do_update(
        index_elements=["program_id", "customer_id", "account"],
        set_={"amount": _balances.c.amount + upsert.excluded.amount},
        where=_balances.c.amount <= MAX_BALANCE - upsert.excluded.amount,
    ).returning(
        _balances.c.program_id, _balances.c.customer_id, _balances.c.account, _balances.c.amount
    )


_ADD_SUMS = _add_sums()


def _add_entries() -> Any:
    """PostgreSQL's insert of ``credit_many``'s entries: ONE statement over array
    parameters (one text whatever the batch's size; an executemany is one execution per
    row there), the rows inserted in the arrays' order (their ids, as the executemany gave
    them). The kind and the time are the batch's; ``created_at`` given, as the model's
    Python default is not run for an ``INSERT ... SELECT``."""
    c = _entries.c
    rows = unnested(
        "entries",
        programs=c.program_id.type,
        tenants=c.tenant_id.type,
        customers=c.customer_id.type,
        accounts=c.account.type,
        amounts=c.amount.type,
        balances=c.balance_after.type,
        source_types=c.source_type.type,
        source_ids=c.source_id.type,
        remaining=c.remaining.type,
        expiries=c.expires_at.type,
    )
    return pg_insert(_entries).from_select(
        _ENTRY_COLUMNS,
        select(
            rows.c.programs,
            rows.c.tenants,
            rows.c.customers,
            rows.c.accounts,
            bindparam("kind", type_=c.kind.type),
            rows.c.amounts,
            rows.c.balances,
            rows.c.source_types,
            rows.c.source_ids,
            rows.c.remaining,
            rows.c.expiries,
            bindparam("at", type_=c.created_at.type),
        ).order_by(rows.c.n),
        include_defaults=False,
    )


_ADD_ENTRIES_ALL = _add_entries()


def _credit_in_one(wallet: bool = False) -> Any:
    """PostgreSQL's ``credit``: the balance upsert (the same guard as ``_add_to_balances``)
    as a CTE whose ``RETURNING`` feeds the entry's insert, so the entry carries the balance
    it leaves and the lot what that balance leaves above zero. No row back: the guard
    refused (BalanceLimit). ``wallet``: it also returns, read from the statement's
    snapshot, this account's balance before (``before``) and the other account's
    (``other``, bind parameter ``o``), so a sale answers both balances without reading
    them again."""
    upsert = pg_insert(_balances).values(
        program_id=bindparam("p", type_=BigInteger),
        customer_id=bindparam("c", type_=BigInteger),
        account=bindparam("a", type_=String),
        amount=bindparam("x", type_=BigInteger),
    )
    added = (
        upsert.on_conflict_do_update(
            index_elements=["program_id", "customer_id", "account"],
            set_={"amount": _balances.c.amount + upsert.excluded.amount},
            where=_balances.c.amount <= MAX_BALANCE - upsert.excluded.amount,
        )
        .returning(_balances.c.amount)
        .cte("added")
    )
    x = bindparam("x", type_=BigInteger)
    row = select(
        bindparam("p", type_=BigInteger),
        bindparam("t", type_=BigInteger),
        bindparam("c", type_=BigInteger),
        bindparam("a", type_=String),
        bindparam("kind", type_=String),
        x,
        added.c.amount,
        bindparam("st", type_=String),
        bindparam("sid", type_=String),
        func.least(x, func.greatest(added.c.amount, 0)),
        bindparam("exp", type_=DateTime(timezone=True)),
        bindparam("at", type_=DateTime(timezone=True)),
    ).select_from(added)
    columns = _ENTRY_COLUMNS
    returned: list[Any] = [_entries.c.id, _entries.c.balance_after]
    if wallet:
        for label, account in (("before", "a"), ("other", "o")):
            amount = (
                select(_balances.c.amount)
                .where(
                    _balances.c.program_id == bindparam("p", type_=BigInteger),
                    _balances.c.customer_id == bindparam("c", type_=BigInteger),
                    _balances.c.account == bindparam(account, type_=String),
                )
                .scalar_subquery()
                .label(label)
            )
            returned.append(amount)
    return insert(_entries).from_select(columns, row).returning(*returned)


_CREDIT = _credit_in_one()
_CREDIT_WALLET = _credit_in_one(wallet=True)


def credit_many(session: Session, credits: Sequence[Credit], *, kind: str = "earn") -> list[int]:
    """``credit`` for a batch, set-based: each balance updated once with the batch's sum
    for it (one upsert for all), the entries inserted in one statement (PostgreSQL: arrays;
    SQLite: an executemany), each with the balance it leaves, as if credited one by one in
    this order. Returns those balances. All or nothing: BalanceLimit when any balance would
    pass ``MAX_BALANCE``."""
    if not credits:
        return []
    sums: dict[tuple[int, int, str], int] = {}
    for c in credits:
        if c.amount <= 0:
            raise InvalidInput("A credit must be positive.")
        key = (c.acct.program_id, c.acct.customer_id, c.acct.account)
        sums[key] = sums.get(key, 0) + c.amount
    if any(total > MAX_BALANCE for total in sums.values()):
        raise BalanceLimit(f"A credit is at most {MAX_BALANCE}.")
    ordered = sorted(sums)  # one lock order for every worker
    if session.get_bind().dialect.name == "postgresql":
        rows = driver.execute(  # the driver's way: its arrays in the binary format
            session,
            _ADD_SUMS,
            {
                "programs": [p for p, _, _ in ordered],
                "customers": [c for _, c, _ in ordered],
                "accounts": [a for _, _, a in ordered],
                "amounts": [sums[key] for key in ordered],
            },
        ).all()
    else:
        rows = session.execute(
            _add_to_balances(session),
            [
                {"program_id": p, "customer_id": c, "account": a, "amount": sums[(p, c, a)]}
                for p, c, a in ordered
            ],
        ).all()
    after = {(r.program_id, r.customer_id, r.account): int(r.amount) for r in rows}
    if len(after) != len(sums):
        raise BalanceLimit(f"This would take a balance past {MAX_BALANCE}.")
    # Each entry leaves the final balance less the credits after it (in this order).
    balances: list[int] = [0] * len(credits)
    for k in range(len(credits) - 1, -1, -1):
        c = credits[k]
        key = (c.acct.program_id, c.acct.customer_id, c.acct.account)
        balances[k] = after[key]
        after[key] -= c.amount
    at = now()
    if session.get_bind().dialect.name == "postgresql":
        driver.execute(
            session,
            _ADD_ENTRIES_ALL,
            {
                "programs": [c.acct.program_id for c in credits],
                "tenants": [c.source.tenant_id for c in credits],
                "customers": [c.acct.customer_id for c in credits],
                "accounts": [c.acct.account for c in credits],
                "kind": kind,
                "amounts": [c.amount for c in credits],
                "balances": balances,
                "source_types": [c.source.type for c in credits],
                "source_ids": [c.source.id for c in credits],
                # As in ``credit``: only what is left above zero is a lot that can be spent.
                "remaining": [
                    min(c.amount, max(left, 0)) for c, left in zip(credits, balances, strict=True)
                ],
                "expiries": [c.expires_at for c in credits],
                "at": at,
            },
        )
        return balances
    session.execute(
        _ADD_ENTRIES,
        [
            {
                "program_id": c.acct.program_id,
                "tenant_id": c.source.tenant_id,
                "customer_id": c.acct.customer_id,
                "account": c.acct.account,
                "kind": kind,
                "amount": c.amount,
                "balance_after": left,
                "source_type": c.source.type,
                "source_id": c.source.id,
                # As in ``credit``: only what is left above zero is a lot that can be spent.
                "remaining": min(c.amount, max(left, 0)),
                "expires_at": c.expires_at,
                "created_at": at,
            }
            for c, left in zip(credits, balances, strict=True)
        ],
    )
    return balances


# The debit: the guarded one (the balance covers it) and, for reversals, the unguarded one
# with the insert of a negative balance when the account has none yet.
_DEBIT_COVERED = (
    update(_balances)
    .where(
        _balances.c.program_id == bindparam("p"),
        _balances.c.customer_id == bindparam("c"),
        _balances.c.account == bindparam("a"),
        _balances.c.amount >= bindparam("x"),
    )
    .values(amount=_balances.c.amount - bindparam("x"))
    .returning(_balances.c.amount)
)
_DEBIT_ANY = (
    update(_balances)
    .where(
        _balances.c.program_id == bindparam("p"),
        _balances.c.customer_id == bindparam("c"),
        _balances.c.account == bindparam("a"),
    )
    .values(amount=_balances.c.amount - bindparam("x"))
    .returning(_balances.c.amount)
)
_NEGATIVE_BALANCE = insert(_balances).returning(_balances.c.amount)
_ADD_ENTRY = insert(_entries).returning(_entries.c.id)


def _lots_spent() -> Any:
    """FIFO lot consumption as one UPDATE: each lot of the account, soonest-to-expire first
    (no expiry last, then oldest), with what the lots before it hold (``before``, a running
    sum); the lots whose ``before`` is short of the amount give what the amount still needs.
    Dialect-neutral (UPDATE ... FROM, a window, CASE): PostgreSQL and SQLite >= 3.33."""
    lots = _entries.alias("lot")
    order = (lots.c.expires_at.is_(None), lots.c.expires_at, lots.c.id)
    ahead = (
        select(
            lots.c.id,
            (
                sql_cast(func.sum(lots.c.remaining).over(order_by=order), BigInteger)
                - lots.c.remaining
            ).label("ahead_of"),
        )
        .where(
            lots.c.program_id == bindparam("p"),
            lots.c.customer_id == bindparam("c"),
            lots.c.account == bindparam("a"),
            lots.c.remaining > 0,
        )
        .subquery("ahead")
    )
    held = _entries.c.remaining + ahead.c.ahead_of  # the lots up to and with this one
    return (
        update(_entries)
        .where(_entries.c.id == ahead.c.id, ahead.c.ahead_of < bindparam("x"))
        .values(remaining=case((held <= bindparam("x"), 0), else_=held - bindparam("x")))
    )


_SPEND_LOTS = _lots_spent()


def spend_and_enter(source_id: Any = None) -> Any:
    """PostgreSQL: the debit's second round trip, the lots spent (``_SPEND_LOTS``, a CTE)
    and the debit's entry inserted, in one statement. Still one of its own after the
    balance's ``UPDATE``: its snapshot is taken after that row lock was granted, so it
    reads the lots as the last debit of the account left them (in one statement with the
    ``UPDATE``, they would be read from a snapshot taken before the lock was waited for).
    The new entry is no lot (``remaining`` NULL), and the CTE does not see it anyway. Its
    bind parameters are named apart from the entries' columns: parameters named like a
    column of the updated table would be added to the CTE's ``SET``.

    ``source_id``: the entry's source id as a column of a caller's CTE (a row the caller
    inserts in the same statement: ``redemptions.redeem``'s), the entry selected from that
    CTE's row; by default, the bind parameter ``sid``. Returns the entry's id."""
    c = _entries.c
    x = bindparam("x", type_=c.amount.type)
    row = select(
        bindparam("p", type_=c.program_id.type),
        bindparam("t", type_=c.tenant_id.type),
        bindparam("c", type_=c.customer_id.type),
        bindparam("a", type_=c.account.type),
        bindparam("k", type_=c.kind.type),
        -x,
        bindparam("after", type_=c.balance_after.type),
        bindparam("st", type_=c.source_type.type),
        bindparam("sid", type_=c.source_id.type) if source_id is None else source_id,
        null(),
        null(),
        bindparam("at", type_=c.created_at.type),
    )
    return (
        insert(_entries)
        .from_select(_ENTRY_COLUMNS, row, include_defaults=False)
        .returning(c.id)
        .add_cte(_SPEND_LOTS.cte("spent"))
    )


_SPEND_AND_ENTER = spend_and_enter()


def _add_entry(
    session: Session,
    acct: Account,
    source: Source,
    kind: str,
    amount: int,
    after: int,
    remaining: int | None,
    expires_at: datetime | None,
) -> Entry:
    entry_id = session.execute(
        _ADD_ENTRY,
        {
            "program_id": acct.program_id,
            "tenant_id": source.tenant_id,
            "customer_id": acct.customer_id,
            "account": acct.account,
            "kind": kind,
            "amount": amount,
            "balance_after": after,
            "source_type": source.type,
            "source_id": source.id,
            "remaining": remaining,
            "expires_at": expires_at,
            "created_at": now(),
        },
    ).scalar_one()
    return Entry(int(entry_id), amount, after)


def debit(
    session: Session,
    acct: Account,
    amount: int,
    source: Source,
    *,
    kind: str = "redeem",
    allow_negative: bool = False,
) -> Entry:
    """Take ``amount`` (> 0). Raises InsufficientPoints unless the balance covers it;
    ``allow_negative`` is for reversals of earnings that were already spent. Two round
    trips on PostgreSQL (the balance's guarded ``UPDATE``, ``take``; then the lots and the
    entry in one statement, ``spend_and_enter``), three on SQLite (no DML in a CTE there)."""
    after = take(session, acct, amount, allow_negative=allow_negative)
    return enter_debit(session, acct, amount, after, source, kind=kind)


def take(session: Session, acct: Account, amount: int, *, allow_negative: bool = False) -> int:
    """A debit's first half: the balance's conditional ``UPDATE`` (its row lock queues
    concurrent debits; the loser is refused, InsufficientPoints). Returns the balance
    after. ``enter_debit`` (or a caller's statement built on ``spend_and_enter``) must
    follow in the transaction, in a statement of its own."""
    if amount <= 0:
        raise InvalidInput("A debit must be positive.")
    key = {"p": acct.program_id, "c": acct.customer_id, "a": acct.account, "x": amount}
    # A hot statement: on the driver's side of the connection (``rows_in``).
    rows = rows_in(session, _DEBIT_ANY if allow_negative else _DEBIT_COVERED, key)
    after = rows[0][0] if rows else None
    if after is None:
        if not allow_negative:
            raise InsufficientPoints("Not enough points.")
        after = session.execute(
            _NEGATIVE_BALANCE,
            {
                "program_id": acct.program_id,
                "customer_id": acct.customer_id,
                "account": acct.account,
                "amount": -amount,
            },
        ).scalar_one()
    return int(after)


def enter_debit(
    session: Session,
    acct: Account,
    amount: int,
    after: int,
    source: Source,
    *,
    kind: str = "redeem",
) -> Entry:
    """A debit's second half, after ``take`` left the balance at ``after``: the lots spent
    and the entry written (one statement on PostgreSQL)."""
    if session.get_bind().dialect.name == "postgresql":
        entry_id = driver.execute(
            session,
            _SPEND_AND_ENTER,
            {**spend_params(acct, amount, after, source, kind), "sid": source.id},
        ).scalar_one()
        return Entry(int(entry_id), -amount, after)
    _consume_lots(session, acct, amount)
    return _add_entry(session, acct, source, kind, -amount, after, None, None)


def spend_params(
    acct: Account, amount: int, after: int, source: Source, kind: str = "redeem"
) -> dict[str, Any]:
    """``spend_and_enter``'s parameters (but ``sid``, the source's id, when it is a bind
    parameter)."""
    return {
        "p": acct.program_id,
        "c": acct.customer_id,
        "a": acct.account,
        "x": amount,
        "t": source.tenant_id,
        "k": kind,
        "after": after,
        "st": source.type,
        "at": now(),
    }


def _consume_lots(session: Session, acct: Account, amount: int) -> None:
    """Spend lots soonest-to-expire first (no expiry last), in one UPDATE. Runs under the
    balance row lock taken by the debit's UPDATE, so two debits never consume the same lot
    (the statement reads the lots after that lock was granted)."""
    session.execute(
        _SPEND_LOTS, {"p": acct.program_id, "c": acct.customer_id, "a": acct.account, "x": amount}
    )


def last_earning_column(tenant_id: Any, customer_id: Any) -> Any:
    """``last_earning_at`` as a column a caller's read of the customer can carry
    (``customer_id`` correlated, ``tenant_id`` a bind parameter or a column)."""
    return (
        select(func.max(_entries.c.created_at))
        .where(
            _entries.c.tenant_id == tenant_id,
            _entries.c.customer_id == customer_id,
            _entries.c.kind == "earn",
        )
        .scalar_subquery()
    )


_LAST_EARNING = select(func.max(LedgerEntry.created_at)).where(
    LedgerEntry.tenant_id == bindparam("t"),
    LedgerEntry.customer_id == bindparam("c"),
    LedgerEntry.kind == "earn",
)


def last_earning_at(session: Session, tenant_id: int, customer_id: int) -> datetime | None:
    """When this customer last earned at this merchant (the 'recent visit' check)."""
    return session.scalar(_LAST_EARNING, {"t": tenant_id, "c": customer_id})
