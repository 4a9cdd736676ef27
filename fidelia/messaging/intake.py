"""Store first, then process (DESIGN.md "Intake").

The webhook acknowledges Meta after one durable insert of the messages it carries,
deduplicated on their id (``store``). The worker takes pending messages in batches and
processes a batch in ONE transaction (``process_batch``): first the plain PIN credits, all
at once with set-based statements (``Bot.credit_batch``), then every other message in a
savepoint of its own, so a message that fails is rolled back alone and counted, while the
rest of the batch commits with their credits, replies and their ``done`` mark (if the
set-based step fails, it is rolled back and its messages go one at a time too). A crash
before the commit leaves the whole batch pending, to be processed again: exactly once,
never lost.

Workers are woken at once: on PostgreSQL by ``NOTIFY fidelia_work`` sent in the storing
transaction (delivered at its commit) to workers that ``LISTEN``; in the same process by the
outbox's wake-up event, set after the commit (``outbox``: the same for every kind of work).

On PostgreSQL the webhook stores with ``store_now``: the insert is ONE statement on the async
engine's pool (one message: compiled once, sent on the driver's connection as a prepared
statement, ``kit/db.py on_driver``), its own transaction (autocommit), the NOTIFY made by
``pg_notify`` in its ``RETURNING`` (once per stored row; PostgreSQL delivers one per
transaction and channel): one round trip, in the event loop, durable when it returns. Under
load the NOTIFYs are coalesced, one per 10 ms a process (``wakeups.py``)."""

import logging
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Dialect, Table, bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from fidelia.kit import driver
from fidelia.kit.clock import now
from fidelia.kit.db import (
    Database,
    on_driver,
    once_more_if_stale,
    planned_now,
    unnested,
    unprepared,
)
from fidelia.messaging import outbox
from fidelia.messaging.bot import Bot, Inbound
from fidelia.models import InboundMessage

if TYPE_CHECKING:
    from fidelia.messaging.wakeups import Wakeups

log = logging.getLogger("fidelia.intake")
CHANNEL = outbox.CHANNEL
MAX_ATTEMPTS = 5


def notify(session: Session) -> None:
    """Wake the workers once this transaction commits (PostgreSQL NOTIFY, and the
    in-process event for a worker running inside this process): see ``outbox``."""
    session.info["outbox_wakeup"] = True


_INBOUND = cast(Table, InboundMessage.__table__)
# The messages not seen before, deduplicated on Meta's id; their ids come back. Built once
# (a statement made per call was compiled per call).
_STORE = {
    name: insert(_INBOUND)
    .on_conflict_do_nothing(index_elements=["message_id"])
    .returning(_INBOUND.c.message_id)
    for name, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}
# ``store_now``'s: the same, with the workers' NOTIFY (its own transaction has no commit to
# send it at): once per row stored, one delivered. Or without, when a coalesced NOTIFY
# follows (``wakeups.Wakeups``).
_STORE_NOW = {
    True: _STORE["postgresql"].returning(func.pg_notify(CHANNEL, "")),
    False: _STORE["postgresql"],
}


def _rows(messages: Sequence[Inbound]) -> list[dict[str, Any]]:
    at = now()
    return [
        {
            "message_id": m.message_id,
            "wa_number": m.wa_number,
            "wa_user_id": m.wa_user_id,
            "bot_number": m.bot_number,
            "profile_name": (m.profile_name or "")[:200] or None,
            "body": m.text,
            "status": "pending",
            "received_at": at,
        }
        for m in {m.message_id: m for m in messages}.values()  # a batch may repeat one
    ]


def store(session: Session, messages: Sequence[Inbound]) -> int:
    """Insert the messages not seen before; returns how many were new. The workers are
    woken once the session commits."""
    if not messages:
        return 0
    return store_groups(session, [messages])[0]


async def store_now(
    db: Database, messages: Sequence[Inbound], wakeups: "Wakeups | None" = None
) -> int:
    """``store`` on PostgreSQL from the event loop: one statement, its own transaction, so
    the messages are durable when it returns; returns how many were new. A connection the
    server had dropped (a restart) is replaced and the statement sent once more: it may
    run twice, since a message already stored is skipped. ``wakeups``: the workers' NOTIFY
    coalesced (the app's); without, every statement carries it."""
    if not messages:
        return 0
    rows = _rows(messages)
    carried = wakeups is None or wakeups.carry()
    stored = await once_more_if_stale(lambda: _insert_now(db, rows, carried))
    if stored:
        outbox.wakeup.set()  # a worker in this process; others LISTEN
        if not carried and wakeups is not None:
            wakeups.after()  # committed: the NOTIFY that follows is sent after it
    return stored


