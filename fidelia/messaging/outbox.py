"""The transactional outbox: rows written with the state they report, delivered later.

A transaction that enqueues (or stores other work: inbound messages, Bling events) marks
its session (``session.info["outbox_wakeup"]``) and the workers are woken when it commits:
on PostgreSQL by ``NOTIFY fidelia_work``, sent just before the commit and delivered by it to
the workers of other processes that ``LISTEN`` (``fidelia worker``); in this process by the
``wakeup`` event, set after the commit."""

import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, bindparam, event, func, insert, select, text
from sqlalchemy.orm import Session

from fidelia.kit import driver
from fidelia.kit.clock import now
from fidelia.kit.db import unnested
from fidelia.models import OutboxMessage

# How long a worker holds a row it is delivering (the default; FIDELIA_OUTBOX_LEASE_SECONDS).
LEASE = timedelta(seconds=60)
CHANNEL = "fidelia_work"  # what the workers LISTEN to on PostgreSQL
_NOTIFY = text(f"NOTIFY {CHANNEL}")

# Set after a commit that enqueued something, so an in-process worker wakes at once.
wakeup = threading.Event()


@event.listens_for(Session, "before_commit")
def _notify_workers(session: Session) -> None:
    """Once per transaction, at its top-level commit (a savepoint rolled back cannot take it
    away), unless the transaction said otherwise (``wake_this_process_only``). SQLAlchemy
    sends ``before_commit`` and ``after_commit`` for a savepoint released too: those wait
    for the transaction's own commit (a released savepoint cleared the flags, so a worker's
    batch, a savepoint per message, notified every worker)."""
    if session.in_nested_transaction():
        return
    if (
        session.info.get("outbox_wakeup")
        and not session.info.get("outbox_notified")
        and session.get_bind().dialect.name == "postgresql"
    ):
        session.execute(_NOTIFY)
        session.info["outbox_notified"] = True


def wake_this_process_only(session: Session) -> None:
    """For a worker's own transaction: what it enqueues, it delivers in its next round (this
    process's event wakes it), so no NOTIFY, which would only wake it, and every other
    worker, for nothing."""
    session.info["outbox_notified"] = True


