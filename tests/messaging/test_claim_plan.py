"""The outbox claim reads a batch of rows, whatever the backlog (issue 14: flat).

The claim (``messaging/worker.py _claim_of``) is explained as the worker sends it, over a
backlog of due replies that the planner's statistics do not know yet (they were taken
before the burst, as when a burst outruns autovacuum): on PostgreSQL its custom plan and
the generic plan of the prepared statement (psycopg prepares it after five runs) walk
``ix_outbox_claim`` in the ``ORDER BY``'s order and stop at the ``LIMIT``, with no sort
and no scan of the table; on SQLite it searches the same index, with no temporary b-tree.
With ``ix_outbox_due`` (no ``id``) and ``LIMIT $n``, PostgreSQL sorted the whole backlog
and joined the ids back with a scan of the whole outbox (BENCHMARKS.md)."""

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from psycopg import sql
from sqlalchemy import bindparam, event, select, text

from fidelia.connectors.bling import intake as bling_intake
from fidelia.kit.db import Database, planned_now
from fidelia.messaging import intake
from fidelia.messaging.worker import Worker
from fidelia.models import Tenant

BACKLOG = 20_000
BATCH = 20


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def claim_sql(db: Database) -> tuple[str, Any]:
    """The claim as the worker's engine sends it (a real claim, on an empty outbox)."""
    return sent(db, "UPDATE outbox", lambda: Worker(db, {}, batch=BATCH).claim())


def sent(db: Database, marked: str, claim: Callable[[], list[Any]]) -> tuple[str, Any]:
    """The statement containing ``marked`` that ``claim`` sends (finding nothing)."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert claim() == []
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    [(statement, params)] = [(s, p) for s, p in seen if marked in s]
    return statement, params


def inbound_claim(db: Database) -> list[Any]:
    with db.session() as session:
        return intake._claim(session, BATCH, postgres=True)


def seed_postgresql(db: Database) -> None:
    with db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("ALTER TABLE outbox SET (autovacuum_enabled = false)")
        conn.exec_driver_sql(
            "INSERT INTO outbox (channel, payload, status, attempts, next_attempt_at, "
            "created_at, sent_at) SELECT 'whatsapp', '{}', 'sent', 1, "
            "now() - interval '2 hours', now(), now() FROM generate_series(1, 5000)"
        )
        conn.exec_driver_sql("VACUUM ANALYZE outbox")  # statistics before the burst
        # The burst: replies enqueued 50 to a transaction, one timestamp each.
        conn.exec_driver_sql(
            "INSERT INTO outbox (channel, payload, status, attempts, next_attempt_at, "
            "created_at) SELECT 'whatsapp', '{}', 'pending', 0, "
            "now() - interval '1 hour' + (g / 50) * interval '1 ms', now() "
            f"FROM generate_series(1, {BACKLOG}) g"
        )


def assert_bounded(plan: dict[str, Any], analysed: bool) -> None:
    kinds = [node["Node Type"] for node in nodes(plan)]
    assert not {"Sort", "Incremental Sort", "Seq Scan", "Bitmap Heap Scan"} & set(kinds), kinds
    [scan] = [n for n in nodes(plan) if n.get("Index Name") == "ix_outbox_claim"]
    assert scan["Node Type"] == "Index Scan"
    if analysed:  # the rows it read off the index: the batch, not the backlog
        assert scan["Actual Rows"] + scan.get("Rows Removed by Filter", 0) <= BATCH


def test_the_claim_walks_its_index_and_stops_at_the_batch_whatever_the_backlog(database_url):
    db = Database(database_url, pool_size=1)
    try:
        statement, params = claim_sql(db)
        if db.is_sqlite:
            with db.engine.connect() as conn:
                conn.exec_driver_sql(
                    "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g "
                    f"WHERE n < {BACKLOG}) INSERT INTO outbox (channel, payload, status, "
                    "attempts, next_attempt_at, created_at) SELECT 'whatsapp', '{}', "
                    "'pending', 0, '2000-01-01 00:00:00.000000', '2000-01-01 00:00:00.000000' "
                    "FROM g"
                )
                conn.commit()
                steps = [
                    row[-1]
                    for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
                ]
            assert any("USING INDEX ix_outbox_claim" in step for step in steps), steps
            assert not any("TEMP B-TREE" in step or step.startswith("SCAN") for step in steps)
            return
        seed_postgresql(db)
        with db.engine.connect() as conn:
            explain = "EXPLAIN (ANALYZE, FORMAT JSON) "
            [[custom]] = conn.exec_driver_sql(explain + statement, params).all()
            conn.rollback()  # EXPLAIN ANALYZE leased the rows
            assert_bounded(custom[0]["Plan"], analysed=True)
            # The prepared statement's generic plan, as PostgreSQL may keep it after five runs.
            names: list[str] = []
            for name in params:
                if f"%({name})s" in statement:
                    names.append(name)
            numbered = statement
            for i, name in enumerate(names, 1):
                numbered = numbered.replace(f"%({name})s", f"${i}")
            driver = conn.connection.dbapi_connection
            assert driver is not None
            with driver.cursor() as cursor:
                cursor.execute("SET plan_cache_mode = force_generic_plan")
                cursor.execute("PREPARE claim AS " + numbered)
                values = sql.SQL(", ").join(sql.Literal(params[name]) for name in names)
                cursor.execute(
                    sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE claim({})").format(values)
                )
                [[generic]] = cursor.fetchall()
            conn.rollback()
            assert_bounded(generic[0]["Plan"], analysed=True)
    finally:
        db.dispose()


def prepared(db: Database) -> list[str]:
    """The statements prepared on the pool's one connection."""
    with db.engine.connect() as conn:
        return list(conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars())


