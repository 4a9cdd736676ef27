"""API keys: the merchant's credentials (name, the key's last characters, the public token's
start, created, last used, revoked); create one — its secret and token are shown once, with
which door takes which value in which field (tenants.service.doors, shared with the CLI) —;
revoke one (asked first). Doors refuse a revoked key within FIDELIA_TENANT_CACHE_SECONDS."""

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from fidelia.audit import service as audit
from fidelia.doors import DOORS
from fidelia.kit.deps import ReadSessionDep, SessionDep
from fidelia.kit.errors import DomainError
from fidelia.panel import i18n
from fidelia.panel.auth import OwnerDep, Viewer
from fidelia.panel.i18n import N_
from fidelia.panel.integrations.routes import VALUES
from fidelia.panel.web import FormDep, FormRejected, page, panel_router, redirect
from fidelia.state import AppState
from fidelia.tenants import service as tenants

router = panel_router("/integrations/keys")


def _page(
    request: Request,
    viewer: Viewer,
    session: Session,
    state: AppState,
    status: int = 200,
    **values: object,
) -> HTMLResponse:
    tenant = viewer.tenant_in(session)
    return page(
        request,
        "keys.html",
        status=status,
        keys=tenants.api_keys_of(session, tenant),
        cache_seconds=f"{state.settings.tenant_cache_seconds:g}",
        errors=values.pop("errors", {}),
        **values,
    )


@router.get("")
def keys(
    request: Request, viewer: OwnerDep, session: ReadSessionDep, state: AppState
) -> HTMLResponse:
    return _page(request, viewer, session, state)


@router.post("")
def create(
    request: Request, viewer: OwnerDep, session: SessionDep, state: AppState, form: FormDep
) -> HTMLResponse:
    """The secret is in this answer only (the database keeps its digest)."""
    tenant = viewer.tenant_in(session)
    try:
        issued = tenants.issue_api_key(session, tenant, form.get("name", ""))
    except DomainError as exc:
        raise FormRejected(
            _page(request, viewer, session, state, 422, errors={"name": exc.message}, form=form)
        ) from exc
    audit.record(
        session,
        viewer.actor,
        "apikey.create",
        "api_key",
        issued.id,
        tenant_id=tenant.id,
        after={"name": form.get("name", "").strip() or None, "hint": issued.api_key[-4:]},
    )
    titles = {door.key.replace("-", "_"): door for door in DOORS}
    by_door = [
        {
            "door": titles[key].title if key in titles else key,
            "base": titles[key].base,
            "fields": list(fields.items()),
        }
        for key, fields in tenants.doors(issued.token, issued.api_key).items()
    ]
    return _page(request, viewer, session, state, issued=issued, by_door=by_door, values=VALUES)


@router.post("/{key_id}/revoke")
def revoke(request: Request, key_id: int, viewer: OwnerDep, session: SessionDep) -> Response:
    key = tenants.revoke_api_key_of(session, viewer.tenant_id, key_id)
    audit.record(
        session,
        viewer.actor,
        "apikey.revoke",
        "api_key",
        key.id,
        tenant_id=viewer.tenant_id,
        after={"name": key.name, "hint": key.hint},
    )
    texts = i18n.Texts(viewer.locale)
    notice = texts.gettext(N_("API key revoked: doors refuse it from now on."))
    return redirect(request, "/panel/integrations/keys", notice)
