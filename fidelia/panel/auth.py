"""Who is looking: the signed-in user behind the session cookie, and one dependency per role.

Every panel route takes exactly one of these (the role matrix test reads them off the route):

- ``OwnerDep``    the merchant's owner: everything of their merchant;
- ``CounterDep``  a cashier or the owner: the counter screens;
- ``OperatorDep`` platform staff;
- ``ViewerDep``   anyone signed in (their own account: password, language, logout);
- ``public``      no sign-in (login, sign-up, accepting an invitation), declared with
  ``Depends(public)`` so that it is a decision, not an omission.

Anonymous visitors are sent to the login page; a signed-in user without the role gets 403.
Handlers take the merchant from the viewer (``viewer.tenant_id``), never from the URL, and
look up ids within it, so another merchant's ids are simply not found (404).
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from fidelia.audit.service import Actor
from fidelia.kit.deps import ReadSessionDep
from fidelia.kit.errors import DomainError, Forbidden
from fidelia.models import Tenant, User
from fidelia.ops.context import bind_merchant
from fidelia.panel import i18n
from fidelia.panel.middleware import PanelContext
from fidelia.panel.security import IMPERSONATE, SESSION, Cookies


class SignInRequired(DomainError):
    """Rendered by the panel as a redirect to the login page (then back)."""

    status = 401
    code = "SIGN_IN_REQUIRED"


@dataclass
class Viewer:
    id: int
    email: str
    role: str
    locale: str  # the panel language they see
    tenant: Tenant | None  # detached: read its fields; load it again to change it
    # Read-only: a suspended merchant's accounts, and an operator viewing a merchant's
    # owner pages for support (``impersonator`` is then the operator's e-mail).
    read_only: bool = False
    impersonator: str | None = None
    # The request's read session the tenant was loaded in (see ``tenant_in``).
    loaded_in: Session | None = field(default=None, repr=False, compare=False)

    @property
    def tenant_id(self) -> int:
        """The viewer's merchant (owners and cashiers; operators have none)."""
        if self.tenant is None:
            raise Forbidden("This page belongs to a merchant.", code="NO_MERCHANT")
        return self.tenant.id

    def tenant_in(self, session: Session) -> Tenant:
        """The viewer's merchant, loaded in ``session`` (to change it or pass to a service).
        In the read session it was loaded from moments ago (same transaction), the row is
        attached again without a second query; any other session reads it afresh."""
        if self.tenant is not None and session is self.loaded_in:
            return session.merge(self.tenant, load=False)
        return session.get_one(Tenant, self.tenant_id)

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"

    @property
    def actor(self) -> Actor:
        """Who the audit log records for what this viewer changes."""
        if self.impersonator is not None:
            return Actor("user", f"{self.impersonator} (operator)", self.id)
        return Actor("user", self.email, self.id)


def panel_context(request: Request) -> PanelContext:
    context = request.scope.get("state", {}).get("panel")
    assert isinstance(context, PanelContext), "the panel middleware is not installed"
    return context


def cookies_of(request: Request) -> Cookies:
    cookies: Cookies = request.app.state.panel_cookies
    return cookies


# The signed-in user and their merchant in one round trip (built once).
_SIGNED_IN = (
    select(User, Tenant)
    .outerjoin(Tenant, Tenant.id == User.tenant_id)
    .where(User.id == bindparam("user_id"))
)


def _viewer(request: Request, session: ReadSessionDep) -> Viewer | None:
    """The signed-in user, or None; also sets the page language for the request."""
    context = panel_context(request)
    found = cookies_of(request).session_of(request.cookies.get(SESSION))
    if found is None:
        return None
    row = session.execute(_SIGNED_IN, {"user_id": found[0]}).first()
    if row is None or row[0].session_key != found[1]:
        return None
    user, tenant = row[0], cast(Tenant | None, row[1])
    bind_merchant(user.tenant_id)
    role, impersonator = user.role, None
    if role == "operator":
        viewing = cookies_of(request).impersonation_of(request.cookies.get(IMPERSONATE), user.id)
        tenant = session.get(Tenant, viewing) if viewing is not None else None
        if tenant is not None:
            role, impersonator = "owner", user.email
    if tenant is not None:
        session.expunge(tenant)  # stays readable after the request's transactions end
    locale = i18n.choose(user.locale, tenant.locale if tenant else None, context.locale)
    viewer = Viewer(
        id=user.id,
        email=user.email,
        role=role,
        locale=locale,
        tenant=tenant,
        read_only=impersonator is not None
        or (tenant is not None and tenant.suspended_at is not None),
        impersonator=impersonator,
        loaded_in=session,
    )
    context.viewer = viewer
    context.locale = locale
    return viewer


MaybeViewerDep = Annotated[Viewer | None, Depends(_viewer)]


async def public(viewer: MaybeViewerDep) -> Viewer | None:
    """No sign-in needed (the viewer, if any, still sets the language)."""
    return viewer


def require(*roles: str) -> Callable[[Request, Viewer | None], Awaitable[Viewer]]:
    # Async: it only checks what ``_viewer`` found, and FastAPI would run a plain ``def``
    # in a worker thread (a thread hop per request for a few comparisons).
    async def dependency(request: Request, viewer: MaybeViewerDep) -> Viewer:
        if viewer is None:
            raise SignInRequired("Sign in to continue.")
        if roles and viewer.role not in roles:
            raise Forbidden("Your account cannot open this page.", code="ROLE_FORBIDDEN")
        if roles and viewer.read_only and request.method not in ("GET", "HEAD", "OPTIONS"):
            # Merchant pages only: one's own account (password, sign out) stays usable.
            raise Forbidden("This merchant's panel is read-only.", code="READ_ONLY")
        return viewer

    dependency.roles = roles  # type: ignore[attr-defined]  # read by the role matrix test
    return dependency


require_owner = require("owner")
require_counter = require("owner", "cashier")
require_operator = require("operator")
require_viewer = require()

PublicDep = Annotated[Viewer | None, Depends(public)]
OwnerDep = Annotated[Viewer, Depends(require_owner)]
CounterDep = Annotated[Viewer, Depends(require_counter)]
OperatorDep = Annotated[Viewer, Depends(require_operator)]
ViewerDep = Annotated[Viewer, Depends(require_viewer)]
