"""The audit log: every change a person makes through the panel or the CLI (settings,
rewards, keys, users, manual adjustments, erasures, voucher validations) is recorded in the
same transaction as the change, with who, when, what, and the values before and after.

Nothing in it can be edited: the table has no update path in the code, and the database
itself refuses UPDATE and DELETE on it (triggers, migration 0007)."""

import getpass
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fidelia.kit.clock import now
from fidelia.models import AuditEntry


@dataclass(frozen=True)
class Actor:
    kind: str  # user | cli | system
    label: str
    id: int | None = None


def cli_actor() -> Actor:
    """Whoever runs the command on the server: the operating-system account and host."""
    try:
        who = getpass.getuser()
    except Exception:  # no user database entry (containers)
        who = "unknown"
    return Actor("cli", f"{who}@{socket.gethostname()}")


def _plain(values: dict[str, Any] | None) -> dict[str, Any] | None:
    """JSON-safe copies (dates, decimals and other values as text)."""
    if values is None:
        return None
    return {
        str(k): v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else str(v)
        for k, v in values.items()
    }


def record(
    session: Session,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: object = None,
    *,
    tenant_id: int | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        at=now(),
        tenant_id=tenant_id,
        actor_kind=actor.kind,
        actor_id=actor.id,
        actor_label=actor.label[:200],
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id)[:64],
        before=_plain(before),
        after=_plain(after),
    )
    session.add(entry)
    session.flush()
    return entry


def entries(
    session: Session,
    tenant_id: int | None,
    *,
    limit: int = 50,
    before_id: int | None = None,
    action: str = "",
    actor: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AuditEntry]:
    """Newest first; ``tenant_id`` None means every merchant's (operators). ``action``
    matches its start ("setting" finds setting.change), ``actor`` any part of the label."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if tenant_id is not None:
        query = query.where(AuditEntry.tenant_id == tenant_id)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    if action.strip():
        query = query.where(AuditEntry.action.startswith(action.strip(), autoescape=True))
    if actor.strip():
        query = query.where(
            func.lower(AuditEntry.actor_label).contains(actor.strip().lower(), autoescape=True)
        )
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    return list(session.scalars(query))


def changes(entry: AuditEntry) -> list[tuple[str, Any, Any]]:
    """(field, before, after) of an entry, for display."""
    before, after = entry.before or {}, entry.after or {}
    return [(key, before.get(key), after.get(key)) for key in dict.fromkeys([*before, *after])]
