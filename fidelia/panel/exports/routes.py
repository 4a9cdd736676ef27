"""Exports: the merchant's customers, ledger, redemptions, orders and vouchers as CSV
(UTF-8 with BOM, optionally with a decimal comma), streamed page by page by
exports/service.py so that any size downloads in constant memory."""

from fastapi import Request
from fastapi.responses import HTMLResponse, StreamingResponse

from fidelia.audit import service as audit
from fidelia.exports import service as exports
from fidelia.kit.deps import ReadSessionDep
from fidelia.panel.auth import OwnerDep
from fidelia.panel.i18n import N_
from fidelia.panel.web import page, panel_router
from fidelia.state import AppState

router = panel_router("/exports")
LABELS = {
    "customers": N_("Customers"),
    "ledger": N_("Ledger"),
    "redemptions": N_("Redemptions"),
    "orders": N_("Orders"),
    "vouchers": N_("Vouchers"),
}

DECIMALS = [
    ("point", N_("1234.56, fields separated by commas")),
    ("comma", N_("1234,56, fields separated by semicolons")),
]


@router.get("")
def exports_page(request: Request, viewer: OwnerDep, session: ReadSessionDep) -> HTMLResponse:
    tenant = viewer.tenant_in(session)
    comma = tenant.locale.split("_")[0].split("-")[0] in ("es", "pt", "fr", "de", "it")
    return page(request, "exports.html", kinds=list(LABELS.items()), decimals=DECIMALS, comma=comma)


@router.get("/download")
def download(
    viewer: OwnerDep,
    session: ReadSessionDep,
    state: AppState,
    kind: str = "",
    since: str = "",
    until: str = "",
    decimal: str = "point",
) -> StreamingResponse:
    tenant = viewer.tenant_in(session)
    session.expunge(tenant)
    options = exports.Options(
        exports.parse_day(since, "since"),
        exports.parse_day(until, "until"),
        decimal_comma=decimal == "comma",
    )
    chunks = exports.rows(state.db, tenant, kind, options)  # checks everything before streaming
    with state.db.session() as audited:  # who took which data out, before the first byte
        audit.record(
            audited,
            viewer.actor,
            "export.download",
            "export",
            kind,
            tenant_id=tenant.id,
            after=exports.described(kind, options),
        )
    name = exports.filename(tenant, kind, options)
    return StreamingResponse(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
