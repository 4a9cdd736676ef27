"""Audit log pages: an owner sees their merchant's entries, an operator every merchant's
(with a merchant filter). Read only: the log has no edit path, and the database refuses
UPDATE and DELETE on it."""

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from fidelia.audit import service as audit
from fidelia.exports.service import parse_day
from fidelia.kit.deps import ReadSessionDep
from fidelia.models import Tenant
from fidelia.panel.auth import OperatorDep, OwnerDep
from fidelia.panel.web import page, panel_router

router = panel_router()
PAGE = 50


def _bounds(since: str, until: str, zone: str) -> tuple[datetime | None, datetime | None]:
    first, last = parse_day(since, "since"), parse_day(until, "until")
    tz = ZoneInfo(zone)
    start = datetime.combine(first, time(0), tz) if first else None
    end = datetime.combine(last + timedelta(days=1), time(0), tz) if last else None
    return start, end


def _page(
    request: Request,
    session: Session,
    tenant_id: int | None,
    zone: str,
    filters: dict[str, str],
    before: int | None,
    **values: Any,
) -> HTMLResponse:
    start, end = _bounds(filters["since"], filters["until"], zone)
    rows = audit.entries(
        session,
        tenant_id,
        limit=PAGE + 1,
        before_id=before,
        action=filters["action"],
        actor=filters["actor"],
        since=start,
        until=end,
    )
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    slugs = dict(
        session.execute(
            select(Tenant.id, Tenant.slug).where(Tenant.id.in_({r.tenant_id for r in rows}))
        ).all()
    )
    return page(
        request,
        "audit.html",
        entries=[(r, audit.changes(r)) for r in rows],
        slugs=slugs,
        filters=filters,
        next_before=rows[-1].id if more and rows else None,
        **values,
    )


@router.get("/audit")
def merchant_log(
    request: Request,
    viewer: OwnerDep,
    session: ReadSessionDep,
    action: str = "",
    actor: str = "",
    since: str = "",
    until: str = "",
    before: int | None = None,
) -> HTMLResponse:
    filters = {"action": action, "actor": actor, "since": since, "until": until}
    zone = viewer.tenant.timezone if viewer.tenant else "UTC"
    return _page(request, session, viewer.tenant_id, zone, filters, before, platform=False)


@router.get("/operator/audit")
def platform_log(
    request: Request,
    viewer: OperatorDep,
    session: ReadSessionDep,
    merchant: str = "",
    action: str = "",
    actor: str = "",
    since: str = "",
    until: str = "",
    before: int | None = None,
) -> HTMLResponse:
    filters = {
        "merchant": merchant,
        "action": action,
        "actor": actor,
        "since": since,
        "until": until,
    }
    tenant_id = None
    if merchant.strip():
        found = session.scalar(select(Tenant.id).where(Tenant.slug == merchant.strip()))
        tenant_id = found if found is not None else -1  # an unknown merchant: no entries
    return _page(request, session, tenant_id, "UTC", filters, before, platform=True)
