"""``kit/driver.execute``: a statement of a session's transaction on psycopg's own connection
(PostgreSQL), answering as ``session.execute`` would (JSON and UTC datetimes both ways, the
statement's own constants, rows by name), in the session's transaction, seen by the
engine's statement listeners, its errors raised as SQLAlchemy's; ``session.execute`` on
SQLite and for a statement with an expanding ``IN``."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import JSON, Column, MetaData, String, Table, bindparam, insert, select
from sqlalchemy.exc import DataError

from fidelia.kit import driver
from fidelia.kit.db import Database, unnested
from fidelia.models.base import BigId, UTCDateTime
from tests.support.helpers import sent

metadata = MetaData()
probes = Table(
    "driver_probes",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("name", String(40)),
    Column("data", JSON),
    Column("at", UTCDateTime),
)
INSERT = (
    probes.insert()
    .values(
        name=bindparam("name"),
        data=bindparam("data", type_=JSON),
        at=bindparam("at", type_=UTCDateTime),
    )
    .returning(probes.c.id, probes.c.data, probes.c.at, (probes.c.name + "!").label("loud"))
)
BY_NAMES = select(probes.c.name).where(probes.c.name.in_(bindparam("names", expanding=True)))


@pytest.fixture
def db(database_url: str):
    database = Database(database_url, pool_size=2)
    metadata.create_all(database.engine)
    yield database
    database.dispose()


def test_it_answers_as_session_execute_does(db: Database) -> None:
    sao_paulo = timezone(timedelta(hours=-3))
    at = datetime(2026, 5, 7, 12, 30, tzinfo=sao_paulo)
    with db.session() as session:
        row, statements = sent(
            db,
            lambda: driver.execute(
                session, INSERT, {"name": "ana", "data": {"a": [1, 2]}, "at": at}
            ).one(),
        )
        assert row.data == {"a": [1, 2]} and row._mapping["loud"] == "ana!"
        assert row.at == at and row.at.tzinfo == UTC  # read back as aware UTC
        assert [s for s in statements if s != "BEGIN IMMEDIATE"] == [
            next(s for s in statements if s.startswith("INSERT INTO driver_probes"))
        ]
        again = session.execute(INSERT, {"name": "bia", "data": None, "at": at}).one()
        assert again.id == row.id + 1
        # In the session's transaction: what it wrote is seen by the ORM's statements.
        assert session.scalars(select(probes.c.name).order_by(probes.c.id)).all() == ["ana", "bia"]
        expanded = driver.execute(session, BY_NAMES, {"names": ["bia", "cid"]}).all()
        assert [r.name for r in expanded] == ["bia"]
        session.rollback()
    with db.session(readonly=True) as session:
        assert session.scalars(select(probes.c.id)).all() == []  # rolled back with it


def test_its_errors_are_sqlalchemy_s(db: Database) -> None:
    """A value the database refuses is SQLAlchemy's DataError (the doors' 400), on both."""
    with db.session() as session:
        with pytest.raises(DataError):
            driver.execute(session, INSERT, {"name": "a\x00b", "data": {}, "at": datetime.now(UTC)})


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_arrays_go_in_the_binary_format_and_answer_as_session_execute(db: Database) -> None:
    """Issue 14: array parameters are sent in psycopg's binary format (its text format
    quoted and escaped every element in Python), with the same answer: quotes, backslashes,
    commas, braces, NULLs, JSON, UTC datetimes, big and negative integers, empty arrays."""
    rows = unnested("rows", names=String(40), data=JSON(), at=UTCDateTime(), n_=BigId)
    stmt = insert(probes).from_select(
        ("name", "data", "at"),
        select(rows.c.names, rows.c.data, rows.c.at).order_by(rows.c.n),
    )
    back = select(rows.c.names, rows.c.data, rows.c.at, rows.c.n_).order_by(rows.c.n)
    at = datetime(2026, 5, 7, 12, 30, tzinfo=timezone(timedelta(hours=-3)))
    params = {
        "names": ['a "quoted", {braced}', "back\\slash", None, "ação", "NULL", ""],
        "data": [{"t": 'say "hi"\n'}, None, [1, "x,y"], {}, "plain", 0],
        "at": [at, None, at, at, None, at],
        "n_": [1, -(2**40), None, 2**62, 0, 7],
    }
    with db.session() as session:
        got, statements = sent(db, lambda: driver.execute(session, back, params).all())
        assert [tuple(r) for r in got] == [tuple(r) for r in session.execute(back, params)]
        assert got[0].at.tzinfo == UTC and got[1].data is None
        assert "%(names)b" in next(s for s in statements if "unnest" in s)
        empty = {key: [] for key in params}
        assert driver.execute(session, back, empty).all() == []
        driver.execute(session, stmt, params)
        written = session.execute(
            select(probes.c.name, probes.c.data, probes.c.at).order_by(probes.c.id)
        ).all()
        assert [tuple(r) for r in written] == list(
            zip(params["names"], params["data"], params["at"], strict=True)
        )
        session.rollback()
