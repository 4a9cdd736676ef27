"""Bulk-load benchmark data straight into the tables (COPY on PostgreSQL, executemany on
SQLite), never through the API: 1M ledger entries in seconds, not hours.

The data is what the engine itself would have written: every balance equals the sum of
its entries and each entry's ``balance_after`` chains, customers are linked to a WhatsApp
contact with a name (so a credit takes the steady-state path: known sender, known
customer), and each customer's newest entry is recent, so the "recent visit" check of a
redemption passes. Seeding only ever adds; a :class:`Dataset` remembers what is there.
"""

import random
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from fidelia.kit.names import fold
from fidelia.kit.security import digest, new_secret

NAMESPACE = "50600000000"  # the platform's shared bot number (FIDELIA_BOT_NUMBER default)
WELCOME_POINTS = 1_000_000  # enough for every redemption a run can make
LOT_POINTS = 10
REWARD_POINTS = 10
POINTS_PER_PIN = 10


@dataclass(frozen=True)
class Customer:
    id: int
    program_id: int
    tenant_id: int
    number: str  # E.164


@dataclass(frozen=True)
class Merchant:
    id: int
    program_id: int
    api_key: str
    reward_id: int
    token: str = ""  # the public half of the API credential (POS Basic auth, /v2 tokens)


@dataclass(frozen=True)
class PoolPin:
    """A fresh open PIN and the existing customer who will send it."""

    id: int
    code: str
    customer: Customer


@dataclass
class Dataset:
    merchants: list[Merchant] = field(default_factory=list)
    customers: dict[int, list[Customer]] = field(default_factory=dict)  # by tenant id
    ledger_entries: int = 0
    next_number: int = 0

    def all_customers(self) -> list[Customer]:
        return [c for group in self.customers.values() for c in group]


class Loader:
    """One connection, COPY (PostgreSQL) or executemany (SQLite), explicit ids."""

    def __init__(self, url: str) -> None:
        self.pg = not url.startswith("sqlite")
        self._explicit_ids: set[str] = set()
        self.conn: Any
        if self.pg:
            self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        else:
            self.conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA busy_timeout=30000")

    def ts(self, at: datetime) -> Any:
        """A timestamp as each database stores it (SQLite: naive UTC text, like SQLAlchemy)."""
        if self.pg:
            return at
        return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def _begin(self) -> None:
        if not self.pg and not self.conn.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")

    def scalar(self, sql: str, *params: Any) -> Any:
        self._begin()
        if self.pg:
            row = self.conn.execute(sql.replace("?", "%s"), params).fetchone()
        else:
            row = self.conn.execute(sql, params).fetchone()
        return row[0] if row else None

    def execute(self, sql: str, *params: Any) -> int:
        self._begin()
        if self.pg:
            return int(self.conn.execute(sql.replace("?", "%s"), params).rowcount)
        return int(self.conn.execute(sql, params).rowcount)

    def next_id(self, table: str) -> int:
        """Past every id in use, and on PostgreSQL past every id the sequence handed out
        (a running server may be about to commit one)."""
        if self.pg:
            return int(
                self.scalar(
                    f"SELECT GREATEST(COALESCE(MAX(id), 0), (SELECT last_value FROM "
                    f"{_sequence(table)})) + 1 FROM {table}"
                )
            )
        return int(self.scalar(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}"))

    def insert(self, table: str, columns: tuple[str, ...], rows: Iterable[tuple[Any, ...]]) -> int:
        count = 0
        self._begin()
        if "id" in columns:
            self._explicit_ids.add(table)
        if self.pg:
            with self.conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
                for row in rows:
                    cp.write_row(row)
                    count += 1
        else:
            marks = ", ".join("?" * len(columns))
            cur = self.conn.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
            )
            count = cur.rowcount
        return count

    def commit(self) -> None:
        """Commit, and move PostgreSQL's id sequences past the ids we chose (never back:
        a running server's uncommitted rows hold ids past the committed maximum)."""
        if self.pg:
            for table in sorted(self._explicit_ids):
                seq = _sequence(table)
                self.conn.execute(
                    f"SELECT setval('{seq}', GREATEST((SELECT COALESCE(MAX(id), 1) FROM "
                    f"{table}), (SELECT last_value FROM {seq})))"
                )
            self._explicit_ids.clear()
            self.conn.commit()
        elif self.conn.in_transaction:
            self.conn.execute("COMMIT")

    def analyze(self, vacuum: bool = False, table: str = "", among: tuple[str, ...] = ()) -> None:
        """Fresh planner statistics after a bulk load (as autovacuum would soon make); with
        ``vacuum``, PostgreSQL's visibility map too: autovacuum vacuums a table after
        millions of inserts, and on the bench's two cores that pass would run during the
        next measurement.

        On PostgreSQL only the tables that hold rows, as autovacuum does (it never visits a
        table nothing was written to). A table analyzed empty is planned as empty: a
        prepared statement's generic plan made then (the idempotency row's ``UPDATE ...
        WHERE id = $1``, an order found by its original id) scans the whole table for the
        rest of a run while it fills, where a table never analyzed is planned with
        PostgreSQL's ten-page guess and its index. Every measured app (Fidelia and the
        floor) paid that, which no shop running for more than a minute does. ``among``: only
        those of these tables that hold rows."""
        self.commit()
        if not self.pg:
            self.conn.execute(f"ANALYZE {table}".strip())
            self.commit()
            return
        tables = [table] if table else self._filled_tables()
        if among:
            tables = [name for name in tables if name in among]
        self.conn.autocommit = True
        try:
            for name in tables:
                self.conn.execute(f'{"VACUUM (ANALYZE)" if vacuum else "ANALYZE"} "{name}"')
        finally:
            self.conn.autocommit = False

    def _filled_tables(self) -> list[str]:
        names = [
            row[0]
            for row in self.conn.execute(
                "SELECT relname FROM pg_class WHERE relkind = 'r' "
                "AND relnamespace = 'public'::regnamespace ORDER BY relname"
            )
        ]
        filled = [
            n
            for n in names
            if self.conn.execute(f'SELECT EXISTS (SELECT FROM "{n}")').fetchone()[0]
        ]  # type: ignore[index]
        self.conn.commit()
        return filled

    def close(self) -> None:
        self.commit()
        self.conn.close()

    def __enter__(self) -> "Loader":
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            if self.pg:
                self.conn.rollback()
            elif self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self.conn.close()


