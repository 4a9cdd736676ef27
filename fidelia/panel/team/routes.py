"""Team: the merchant's accounts and pending invitations; invite a cashier (a single-use
link shown once to the owner, who sends it); withdraw an invitation; remove a cashier."""

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from fidelia.audit import service as audit
from fidelia.kit.deps import ReadSessionDep, SessionDep
from fidelia.kit.errors import DomainError
from fidelia.panel import i18n
from fidelia.panel.accounts.routes import ROLES
from fidelia.panel.auth import OwnerDep, Viewer
from fidelia.panel.i18n import N_
from fidelia.panel.web import FormDep, FormRejected, page, panel_router, redirect
from fidelia.state import AppState
from fidelia.users import service as users

router = panel_router("/team")


def _page(
    request: Request,
    viewer: Viewer,
    session: Session,
    state: AppState,
    status: int = 200,
    **values: object,
) -> HTMLResponse:
    return page(
        request,
        "team.html",
        status=status,
        users=users.users_of(session, viewer.tenant_id),
        invitations=users.pending_invitations(session, viewer.tenant_id),
        roles=ROLES,
        invitation_hours=state.settings.panel_invitation_hours,
        errors=values.pop("errors", {}),
        **values,
    )


@router.get("")
def team(
    request: Request, viewer: OwnerDep, session: ReadSessionDep, state: AppState
) -> HTMLResponse:
    return _page(request, viewer, session, state)


@router.post("/invitations")
def invite(
    request: Request, viewer: OwnerDep, session: SessionDep, state: AppState, form: FormDep
) -> HTMLResponse:
    """The link is shown in this answer only (its token is kept as a digest)."""
    try:
        invitation, token = users.invite(
            session,
            viewer.tenant_id,
            form.get("email", ""),
            viewer.id,
            state.settings.panel_invitation_hours,
        )
    except DomainError as exc:
        errors = {"email": exc.message}
        raise FormRejected(
            _page(request, viewer, session, state, 422, errors=errors, form=form)
        ) from exc
    audit.record(
        session,
        viewer.actor,
        "invitation.create",
        "invitation",
        invitation.id,
        tenant_id=viewer.tenant_id,
        after={"email": invitation.email},
    )
    link = str(request.base_url).rstrip("/") + f"/panel/invitations/{token}"
    texts = i18n.Texts(viewer.locale, viewer.tenant.timezone if viewer.tenant else "UTC")
    return _page(
        request,
        viewer,
        session,
        state,
        link=link,
        invited_email=invitation.email,
        until=texts.datetime(invitation.expires_at, zone=True),
    )


@router.post("/invitations/{invitation_id}/withdraw")
def withdraw(
    request: Request, invitation_id: int, viewer: OwnerDep, session: SessionDep
) -> Response:
    users.withdraw_invitation(session, viewer.tenant_id, invitation_id)
    audit.record(
        session,
        viewer.actor,
        "invitation.withdraw",
        "invitation",
        invitation_id,
        tenant_id=viewer.tenant_id,
    )
    texts = i18n.Texts(viewer.locale)
    return redirect(request, "/panel/team", texts.gettext(N_("Invitation withdrawn.")))


@router.post("/users/{user_id}/remove")
def remove(request: Request, user_id: int, viewer: OwnerDep, session: SessionDep) -> Response:
    users.remove_user(session, viewer.tenant_id, user_id)
    audit.record(session, viewer.actor, "user.remove", "user", user_id, tenant_id=viewer.tenant_id)
    texts = i18n.Texts(viewer.locale)
    return redirect(request, "/panel/team", texts.gettext(N_("Cashier removed.")))
