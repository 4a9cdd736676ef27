"""Daily rollups: each merchant's figures per day (in its own time zone), folded in by the
worker from the rows written since a watermark, so the dashboard reads a few rollup rows
and never scans the ledger.

Sources, each with its watermark (the last id folded in, a row of ``markers``):

- ``ledger``: points and cashback issued (kind ``earn``), redeemed (kind ``redeem``: rewards
  and loyalty payments) and net (every movement: reverses and expiries too, so the sum of
  a program's nets is its outstanding balance); PINs activated (earn entries of a PIN);
  member sales (completed orders, POS or retail, counted once on their first earn entry);
  the customer's active day (earn or redeem) and sales (PINs and orders);
- ``pins``: PINs issued;
- ``customers``: new customers (at the merchant where they joined);
- ``redemptions``: redemptions and, per reward, the top rewards.

Ids are handed out when a row is inserted but become visible when its transaction commits,
so a row with a smaller id can appear after a larger one was folded. Rows are therefore
folded only once they are ``SETTLE`` old, in id order, stopping at the first younger one: a
transaction shorter than that can never be skipped. ``rebuild`` recomputes everything up to
the watermarks from the source rows (``fidelia rollups rebuild``). Concurrent workers take
the watermark rows' locks (FOR UPDATE on PostgreSQL; SQLite has one writer), so nothing is
folded twice.

A batch costs a few statements whatever its size: its rows read as plain column rows (no
entities), its increments summed per key in Python, then written with one upsert per
rollup table (PostgreSQL: array parameters unnested; SQLite: an executemany), rows in key
order, so folds of two sources adding to the same rollup rows lock them in the same
order."""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Table,
    any_,
    bindparam,
    delete,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from fidelia.kit.clock import now
from fidelia.kit.db import Database, insert_for
from fidelia.models import (
    Customer,
    CustomerDay,
    DailyRollup,
    LedgerEntry,
    Marker,
    Order,
    Pin,
    Redemption,
    RewardDay,
    Tenant,
)

SETTLE = timedelta(seconds=60)
BATCH = 5000
SOURCES: dict[str, Any] = {
    "ledger": LedgerEntry,
    "pins": Pin,
    "customers": Customer,
    "redemptions": Redemption,
}
# The columns a fold reads of each source, read as plain rows (no entities): id and
# created_at first (the watermark and the settle cutoff), then what ``fold_rows`` unpacks.
COLUMNS: dict[str, tuple[Any, ...]] = {
    "ledger": (
        LedgerEntry.id,
        LedgerEntry.created_at,
        LedgerEntry.tenant_id,
        LedgerEntry.customer_id,
        LedgerEntry.account,
        LedgerEntry.kind,
        LedgerEntry.amount,
        LedgerEntry.source_type,
        LedgerEntry.source_id,
    ),
    "pins": (Pin.id, Pin.created_at, Pin.tenant_id),
    "customers": (Customer.id, Customer.created_at, Customer.tenant_id),
    "redemptions": (
        Redemption.id,
        Redemption.created_at,
        Redemption.tenant_id,
        Redemption.reward_id,
        Redemption.points,
    ),
}
COUNTERS = (
    "points_issued",
    "points_redeemed",
    "points_net",
    "cashback_issued",
    "cashback_redeemed",
    "cashback_net",
    "pins_issued",
    "pins_activated",
    "new_customers",
    "redemptions",
    "member_orders",
    "member_sales",
)
_AT = {name: k for k, name in enumerate(COUNTERS)}
# (issued, redeemed, net) of each account's ledger entries
_ACCOUNT = {
    "points": (_AT["points_issued"], _AT["points_redeemed"], _AT["points_net"]),
    "cashback": (_AT["cashback_issued"], _AT["cashback_redeemed"], _AT["cashback_net"]),
}


def marker_name(source: str) -> str:
    return f"rollup.{source}"


