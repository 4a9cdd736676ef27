"""Integrations: how each door (fidelia.doors.DOORS) is reached — its full base URL, the
credential it takes, the guide it follows, its API docs —, the WhatsApp bot number and the
exact wa.me text a POS prints as a QR code, and the Bling card (connect with OAuth, status,
sales situations, import, "test a reference sale", disconnect) through
connectors.bling.service, as docs/bling.md says: functions that call Bling run without the
request's write transaction. API keys have their own page (keys.py)."""

import io
import secrets
from datetime import date, timedelta
from typing import Any

import segno
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fidelia.audit import service as audit
from fidelia.connectors.bling import imports
from fidelia.connectors.bling import routes as bling_routes
from fidelia.connectors.bling import service as bling
from fidelia.dialects.pin_whatsapp.routes import whatsapp_url
from fidelia.doors import DOORS
from fidelia.kit.clock import now
from fidelia.kit.deps import ReadSessionDep, SessionDep
from fidelia.kit.errors import DomainError
from fidelia.models import Tenant
from fidelia.panel import i18n
from fidelia.panel.auth import OwnerDep, Viewer
from fidelia.panel.i18n import N_
from fidelia.panel.web import FormDep, FormRejected, page, panel_router, redirect
from fidelia.pins.service import namespace_of
from fidelia.state import AppState
from fidelia.tenants.service import CREDENTIAL_FIELDS

router = panel_router("/integrations")
SAMPLE_PIN = "123456"
# What each door's credential is, in the merchant's words (the field names come from
# tenants.service.CREDENTIAL_FIELDS, shared with the CLI).
CREDENTIALS = {
    "pin": N_(
        "The API key in the X-API-Key header (only on /integraciones; lookup and "
        "redemption are public)."
    ),
    "pos": N_("HTTP Basic: the token as user, the API key as password."),
    "retail": N_(
        "The API key in the x-api-key header, plus x-source-type, x-source-name, "
        "x-branch-id and x-pos-id."
    ),
    "rest-v2": N_(
        "POST /v2/auth/token with the token as api_key and the API key as "
        "api_secret; then the Bearer token it answers."
    ),
    "whatsapp": N_(
        "Nothing to configure: Meta signs each call (X-Hub-Signature-256) with "
        "the platform's app secret."
    ),
    "bling": N_(
        "Nothing to configure: connect your Bling account below; Bling signs its "
        "webhooks with the platform's Bling app secret."
    ),
}
VALUES = {"token": N_("token"), "api_key": N_("API key")}
STATUS = {
    "not_connected": N_("Not connected"),
    "connected": N_("Connected"),
    "broken": N_("Connection lost: connect again"),
    "disconnected": N_("Disconnected"),
}
OUTCOMES = {
    "no customer: the contact has no CPF/CNPJ, mobile or e-mail": N_(
        "No customer: the contact has no CPF/CNPJ, mobile or e-mail."
    ),
    "already earned": N_("Already earned."),
    "closed (cancelled or deleted)": N_("Closed (cancelled or deleted)."),
    "would earn now": N_("Would earn now."),
    "cancelled: earns nothing": N_("Cancelled: earns nothing."),
    "would earn when it reaches a situation that counts": N_(
        "Would earn when it reaches a situation that counts."
    ),
}
RETURNS = {
    "connected": N_("Bling is connected: the first import has started."),
    "denied": N_("The connection was not authorised at Bling; nothing changed."),
}


def _texts(viewer: Viewer) -> i18n.Texts:
    return i18n.Texts(viewer.locale, viewer.tenant.timezone if viewer.tenant else "UTC")


def doors(base_url: str) -> list[dict[str, Any]]:
    """Every door: title, guide, full base URL, credential (which value goes in which
    field), docs link."""
    found = []
    for door in DOORS:
        fields = CREDENTIAL_FIELDS.get(door.key.replace("-", "_"), {})
        found.append(
            {
                "key": door.key,
                "title": door.title,
                "guide": door.guide,
                "url": base_url + door.base,
                "credential": CREDENTIALS.get(door.key),
                "fields": [(name, VALUES[which]) for name, which in fields.items()],
                "docs": f"{base_url}/docs/{door.key}",
            }
        )
    return found


