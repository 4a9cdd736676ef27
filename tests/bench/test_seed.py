"""The bench's seeded history counts as already folded into the daily rollups, so the
worker has nothing of it to fold while the bench measures; what is written afterwards is
folded as usual."""

from datetime import timedelta

from sqlalchemy import func, select

from bench import seed
from fidelia.kit.db import Database
from fidelia.ledger.service import Account, Source, credit
from fidelia.models import Customer, DailyRollup, Marker, Tenant
from fidelia.rollups import service as rollups


def test_seeded_rows_are_not_folded_again(database_url: str) -> None:
    data = seed.Dataset()
    with seed.Loader(database_url) as db:
        seed.add_merchants(db, data, 2, 30, entries_each=3)
        last_entry = int(db.scalar("SELECT MAX(id) FROM ledger_entries"))
        last_customer = int(db.scalar("SELECT MAX(id) FROM customers"))
    db = Database(database_url)
    try:
        with db.session() as session:
            marks = {m.name: m.number for m in session.scalars(select(Marker))}
        assert marks["rollup.ledger"] == last_entry
        assert marks["rollup.customers"] == last_customer
        # Nothing seeded is folded, however old it is.
        assert rollups.update(db, settle=timedelta(0)) == 0
        with db.session() as session:
            assert session.scalar(select(func.count()).select_from(DailyRollup)) == 0
            # A credit written by the app after the seed is folded as usual.
            merchant = data.merchants[0]
            tenant = session.get_one(Tenant, merchant.id)
            customer = session.get_one(Customer, data.customers[merchant.id][0].id)
            credit(
                session, Account(tenant.program_id, customer.id), 7, Source(tenant.id, "pin", "s1")
            )
        assert rollups.update(db, settle=timedelta(0)) == 1
        with db.session() as session:
            issued = session.scalar(select(func.sum(DailyRollup.points_issued)))
            assert issued == 7
        # A second seed moves the watermarks on, never back.
        with seed.Loader(database_url) as loader:
            seed.add_customers(loader, data, [data.merchants[1]], 2)
        with db.session() as session:
            marks = {m.name: m.number for m in session.scalars(select(Marker))}
        assert marks["rollup.ledger"] > last_entry + 1
        assert rollups.update(db, settle=timedelta(0)) == 0
    finally:
        db.dispose()


def test_only_tables_with_rows_are_analyzed(pg_url: str) -> None:
    """An empty table analyzed is planned as empty: a prepared statement's generic plan made
    then scans it whole for the rest of a run. The seed leaves those tables as a fresh
    database has them (never analyzed), as autovacuum would."""
    data = seed.Dataset()
    with seed.Loader(pg_url) as db:
        seed.add_merchants(db, data, 1, 5)
        db.analyze()
        analyzed = dict(
            db.conn.execute(
                "SELECT relname, last_analyze IS NOT NULL FROM pg_stat_user_tables"
            ).fetchall()
        )
        db.analyze(vacuum=True)
        vacuumed = dict(
            db.conn.execute(
                "SELECT relname, last_vacuum IS NOT NULL FROM pg_stat_user_tables"
            ).fetchall()
        )
    for stats in (analyzed, vacuumed):
        assert stats["customers"] and stats["ledger_entries"]
        assert not stats["idempotency_keys"] and not stats["orders"]


def test_a_credit_run_analyzes_the_filled_tables_it_writes(pg_url: str) -> None:
    """``among``: of the tables named, those that hold rows; the others, and every table
    not named, are left as they were (``bench/run.py run_credit``, CREDIT_TABLES)."""
    data = seed.Dataset()
    with seed.Loader(pg_url) as db:
        seed.add_merchants(db, data, 1, 5)
        db.analyze(among=("customers", "outbox"))
        analyzed = dict(
            db.conn.execute(
                "SELECT relname, last_analyze IS NOT NULL FROM pg_stat_user_tables"
            ).fetchall()
        )
    assert analyzed["customers"]  # named, filled
    assert not analyzed["outbox"]  # named, empty
    assert not analyzed["ledger_entries"]  # filled, not named
