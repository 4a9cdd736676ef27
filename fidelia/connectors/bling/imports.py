"""Import (contacts, then sales, since a date) and reconciliation (orders changed since the
last look), both paged through Bling's lists at its pace.

Each page is read from Bling outside any transaction, then applied in ONE transaction
together with the checkpoint (the next page): a crash anywhere resumes at the first page
whose effects did not commit, and applying a page twice changes nothing (orders are keyed
``bling:<id>``, customers by their identifiers), so a second import is a no-op.

An import is run by one runner at a time: it holds a lease (``runner`` = host:pid,
``locked_until``), renewed every page; another runner takes it over when the lease ran out
or when the holder was a process on this host that no longer exists (killed).
"""

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select

from fidelia.connectors.bling import sales, sync
from fidelia.connectors.bling.client import Bling
from fidelia.kit.clock import now
from fidelia.kit.db import Database
from fidelia.kit.errors import Conflict
from fidelia.models import BlingConnection, BlingImport, Tenant

LEASE = timedelta(seconds=60)
ERROR_PAUSE = timedelta(seconds=30)
ACTIVE = ("pending", "running")
BLING_ZONE = ZoneInfo("America/Sao_Paulo")  # Bling's dates are Brasília time
RECONCILE_OVERLAP = timedelta(minutes=5)  # clocks differ; re-reading is harmless


def runner_id(suffix: str = "") -> str:
    return f"{socket.gethostname()}:{os.getpid()}{suffix}"


def _holder_dead(runner: str | None) -> bool:
    """The lease holder was a process of this host that is gone."""
    if not runner:
        return True
    host, _, rest = runner.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def start_import(session: Any, tenant: Tenant, since: date) -> BlingImport:
    """The merchant's unfinished import since ``since`` (resumed), or a new one. Another
    unfinished import since another date is refused: finish it first."""
    active = session.scalar(
        select(BlingImport)
        .where(BlingImport.tenant_id == tenant.id, BlingImport.status.in_(ACTIVE))
        .order_by(BlingImport.id)
    )
    if active is not None:
        if active.since != since:
            raise Conflict(
                f"An import since {active.since.isoformat()} is unfinished; run it with that "
                "date to resume it, then import again.",
                code="BLING_IMPORT_UNFINISHED",
            )
        return active
    job = BlingImport(tenant_id=tenant.id, since=since, status="pending", phase="contacts", page=1)
    session.add(job)
    session.flush()
    return job


