"""Errors under /panel come out as pages: a redirect to the login page when signed out, the
form again (422) when a form was rejected, otherwise an error page in the viewer's language
with the layout and a way back. Registered with kit/rendering.py for the /panel prefix."""

from collections.abc import Callable
from urllib.parse import quote

from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fidelia.kit.errors import DomainError
from fidelia.panel.auth import SignInRequired
from fidelia.panel.i18n import N_
from fidelia.panel.middleware import current
from fidelia.panel.security import Cookies
from fidelia.panel.web import FormRejected, render

TITLES = {
    400: N_("This request could not be understood"),
    401: N_("Sign in to continue"),
    403: N_("Not allowed"),
    404: N_("Not found"),
    405: N_("Not allowed"),
    410: N_("No longer available"),
    413: N_("Too large"),
    422: N_("Please check what you entered"),
    429: N_("Too many attempts"),
    500: N_("Something went wrong"),
}
# Engine messages the panel says in its own (translated) words, by code.
MESSAGES = {
    "NOT_FOUND": N_("There is nothing here, or it belongs to another merchant."),
    "ROLE_FORBIDDEN": N_("Your account cannot open this page."),
    "NO_MERCHANT": N_("This page belongs to a merchant's account."),
    "CSRF_REFUSED": N_(
        "This form has expired or did not come from this panel; reload the page and try again."
    ),
    "INTERNAL_ERROR": N_("The error was logged. Please try again in a moment."),
    "TOO_MANY_ATTEMPTS": N_("Too many failed sign-ins; try again later."),
    "TOO_MANY_REQUESTS": N_("Too many requests; try again later."),
    "INVITATION_UNUSABLE": N_("This invitation has expired or was already used."),
    "INVITATION_NOT_FOUND": N_("This invitation link is not valid."),
    "METHOD_NOT_ALLOWED": N_("This page cannot do that."),
    "CUSTOMER_NOT_FOUND": N_("There is no such customer at this shop (or their data was erased)."),
    "PIN_NOT_FOUND": N_("There is no such PIN at this shop."),
    "READ_ONLY": N_(
        "This merchant's panel is read-only: it is suspended, or you are viewing it for support."
    ),
}


def renderer(cookies: Cookies) -> Callable[[DomainError], Response]:
    def render_error(error: DomainError) -> Response:
        context = current.get()
        if isinstance(error, FormRejected):
            return error.response
        if isinstance(error, SignInRequired) and context is not None:
            target = "/panel/login"
            if context.path not in ("/panel", "/panel/"):
                back = context.path + (f"?{context.query}" if context.query else "")
                target += "?next=" + quote(back, safe="/")
            if context.htmx:
                return Response(status_code=204, headers={"HX-Redirect": target})
            return RedirectResponse(target, status_code=303)
        headers = {}
        if getattr(error, "retry_after", None) is not None:
            headers["Retry-After"] = str(error.retry_after)  # type: ignore[attr-defined]
        if context is None:  # outside the middleware: cannot happen under /panel
            return HTMLResponse(error.message, status_code=error.status, headers=headers)
        html = render(
            context,
            cookies,
            "error.html",
            status=error.status,
            code=error.code,
            title=TITLES.get(error.status, TITLES[400]),
            message=MESSAGES.get(error.code),
            engine_message=error.message,
        )
        return HTMLResponse(html, status_code=error.status, headers=headers)

    return render_error
