"""The operator console (platform staff): merchants with their figures; create, suspend and
reactivate a merchant; merchant groups sharing a balance; each merchant's bot number;
platform health; and a read-only view of a merchant's owner pages for support. Every
action is recorded in the audit log."""

from zoneinfo import available_timezones

from babel.numbers import list_currencies
from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from fidelia.audit import service as audit
from fidelia.kit.clock import now
from fidelia.kit.deps import ReadSessionDep, SessionDep
from fidelia.kit.errors import DomainError
from fidelia.messaging import deliveries
from fidelia.panel import i18n
from fidelia.panel.auth import OperatorDep, Viewer, ViewerDep, cookies_of
from fidelia.panel.i18n import N_
from fidelia.panel.web import FormDep, FormRejected, page, panel_router, redirect
from fidelia.platform import service as platform
from fidelia.state import AppState
from fidelia.tenants import service as tenants
from fidelia.users import service as users

router = panel_router("/operator")
CURRENCIES = sorted(list_currencies())
TIMEZONES = sorted(available_timezones())
LOCALES = [("es", N_("Spanish")), ("pt_BR", N_("Portuguese (Brazil)")), ("en", N_("English"))]


def _notice(viewer: Viewer, message: str) -> str:
    return i18n.Texts(viewer.locale).gettext(message)


def _merchants_page(
    request: Request, session: Session, q: str = "", status: int = 200, **values: object
) -> HTMLResponse:
    return page(
        request,
        "operator_merchants.html",
        status=status,
        merchants=platform.merchants(session, q),
        groups=platform.groups(session),
        q=q,
        currencies=[(c, c) for c in CURRENCIES],
        timezones=TIMEZONES,
        locales=LOCALES,
        errors=values.pop("errors", {}),
        form=values.pop("form", {}),
        **values,
    )


@router.get("")
async def console(request: Request, viewer: OperatorDep) -> Response:
    return redirect(request, "/panel/operator/merchants")


@router.get("/merchants")
def merchants(
    request: Request, viewer: OperatorDep, session: ReadSessionDep, q: str = ""
) -> HTMLResponse:
    return _merchants_page(request, session, q)


@router.post("/merchants")
def create_merchant(
    request: Request, viewer: OperatorDep, session: SessionDep, state: AppState, form: FormDep
) -> HTMLResponse:
    """A merchant, its first API key and, with an owner's e-mail, an invitation for them;
    the key and the link are shown in this answer only."""
    try:
        tenant = tenants.create_tenant(
            session,
            slug=form.get("slug", "").strip(),
            name=form.get("name", ""),
            currency=form.get("currency", "USD"),
            timezone=form.get("timezone", "UTC"),
            locale=form.get("locale", "es"),
        )
    except DomainError as exc:
        raise FormRejected(
            _merchants_page(request, session, status=422, errors={"slug": exc.message}, form=form)
        ) from exc
    key = tenants.issue_api_key(session, tenant)
    link = None
    owner = form.get("owner_email", "").strip()
    if owner:
        try:
            _invitation, token = users.invite(
                session,
                tenant.id,
                owner,
                viewer.id,
                state.settings.panel_invitation_hours,
                role="owner",
            )
        except DomainError as exc:
            raise FormRejected(
                _merchants_page(
                    request, session, status=422, errors={"owner_email": exc.message}, form=form
                )
            ) from exc
        link = str(request.base_url).rstrip("/") + f"/panel/invitations/{token}"
    audit.record(
        session,
        viewer.actor,
        "tenant.create",
        "tenant",
        tenant.id,
        tenant_id=tenant.id,
        after={"slug": tenant.slug, "name": tenant.name, "owner": owner or None},
    )
    audit.record(session, viewer.actor, "apikey.create", "api_key", key.token, tenant_id=tenant.id)
    return _merchants_page(
        request, session, created=tenant, api_key=key.api_key, api_token=key.token, link=link
    )


def _change_state(
    request: Request, viewer: Viewer, session: Session, merchant_id: int, suspend: bool
) -> Response:
    before = tenants.get_by_id(session, merchant_id).suspended_at
    tenant = (tenants.suspend if suspend else tenants.reactivate)(session, merchant_id)
    audit.record(
        session,
        viewer.actor,
        "tenant.suspend" if suspend else "tenant.reactivate",
        "tenant",
        tenant.id,
        tenant_id=tenant.id,
        before={"suspended_at": before},
        after={"suspended_at": tenant.suspended_at},
    )
    text = N_("%(slug)s is suspended.") if suspend else N_("%(slug)s is active again.")
    return redirect(
        request, "/panel/operator/merchants", _notice(viewer, text) % {"slug": tenant.slug}
    )