@dataclass
class Fold:
    """Increments gathered from a batch of rows, written with one statement per table:
    a day's counters in ``COUNTERS`` order, a customer-day's sales, a reward-day's
    (redemptions, points)."""

    days: dict[tuple[int, date], list[int]]
    customers: dict[tuple[int, date, int], int]
    rewards: dict[tuple[int, date, int], list[int]]

    @classmethod
    def empty(cls) -> "Fold":
        return cls(
            defaultdict(lambda: [0] * len(COUNTERS)),
            defaultdict(int),
            defaultdict(lambda: [0, 0]),
        )


class Zones:
    """Each merchant's time zone and program, read once per batch."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._known: dict[int, tuple[ZoneInfo, int]] = {}

    def load(self, tenant_ids: Iterable[int]) -> None:
        missing = set(tenant_ids) - set(self._known)
        if missing:
            rows = self.session.execute(
                select(Tenant.id, Tenant.timezone, Tenant.program_id).where(Tenant.id.in_(missing))
            )
            for tenant_id, zone, program_id in rows:
                self._known[tenant_id] = (ZoneInfo(zone), program_id)

    def day(self, tenant_id: int, moment: datetime) -> date:
        return moment.astimezone(self._known[tenant_id][0]).date()

    def program(self, tenant_id: int) -> int:
        return self._known[tenant_id][1]


def local_day(moment: datetime, zone: str) -> date:
    return moment.astimezone(ZoneInfo(zone)).date()


# -- folding rows ---------------------------------------------------------------------------


def _order_figures(session: Session, order_ids: set[int]) -> dict[int, tuple[int, int]]:
    """(total, earned points) of the orders, in one statement whatever their number
    (PostgreSQL: an array parameter, so the text is the same for every batch)."""
    if not order_ids:
        return {}
    query = select(Order.id, Order.total, Order.earned_points)
    if session.get_bind().dialect.name == "postgresql":
        query = query.where(Order.id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
        found = session.execute(query, {"ids": sorted(order_ids)})
    else:
        found = session.execute(query.where(Order.id.in_(order_ids)))
    return {oid: (total, points) for oid, total, points in found}


def _fold_ledger(session: Session, rows: Sequence[Any], zones: Zones, fold: Fold) -> None:
    orders = _order_figures(
        session, {int(row[8]) for row in rows if row[7] == "order" and row[5] == "earn"}
    )
    days, customers, day_of = fold.days, fold.customers, zones.day
    activated, member_orders, member_sales = (
        _AT["pins_activated"],
        _AT["member_orders"],
        _AT["member_sales"],
    )
    for _id, created_at, tenant_id, customer_id, account, kind, amount, source, ref in rows:
        day = day_of(tenant_id, created_at)
        counters = days[(tenant_id, day)]
        issued, redeemed, net = _ACCOUNT["points" if account == "points" else "cashback"]
        counters[net] += amount
        if kind == "earn":
            counters[issued] += amount
            sale = 0
            if source == "pin":
                counters[activated] += 1
                sale = 1
            elif source == "order":
                total, earned_points = orders.get(int(ref), (0, 0))
                # An order earning points and cashback has two entries: count it on one.
                if account == ("points" if earned_points > 0 else "cashback"):
                    counters[member_orders] += 1
                    counters[member_sales] += total
                    sale = 1
            customers[(tenant_id, day, customer_id)] += sale
        elif kind == "redeem":
            counters[redeemed] -= amount
            customers[(tenant_id, day, customer_id)] += 0


def _fold_count(rows: Sequence[Any], zones: Zones, fold: Fold, counter: str) -> None:
    """PINs issued, new customers: one each, on its merchant's day."""
    at, days, day_of = _AT[counter], fold.days, zones.day
    for _id, created_at, tenant_id in rows:
        days[(tenant_id, day_of(tenant_id, created_at))][at] += 1


