"""A customer's standing in every program they belong to: balance and next reward.
Shared by the public lookup (seed 000) and the bot's "puntos" answer."""

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from time import monotonic
from typing import Any, TypeVar

from sqlalchemy import Select, and_, bindparam, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from fidelia.kit.db import Database, any_of, once_more_if_stale, rows_now
from fidelia.ledger.service import POINTS, Account, balance
from fidelia.models import Balance, Customer, CustomerIdentifier, Program, Reward, Tenant
from fidelia.rewards.service import active_rewards, next_reward

T = TypeVar("T", Program, Tenant, Reward, Customer)


@dataclass(frozen=True)
class Standing:
    program: Program
    tenants: list[Tenant]
    customer: Customer
    points: int
    next: tuple[Reward, int] | None

    @property
    def is_group(self) -> bool:
        return self.program.kind == "group"

    @property
    def name(self) -> str:
        return self.program.name if self.is_group else self.tenants[0].name


@dataclass(frozen=True)
class Catalog:
    """What a standing shows besides the balance: the program, its merchants and their
    active rewards."""

    program: Program
    tenants: list[Tenant]
    rewards: list[Reward]


def read_catalog(session: Session, program_id: int) -> Catalog:
    program = session.get_one(Program, program_id)
    tenants = list(
        session.scalars(select(Tenant).where(Tenant.program_id == program_id).order_by(Tenant.id))
    )
    return Catalog(program, tenants, active_rewards(session, [t.id for t in tenants]))