def _sequence(table: str) -> str:
    return f"{table}_id_seq"  # SERIAL/BIGSERIAL naming, as the migrations create them


LEDGER_COLUMNS = (
    "id",
    "program_id",
    "tenant_id",
    "customer_id",
    "account",
    "kind",
    "amount",
    "balance_after",
    "source_type",
    "source_id",
    "remaining",
    "expires_at",
    "created_at",
)


def add_merchants(
    loader: Loader, data: Dataset, count: int, customers_each: int, entries_each: int = 1
) -> None:
    """``count`` merchants (program, merchant, API key, a 10-point reward), each with
    ``customers_each`` customers of ``entries_each`` ledger entries."""
    at = datetime.now(UTC)
    program_id = loader.next_id("programs")
    tenant_id = loader.next_id("tenants")
    key_id = loader.next_id("api_keys")
    reward_id = loader.next_id("rewards")
    programs, tenants, keys, rewards = [], [], [], []
    for k in range(count):
        pid, tid, rid = program_id + k, tenant_id + k, reward_id + k
        secret = new_secret("fk_live")
        token = new_secret("ftk", 12)
        programs.append((pid, f"Bench {tid}", "individual", None, loader.ts(at)))
        tenants.append(
            (tid, pid, f"bench-{tid}", f"Bench {tid}", "USD", "UTC", "es", 0, 30)
            # 1 point per currency unit spent (orders, retail transactions, /v2 sales)
            + (POINTS_PER_PIN, 30, None, 1000, 0, 0, 0, False, False, "", loader.ts(at))
        )
        keys.append((key_id + k, tid, token, digest(secret), secret[-4:], loader.ts(at)))
        rewards.append(
            (rid, tid, "Café gratis", "", REWARD_POINTS, "custom", 0, 0, None, True, None, True)
            + (loader.ts(at),)
        )
        data.merchants.append(Merchant(tid, pid, secret, rid, token))
        data.customers.setdefault(tid, [])
    loader.insert("programs", ("id", "name", "kind", "slug", "created_at"), programs)
    loader.insert(
        "tenants",
        (
            "id",
            "program_id",
            "slug",
            "name",
            "currency",
            "timezone",
            "locale",
            "min_purchase",
            "pin_lifetime_minutes",
            "points_per_pin",
            "verification_window_minutes",
            "bot_number",
            "earn_milli_points_per_unit",
            "point_value_milli_minor",
            "cashback_basis_points",
            "min_order_value",
            "should_validate_customer",
            "sandbox",
            "cors_origins",
            "created_at",
        ),
        tenants,
    )
    loader.insert(
        "api_keys", ("id", "tenant_id", "token", "secret_digest", "hint", "created_at"), keys
    )
    loader.insert(
        "rewards",
        (
            "id",
            "tenant_id",
            "title",
            "description",
            "points_required",
            "reward_type",
            "value",
            "min_purchase",
            "max_share_percent",
            "cumulative",
            "stock",
            "active",
            "created_at",
        ),
        rewards,
    )
    new = data.merchants[-count:]
    add_customers(loader, data, [m for m in new for _ in range(customers_each)], entries_each)


