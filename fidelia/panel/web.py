"""The kit every panel screen is built with (see docs/panel.md):

- ``panel_router()``: an APIRouter under /panel that checks the CSRF token of every
  state-changing request and keeps the pages out of the OpenAPI documents;
- ``page()``: render a template in the viewer's language with the layout's context;
- ``FormDep``: the submitted form fields (application/x-www-form-urlencoded) as a dict;
- ``FormRejected``: raise it with the re-rendered form to answer 422 AND roll the
  transaction back (the request's session sees the exception), so a form never half-saves;
- ``redirect()``: after a successful POST (303, or HX-Redirect for htmx), with a notice.
"""

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute, iter_route_contexts
from jinja2 import Environment, FileSystemLoader, select_autoescape

from fidelia.kit.errors import DomainError, Forbidden
from fidelia.panel import i18n
from fidelia.panel.auth import cookies_of, panel_context
from fidelia.panel.middleware import PanelContext
from fidelia.panel.nav import menu_for
from fidelia.panel.security import CSRF_FIELD, CSRF_HEADER, NOTICE, Cookies

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
MAX_FORM_BYTES = 64 * 1024


class FormRejected(DomainError):
    """A form with errors: carries the page to answer (the form again, errors by its
    fields). Raised, not returned, so the request's transaction is rolled back."""

    status = 422
    code = "FORM_REJECTED"

    def __init__(self, response: Response) -> None:
        super().__init__("The form has errors.")
        self.response = response


class CsrfRefused(DomainError):
    status = 403
    code = "CSRF_REFUSED"


def _static_version() -> str:
    """Changes whenever a served file changes, so browsers never keep a stale copy."""
    stamp = 0
    for path in STATIC.rglob("*"):
        if path.is_file():
            stat = path.stat()
            stamp ^= hash((path.name, stat.st_size, int(stat.st_mtime)))
    return format(stamp & 0xFFFFFFFF, "x")


@lru_cache
def environment(locale: str) -> Environment:
    """One Jinja2 environment per language (gettext installed once, thread-safe)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    translations = i18n.translations(locale)
    env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    # _("literal", name=value) for strings written in templates (extracted, %-formatted);
    # tr(variable) for msgids that come from Python (N_), shown as they are.
    env.globals["tr"] = lambda message: translations.gettext(message) if message else ""
    version = _static_version()
    env.globals["static"] = lambda name: f"/panel/static/{name}?v={version}"
    return env


def page(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    """Render ``template`` with the layout's context: the viewer, their menu, the CSRF
    token, the one-time notice, ``texts`` (gettext and Babel's money/date formats in the
    viewer's language and the merchant's time zone)."""
    context = panel_context(request)
    cookies = cookies_of(request)
    notice = cookies.notice_of(request.cookies.get(NOTICE))
    html = render(context, cookies, template, notice=notice, request=request, **values)
    response = HTMLResponse(html, status_code=status)
    if notice is not None:
        cookies.clear_notice(response)
    return response


def render(context: PanelContext, cookies: Cookies, template: str, **values: Any) -> str:
    texts = i18n.Texts(context.locale, context.timezone)
    env = environment(context.locale)
    return env.get_template(template).render(
        viewer=context.viewer,
        menu=menu_for(context.viewer, context.path),
        csrf_token=cookies.csrf_token(context.csrf_seed),
        csrf_field=CSRF_FIELD,
        texts=texts,
        lang=context.locale.replace("_", "-"),
        path=context.path,
        **values,
    )


def redirect(request: Request, url: str, notice: str | None = None) -> Response:
    """After a successful POST: see ``url`` (with a one-time ``notice``, already translated)."""
    if panel_context(request).htmx:
        response: Response = Response(status_code=204, headers={"HX-Redirect": url})
    else:
        response = RedirectResponse(url, status_code=303)
    if notice:
        cookies_of(request).set_notice(response, notice)
    return response


Form = dict[str, str]


async def form_of(request: Request) -> Form:
    """The urlencoded form of the request (the last value of a repeated field), read once."""
    cached = getattr(request.state, "panel_form", None)
    if cached is not None:
        return dict(cached)
    fields: Form = {}
    if request.method not in SAFE_METHODS:
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise DomainError("The form is too large.", code="PAYLOAD_TOO_LARGE", status=413)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if body and kind not in ("application/x-www-form-urlencoded", ""):
            raise DomainError("Forms are sent urlencoded.", code="UNSUPPORTED_MEDIA", status=415)
        text = body.decode("utf-8", errors="replace")
        fields = dict(parse_qsl(text, keep_blank_values=True, max_num_fields=200))
    request.state.panel_form = fields
    return dict(fields)


FormDep = Annotated[Form, Depends(form_of)]


async def csrf_protect(request: Request) -> None:
    """Every state-changing panel request carries the token: a form field or, from htmx,
    the X-CSRF-Token header."""
    if request.method in SAFE_METHODS:
        return
    token = request.headers.get(CSRF_HEADER)
    if token is None:
        token = (await form_of(request)).get(CSRF_FIELD)
    if not cookies_of(request).csrf_valid(panel_context(request).csrf_seed, token):
        raise CsrfRefused(
            "This form has expired or did not come from this panel; reload and try again."
        )


def panel_router(prefix: str = "", **kw: Any) -> APIRouter:
    """The router of one panel area, mounted at /panel{prefix}."""
    return APIRouter(
        prefix=f"/panel{prefix}",
        include_in_schema=False,
        default_response_class=HTMLResponse,
        dependencies=[Depends(csrf_protect)],
        **kw,
    )


def errors_of(fields: dict[str, Callable[[], object]]) -> dict[str, str]:
    """Run each field's service call; collect DomainError messages by field name."""
    found: dict[str, str] = {}
    for name, call in fields.items():
        try:
            call()
        except Forbidden:
            raise
        except DomainError as exc:
            found[name] = exc.message
    return found


def panel_routes(app: FastAPI) -> list[tuple[str, set[str], APIRoute]]:
    """Every panel page and action of ``app``: (path, methods, route). Routers are included
    lazily by FastAPI, so ``app.routes`` alone does not list them."""
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = context.path or ""
        if isinstance(route, APIRoute) and path.startswith("/panel"):
            found.append((path, set(context.methods or ()), route))
    return found
