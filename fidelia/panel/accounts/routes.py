"""Signing in and out, self sign-up, accepting an invitation, the viewer's own account."""

from zoneinfo import available_timezones

from babel.numbers import list_currencies
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response

from fidelia.kit.deps import ReadSessionDep, SessionDep
from fidelia.kit.errors import DomainError, NotFound
from fidelia.models import Tenant
from fidelia.panel import i18n
from fidelia.panel.auth import (
    PublicDep,
    ViewerDep,
    cookies_of,
    panel_context,
    public,
)
from fidelia.panel.i18n import N_
from fidelia.panel.web import FormDep, FormRejected, page, panel_router, redirect
from fidelia.state import AppState
from fidelia.users import service as users

router = panel_router()

ROLES = {"owner": N_("owner"), "cashier": N_("cashier"), "operator": N_("platform staff")}
CURRENCIES = sorted(list_currencies())
TIMEZONES = sorted(available_timezones())


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def safe_next(target: str | None) -> str:
    """Only a page of this panel (no open redirect to another site)."""
    if target and target.startswith("/panel") and not target.startswith("//"):
        if "\\" not in target and "://" not in target:
            return target
    return "/panel/"


def languages() -> list[tuple[str, str]]:
    """The panel's languages, each named in itself."""
    return [(code, i18n.NAMES[code]) for code in i18n.LOCALES]


@router.get("/login")
async def login_form(request: Request, state: AppState, viewer: PublicDep) -> Response:
    if viewer is not None:
        return redirect(request, safe_next(request.query_params.get("next")))
    return page(
        request,
        "login.html",
        next=safe_next(request.query_params.get("next")),
        email="",
        signup_open=state.settings.panel_signup,
    )


@router.post("/login", dependencies=[Depends(public)])
def login(request: Request, state: AppState, session: SessionDep, form: FormDep) -> Response:
    """Failures are written (and committed) before the answer: they are the limit's count."""
    policy = users.LoginPolicy.from_settings(state.settings)
    email = form.get("email", "")
    try:
        user = users.authenticate(
            session, email, form.get("password", ""), client_ip(request), policy
        )
    except (users.SignInRefused, users.SignInThrottled) as exc:
        texts = i18n.Texts(panel_context(request).locale)
        throttled = isinstance(exc, users.SignInThrottled)
        message = (
            N_("Too many failed sign-ins; try again later.")
            if throttled
            else N_("Wrong e-mail or password.")
        )
        response = page(
            request,
            "login.html",
            status=exc.status,
            error=texts.gettext(message),
            next=safe_next(form.get("next")),
            email=email,
            signup_open=state.settings.panel_signup,
        )
        if isinstance(exc, users.SignInThrottled):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    signed_in = redirect(request, safe_next(form.get("next")))
    cookies_of(request).start_session(signed_in, user.id, user.session_key)
    return signed_in


@router.post("/logout")
def logout(request: Request, viewer: ViewerDep, session: SessionDep) -> Response:
    """Ends every session of the account (its session key changes)."""
    users.end_sessions(session, viewer.id)
    texts = i18n.Texts(viewer.locale)
    response = redirect(request, "/panel/login", texts.gettext(N_("You are signed out.")))
    cookies_of(request).end_session(response)
    return response


# -- sign-up ----------------------------------------------------------------------------------


def _signup_page(
    request: Request, form: dict[str, str], errors: dict[str, str], status: int = 200
) -> HTMLResponse:
    return page(
        request,
        "signup.html",
        status=status,
        form=form,
        errors=errors,
        languages=languages(),
        currencies=CURRENCIES,
        timezones=TIMEZONES,
    )


async def _signup_open(state: AppState) -> None:
    if not state.settings.panel_signup:
        raise NotFound("Sign-up is closed on this platform.", code="SIGNUP_CLOSED")


@router.get("/signup", dependencies=[Depends(_signup_open)])
async def signup_form(request: Request, viewer: PublicDep) -> HTMLResponse:
    locale = panel_context(request).locale
    defaults = {"currency": "USD", "timezone": "UTC", "locale": locale}
    return _signup_page(request, defaults, {})


SIGNUP_FIELDS = {"EMAIL_TAKEN": "email", "INVALID_EMAIL": "email", "INVALID_PASSWORD": "password"}
# The services' messages that name a field (tenants.service.create_tenant).
SIGNUP_MESSAGES = {
    "Unknown ISO 4217": "currency",
    "Unknown time zone": "timezone",
    "Unknown locale": "locale",
}