def test_the_queues_claims_are_planned_for_the_queue_as_it_is_now(pg_url):
    """The claims are never prepared statements: PostgreSQL would keep the generic plan it
    made while the queue was empty (make bench: 148 ms a claim over 20,000 replies, a scan
    of the whole outbox per batch), until the table is analysed again. Other statements
    are still prepared after five runs."""
    db = Database(pg_url, pool_size=1)
    try:
        with db.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("VACUUM ANALYZE outbox")  # statistics of an empty queue
        worker = Worker(db, {}, batch=BATCH, lease=timedelta(seconds=60))
        for _ in range(8):  # psycopg prepares a statement at its fifth run
            assert worker.claim() == []
            with db.session() as session:
                assert intake._claim(session, 50, postgres=True) == []
                session.execute(select(Tenant.id).where(Tenant.id == bindparam("t")), {"t": 1})
            assert bling_intake.claim(db, 10) == []
        with db.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO outbox (channel, payload, status, attempts, next_attempt_at, "
                "created_at) SELECT 'whatsapp', '{}', 'pending', 0, now() - interval '1 hour', "
                f"now() FROM generate_series(1, {BACKLOG})"
            )
        assert len(worker.claim()) == BATCH
        statements = prepared(db)
        assert any("FROM tenants" in s for s in statements), statements  # still prepared
        for queue in ("outbox", "inbound_messages", "bling_events"):
            assert not any(f"FROM {queue}" in s for s in statements), (queue, statements)
    finally:
        db.dispose()


TAKEN = 5_000


def test_a_claim_reads_its_index_in_order_past_the_rows_taken_since_the_last_vacuum(pg_url):
    """Each row a queue has taken (sent, done) leaves an entry for its pending version in the
    claim's index until a vacuum. The statistics count the live pending rows, a few, and
    PostgreSQL then chose a bitmap scan: every entry of the pending range collected, the
    table visited for each, the lot sorted (8,644 entries and 603 pages for 16 replies under
    make bench's load). Under ``planned_now`` the claims read their index in order and stop
    at the batch. (Here the inbound claim, on its partial index, is the one PostgreSQL 15
    plans with a bitmap otherwise; the outbox's is held to the same.)"""
    db = Database(pg_url, pool_size=1)
    try:
        claims = [
            (*claim_sql(db), "ix_outbox_claim"),
            (
                *sent(db, "FROM inbound_messages", lambda: inbound_claim(db)),
                "ix_inbound_messages_pending",
            ),
        ]
        with db.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            for queue in ("outbox", "inbound_messages"):
                conn.exec_driver_sql(f"ALTER TABLE {queue} SET (autovacuum_enabled = false)")
            conn.exec_driver_sql(
                "INSERT INTO outbox (channel, payload, status, attempts, next_attempt_at, "
                "created_at) SELECT 'whatsapp', '{}', 'pending', 0, now() - random() * interval "
                f"'1 hour', now() FROM generate_series(1, {TAKEN + BATCH})"
            )
            conn.exec_driver_sql(
                "INSERT INTO inbound_messages (message_id, wa_number, bot_number, body, status, "
                "attempts, received_at) SELECT 'wamid.' || g, '5511999990000', '5511888880000', "
                "'hi', 'pending', 0, now() - random() * interval '1 hour' "
                f"FROM generate_series(1, {TAKEN + BATCH}) g"
            )
            # Taken since the last vacuum: sent, done. The statistics see the few left.
            conn.exec_driver_sql(
                f"UPDATE outbox SET status = 'sent' WHERE id IN (SELECT id FROM outbox "
                f"ORDER BY id LIMIT {TAKEN})"
            )
            conn.exec_driver_sql(
                "UPDATE inbound_messages SET status = 'done' WHERE message_id IN (SELECT "
                f"message_id FROM inbound_messages ORDER BY received_at LIMIT {TAKEN})"
            )
            conn.exec_driver_sql("ANALYZE outbox")
            conn.exec_driver_sql("ANALYZE inbound_messages")
        for sql_text, values, index in claims:
            with db.session() as session, planned_now(session):
                driver = session.connection().connection.driver_connection
                assert driver is not None
                [[plan]] = driver.execute(
                    "EXPLAIN (ANALYZE, FORMAT JSON) " + sql_text, values
                ).fetchall()
                session.rollback()  # EXPLAIN ANALYZE leased the rows
            kinds = [node["Node Type"] for node in nodes(plan[0]["Plan"])]
            assert not {"Sort", "Seq Scan", "Bitmap Heap Scan"} & set(kinds), (index, kinds)
            [scan] = [n for n in nodes(plan[0]["Plan"]) if n.get("Index Name") == index]
            assert scan["Node Type"] == "Index Scan", (index, scan["Node Type"])
            assert scan["Actual Rows"] == BATCH, index
        with db.session() as session:  # restored for the rest of the transaction
            with planned_now(session):
                assert session.execute(text("SHOW enable_bitmapscan")).scalar() == "off"
            assert session.execute(text("SHOW enable_bitmapscan")).scalar() == "on"
    finally:
        db.dispose()