def _when(texts: i18n.Texts, iso: str | None) -> str | None:
    from datetime import datetime

    return texts.datetime(datetime.fromisoformat(iso)) if iso else None


def bling_card(session: Any, tenant: Tenant, state: AppState, texts: i18n.Texts) -> dict[str, Any]:
    settings = state.settings
    configured = bool(settings.bling_client_id and settings.bling_client_secret)
    found = bling.status(session, tenant)
    job = found.get("import")
    since = (now().date() - timedelta(days=settings.bling_import_days)).isoformat()
    if job and job["status"] in imports.ACTIVE:
        since = job["since"]  # an unfinished import resumes with its own date
    return {
        "configured": configured,
        "status": found["status"],
        "label": STATUS.get(found["status"], found["status"]),
        "company": found.get("company_name"),
        "since": _when(texts, found.get("connected_since")),
        "last_sync": _when(texts, found.get("last_sync_at")),
        "last_error": found.get("last_error"),
        "earning": found.get("earning_situations") or [],
        "cancelled": found.get("cancelled_situations") or [],
        "import": job,
        "import_since": since,
        "redirect_uri": bling.redirect_uri(settings),
    }


def _page(
    request: Request,
    viewer: Viewer,
    session: Any,
    state: AppState,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    texts = _texts(viewer)
    tenant = session.get_one(Tenant, viewer.tenant_id)
    base_url = state.settings.public_url.rstrip("/")
    bot = namespace_of(tenant, state.settings.bot_number)
    returned = request.query_params.get("bling")
    return page(
        request,
        "integrations.html",
        status=status,
        doors=doors(base_url),
        bot=bot,
        own_bot=bool(tenant.bot_number),
        qr_template=whatsapp_url(bot, "{PIN}"),
        qr_sample=whatsapp_url(bot, SAMPLE_PIN),
        sample_pin=SAMPLE_PIN,
        card=bling_card(session, tenant, state, texts),
        returned=RETURNS.get(returned or ""),
        returned_ok=returned == "connected",
        errors=values.pop("errors", {}),
        **values,
    )


@router.get("")
def integrations(
    request: Request, viewer: OwnerDep, session: ReadSessionDep, state: AppState
) -> HTMLResponse:
    return _page(request, viewer, session, state)


@router.get("/qr.svg")
def qr_svg(viewer: OwnerDep, session: ReadSessionDep, state: AppState) -> Response:
    """The QR code a POS prints for a sale PIN (here with the sample PIN)."""
    tenant = viewer.tenant_in(session)
    text = whatsapp_url(namespace_of(tenant, state.settings.bot_number), SAMPLE_PIN)
    buffer = io.BytesIO()
    segno.make(text, error="m", micro=False).save(
        buffer, kind="svg", scale=6, border=2, xmldecl=False
    )
    return Response(buffer.getvalue(), media_type="image/svg+xml")


# -- Bling ------------------------------------------------------------------------------------


def _refused(
    request: Request, viewer: Viewer, session: Any, state: AppState, field: str, message: str
) -> FormRejected:
    return FormRejected(_page(request, viewer, session, state, 422, errors={field: message}))


@router.post("/bling/connect")
def bling_connect(
    request: Request, viewer: OwnerDep, session: SessionDep, state: AppState
) -> Response:
    """Bling's authorize URL with a fresh state bound to this browser (cookie), then away."""
    binding = secrets.token_urlsafe(24)
    tenant = viewer.tenant_in(session)
    try:
        url = bling.start_connect(session, tenant, binding, state.settings)
    except DomainError as exc:
        raise _refused(request, viewer, session, state, "bling", exc.message) from exc
    audit.record(
        session, viewer.actor, "bling.connect_start", "bling", tenant.id, tenant_id=tenant.id
    )
    response = RedirectResponse(url, status_code=303)
    bling_routes.set_binding_cookie(
        response, binding, state.settings.public_url.startswith("https")
    )
    return response


@router.get("/bling/situations")
def bling_situations(
    request: Request, viewer: OwnerDep, session: ReadSessionDep, state: AppState
) -> HTMLResponse:
    """Bling's sales situations and the merchant's choice (asks Bling; no write session)."""
    tenant = viewer.tenant_in(session)
    try:
        rows = bling.sales_situations(state.db, bling_routes.client_for(state), tenant)
    except DomainError as exc:
        raise _refused(request, viewer, session, state, "bling", exc.message) from exc
    return page(request, "bling_situations.html", rows=rows, errors={})


@router.post("/bling/situations")
def bling_set_situations(
    request: Request, viewer: OwnerDep, session: SessionDep, state: AppState, form: FormDep
) -> Response:
    earning, cancelled = [], []
    for name, value in form.items():
        kind, _, ident = name.partition("_")
        if kind == "situation" and ident.isdigit():
            if value == "earns":
                earning.append(int(ident))
            elif value == "cancels":
                cancelled.append(int(ident))
    tenant = viewer.tenant_in(session)
    before = bling.status(session, tenant)
    try:
        after = bling.set_situations(session, tenant, earning, cancelled)
    except DomainError as exc:
        raise _refused(request, viewer, session, state, "bling", exc.message) from exc
    audit.record(
        session,
        viewer.actor,
        "bling.situations",
        "bling",
        tenant.id,
        tenant_id=tenant.id,
        before={k: before.get(k) for k in after},
        after=after,
    )
    notice = _texts(viewer).gettext(N_("Sales situations saved."))
    return redirect(request, "/panel/integrations", notice)


@router.post("/bling/import")
def bling_import(
    request: Request, viewer: OwnerDep, session: SessionDep, state: AppState, form: FormDep
) -> Response:
    tenant = viewer.tenant_in(session)
    try:
        since = date.fromisoformat(form.get("since", "").strip())
    except ValueError as exc:
        message = _texts(viewer).gettext(N_("A date, please (YYYY-MM-DD)."))
        raise _refused(request, viewer, session, state, "since", message) from exc
    try:
        job = bling.start_import(session, tenant, since)
    except DomainError as exc:
        raise _refused(request, viewer, session, state, "since", exc.message) from exc
    audit.record(
        session,
        viewer.actor,
        "bling.import",
        "bling",
        tenant.id,
        tenant_id=tenant.id,
        after={"since": since.isoformat(), "import": job["id"]},
    )
    notice = _texts(viewer).gettext(N_("Import queued: the worker brings the sales in."))
    return redirect(request, "/panel/integrations", notice)


@router.post("/bling/preview")
def bling_preview(
    request: Request, viewer: OwnerDep, session: ReadSessionDep, state: AppState, form: FormDep
) -> HTMLResponse:
    """ "Test a reference sale": writes nothing (Bling is asked outside any write session)."""
    texts = _texts(viewer)
    order_id = form.get("order_id", "").strip()
    tenant = viewer.tenant_in(session)
    try:
        found = bling.preview_order(state.db, bling_routes.client_for(state), tenant, order_id)
    except DomainError as exc:
        raise _refused(request, viewer, session, state, "order_id", exc.message) from exc
    currency = found["currency"]
    preview = {
        "order": found["order"],
        "customer": found["customer"],
        "value": texts.money(int(found["value"]), currency),
        "points": texts.number(found["points"]),
        "cashback": texts.money(int(found["cashback"]), currency),
        "counts": found["situation_counts"],
        "outcome": OUTCOMES.get(found["outcome"]),
        "outcome_text": found["outcome"],
    }
    return _page(request, viewer, session, state, preview=preview, order_id=order_id)


@router.post("/bling/disconnect")
def bling_disconnect(
    request: Request, viewer: OwnerDep, session: SessionDep, state: AppState
) -> Response:
    tenant = viewer.tenant_in(session)
    try:
        done = bling.disconnect(session, tenant, bling_routes.client_for(state))
    except DomainError as exc:
        raise _refused(request, viewer, session, state, "bling", exc.message) from exc
    audit.record(
        session,
        viewer.actor,
        "bling.disconnect",
        "bling",
        tenant.id,
        tenant_id=tenant.id,
        after={"revoked": done["revoked"]},
    )
    notice = _texts(viewer).gettext(N_("Bling disconnected: its tokens are deleted."))
    return redirect(request, "/panel/integrations", notice)