def progress(job: BlingImport) -> dict[str, Any]:
    return {
        "id": job.id,
        "since": job.since.isoformat(),
        "status": job.status,
        "phase": job.phase,
        "page": job.page,
        "contacts": job.contacts,
        "orders": job.orders,
        "earned": job.earned,
        "last_error": job.last_error,
        "started_at": job.created_at.isoformat(),
        "updated_at": job.updated_at.isoformat() if job.updated_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def _claim(db: Database, import_id: int, runner: str) -> bool:
    with db.session() as session:
        job = session.scalar(
            select(BlingImport).where(BlingImport.id == import_id).with_for_update()
        )
        if job is None or job.status not in ACTIVE:
            return False
        at = now()
        free = (
            job.runner in (runner, None)
            or job.locked_until is None
            or job.locked_until < at
            or _holder_dead(job.runner)
        )
        if free:
            job.runner, job.locked_until, job.status = runner, at + LEASE, "running"
        return free


@dataclass
class Step:
    phase: str
    page: int
    items: int
    done: bool


def run_import(
    db: Database,
    bling: Bling,
    import_id: int,
    *,
    runner: str | None = None,
    max_pages: int | None = None,
    on_page: Callable[[BlingImport], None] | None = None,
) -> BlingImport | None:
    """Run (or resume) an import from its checkpoint; None when another runner holds it.
    Errors are recorded on the import (``last_error``) and raised; running again resumes."""
    runner = runner or runner_id()
    if not _claim(db, import_id, runner):
        return None
    pages = 0
    try:
        while max_pages is None or pages < max_pages:
            step = _one_page(db, bling, import_id, runner)
            pages += 1
            if on_page is not None:
                with db.session(readonly=True) as session:
                    on_page(session.get_one(BlingImport, import_id))
            if step.done:
                break
    except Exception as exc:
        with db.session() as session:
            job = session.get_one(BlingImport, import_id)
            job.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            # The worker tries again after a pause; an operator may resume at once.
            job.runner, job.locked_until = None, now() + ERROR_PAUSE
        raise
    with db.session(readonly=True) as session:
        return session.get_one(BlingImport, import_id)


def _one_page(db: Database, bling: Bling, import_id: int, runner: str) -> Step:
    with db.session(readonly=True) as session:
        job = session.get_one(BlingImport, import_id)
        link = sync.link_for(session, job.tenant_id)
        phase, page, since = job.phase, job.page, job.since
    if phase == "contacts":
        params: dict[str, Any] = {"dataInclusaoInicial": since.isoformat(), "criterio": 1}
        body = bling.get(link, "/contatos", {**params, "pagina": page, "limite": bling.page_size})
    else:
        params = {"dataInicial": since.isoformat()}
        body = bling.get(
            link, "/pedidos/vendas", {**params, "pagina": page, "limite": bling.page_size}
        )
    items = [i for i in body.get("data") or [] if isinstance(i, dict)]
    prepared = sync.prepare_page(db, bling, link, items) if phase == "orders" else []
    if phase == "contacts":
        # The list has no e-mail: a contact known by nothing else in it is read in full.
        items = [
            (sync.fetch_contact(bling, link, str(c["id"])) or c)
            if c.get("id") and not (c.get("numeroDocumento") or c.get("celular"))
            else c
            for c in items
        ]
    last = len(items) < bling.page_size
    with db.session() as session:
        locked = session.scalar(
            select(BlingImport).where(BlingImport.id == import_id).with_for_update()
        )
        assert locked is not None
        job = locked
        if job.runner != runner or (job.phase, job.page) != (phase, page):
            raise RuntimeError("the import was taken over by another runner")
        tenant = session.get_one(Tenant, job.tenant_id)
        if phase == "contacts":
            for contact in items:
                if str(contact.get("situacao") or "A") == "E":  # deleted in Bling
                    continue
                sales.customer_from_contact(session, tenant, link, contact)
            job.contacts += len(items)
        else:
            outcomes = sync.apply_all(session, link, prepared)
            job.orders += len(items)
            job.earned += sum(1 for o in outcomes if o.state == "earned")
        at = now()
        job.locked_until = at + LEASE
        job.last_error = None
        if not last:
            job.page = page + 1
        elif phase == "contacts":
            job.phase, job.page = "orders", 1
        else:
            job.phase, job.status, job.finished_at = "done", "done", at
            job.locked_until = None
        connection = session.scalar(
            select(BlingConnection).where(BlingConnection.tenant_id == job.tenant_id)
        )
        if connection is not None:
            connection.last_sync_at = at
        return Step(phase, page, len(items), job.status == "done")


def due_import(db: Database, runner: str) -> int | None:
    """An unfinished import nobody else is running (for the worker)."""
    with db.session(readonly=True) as session:
        at = now()
        return session.scalar(
            select(BlingImport.id)
            .join(BlingConnection, BlingConnection.tenant_id == BlingImport.tenant_id)
            .where(
                BlingImport.status.in_(ACTIVE),
                BlingConnection.status == "connected",
                or_(
                    BlingImport.locked_until.is_(None),
                    BlingImport.locked_until < at,
                    BlingImport.runner == runner,
                ),
            )
            .order_by(BlingImport.id)
            .limit(1)
        )


def bling_time(at: datetime) -> str:
    return at.astimezone(BLING_ZONE).strftime("%Y-%m-%d %H:%M:%S")


def reconcile(db: Database, bling: Bling, tenant_id: int) -> int:
    """Orders changed at Bling since the last look (``dataAlteracaoInicial``), applied;
    returns how many were looked at. Catches what a lost webhook would have told."""
    started = now()
    with db.session(readonly=True) as session:
        link = sync.link_for(session, tenant_id)
        connection = session.get_one(BlingConnection, link.id)
        since = (connection.reconciled_until or connection.connected_at or started) - (
            RECONCILE_OVERLAP
        )
    seen = 0
    params = {"dataAlteracaoInicial": bling_time(since)}
    for _page, items in bling.pages(link, "/pedidos/vendas", params):
        prepared = sync.prepare_page(db, bling, link, items)
        with db.session() as session:
            sync.apply_all(session, link, prepared)
        seen += len(items)
    with db.session() as session:
        connection = session.get_one(BlingConnection, link.id)
        connection.reconciled_until = started
        connection.last_sync_at = now()
    return seen


def due_reconciliations(db: Database, every: timedelta) -> list[int]:
    """Tenants whose connection was last reconciled more than ``every`` ago."""
    with db.session(readonly=True) as session:
        limit = now() - every
        return list(
            session.scalars(
                select(BlingConnection.tenant_id).where(
                    BlingConnection.status == "connected",
                    BlingConnection.company_id.is_not(None),
                    or_(
                        BlingConnection.reconciled_until.is_(None),
                        BlingConnection.reconciled_until < limit,
                    ),
                )
            )
        )