@event.listens_for(Session, "after_commit")
def _wake_worker(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: the transaction is not committed yet
    session.info.pop("outbox_notified", None)
    if session.info.pop("outbox_wakeup", False):
        wakeup.set()


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint: what the transaction enqueued before it is still there
    session.info.pop("outbox_wakeup", None)
    session.info.pop("outbox_notified", None)


def enqueue(
    session: Session, channel: str, payload: dict[str, Any], tenant_id: int | None = None
) -> OutboxMessage:
    message = OutboxMessage(channel=channel, payload=payload, tenant_id=tenant_id)
    session.add(message)
    session.info["outbox_wakeup"] = True
    return message


def whatsapp_text(
    session: Session,
    *,
    text: str,
    wa_number: str | None,
    wa_user_id: str | None,
    tenant_id: int | None = None,
) -> OutboxMessage:
    """A Cloud API text message to a number, or to a business-scoped user id."""
    return enqueue(session, "whatsapp", _whatsapp_payload(text, wa_number, wa_user_id), tenant_id)


class Text(NamedTuple):
    """One ``whatsapp_text`` of ``whatsapp_texts``."""

    text: str
    wa_number: str | None
    wa_user_id: str | None
    tenant_id: int | None


_OUTBOX = cast(Table, OutboxMessage.__table__)
_ENQUEUE_MANY = insert(_OUTBOX)  # SQLite's: an executemany (cheap there)


def _enqueue_all() -> Any:
    """PostgreSQL's: ONE statement over array parameters (one text whatever the number of
    replies; an executemany is one execution per row there), the rows inserted in the
    arrays' order (their ids, the order the worker delivers them in). The columns the
    model fills with Python defaults are given (not run for an ``INSERT ... SELECT``): the
    batch's channel, status, attempts and time."""
    c = _OUTBOX.c
    rows = unnested("replies", tenants=c.tenant_id.type, payloads=c.payload.type)
    at = bindparam("at", type_=c.created_at.type)
    return insert(_OUTBOX).from_select(
        ("tenant_id", "channel", "payload", "status", "attempts", "next_attempt_at", "created_at"),
        select(
            rows.c.tenants,
            bindparam("channel", type_=c.channel.type),
            rows.c.payloads,
            bindparam("status", type_=c.status.type),
            bindparam("attempts", type_=c.attempts.type),
            at,
            at,
        ).order_by(rows.c.n),
        include_defaults=False,
    )


_ENQUEUE_ALL = _enqueue_all()
# The same with the transaction's wake-up in it: ``pg_notify`` queues the NOTIFY that
# ``_notify_workers`` would send at the commit (delivered at the commit, dropped with a
# rollback; the same channel and payload twice in a transaction are delivered once).
_ENQUEUE_NOTIFYING = _ENQUEUE_ALL.returning(func.pg_notify(CHANNEL, ""))
_ENQUEUE_ONE_NOTIFYING = _ENQUEUE_MANY.returning(func.pg_notify(CHANNEL, ""))


def whatsapp_texts(session: Session, texts: Sequence[Text]) -> None:
    """``whatsapp_text`` for a batch: the rows inserted in one statement, in this order
    (PostgreSQL: arrays, or the one-row insert for one; SQLite: an executemany). On
    PostgreSQL, outside a savepoint, in a transaction that has not notified yet, the insert
    carries the NOTIFY (one round trip less at the commit)."""
    if not texts:
        return
    rows = [
        {
            "channel": "whatsapp",
            "payload": _whatsapp_payload(t.text, t.wa_number, t.wa_user_id),
            "tenant_id": t.tenant_id,
        }
        for t in texts
    ]
    if session.get_bind().dialect.name != "postgresql":
        session.execute(_ENQUEUE_MANY, rows)
        session.info["outbox_wakeup"] = True
        return
    notifying = not session.info.get("outbox_notified") and not session.in_nested_transaction()
    if len(rows) == 1:  # a notice: the one-row insert (the arrays cost more for one row)
        session.execute(_ENQUEUE_ONE_NOTIFYING if notifying else _ENQUEUE_MANY, rows[0])
    else:  # on the driver's connection: its arrays in the binary format (``kit/driver.py``)
        driver.execute(
            session,
            _ENQUEUE_NOTIFYING if notifying else _ENQUEUE_ALL,
            {
                "tenants": [row["tenant_id"] for row in rows],
                "payloads": [row["payload"] for row in rows],
                "channel": "whatsapp",
                "status": "pending",
                "attempts": 0,
                "at": now(),
            },
        )
    session.info["outbox_wakeup"] = True
    if notifying:
        session.info["outbox_notified"] = True


def _queued(notifying: bool) -> Any:
    """PostgreSQL: one text's insert as a CTE for a caller's statement (``along``), with
    the NOTIFY or without; its bind parameters named apart from the tables' columns."""
    c = _OUTBOX.c
    at = bindparam("outbox_at", type_=c.created_at.type)
    queued = insert(_OUTBOX).values(
        tenant_id=bindparam("outbox_tenant", type_=c.tenant_id.type),
        channel=bindparam("outbox_channel", type_=c.channel.type),
        payload=bindparam("outbox_payload", type_=c.payload.type),
        status=bindparam("outbox_status", type_=c.status.type),
        attempts=bindparam("outbox_attempts", type_=c.attempts.type),
        next_attempt_at=at,
        created_at=at,
    )
    return (queued.returning(func.pg_notify(CHANNEL, "")) if notifying else queued).cte("queued")


# ``along``'s CTEs, without and with the NOTIFY: a statement that carries one is built once
# for each (a CTE's insert runs whether or not the statement reads it).
QUEUED = {False: _queued(False), True: _queued(True)}


def along(session: Session, text: Text) -> tuple[bool, dict[str, Any]]:
    """PostgreSQL: ``whatsapp_texts`` of one text, sent in the caller's next statement
    (one round trip less): whether the caller's statement is to carry ``QUEUED[True]``
    (it notifies, as ``whatsapp_texts`` would) or ``QUEUED[False]``, and its parameters.
    The session is marked as ``whatsapp_texts`` marks it: call it for a statement that
    is sent (if it fails, the transaction rolls back and the marks go with it)."""
    notifying = not session.info.get("outbox_notified") and not session.in_nested_transaction()
    session.info["outbox_wakeup"] = True
    if notifying:
        session.info["outbox_notified"] = True
    return notifying, {
        "outbox_tenant": text.tenant_id,
        "outbox_channel": "whatsapp",
        "outbox_payload": _whatsapp_payload(text.text, text.wa_number, text.wa_user_id),
        "outbox_status": "pending",
        "outbox_attempts": 0,
        "outbox_at": now(),
    }


def _whatsapp_payload(text: str, wa_number: str | None, wa_user_id: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "type": "text",
        "text": {"body": text},
    }
    if wa_number:
        payload["to"] = wa_number.lstrip("+")
    else:
        payload["recipient"] = wa_user_id
    return payload
