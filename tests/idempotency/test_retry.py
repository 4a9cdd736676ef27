"""The retry of ``claim``: an INSERT that wrote no row while no row holds the key (the first
request's row was forgotten between our INSERT and our read) is tried once more with the
same row, then answered 409 ``IDEMPOTENCY_BUSY``; an INSERT that breaks another rule is
raised at once. The skipped or refused INSERT comes from a trigger the test puts on the real
database, which counts the attempts where a rollback does not undo it (a PostgreSQL
sequence; on SQLite a function of the connection), and skips (or refuses) the first ``n``."""

from collections.abc import Callable

import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fidelia.idempotency.service import claim, fingerprint
from fidelia.kit.db import Database
from fidelia.kit.errors import Conflict
from fidelia.models import IdempotencyKey, Tenant
from tests.support.helpers import make_tenant

PAYLOAD = {"amount": 10}
NAME = select(Tenant.name).where(Tenant.id == bindparam("t"))  # a read sent along a claim


def refuse_first_inserts(
    db: Database, session: Session, n: int, skip: bool = True
) -> Callable[[], int]:
    """Skip (``skip``) or refuse with an error the first ``n`` key rows inserted in this
    session; return the attempt count."""
    if db.is_sqlite:
        attempts: list[int] = []

        def attempt() -> int:
            attempts.append(1)
            return len(attempts)

        sqlite_action = "IGNORE" if skip else "ABORT, 'refused'"
        raw = session.connection().connection.driver_connection
        raw.create_function("key_attempt", 0, attempt)  # type: ignore[union-attr]
        session.execute(
            text(
                "CREATE TEMP TRIGGER refuse_key BEFORE INSERT ON idempotency_keys "
                f"WHEN key_attempt() <= {n} BEGIN SELECT RAISE({sqlite_action}); END"
            )
        )
        return lambda: len(attempts)
    session.execute(text("CREATE SEQUENCE key_attempts"))
    session.execute(
        text(
            "CREATE FUNCTION refuse_key() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF nextval('key_attempts') <= {n} THEN "
            + (
                "RETURN NULL; "
                if skip
                else "RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation'; "
            )
            + "END IF; "
            "RETURN NEW; END $$"
        )
    )
    session.execute(
        text(
            "CREATE TRIGGER refuse_key BEFORE INSERT ON idempotency_keys "
            "FOR EACH ROW EXECUTE FUNCTION refuse_key()"
        )
    )

    def count() -> int:
        last, called = session.execute(text("SELECT last_value, is_called FROM key_attempts")).one()
        return int(last) if called else 0

    return count


def test_a_refused_insert_is_tried_again_with_the_same_row(db):
    tenant, _ = make_tenant(db)
    with db.session() as session:
        attempts = refuse_first_inserts(db, session, 1)
        mine = claim(session, tenant.id, "sale", "K-1", PAYLOAD)
        assert attempts() == 2
        assert mine.row is not None and mine.replay is None
        mine.store({"id": 7}, status_code=201)
    with db.session(readonly=True) as session:
        row = session.scalars(select(IdempotencyKey)).one()
        assert (row.tenant_id, row.scope, row.key) == (tenant.id, "sale", "K-1")
        assert (row.request_hash, row.status_code) == (fingerprint(PAYLOAD), 201)
    with db.session() as session:  # the key the retry stored is replayed
        again = claim(session, tenant.id, "sale", "K-1", PAYLOAD)
    assert (again.row, again.replay, again.status_code) == (None, {"id": 7}, 201)


def test_a_second_miss_is_answered_busy_without_a_third_try(db):
    tenant, _ = make_tenant(db)
    tried = []
    busy_message = r"^The idempotency key is in use; try again\.$"
    with pytest.raises(Conflict, match=busy_message) as busy, db.session() as session:
        attempts = refuse_first_inserts(db, session, 99)
        try:
            claim(session, tenant.id, "sale", "K-1", PAYLOAD)
        finally:
            tried.append(attempts())
    assert busy.value.code == "IDEMPOTENCY_BUSY"
    assert tried == [2]
    with db.session(readonly=True) as session:
        assert session.scalars(select(IdempotencyKey)).all() == []


def test_another_broken_rule_is_raised_at_once(db):
    """Not retried: on PostgreSQL the transaction is aborted anyway (a retry would fail
    with another error), on SQLite the trigger counts one attempt."""
    tenant, _ = make_tenant(db)
    tried = []
    with pytest.raises(IntegrityError, match="refused"), db.session() as session:
        attempts = refuse_first_inserts(db, session, 99, skip=False)
        try:
            claim(session, tenant.id, "sale", "K-1", PAYLOAD)
        finally:
            if db.is_sqlite:
                tried.append(attempts())
    assert tried == ([1] if db.is_sqlite else [])
    with db.session(readonly=True) as session:
        assert session.scalars(select(IdempotencyKey)).all() == []


def test_a_claim_tried_again_sends_its_read_along_too(db):
    """``claim(along=)`` whose first INSERT wrote no row: the retry claims the key, and the
    read (which on PostgreSQL rode on the first INSERT) is run then, its row given."""
    tenant, _ = make_tenant(db)
    with db.session() as session:
        attempts = refuse_first_inserts(db, session, 1)
        mine = claim(session, tenant.id, "sale", "K-1", PAYLOAD, along=(NAME, {"t": tenant.id}))
        assert attempts() == 2
        assert mine.row is not None and mine.replay is None
        assert mine.along is not None and mine.along.name == tenant.name