def add_customers(
    loader: Loader, data: Dataset, merchants: list[Merchant], entries_each: int
) -> None:
    """One new customer (and WhatsApp contact) per item of ``merchants``, each with a
    recent welcome lot and ``entries_each - 1`` older ones."""
    at = datetime.now(UTC)
    contact_id = loader.next_id("whatsapp_contacts")
    customer_id = loader.next_id("customers")
    ident_id = loader.next_id("customer_identifiers")
    entry_id = loader.next_id("ledger_entries")
    contacts, customers, idents, balances = [], [], [], []
    entries: list[tuple[Any, ...]] = []
    for k, merchant in enumerate(merchants):
        number = f"+506{80_000_000 + data.next_number}"
        data.next_number += 1
        cid = customer_id + k
        name = f"Cliente {cid}"
        contacts.append(
            (contact_id + k, number, None, name, "ready", merchant.id, loader.ts(at))
            + (loader.ts(at),)
        )
        customers.append((cid, merchant.program_id, merchant.id, name, fold(name), loader.ts(at)))
        idents.append((2 * k + ident_id, merchant.program_id, cid, "whatsapp", number))
        idents.append((2 * k + 1 + ident_id, merchant.program_id, cid, "cpf", cpf_of(cid)))
        total = 0
        for n in range(entries_each):
            amount = WELCOME_POINTS if n == 0 else LOT_POINTS
            when = at if n == 0 else at - timedelta(days=1 + n % 300, seconds=n)
            total += amount
            entries.append(
                (entry_id, merchant.program_id, merchant.id, cid, "points", "earn", amount)
                + (total, "seed", f"{cid}-{n}", amount, None, loader.ts(when))
            )
            entry_id += 1
        balances.append((merchant.program_id, cid, "points", total))
        data.customers[merchant.id].append(Customer(cid, merchant.program_id, merchant.id, number))
    loader.insert(
        "whatsapp_contacts",
        (
            "id",
            "wa_number",
            "wa_user_id",
            "name",
            "state",
            "last_tenant_id",
            "created_at",
            "updated_at",
        ),
        contacts,
    )
    loader.insert(
        "customers", ("id", "program_id", "tenant_id", "name", "name_key", "created_at"), customers
    )
    loader.insert(
        "customer_identifiers", ("id", "program_id", "customer_id", "kind", "value"), idents
    )
    loader.insert("balances", ("program_id", "customer_id", "account", "amount"), balances)
    data.ledger_entries += loader.insert("ledger_entries", LEDGER_COLUMNS, entries)
    if merchants:
        as_folded(loader, {"customers": customer_id + len(merchants) - 1, "ledger": entry_id - 1})