def _fold_redemptions(rows: Sequence[Any], zones: Zones, fold: Fold) -> None:
    at, days, rewards, day_of = _AT["redemptions"], fold.days, fold.rewards, zones.day
    for _id, created_at, tenant_id, reward_id, points in rows:
        day = day_of(tenant_id, created_at)
        days[(tenant_id, day)][at] += 1
        reward = rewards[(tenant_id, day, reward_id)]
        reward[0] += 1
        reward[1] += points


def fold_rows(session: Session, source: str, rows: Sequence[Any], zones: Zones) -> Fold:
    """The increments of ``rows``: tuples of ``COLUMNS[source]``."""
    zones.load({row[2] for row in rows})
    fold = Fold.empty()
    if source == "ledger":
        _fold_ledger(session, rows, zones, fold)
    elif source == "pins":
        _fold_count(rows, zones, fold, "pins_issued")
    elif source == "customers":
        _fold_count(rows, zones, fold, "new_customers")
    else:
        _fold_redemptions(rows, zones, fold)
    return fold


# -- writing the increments -----------------------------------------------------------------


class _Upsert:
    """A rollup table's upsert of increments, built once: ``keys`` (the primary key, the
    day second), ``added`` (the columns added to), ``kept`` (written on insert only). Rows
    are tuples of ``columns``, sorted by key: two folds of different sources adding to the
    same rows lock them in the same order."""

    def __init__(
        self, table: Any, keys: tuple[str, ...], added: tuple[str, ...], kept: tuple[str, ...] = ()
    ) -> None:
        self.columns = keys + kept + added
        names, on = ", ".join(self.columns), ", ".join(keys)
        name = table.__tablename__
        update = ", ".join(f"{c} = {name}.{c} + excluded.{c}" for c in added)
        # PostgreSQL: each column an array parameter, unnested, so the text (and the
        # prepared statement) is the same whatever the batch; one statement for all rows.
        arrays = ", ".join(
            f"CAST(:{c} AS {'DATE' if c == 'day' else 'BIGINT'}[])" for c in self.columns
        )
        self.postgresql = text(
            f"INSERT INTO {name} ({names}) SELECT {names} FROM unnest({arrays}) AS u({names}) "
            f"ORDER BY {on} ON CONFLICT ({on}) DO UPDATE SET {update}"
        )
        # SQLite: the driver's executemany of the one-row upsert, positional parameters
        # (the day as SQLAlchemy stores a Date there: ISO text). Half the CPU of the same
        # executemany through SQLAlchemy's parameter processing, and no more than one
        # statement reading the rows from a JSON array (json_each).
        marks = ", ".join("?" * len(self.columns))
        self.sqlite = (
            f"INSERT INTO {name} ({names}) VALUES ({marks}) "
            f"ON CONFLICT ({on}) DO UPDATE SET {update}"
        )

    def run(self, session: Session, rows: list[tuple[Any, ...]]) -> None:
        """Add ``rows`` in one statement."""
        if not rows:
            return
        if session.get_bind().dialect.name == "sqlite":
            session.connection().exec_driver_sql(
                self.sqlite, [(row[0], row[1].isoformat(), *row[2:]) for row in rows]
            )
        else:
            columns = zip(*rows, strict=True)
            session.execute(
                self.postgresql, dict(zip(self.columns, map(list, columns), strict=True))
            )


_DAYS = _Upsert(DailyRollup, ("tenant_id", "day"), COUNTERS, ("program_id",))
_CUSTOMERS = _Upsert(CustomerDay, ("tenant_id", "day", "customer_id"), ("sales",))
_REWARDS = _Upsert(RewardDay, ("tenant_id", "day", "reward_id"), ("redemptions", "points"))


