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

PostgreSQL only; on SQLite (and for a statement whose parameters are expanded at execution,
``IN`` lists) it is ``session.execute``. Either way the answer is a ``Result``: ``first()``,
``one()``, ``scalar()``, rows with attribute and ``_mapping`` access.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.engine import Dialect, Result
from sqlalchemy.engine.result import IteratorResult, SimpleResultMetaData
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class _Compiled:
    sql: str
    constants: dict[str, Any]  # what the statement binds itself (literals, defaults)
    binds: tuple[tuple[str, Callable[[Any], Any]], ...]  # parameter -> bind processor
    keys: Sequence[str]  # result columns
    results: tuple[Callable[[Any], Any] | None, ...] | None  # per column; None: none at all


_COMPILED: dict[tuple[int, str, frozenset[str]], tuple[Executable, _Compiled | None]] = {}


def _compile(stmt: Executable, dialect: Dialect, names: frozenset[str]) -> _Compiled | None:
    """None: a statement this does not send (parameters expanded at execution, or column
    defaults computed in Python at execution)."""
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
    return _Compiled(str(compiled), constants, binds, keys, results if any(results) else None)


def execute(session: Session, stmt: Executable, params: dict[str, Any]) -> Result[*tuple[Any, ...]]:
    """``session.execute(stmt, params)`` for a statement built once (its identity keys the
    compiled form), on the driver's connection on PostgreSQL."""
    conn = session.connection()
    dialect = conn.dialect
    if dialect.name != "postgresql":
        return session.execute(stmt, params)
    names = frozenset(params)
    key = (id(stmt), dialect.name, names)
    cached = _COMPILED.get(key)
    if cached is None or cached[0] is not stmt:
        cached = _COMPILED[key] = (stmt, _compile(stmt, dialect, names))
    compiled = cached[1]
    if compiled is None:
        return session.execute(stmt, params)
    values = {**compiled.constants, **params}
    for name, process in compiled.binds:
        values[name] = process(values[name])
    if conn._has_events or conn.engine._has_events:
        for listen in conn.dispatch.before_cursor_execute:
            listen(conn, None, compiled.sql, values, None, False)
    raw = conn.connection.driver_connection
    assert raw is not None
    try:
        cursor = raw.execute(compiled.sql, values)
        rows = cursor.fetchall() if cursor.description is not None else []
    except dialect.loaded_dbapi.Error as exc:
        stale = dialect.is_disconnect(exc, conn.connection.dbapi_connection, None)
        if stale:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            compiled.sql,
            values,
            exc,
            dialect.loaded_dbapi.Error,
            hide_parameters=conn.engine.hide_parameters,
            connection_invalidated=stale,
            dialect=dialect,
        ) from exc
    results = compiled.results
    if results is not None:
        rows = [
            tuple(v if p is None else p(v) for p, v in zip(results, row, strict=True))
            for row in rows
        ]
    return IteratorResult(SimpleResultMetaData(compiled.keys), iter(rows))