def signup_field(error: DomainError) -> str:
    """The form field an error of sign_up is about (the shop name when none other)."""
    if error.code in SIGNUP_FIELDS:
        return SIGNUP_FIELDS[error.code]
    starts = (f for p, f in SIGNUP_MESSAGES.items() if error.message.startswith(p))
    return next(starts, "shop_name")


@router.post("/signup", dependencies=[Depends(_signup_open), Depends(public)])
def signup(request: Request, state: AppState, session: SessionDep, form: FormDep) -> Response:
    state.limiter.hit("10/hour", "panel-signup", client_ip(request))
    values = {k: form.get(k, "").strip() for k in ("shop_name", "email", "currency", "timezone")}
    values["locale"] = i18n.choose(form.get("locale"), panel_context(request).locale)
    try:
        user = users.sign_up(
            session,
            shop_name=values["shop_name"],
            email=values["email"],
            password=form.get("password", ""),
            currency=values["currency"],
            timezone=values["timezone"],
            locale=values["locale"],
        )
    except DomainError as exc:
        errors = {signup_field(exc): exc.message}
        raise FormRejected(_signup_page(request, values, errors, 422)) from exc
    response = redirect(request, "/panel/onboarding")
    cookies_of(request).start_session(response, user.id, user.session_key)
    return response


# -- invitations ------------------------------------------------------------------------------


@router.get("/invitations/{token}")
def invitation_form(
    request: Request, token: str, session: ReadSessionDep, viewer: PublicDep
) -> HTMLResponse:
    invitation = users.invitation_for(session, token)
    tenant = session.get_one(Tenant, invitation.tenant_id)
    return page(
        request,
        "invitation.html",
        token=token,
        shop=tenant.name,
        email=invitation.email,
        role_label=ROLES[invitation.role],
        errors={},
    )


@router.post("/invitations/{token}", dependencies=[Depends(public)])
def accept_invitation(request: Request, token: str, session: SessionDep, form: FormDep) -> Response:
    try:
        user = users.accept_invitation(session, token, form.get("password", ""))
    except DomainError as exc:
        if exc.code != "INVALID_PASSWORD":
            raise
        invitation = users.invitation_for(session, token)
        tenant = session.get_one(Tenant, invitation.tenant_id)
        response = page(
            request,
            "invitation.html",
            status=422,
            token=token,
            shop=tenant.name,
            email=invitation.email,
            role_label=ROLES[invitation.role],
            errors={"password": exc.message},
        )
        raise FormRejected(response) from exc
    signed_in = redirect(request, "/panel/")
    cookies_of(request).start_session(signed_in, user.id, user.session_key)
    return signed_in


# -- the viewer's own account ---------------------------------------------------------------


def _account_page(
    request: Request, viewer: ViewerDep, errors: dict[str, str], status: int = 200
) -> HTMLResponse:
    return page(
        request,
        "account.html",
        status=status,
        errors=errors,
        role_label=ROLES[viewer.role],
        current_locale=viewer.locale,
        languages=languages(),
    )


@router.get("/account")
async def account(request: Request, viewer: ViewerDep) -> HTMLResponse:
    return _account_page(request, viewer, {})


@router.post("/account/language")
def account_language(
    request: Request, viewer: ViewerDep, session: SessionDep, form: FormDep
) -> Response:
    locale = i18n.supported(form.get("locale"))
    users.set_locale(session, viewer.id, locale)
    texts = i18n.Texts(locale or viewer.locale)
    return redirect(request, "/panel/account", texts.gettext(N_("Language saved.")))


@router.post("/account/password")
def account_password(
    request: Request, viewer: ViewerDep, session: SessionDep, form: FormDep
) -> Response:
    texts = i18n.Texts(viewer.locale)
    if form.get("new", "") != form.get("confirm", ""):
        errors = {"confirm": texts.gettext(N_("The two new passwords differ."))}
        raise FormRejected(_account_page(request, viewer, errors, 422))
    try:
        user = users.change_password(
            session, viewer.id, form.get("current", ""), form.get("new", "")
        )
    except DomainError as exc:
        field = "current" if exc.code == "WRONG_PASSWORD" else "new"
        message = (
            texts.gettext(N_("The current password is wrong."))
            if exc.code == "WRONG_PASSWORD"
            else texts.gettext(N_("A password has 8 to 128 characters."))
        )
        raise FormRejected(_account_page(request, viewer, {field: message}, 422)) from exc
    response = redirect(request, "/panel/account", texts.gettext(N_("Password changed.")))
    cookies_of(request).start_session(response, user.id, user.session_key)
    return response