async def _insert_now(db: Database, rows: list[dict[str, Any]], notifying: bool) -> int:
    engine = db.async_autocommit
    if len(rows) > 1:  # Meta batching messages: rare; SQLAlchemy's many-rows insert
        async with engine.connect() as conn:
            return len((await conn.execute(_STORE_NOW[notifying], rows)).all())
    # One message, nearly every webhook: ``_STORE_NOW`` compiled once, sent on the driver's
    # connection as a prepared statement (``on_driver``: SQLAlchemy's execution layer cost
    # more CPU than the round trip).
    sql, constants = _store_now_sql(engine.dialect, notifying)
    params = {**rows[0], **constants}

    async def insert(conn: Any) -> int:
        cursor = await conn.execute(sql, params, prepare=True)
        return int(cursor.rowcount)

    return await on_driver(db, insert)


@lru_cache(maxsize=16)  # one dialect an engine; a few engines a process; two variants
def _store_now_sql(dialect: Dialect, notifying: bool) -> tuple[str, dict[str, Any]]:
    """``_STORE_NOW`` for one row as the driver's SQL text, and the parameters that are the
    same for every row: the columns' Python defaults ``_rows`` leaves out (``attempts``) and
    the NOTIFY's channel."""
    given = list(_rows([Inbound("", None, None, "", "", None)])[0])
    defaults = [
        column.key
        for column in _INBOUND.columns
        if column.key not in given and column.default is not None
    ]
    compiled = _STORE_NOW[notifying].compile(dialect=dialect, column_keys=given + defaults)
    constants = {key: value for key, value in compiled.params.items() if key not in given}
    for key in defaults:
        default = _INBOUND.c[key].default
        assert isinstance(default, ScalarElementColumnDefault), key  # a constant, not a call
        constants[key] = default.arg
    return str(compiled), constants


def store_if_free(db: Database, messages: Sequence[Inbound]) -> int:
    """``store`` on SQLite from the event loop, in the calling thread, if the writer's place
    is free now (``Database.write_now``), else ``WriterBusy`` with nothing done; the worker
    in this process is woken after the commit."""
    if not messages:
        return 0
    with db.write_now() as conn:
        stored = len(conn.execute(_STORE["sqlite"], _rows(messages)).all())
    if stored:
        outbox.wakeup.set()
    return stored


def store_groups(session: Session, groups: Sequence[Sequence[Inbound]]) -> list[int]:
    """``store`` for the messages of several webhooks at once (SQLite's group commit,
    ``group_commit.py``): one insert; how many of each group's were new. A message that two
    groups carry (Meta's redelivery racing the first) counts for the first of them."""
    rows = _rows([m for group in groups for m in group])
    stored = set(session.execute(_STORE[session.get_bind().dialect.name], rows).scalars())
    if stored:
        notify(session)
    counts = []
    for group in groups:
        mine = {m.message_id for m in group} & stored
        stored -= mine
        counts.append(len(mine))
    return counts


def _inbound(row: Any) -> Inbound:
    return Inbound(
        row.message_id,
        row.wa_number,
        row.wa_user_id,
        row.body,
        row.bot_number,
        row.profile_name,
    )


# The claim: the columns a batch reads (not the ORM's entities: the outcomes are written with
# Core statements below), oldest first. Built once per dialect (the driver keeps it compiled).
_CLAIM = {
    postgres: (
        select(
            _INBOUND.c.message_id,
            _INBOUND.c.wa_number,
            _INBOUND.c.wa_user_id,
            _INBOUND.c.body,
            _INBOUND.c.bot_number,
            _INBOUND.c.profile_name,
            _INBOUND.c.received_at,
            _INBOUND.c.attempts,
        )
        .where(_INBOUND.c.status == "pending")
        .order_by(_INBOUND.c.received_at, _INBOUND.c.message_id)
        .limit(bindparam("batch"))
    )
    for postgres in (False, True)
}
# Rows another worker is processing are skipped, not waited for; its transaction holds them
# until it commits (or dies, and they are pending again).
_CLAIM[True] = _CLAIM[True].with_for_update(skip_locked=True)