def as_folded(loader: Loader, last_ids: dict[str, int]) -> None:
    """Count the rows just seeded as already folded into the daily rollups: move the
    watermarks of these sources (``rollups/service.py``) to ``last_ids``, in the seeding
    transaction. Otherwise the running worker folds the seeded history (1M entries: a
    customer-day upsert each) on the bench's two cores during the measurements that
    follow, and every figure of those pays for it (the panel's 2.3 ms of worker CPU per
    request). The dashboard scenario writes the rollups it reads itself
    (``add_dashboard``). Rows the runs themselves wrote that the worker had not folded yet
    (under a minute old) are skipped with them: the bench never reads their rollups.

    The worker holds a watermark's row lock while it folds a batch (FOR UPDATE; SQLite has
    one writer): taking the same locks waits for its batch, and it folds from the new
    watermark once this transaction commits."""
    names = {f"rollup.{source}": last for source, last in last_ids.items()}
    for name in sorted(names):
        loader.execute(
            "INSERT INTO markers (name, number) VALUES (?, 0) ON CONFLICT DO NOTHING", name
        )
    if loader.pg:
        marks = ", ".join("?" * len(names))
        loader.execute(
            f"SELECT name FROM markers WHERE name IN ({marks}) ORDER BY name FOR UPDATE",
            *sorted(names),
        )
    for name, last in sorted(names.items()):
        loader.execute(
            "UPDATE markers SET number = ? WHERE name = ? AND number < ?", last, name, last
        )


def cpf_of(n: int) -> str:
    """A valid CPF (check digits right) made from ``n``: the POS doors find customers by it."""
    digits = [int(d) for d in f"{n % 10**9:09d}"]
    for size in (9, 10):
        total = sum(d * (size + 1 - i) for i, d in enumerate(digits[:size]))
        digits.append(0 if total % 11 < 2 else 11 - total % 11)
    return "".join(map(str, digits))