@router.post("/merchants/{merchant_id}/suspend")
def suspend(
    request: Request, merchant_id: int, viewer: OperatorDep, session: SessionDep
) -> Response:
    return _change_state(request, viewer, session, merchant_id, True)


@router.post("/merchants/{merchant_id}/reactivate")
def reactivate(
    request: Request, merchant_id: int, viewer: OperatorDep, session: SessionDep
) -> Response:
    return _change_state(request, viewer, session, merchant_id, False)


@router.post("/merchants/{merchant_id}/bot-number")
def bot_number(
    request: Request, merchant_id: int, viewer: OperatorDep, session: SessionDep, form: FormDep
) -> Response:
    tenant = tenants.get_by_id(session, merchant_id)
    before = tenant.bot_number
    try:
        tenants.set_setting(session, tenant.slug, "bot_number", form.get("bot_number", ""))
    except DomainError as exc:
        raise FormRejected(
            _merchants_page(
                request, session, status=422, errors={f"bot-{merchant_id}": exc.message}
            )
        ) from exc
    audit.record(
        session,
        viewer.actor,
        "setting.change",
        "settings",
        tenant.id,
        tenant_id=tenant.id,
        before={"bot_number": before},
        after={"bot_number": tenant.bot_number},
    )
    return redirect(request, "/panel/operator/merchants", _notice(viewer, N_("Bot number saved.")))


@router.post("/groups")
def create_group(
    request: Request, viewer: OperatorDep, session: SessionDep, form: FormDep
) -> Response:
    members = [s.strip() for s in form.get("members", "").replace(",", " ").split() if s.strip()]
    try:
        group = tenants.create_group(
            session,
            slug=form.get("group_slug", "").strip(),
            name=form.get("group_name", ""),
            tenant_slugs=members,
        )
    except DomainError as exc:
        raise FormRejected(
            _merchants_page(
                request, session, status=422, errors={"group_slug": exc.message}, form=form
            )
        ) from exc
    for slug in members:
        audit.record(
            session,
            viewer.actor,
            "group.join",
            "program",
            group.id,
            tenant_id=tenants.get_by_slug(session, slug).id,
            after={"group": group.slug, "members": members},
        )
    return redirect(request, "/panel/operator/merchants", _notice(viewer, N_("Group created.")))


@router.post("/merchants/{merchant_id}/impersonate")
def impersonate(
    request: Request, merchant_id: int, viewer: OperatorDep, session: SessionDep
) -> Response:
    """See the merchant's owner pages, read-only, for an hour (or until stopped)."""
    tenant = tenants.get_by_id(session, merchant_id)
    audit.record(
        session,
        viewer.actor,
        "impersonation.start",
        "tenant",
        tenant.id,
        tenant_id=tenant.id,
        after={"operator": viewer.email},
    )
    response = redirect(request, "/panel/dashboard")
    cookies_of(request).start_impersonation(response, viewer.id, tenant.id)
    return response


@router.post("/impersonation/stop")
def stop_impersonating(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    """Back to the console (any signed-in user may clear the cookie; only an operator's
    view of a merchant is recorded)."""
    if viewer.impersonator is not None and viewer.tenant is not None:
        audit.record(
            session,
            viewer.actor,
            "impersonation.stop",
            "tenant",
            viewer.tenant.id,
            tenant_id=viewer.tenant.id,
        )
    response = redirect(request, "/panel/operator/merchants" if viewer.impersonator else "/panel/")
    cookies_of(request).end_impersonation(response)
    return response


@router.get("/health")
def health(
    request: Request, viewer: OperatorDep, session: ReadSessionDep, state: AppState
) -> HTMLResponse:
    intake = platform.webhook_intake(session, 60)
    beat = platform.heartbeat(session)
    return page(
        request,
        "operator_health.html",
        outbox=deliveries.health(session),
        namespaces=platform.namespaces(session, state.settings.bot_number, state.pin_policy),
        intake=intake,
        intake_total=(sum(w for _m, w, _b in intake), sum(b for _m, _w, b in intake)),
        heartbeat=beat,
        beat_age=None if beat is None else int((now() - beat).total_seconds()),
    )
