"""``kit/db.py rows_in``: a Core statement sent on the driver's side of a session's
connection, inside the session's transaction, with the answers SQLAlchemy's execution gives
(rows, type processing, errors), on SQLite through the session itself."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import (
    JSON,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    bindparam,
    event,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError

from fidelia.kit.db import Database, rows_in
from fidelia.models.base import UTCDateTime

metadata = MetaData()
probe = Table(
    "driver_rows_probe",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(10)),
    Column("at", UTCDateTime),
    Column("doc", JSON),
    UniqueConstraint("kind", "at"),
)
INSERT = (
    probe.insert()
    .values(kind=bindparam("kind"), at=bindparam("at"), doc=bindparam("doc"))
    .returning(probe.c.id, probe.c.at, probe.c.doc)
)
BUMP = probe.update().where(probe.c.kind == bindparam("old")).values(kind=bindparam("new"))
FOUND = select(probe.c.kind, probe.c.at, probe.c.doc).where(probe.c.at >= bindparam("since"))
MOMENT = datetime(2026, 5, 1, 9, 30, tzinfo=timezone(timedelta(hours=-3)))


@pytest.fixture
def db(database_url):
    database = Database(database_url, pool_size=2)
    metadata.create_all(database.engine)
    yield database
    metadata.drop_all(database.engine)
    database.dispose()


def count(db: Database) -> int:
    with db.session(readonly=True) as session:
        return int(session.scalar(select(func.count()).select_from(probe)) or 0)


def test_rows_in_gives_the_rows_sqlalchemy_gives_in_the_session_s_transaction(db):
    told: list[str] = []
    listener = lambda *args: told.append(args[2]) if args[4] is None else None  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        with db.session() as session:
            (row,) = rows_in(session, INSERT, {"kind": "a", "at": MOMENT, "doc": {"n": [1]}})
            assert rows_in(session, BUMP, {"old": "a", "new": "b"}) == []  # no RETURNING
            found = rows_in(session, FOUND, {"since": MOMENT})
            expected = [tuple(r) for r in session.execute(FOUND, {"since": MOMENT})]
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert row[1:] == (MOMENT, {"n": [1]}) and row[1].tzinfo == UTC
    assert found == expected == [("b", MOMENT, {"n": [1]})]
    # PostgreSQL: sent on the driver (no execution context); SQLite: through the session.
    assert len(told) == (0 if db.is_sqlite else 3)


def test_rows_in_rolls_back_with_the_session_and_raises_as_sqlalchemy_does(db):
    with db.session() as session:
        rows_in(session, INSERT, {"kind": "a", "at": MOMENT, "doc": None})
    with pytest.raises(IntegrityError), db.session() as session:
        rows_in(session, INSERT, {"kind": "c", "at": MOMENT, "doc": None})  # written...
        rows_in(session, INSERT, {"kind": "a", "at": MOMENT, "doc": None})  # ...refused
    assert count(db) == 1  # the whole transaction undone
    with db.session() as session:  # the connection is fine after it
        assert len(rows_in(session, FOUND, {"since": MOMENT})) == 1