def grow_ledger(loader: Loader, data: Dataset, target: int, entries_each: int = 10) -> None:
    """Add customers of ``entries_each`` entries, spread over the merchants, until the
    ledger holds about ``target`` entries (seeded ones; runs add their own)."""
    missing = target - count_entries(loader)
    if missing <= 0:
        return
    n = max(1, missing // entries_each)
    # In chunks of a million entries: 10M rows built at once held 3.9 GB of Python objects.
    step = max(1, 1_000_000 // entries_each)
    for first in range(0, n, step):
        merchants = [
            data.merchants[k % len(data.merchants)] for k in range(first, min(n, first + step))
        ]
        add_customers(loader, data, merchants, entries_each)


def count_entries(loader: Loader) -> int:
    return int(loader.scalar("SELECT COUNT(*) FROM ledger_entries"))


def add_pin_pool(loader: Loader, data: Dataset, size: int, rng: random.Random) -> list[PoolPin]:
    """``size`` open 8-digit PINs, each for an existing customer: a merchant picked
    uniformly (so 1,000 merchants really means 1,000), then one of its customers."""
    at = datetime.now(UTC)
    first = loader.next_id("pins")
    taken = {
        row[0]
        for row in loader.conn.execute(
            "SELECT code FROM pins WHERE status = 'open' AND LENGTH(code) = 8"
        ).fetchall()
    }
    codes = [c for c in rng.sample(range(10_000_000, 100_000_000), size + len(taken))]
    codes = [c for c in codes if str(c) not in taken][:size]
    merchants = [m for m in data.merchants if data.customers.get(m.id)]
    pool, rows = [], []
    for k in range(size):
        merchant = rng.choice(merchants)
        customer = rng.choice(data.customers[merchant.id])
        code = str(codes[k])
        pool.append(PoolPin(first + k, code, customer))
        rows.append(
            # amount 1: tells the pool apart from PINs a run generates (they have none)
            (first + k, merchant.id, NAMESPACE, code, "open", 1, POINTS_PER_PIN)
            + (loader.ts(at), loader.ts(at + timedelta(minutes=30)))
        )
    loader.insert(
        "pins",
        (
            "id",
            "tenant_id",
            "namespace",
            "code",
            "status",
            "amount",
            "points",
            "created_at",
            "expires_at",
        ),
        rows,
    )
    return pool


def retire_pool(loader: Loader, pool: list[PoolPin]) -> int:
    """Expire what a run left unused, so later scenarios see only the open PINs that
    real traffic would leave (PIN generation counts them)."""
    if not pool:
        return 0
    return loader.execute(
        "UPDATE pins SET status = 'expired' WHERE id BETWEEN ? AND ? AND status = 'open'",
        pool[0].id,
        pool[-1].id,
    )


def sample(items: list[Any], n: int, rng: random.Random) -> Iterator[Any]:
    for _ in range(n):
        yield rng.choice(items)


PANEL_PASSWORD = "bench panel password"


def add_owner(url: str, merchant: Merchant) -> str:
    """A panel owner for ``merchant`` (through the users service: argon2id digest); returns
    the e-mail (password ``PANEL_PASSWORD``)."""
    from fidelia.kit.db import Database
    from fidelia.models import Tenant
    from fidelia.users.service import create_user

    db = Database(url, pool_size=1)
    try:
        with db.session() as session:
            tenant = session.get_one(Tenant, merchant.id)
            email = f"owner@bench-{merchant.id}.test"
            create_user(session, email=email, password=PANEL_PASSWORD, role="owner", tenant=tenant)
    finally:
        db.dispose()
    return email


def v2_tokens(url: str, data: Dataset) -> dict[int, str]:
    """A `/v2` access token per merchant (tenant id -> token), bought as POST /v2/auth/token
    would (valid an hour)."""
    from fidelia.kit.db import Database
    from fidelia.tenants.tokens import issue

    db = Database(url, pool_size=1)
    try:
        return {m.id: issue(db, m.token, m.api_key).token for m in data.merchants}
    finally:
        db.dispose()


def add_dashboard(
    loader: Loader, data: Dataset, entries: int, days: int, rng: random.Random
) -> list[tuple[int, str]]:
    """The dashboard's rollups for ``entries`` ledger entries spread over every merchant and
    the last ``days`` days, written directly (the dashboard reads only the rollups; folding
    10M real entries through the worker would take the whole bench's time): per merchant
    and day one daily row, one reward row, and a customer-day row per two entries. Plus an
    owner account per merchant; returns (user id, session key) for the signed cookies.
    The rollups the run's own sales and orders made (today's) give way to these."""
    today = datetime.now(UTC).date()
    per_day = max(2, entries // max(1, len(data.merchants)) // days)
    population = max(10, per_day * 4)  # each merchant's customers
    user_id = loader.next_id("users")
    at = loader.ts(datetime.now(UTC))
    sessions = [(user_id + n, new_secret("s", 8)[:32]) for n in range(len(data.merchants))]
    loader.insert(
        "users",
        ("id", "tenant_id", "email", "password_digest", "role", "session_key", "created_at"),
        [
            (uid, m.id, f"owner{m.id}@bench.test", "x", "owner", key, at)
            for (uid, key), m in zip(sessions, data.merchants, strict=True)
        ],
    )
    # The running worker has folded the rows seeded before into rollups of its own: hold its
    # watermarks (it waits for them) while these rows replace them, so both never insert
    # the same key; after the commit it folds newer rows into these with its upserts.
    names = [f"rollup.{source}" for source in ("ledger", "pins", "customers", "redemptions")]
    for name in names:
        loader.execute(
            "INSERT INTO markers (name, number) VALUES (?, 0) ON CONFLICT DO NOTHING", name
        )
    if loader.pg:
        loader.execute("SELECT name FROM markers WHERE name IN (?, ?, ?, ?) FOR UPDATE", *names)
    for table in ("daily_rollups", "rollup_customer_days", "rollup_reward_days"):
        loader.execute(f"DELETE FROM {table}")
    issued = per_day * POINTS_PER_PIN
    spent = issued // 4
    loader.insert(
        "daily_rollups",
        (
            "tenant_id",
            "day",
            "program_id",
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
        ),  # fmt: skip
        (
            (m.id, today - timedelta(days=back), m.program_id, issued, spent, issued - spent)
            + (0, 0, 0, per_day, per_day // 2, per_day // 10, per_day // 8, 0, 0)
            for m in data.merchants
            for back in range(days)
        ),
    )
    loader.insert(
        "rollup_reward_days",
        ("tenant_id", "day", "reward_id", "redemptions", "points"),
        (
            (m.id, today - timedelta(days=back), m.reward_id, per_day // 8, per_day)
            for m in data.merchants
            for back in range(days)
        ),
    )
    loader.insert(
        "rollup_customer_days",
        ("tenant_id", "day", "customer_id", "sales"),
        (
            (m.id, today - timedelta(days=back), 10_000_000 + m.id * population + c, 2)
            for m in data.merchants
            for back in range(days)
            for c in rng.sample(range(population), min(population, per_day // 2))
        ),
    )
    return sessions
