"""``fidelia check``: a database with a bit of everything passes; each kind of damage done to
it on purpose is caught, by the rule that guards it, and the command exits 1 with a report."""

import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select

from fidelia.kit.clock import now
from fidelia.kit.db import Database
from fidelia.kit.settings import Settings
from fidelia.models import Balance, LedgerEntry, OutboxMessage
from fidelia.ops.check import check_database
from tests.support.world import Merchant, build_merchant

FIDELIA = Path(sys.executable).parent / "fidelia"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"rate_limits_enabled": False})


@pytest.fixture
def merchant(client, db, settings) -> Merchant:
    return build_merchant(
        client,
        db,
        settings,
        slug="loja",
        name="Loja Centro",
        document="52998224725",
        phone="11987654321",
        email="ana@example.com",
        whatsapp="+5511987650001",
        customer_name="Ana",
    )


def run_check(database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FIDELIA), "check"],
        env={"FIDELIA_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def sql(database_url: str, statement: str, *, no_foreign_keys: bool = False) -> None:
    """Damage the database behind the application's back."""
    if database_url.startswith("sqlite"):
        with closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as conn:
            conn.execute(f"PRAGMA foreign_keys={'OFF' if no_foreign_keys else 'ON'}")
            conn.execute(statement)
            conn.commit()
        return
    with psycopg.connect(database_url, autocommit=True) as conn:
        if no_foreign_keys:
            conn.execute("SET session_replication_role = replica")
        conn.execute(statement)  # type: ignore[arg-type]


def one(db: Database, query: Any) -> Any:
    with db.session(readonly=True) as session:
        return session.scalar(query)


def test_a_busy_database_passes(merchant, db, database_url):
    report = check_database(database_url)
    assert report.ok, report.render()
    assert report.checked["entries"] >= 10 and report.checked["redemptions"] == 3
    # The order cancelled after its points were spent took the balance below zero; the next
    # order paid that debt first, so its lot holds only what is left above zero.
    with db.session(readonly=True) as session:
        points = session.scalar(select(Balance.amount).where(Balance.account == "points"))
        lots = session.scalar(
            select(func.sum(LedgerEntry.remaining)).where(
                LedgerEntry.account == "points", LedgerEntry.customer_id == merchant.customer_id
            )
        )
    assert lots == points == 300
    result = run_check(database_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok: ")


Damage = Callable[[str, Database, Merchant], None]


def shift_balance(url: str, db: Database, m: Merchant) -> None:
    sql(url, f"UPDATE balances SET amount = amount + 7 WHERE customer_id = {m.customer_id}")


def lose_last_entry(url: str, db: Database, m: Merchant) -> None:
    last = one(db, select(func.max(LedgerEntry.id)).where(LedgerEntry.source_type == "order"))
    sql(url, f"DELETE FROM ledger_entries WHERE id = {last}")


def break_chain(url: str, db: Database, m: Merchant) -> None:
    first = one(db, select(func.min(LedgerEntry.id)))
    sql(url, f"UPDATE ledger_entries SET balance_after = balance_after + 1 WHERE id = {first}")


def swap_amounts(url: str, db: Database, m: Merchant) -> None:
    """Two entries of one account trade amounts: the sum holds, the chain does not."""
    with db.session(readonly=True) as session:
        a, b = session.scalars(
            select(LedgerEntry.id)
            .where(LedgerEntry.customer_id == m.customer_id, LedgerEntry.account == "points")
            .order_by(LedgerEntry.id)
            .limit(2)
        )
    sql(
        url,
        "UPDATE ledger_entries SET amount = CASE id "
        f"WHEN {a} THEN (SELECT amount FROM ledger_entries WHERE id = {b}) "
        f"ELSE (SELECT amount FROM ledger_entries WHERE id = {a}) END WHERE id IN ({a}, {b})",
    )


def negative_lot(url: str, db: Database, m: Merchant) -> None:
    lot = one(db, select(func.max(LedgerEntry.id)).where(LedgerEntry.amount > 0))
    sql(url, f"UPDATE ledger_entries SET remaining = -1 WHERE id = {lot}")


def oversized_lot(url: str, db: Database, m: Merchant) -> None:
    lot = one(db, select(func.max(LedgerEntry.id)).where(LedgerEntry.kind == "earn"))
    sql(url, f"UPDATE ledger_entries SET remaining = amount + 1 WHERE id = {lot}")


def lots_off_balance(url: str, db: Database, m: Merchant) -> None:
    lot = one(
        db,
        select(func.max(LedgerEntry.id)).where(
            LedgerEntry.kind == "earn", LedgerEntry.remaining > 1
        ),
    )
    sql(url, f"UPDATE ledger_entries SET remaining = remaining - 1 WHERE id = {lot}")


def overspend(url: str, db: Database, m: Merchant) -> None:
    entry = one(db, select(func.min(LedgerEntry.id)).where(LedgerEntry.kind == "redeem"))
    sql(url, f"UPDATE ledger_entries SET balance_after = -5 WHERE id = {entry}")


def used_pin_without_customer(url: str, db: Database, m: Merchant) -> None:
    sql(url, "UPDATE pins SET customer_id = NULL WHERE status = 'used'")


def used_pin_without_credit(url: str, db: Database, m: Merchant) -> None:
    sql(
        url, f"UPDATE pins SET status = 'used', customer_id = {m.customer_id} WHERE status = 'open'"
    )


def half_redemption(url: str, db: Database, m: Merchant) -> None:
    sql(url, f"UPDATE redemptions SET points = points + 50 WHERE id = {m.redemption_id}")


def uncancelled_redemption(url: str, db: Database, m: Merchant) -> None:
    sql(url, f"UPDATE redemptions SET status = 'done' WHERE id = {m.redemption_id}")


def order_earned_more(url: str, db: Database, m: Merchant) -> None:
    sql(url, "UPDATE orders SET earned_points = earned_points + 1 WHERE original_id = 'loja-3'")


def refund_without_entries(url: str, db: Database, m: Merchant) -> None:
    sql(url, "UPDATE order_refunds SET points = points + 3")


def key_without_answer(url: str, db: Database, m: Merchant) -> None:
    sql(url, "UPDATE idempotency_keys SET response = NULL WHERE key = 'loja-key-1'")


def outbox_of_missing_merchant(url: str, db: Database, m: Merchant) -> None:
    sql(
        url,
        "INSERT INTO outbox (tenant_id, channel, payload, status, attempts, next_attempt_at, "
        "created_at) VALUES (9999, 'whatsapp', '{}', 'pending', 0, '2026-01-01', '2026-01-01')",
        no_foreign_keys=True,
    )


def lease_out(url: str, *, ago: timedelta) -> None:
    """The first outbox row pending, its lease run out ``ago``."""
    until = (now() - ago).strftime("%Y-%m-%d %H:%M:%S")
    zone = "" if url.startswith("sqlite") else "+00"
    sql(
        url,
        f"UPDATE outbox SET status = 'pending', locked_until = '{until}{zone}' "
        "WHERE id = (SELECT MIN(id) FROM outbox)",
    )


def worker_seen(url: str, *, ago: timedelta) -> None:
    at = (now() - ago).strftime("%Y-%m-%d %H:%M:%S")
    zone = "" if url.startswith("sqlite") else "+00"
    sql(url, f"INSERT INTO worker_heartbeats (worker, at) VALUES ('host:1', '{at}{zone}')")


def stale_lease(url: str, db: Database, m: Merchant) -> None:
    """A worker went round a minute ago and left a lease that ran out five minutes ago."""
    lease_out(url, ago=timedelta(minutes=5))
    worker_seen(url, ago=timedelta(minutes=1))


DAMAGES: dict[str, tuple[Damage, str]] = {
    "balance changed": (shift_balance, "balance-sum"),
    "entry lost": (lose_last_entry, "balance-sum"),
    "balance_after edited": (break_chain, "balance-chain"),
    "amounts swapped": (swap_amounts, "balance-chain"),
    "negative lot": (negative_lot, "lots"),
    "lot above its amount": (oversized_lot, "lots"),
    "lots off the balance": (lots_off_balance, "lots"),
    "redemption below zero": (overspend, "overspend"),
    "used PIN without customer": (used_pin_without_customer, "pin-credit"),
    "used PIN without credit": (used_pin_without_credit, "pin-credit"),
    "redemption half applied": (half_redemption, "redemption-entries"),
    "cancellation undone": (uncancelled_redemption, "redemption-entries"),
    "order earned more": (order_earned_more, "order-entries"),
    "refund without entries": (refund_without_entries, "order-entries"),
    "key without answer": (key_without_answer, "idempotency-answer"),
    "outbox of a missing merchant": (outbox_of_missing_merchant, "outbox"),
    "stale outbox lease": (stale_lease, "outbox"),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_damage_is_caught(damage, merchant, db, database_url):
    do, rule = DAMAGES[damage]
    do(database_url, db, merchant)
    report = check_database(database_url)
    assert not report.ok
    assert rule in report.by_rule(), report.render()


@pytest.mark.parametrize(
    "seen", [None, timedelta(minutes=5), timedelta(minutes=4, seconds=30)], ids=str
)
def test_a_lease_with_no_worker_round_since_waits(seen, merchant, db, database_url):
    """A database restored to an instant (or whose workers are all stopped) holds rows
    leased at that instant; no worker went round a full lease after they ran out, so they
    wait for the next one: not a violation. A worker seen a full lease after it is one."""
    lease_out(database_url, ago=timedelta(minutes=5))
    if seen is not None:
        worker_seen(database_url, ago=seen)
    assert check_database(database_url).ok, check_database(database_url).render()
    sql(database_url, "DELETE FROM worker_heartbeats")
    worker_seen(database_url, ago=timedelta(minutes=3, seconds=55))
    first = one(db, select(func.min(OutboxMessage.id)))
    problems = check_database(database_url).by_rule()
    assert list(problems) == ["outbox"] and len(problems["outbox"]) == 1, problems
    assert problems["outbox"][0].startswith(f"row {first}: its lease ran out at "), problems


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_the_command_reports_and_exits_1(merchant, db, database_url):
    shift_balance(database_url, db, merchant)
    break_chain(database_url, db, merchant)
    result = run_check(database_url)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("FAILED: "), result.stdout
    assert any(line.startswith("balance-sum: ") for line in lines), result.stdout
    assert any(line.startswith("balance-chain: ") for line in lines), result.stdout
    assert any(f"customer {merchant.customer_id} points" in line for line in lines)


def test_an_unreachable_database_exits_2(tmp_path):
    result = run_check("postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot check the database")