def write(session: Session, fold: Fold, zones: Zones) -> None:
    """Add the fold's increments to the rollup rows (created when missing): one statement
    per rollup table, whatever the number of rows folded."""
    program = zones.program
    _DAYS.run(session, [(t, d, program(t), *fold.days[(t, d)]) for t, d in sorted(fold.days)])
    _CUSTOMERS.run(session, [(*key, fold.customers[key]) for key in sorted(fold.customers)])
    _REWARDS.run(session, [(*key, *fold.rewards[key]) for key in sorted(fold.rewards)])


# -- watermarks -----------------------------------------------------------------------------


def _locked_marker(session: Session, name: str) -> int:
    """The watermark ``name`` (created at 0), its row locked until the transaction ends."""
    markers: Table = Marker.__table__  # type: ignore[assignment]
    insert = insert_for(session)
    session.execute(insert(markers).values(name=name, number=0).on_conflict_do_nothing())
    query = select(markers.c.number).where(markers.c.name == name)
    if session.get_bind().dialect.name != "sqlite":
        query = query.with_for_update()
    number = session.scalar(query)
    assert number is not None
    return int(number)


def _move_marker(session: Session, name: str, number: int) -> None:
    markers: Table = Marker.__table__  # type: ignore[assignment]
    session.execute(markers.update().where(markers.c.name == name).values(number=number, at=now()))


def _source_rows(
    session: Session,
    source: str,
    after: int,
    batch: int,
    up_to: int | None = None,
    tenant_id: int | None = None,
) -> Sequence[Any]:
    """The next ``batch`` rows of ``source`` with an id above ``after`` (up to ``up_to``,
    of one merchant), in id order, as tuples of ``COLUMNS[source]``."""
    model = SOURCES[source]
    query = select(*COLUMNS[source]).where(model.id > after)
    if up_to is not None:
        query = query.where(model.id <= up_to)
    if tenant_id is not None:
        query = query.where(model.tenant_id == tenant_id)
    return session.execute(query.order_by(model.id).limit(batch)).all()


def fold_batch(
    session: Session, source: str, settle: timedelta = SETTLE, batch: int = BATCH
) -> int:
    """Fold the next rows of ``source`` past its watermark; returns how many."""
    name = marker_name(source)
    mark = _locked_marker(session, name)
    cutoff = now() - settle
    rows = _source_rows(session, source, mark, batch)
    ready = len(rows)
    for k, row in enumerate(rows):
        if row[1] > cutoff:
            ready = k  # younger rows (and any older one still uncommitted) wait for a later round
            break
    if not ready:
        return 0
    rows = rows[:ready]
    zones = Zones(session)
    write(session, fold_rows(session, source, rows, zones), zones)
    _move_marker(session, name, rows[-1][0])
    return ready


def update(db: Database, settle: timedelta = SETTLE, batch: int = BATCH) -> int:
    """Fold everything that has settled, one transaction per batch (the worker's hook)."""
    total = 0
    for source in SOURCES:
        while True:
            with db.session() as session:
                folded = fold_batch(session, source, settle, batch)
            total += folded
            if folded < batch:
                break
    return total


def rebuild(
    db: Database, tenant_id: int | None = None, settle: timedelta = SETTLE, batch: int = BATCH
) -> int:
    """Recompute the rollups (of one merchant, or all) from the source rows up to the
    watermarks, in one transaction, then catch up with ``update``. Returns rows read."""
    read = 0
    with db.session() as session:
        marks = {s: _locked_marker(session, marker_name(s)) for s in SOURCES}
        for table in (DailyRollup, CustomerDay, RewardDay):
            removal = delete(table)
            if tenant_id is not None:
                removal = removal.where(table.tenant_id == tenant_id)
            session.execute(removal)
        zones = Zones(session)
        for source in SOURCES:
            last = 0
            while True:
                rows = _source_rows(session, source, last, batch, marks[source], tenant_id)
                if not rows:
                    break
                write(session, fold_rows(session, source, rows, zones), zones)
                read += len(rows)
                last = rows[-1][0]
    return read + update(db, settle, batch)