def _claim(session: Session, batch: int, postgres: bool) -> list[Any]:
    with planned_now(session):  # the queue's size swings: no plan kept from an empty one
        return list(driver.execute(session, _CLAIM[postgres], {"batch": batch}))


def _credit_batch(session: Session, bot: Bot, rows: list[Any]) -> dict[str, int]:
    """The batch's plain PIN credits, set-based (``Bot.credit_batch``), in a savepoint: if
    that step fails, it is undone and every message goes one at a time, so a failing
    message is found and isolated as before."""
    try:
        with session.begin_nested():
            return bot.credit_batch(session, [_inbound(row) for row in rows])
    except Exception:
        log.exception("set-based credit of %d messages failed; one at a time", len(rows))
        return {}


# The batch's outcomes. Its messages done (credited or taken one at a time), with their
# sender's contact: on PostgreSQL ONE statement over array parameters (one text whatever the
# batch's size; an executemany is one execution per row there), on SQLite an executemany.
_CREDITED = unnested(
    "credited", ids=_INBOUND.c.message_id.type, contacts=_INBOUND.c.contact_id.type
)
_DONE = {
    True: update(_INBOUND)
    .where(_INBOUND.c.message_id == _CREDITED.c.ids)
    .values(contact_id=_CREDITED.c.contacts, status="done", processed_at=bindparam("at")),
    False: update(_INBOUND)
    .where(_INBOUND.c.message_id == bindparam("id"))
    .values(contact_id=bindparam("contact"), status="done", processed_at=bindparam("at")),
}
# A message that failed (rolled back alone): its try counted, its error kept, ``failed``
# after ``MAX_ATTEMPTS`` (rare: one statement each).
_FAILED = (
    update(_INBOUND)
    .where(_INBOUND.c.message_id == bindparam("id"))
    .values(status=bindparam("to"), attempts=bindparam("tries"), last_error=bindparam("error"))
)


def process_batch(db: Database, bot: Bot, batch: int = 50) -> int:
    """Process up to ``batch`` pending messages in one transaction; returns how many were
    taken. Messages are handled in the order of their senders, so workers running at once
    lock contacts in one order and cannot deadlock on them."""
    postgres = not db.is_sqlite
    with db.session() as session:
        rows = _claim(session, batch, postgres)
        if not rows:
            return 0
        outbox.wake_this_process_only(session)  # its replies: this worker delivers them
        rows.sort(key=lambda r: (r.wa_number or "", r.wa_user_id or "", r.received_at))
        at = now()
        done = _credit_batch(session, bot, rows)  # message id -> its sender's contact
        for row in rows:
            if row.message_id in done:
                continue
            try:
                with session.begin_nested():
                    done[row.message_id] = bot.process(session, _inbound(row))
            except Exception as exc:  # this message alone is rolled back
                log.exception("inbound %s failed", row.message_id)
                tries = row.attempts + 1
                session.execute(
                    _FAILED,
                    {
                        "id": row.message_id,
                        "to": "failed" if tries >= MAX_ATTEMPTS else "pending",
                        "tries": tries,
                        "error": f"{type(exc).__name__}: {exc}"[:2000],
                    },
                )
        if done and postgres:
            # Planned for the batch and the table as they are (``unprepared``): a generic plan
            # counts ten messages, and one made while the table was young read all of it for
            # every batch after, however it had grown (1.6 ms for 24 messages at 6,000 rows).
            with unprepared(session):
                driver.execute(
                    session,
                    _DONE[True],
                    {"ids": list(done), "contacts": list(done.values()), "at": at},
                )
        elif done:
            session.execute(
                _DONE[False], [{"id": i, "contact": c, "at": at} for i, c in done.items()]
            )
        return len(rows)


def pending(session: Session) -> int:
    from sqlalchemy import func

    return int(
        session.scalar(
            select(func.count())
            .select_from(InboundMessage)
            .where(InboundMessage.status == "pending")
        )
        or 0
    )


def retry_failed(session: Session) -> int:
    """Put failed messages back in the queue (after a fix); returns how many."""
    result = session.execute(
        update(InboundMessage)
        .where(or_(InboundMessage.status == "failed"))
        .values(status="pending", attempts=0)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


__all__ = ["CHANNEL", "notify", "outbox", "pending", "process_batch", "retry_failed", "store"]
