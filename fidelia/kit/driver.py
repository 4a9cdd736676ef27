"""A hot statement of a session's transaction sent on the driver's own connection (psycopg),
skipping SQLAlchemy's execution layer: the sync sibling of ``db.on_driver`` (issue 14).

SQLAlchemy's layer (compile-cache lookup, parameters, execution context, result) costs
more CPU than psycopg's own work on a short statement: about 30 µs of some 50 per
statement. ``execute`` does what that layer does for one Core statement, with what it
needs worked out once per statement and parameter names: the SQL text, the constants the
statement binds, the bind processors of its parameters (JSON, UTC datetimes) and the
result processors of its columns. The statement runs in the session's transaction, on the
same connection; the engine's ``before_cursor_execute`` listeners see it (the tests'
statement recorder); a driver error is raised as SQLAlchemy raises it (``DBAPIError`` and
its subclasses), a dropped connection invalidated as SQLAlchemy does. Nothing is flushed
first (Fidelia's sessions have no autoflush) and the rows are not loaded into the ORM:
the caller makes them objects if it needs them (``customers.found``).

A session on the event loop (``Database.on_loop``: the sync code in SQLAlchemy's greenlet)
has psycopg's async connection underneath: the statement is then awaited on it
(``await_only``), the rest the same.

PostgreSQL only; on SQLite (and for a statement whose parameters are expanded at execution,
``IN`` lists) it is ``session.execute``. Either way the answer is a ``Result``: ``first()``,
``one()``, ``scalar()``, rows with attribute and ``_mapping`` access.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from sqlalchemy import ARRAY, Executable, TextClause
from sqlalchemy.engine import Connection, Dialect, Engine, Result
from sqlalchemy.engine.result import IteratorResult, SimpleResultMetaData
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.util import await_only


@dataclass(frozen=True)
class Compiled:
    """A statement as the driver takes it: what ``execute`` works out once."""

    sql: str
    constants: dict[str, Any]  # what the statement binds itself (literals, defaults)
    binds: tuple[tuple[str, Callable[[Any], Any]], ...]  # parameter -> bind processor
    keys: Sequence[str]  # result columns
    results: tuple[Callable[[Any], Any] | None, ...] | None  # per column; None: none at all
    meta: SimpleResultMetaData  # the result's, made once (not per execution)

    def parameters(self, params: dict[str, Any]) -> dict[str, Any]:
        values = {**self.constants, **params}
        for name, process in self.binds:
            values[name] = process(values[name])
        return values

    def rows(self, rows: list[Any]) -> list[Any]:
        results = self.results
        if results is None:
            return rows
        return [
            tuple(v if p is None else p(v) for p, v in zip(results, row, strict=True))
            for row in rows
        ]


_COMPILED: dict[tuple[int, str, frozenset[str]], tuple[Executable, Compiled | None]] = {}


def compiled(stmt: Executable, dialect: Dialect, names: frozenset[str]) -> Compiled | None:
    """``stmt`` compiled for the driver with the parameters ``names`` (kept by its identity:
    a statement built once), or None for one this does not send (parameters expanded at
    execution, or column defaults computed in Python at execution)."""
    key = (id(stmt), dialect.name, names)
    cached = _COMPILED.get(key)
    if cached is None or cached[0] is not stmt:
        cached = _COMPILED[key] = (stmt, _compile(stmt, dialect, names))
    return cached[1]


def _compile(stmt: Executable, dialect: Dialect, names: frozenset[str]) -> Compiled | None:
    if isinstance(stmt, TextClause):  # its columns are known only once it has run
        return None
    built: Any = stmt  # a Core statement: compiled as SQLAlchemy compiles it
    compiled = built.compile(dialect=dialect, column_keys=sorted(names))
    if compiled.literal_execute_params or compiled.post_compile_params:
        return None
    if compiled.insert_prefetch or compiled.update_prefetch:
        return None
    constants = {k: v for k, v in compiled.params.items() if k not in names}
    processors = compiled._bind_processors  # what SQLAlchemy applies to each parameter
    binds = tuple(
        (name, processors[name]) for name in compiled.bind_names.values() if name in processors
    )
    keys = [column.keyname for column in compiled._result_columns]
    results = tuple(
        column.type._cached_result_processor(dialect, None) for column in compiled._result_columns
    )
    sql = str(compiled)
    # Arrays go in psycopg's binary format: its text format quotes and escapes every
    # element in Python (a regular expression an element: most of a batch's JSON replies'
    # cost), the binary one packs them. The statement's casts name their type either way.
    for bind, name in compiled.bind_names.items():
        if isinstance(bind.type, ARRAY):
            sql = sql.replace(f"%({name})s", f"%({name})b")
    processed = results if any(results) else None
    return Compiled(sql, constants, binds, keys, processed, SimpleResultMetaData(keys))


def tell(target: Connection | Engine, sql: str, values: dict[str, Any]) -> None:
    """The statement told to ``before_cursor_execute`` listeners (the tests' recorders), as
    SQLAlchemy tells them, with no execution context (the mark of the driver's way)."""
    if target._has_events or (isinstance(target, Connection) and target.engine._has_events):
        for listen in target.dispatch.before_cursor_execute:
            listen(target, None, sql, values, None, False)


def execute(session: Session, stmt: Executable, params: dict[str, Any]) -> Result[*tuple[Any, ...]]:
    """``session.execute(stmt, params)`` for a statement built once (its identity keys the
    compiled form), on the driver's connection on PostgreSQL."""
    conn = session.connection()
    dialect = conn.dialect
    if dialect.name != "postgresql":
        return session.execute(stmt, params)
    sent = compiled(stmt, dialect, frozenset(params))
    if sent is None:
        return session.execute(stmt, params)
    values = sent.parameters(params)
    tell(conn, sent.sql, values)
    raw = conn.connection.driver_connection
    assert raw is not None
    try:
        if isinstance(raw, AsyncConnection):  # a session on the event loop (``on_loop``)
            cursor = await_only(raw.execute(sent.sql, values))
            rows = await_only(cursor.fetchall()) if sent.keys else []
        else:
            cursor = raw.execute(sent.sql, values)
            # Fetched when the statement has columns: psycopg's ``description`` builds an
            # object a column.
            rows = cursor.fetchall() if sent.keys else []
    except dialect.loaded_dbapi.Error as exc:
        stale = dialect.is_disconnect(exc, conn.connection.dbapi_connection, None)
        if stale:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            sent.sql,
            values,
            exc,
            dialect.loaded_dbapi.Error,
            hide_parameters=conn.engine.hide_parameters,
            connection_invalidated=stale,
            dialect=dialect,
        ) from exc
    return IteratorResult(sent.meta, iter(sent.rows(rows)))