class CatalogCache:
    """Catalogs kept ``ttl`` seconds (``FIDELIA_TENANT_CACHE_SECONDS``, like every merchant
    setting), so a lookup or a credit's reply reads only the customer's own rows, not three
    more queries for data that changes a few times a day. ``ttl`` 0: no cache.

    A miss reads in the caller's session, as without a cache (so with many merchants and
    few requests each, it costs nothing extra), and keeps *copies* of the rows: objects of
    no session, which other requests' threads can read safely."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[int, tuple[float, Catalog]] = {}

    def get(self, session: Session, program_id: int) -> Catalog:
        hit = self._entries.get(program_id)
        if hit is not None and monotonic() - hit[0] < self.ttl:
            return hit[1]
        catalog = read_catalog(session, program_id)
        if self.ttl > 0:
            if len(self._entries) > 10_000:
                self._entries.clear()
            twin = Catalog(
                _copy(catalog.program),
                [_copy(t) for t in catalog.tenants],
                [_copy(r) for r in catalog.rewards],
            )
            self._entries[program_id] = (monotonic(), twin)
        return catalog

    def fresh(self, program_id: int) -> Catalog | None:
        """The catalog if this cache holds it fresh, without reading (no session)."""
        hit = self._entries.get(program_id)
        if hit is not None and monotonic() - hit[0] < self.ttl:
            return hit[1]
        return None

    def keep(self, catalogs: dict[int, Catalog]) -> None:
        """Hold ``catalogs`` (copies in no session, as ``read_catalogs`` gives) as read now."""
        if self.ttl <= 0:
            return
        if len(self._entries) + len(catalogs) > 10_000:
            self._entries.clear()
        at = monotonic()
        for program_id, catalog in catalogs.items():
            self._entries[program_id] = (at, catalog)

    def prefetch(self, session: Session, program_ids: Iterable[int]) -> None:
        """Read at once the catalogs of ``program_ids`` this cache does not hold fresh: three
        statements for a whole batch, where ``get`` would take three for each program
        (the worker's credits spread over many merchants missed on most of them)."""
        if self.ttl <= 0:
            return
        at = monotonic()
        wanted = sorted(
            {
                p
                for p in program_ids
                if (hit := self._entries.get(p)) is None or at - hit[0] >= self.ttl
            }
        )
        if wanted:
            self.keep(read_catalogs(session, wanted))


def _catalog_reads(dialect: str) -> tuple[Select[Any], Select[Any], Select[Any]]:
    """``read_catalogs``' three statements, built once per dialect: PostgreSQL's lists are
    arrays (``kit/db.any_of``: one text whatever the number of programs), SQLite's
    expanding ``IN`` lists."""

    def among(column: Any, name: str) -> Any:
        if dialect == "postgresql":
            return any_of(column, name)
        return column.in_(bindparam(name, expanding=True))

    return (
        select(*_columns(Program)).where(among(Program.id, "programs")),
        select(*_columns(Tenant)).where(among(Tenant.program_id, "programs")).order_by(Tenant.id),
        select(*_columns(Reward))  # the rewards ``active_rewards`` reads
        .where(among(Reward.tenant_id, "tenants"), Reward.active.is_(True))
        .order_by(Reward.points_required, Reward.id),
    )


def read_catalogs(session: Session, program_ids: list[int]) -> dict[int, Catalog]:
    """``read_catalog`` of several programs in three statements, as copies in no session.
    Column rows, not entities: loading each row into the session and copying it cost as
    much as the reads (the worker's credits over 1,000 merchants refresh a catalog for
    most credits, their cache's 2 s being shorter than the time between two credits of one
    merchant)."""
    read_programs, read_tenants, read_rewards = _CATALOG_READS[session.get_bind().dialect.name]
    wanted = {"programs": list(program_ids)}
    programs = {p.id: p for p in _twins(session, Program, read_programs, wanted)}
    tenants: dict[int, list[Tenant]] = {p: [] for p in programs}
    program_of: dict[int, int] = {}
    for tenant in _twins(session, Tenant, read_tenants, wanted):
        tenants[tenant.program_id].append(tenant)
        program_of[tenant.id] = tenant.program_id
    rewards: dict[int, list[Reward]] = {p: [] for p in programs}
    for reward in _twins(session, Reward, read_rewards, {"tenants": list(program_of)}):
        rewards[program_of[reward.tenant_id]].append(reward)
    return {p: Catalog(programs[p], tenants[p], rewards[p]) for p in programs}


def _keys(model: type[T]) -> list[str]:
    return [attr.key for attr in sa_inspect(model).column_attrs]


def _columns(model: type[T]) -> list[Any]:
    return [getattr(model, key) for key in _keys(model)]


def _twins(
    session: Session, model: type[T], statement: Select[Any], params: dict[str, Any]
) -> list[T]:
    keys = _keys(model)
    rows = session.execute(statement, params)
    return [_twin(model, zip(keys, row, strict=True)) for row in rows]


def _twin(model: type[T], values: Iterable[tuple[str, Any]]) -> T:
    """A transient row of ``model`` holding ``values``, in no session: made as the ORM
    makes the rows it loads (its ``__init__`` and attribute events skipped), and read as
    any other (its attributes are the values stored)."""
    row: T = sa_inspect(model).class_manager.new_instance()
    row.__dict__.update(values)
    return row


def _copy(row: T) -> T:
    """A transient twin of a loaded row: its column values, in no session."""
    return _twin(type(row), ((key, getattr(row, key)) for key in _keys(type(row))))


# Built once the columns' helpers above exist.
_CATALOG_READS = {dialect: _catalog_reads(dialect) for dialect in ("sqlite", "postgresql")}


def standing_in(
    session: Session,
    customer: Customer,
    points: int | None = None,
    catalogs: CatalogCache | None = None,
) -> Standing:
    """``points``: the balance when the caller has just read it (a credit returns it)."""
    if catalogs is not None:
        catalog = catalogs.get(session, customer.program_id)
    else:
        catalog = read_catalog(session, customer.program_id)
    if points is None:
        points = balance(session, Account(customer.program_id, customer.id))
    return Standing(
        catalog.program,
        catalog.tenants,
        customer,
        points,
        next_reward(catalog.rewards, points),
    )


# The same identifier in every program (seed 000's public lookup), each customer with
# their balance: one statement, built once.
_EVERYWHERE = (
    select(Customer, Balance.amount)
    .join(CustomerIdentifier, CustomerIdentifier.customer_id == Customer.id)
    .outerjoin(
        Balance,
        and_(
            Balance.program_id == Customer.program_id,
            Balance.customer_id == Customer.id,
            Balance.account == POINTS,
        ),
    )
    .where(
        CustomerIdentifier.kind == bindparam("kind"),
        CustomerIdentifier.value == bindparam("value"),
    )
    .order_by(Customer.id)
)


def standings(
    session: Session, kind: str, value: str, catalogs: CatalogCache | None = None
) -> list[Standing]:
    """The identifier's standing in every program (the public lookup of seed 000, the bot's
    "puntos"): its customers with their balances in one round trip, the rest from the
    catalogs."""
    rows = session.execute(_EVERYWHERE, {"kind": kind, "value": value}).all()
    return [standing_in(session, customer, int(amount or 0), catalogs) for customer, amount in rows]


# ``_EVERYWHERE`` as column rows: the customer's columns, then the balance.
_EVERYWHERE_ROWS = _EVERYWHERE.with_only_columns(*_columns(Customer), Balance.amount)
_CUSTOMER_KEYS = _keys(Customer)


async def standings_now(
    db: Database,
    kind: str,
    value: str,
    catalogs: CatalogCache,
    read: Callable[[list[int]], Awaitable[dict[int, Catalog]]],
) -> list[Standing]:
    """PostgreSQL, from the event loop: ``standings`` as ONE statement on the async engine
    in autocommit (no worker thread, no ``BEGIN``/``COMMIT``, no ORM entities: the customers
    are transient twins). The catalogs from ``catalogs``; those it does not hold fresh are
    read by ``read`` (``read_catalogs`` in a worker thread: three statements whatever their
    number) and kept. A read, so sent once more on a connection the server had dropped
    (``once_more_if_stale``)."""

    def rows() -> Awaitable[list[Any]]:  # on the driver's connection: see ``rows_now``
        return rows_now(db, _EVERYWHERE_ROWS, {"kind": kind, "value": value})

    found = []
    for *columns, amount in await once_more_if_stale(rows):
        found.append((_twin(Customer, zip(_CUSTOMER_KEYS, columns, strict=True)), int(amount or 0)))
    held = {customer.program_id: catalogs.fresh(customer.program_id) for customer, _ in found}
    missing = sorted(p for p, catalog in held.items() if catalog is None)
    if missing:
        read_now = await read(missing)
        catalogs.keep(read_now)
        held.update(read_now)
    return [
        Standing(
            catalog.program, catalog.tenants, customer, points, next_reward(catalog.rewards, points)
        )
        for customer, points in found
        if (catalog := held.get(customer.program_id)) is not None
    ]
