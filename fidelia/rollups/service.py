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
folded twice."""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
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


def marker_name(source: str) -> str:
    return f"rollup.{source}"


@dataclass
class Fold:
    """Increments gathered from a batch of rows, written with one upsert per key."""

    days: dict[tuple[int, date], dict[str, int]]
    customers: dict[tuple[int, date, int], int]
    rewards: dict[tuple[int, date, int], list[int]]

    @classmethod
    def empty(cls) -> "Fold":
        return cls(
            defaultdict(lambda: defaultdict(int)), defaultdict(int), defaultdict(lambda: [0, 0])
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


def _fold_ledger(session: Session, rows: list[LedgerEntry], zones: Zones, fold: Fold) -> None:
    order_ids = {int(e.source_id) for e in rows if e.source_type == "order" and e.kind == "earn"}
    orders = {}
    if order_ids:
        found = session.execute(
            select(Order.id, Order.total, Order.earned_points).where(Order.id.in_(order_ids))
        )
        orders = {oid: (total, points) for oid, total, points in found}
    for entry in rows:
        day = zones.day(entry.tenant_id, entry.created_at)
        counters = fold.days[(entry.tenant_id, day)]
        account = "points" if entry.account == "points" else "cashback"
        counters[f"{account}_net"] += entry.amount
        if entry.kind == "earn":
            counters[f"{account}_issued"] += entry.amount
        elif entry.kind == "redeem":
            counters[f"{account}_redeemed"] -= entry.amount
        sale = False
        if entry.kind == "earn" and entry.source_type == "pin":
            counters["pins_activated"] += 1
            sale = True
        elif entry.kind == "earn" and entry.source_type == "order":
            total, earned_points = orders.get(int(entry.source_id), (0, 0))
            # An order earning points and cashback has two entries: count it on one.
            if entry.account == ("points" if earned_points > 0 else "cashback"):
                counters["member_orders"] += 1
                counters["member_sales"] += total
                sale = True
        if entry.kind in ("earn", "redeem"):
            fold.customers[(entry.tenant_id, day, entry.customer_id)] += 1 if sale else 0


def _fold_pins(rows: list[Pin], zones: Zones, fold: Fold) -> None:
    for pin in rows:
        fold.days[(pin.tenant_id, zones.day(pin.tenant_id, pin.created_at))]["pins_issued"] += 1


def _fold_customers(rows: list[Customer], zones: Zones, fold: Fold) -> None:
    for customer in rows:
        day = zones.day(customer.tenant_id, customer.created_at)
        fold.days[(customer.tenant_id, day)]["new_customers"] += 1


def _fold_redemptions(rows: list[Redemption], zones: Zones, fold: Fold) -> None:
    for redemption in rows:
        day = zones.day(redemption.tenant_id, redemption.created_at)
        fold.days[(redemption.tenant_id, day)]["redemptions"] += 1
        reward = fold.rewards[(redemption.tenant_id, day, redemption.reward_id)]
        reward[0] += 1
        reward[1] += redemption.points


def fold_rows(session: Session, source: str, rows: list[Any], zones: Zones) -> Fold:
    zones.load({row.tenant_id for row in rows})
    fold = Fold.empty()
    if source == "ledger":
        _fold_ledger(session, rows, zones, fold)
    elif source == "pins":
        _fold_pins(rows, zones, fold)
    elif source == "customers":
        _fold_customers(rows, zones, fold)
    else:
        _fold_redemptions(rows, zones, fold)
    return fold


def write(session: Session, fold: Fold, zones: Zones) -> None:
    """Add the fold's increments to the rollup rows (created when missing)."""
    insert = insert_for(session)
    for (tenant_id, day), counters in fold.days.items():
        values = {name: int(counters.get(name, 0)) for name in COUNTERS}
        stmt = insert(DailyRollup).values(
            tenant_id=tenant_id, day=day, program_id=zones.program(tenant_id), **values
        )
        changed = {name: getattr(DailyRollup, name) + stmt.excluded[name] for name in values}
        session.execute(
            stmt.on_conflict_do_update(index_elements=["tenant_id", "day"], set_=changed)
        )
    for (tenant_id, day, customer_id), sales in fold.customers.items():
        stmt = insert(CustomerDay).values(
            tenant_id=tenant_id, day=day, customer_id=customer_id, sales=sales
        )
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["tenant_id", "day", "customer_id"],
                set_={"sales": CustomerDay.sales + stmt.excluded.sales},
            )
        )
    for (tenant_id, day, reward_id), (count, points) in fold.rewards.items():
        stmt = insert(RewardDay).values(
            tenant_id=tenant_id, day=day, reward_id=reward_id, redemptions=count, points=points
        )
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["tenant_id", "day", "reward_id"],
                set_={
                    "redemptions": RewardDay.redemptions + stmt.excluded.redemptions,
                    "points": RewardDay.points + stmt.excluded.points,
                },
            )
        )


# -- watermarks -----------------------------------------------------------------------------


def _locked_marker(session: Session, name: str) -> Marker:
    insert = insert_for(session)
    session.execute(insert(Marker).values(name=name, number=0).on_conflict_do_nothing())
    query = select(Marker).where(Marker.name == name)
    if session.get_bind().dialect.name != "sqlite":
        query = query.with_for_update()
    marker = session.scalar(query)
    assert marker is not None
    session.refresh(marker)
    return marker


def fold_batch(
    session: Session, source: str, settle: timedelta = SETTLE, batch: int = BATCH
) -> int:
    """Fold the next rows of ``source`` past its watermark; returns how many."""
    model = SOURCES[source]
    marker = _locked_marker(session, marker_name(source))
    cutoff = now() - settle
    rows = list(
        session.scalars(
            select(model).where(model.id > marker.number).order_by(model.id).limit(batch)
        )
    )
    ready = []
    for row in rows:
        if row.created_at > cutoff:
            break  # younger rows (and any older one still uncommitted) wait for a later round
        ready.append(row)
    if not ready:
        return 0
    zones = Zones(session)
    write(session, fold_rows(session, source, ready, zones), zones)
    marker.number = ready[-1].id
    marker.at = now()
    session.flush()
    return len(ready)


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
        marks = {s: _locked_marker(session, marker_name(s)).number for s in SOURCES}
        for table in (DailyRollup, CustomerDay, RewardDay):
            removal = delete(table)
            if tenant_id is not None:
                removal = removal.where(table.tenant_id == tenant_id)
            session.execute(removal)
        zones = Zones(session)
        for source, model in SOURCES.items():
            last = 0
            while True:
                query = (
                    select(model)
                    .where(model.id > last, model.id <= marks[source])
                    .order_by(model.id)
                    .limit(batch)
                )
                if tenant_id is not None:
                    query = query.where(model.tenant_id == tenant_id)
                rows = list(session.scalars(query))
                if not rows:
                    break
                write(session, fold_rows(session, source, rows, zones), zones)
                read += len(rows)
                last = rows[-1].id
                session.expunge_all()  # constant memory over a large ledger
    return read + update(db, settle, batch)
