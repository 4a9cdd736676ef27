"""What every /panel response gets, in one pure ASGI middleware: the request's panel
context (language, viewer, CSRF seed) for pages and error pages, a CSRF seed cookie for
visitors without one, and the security headers: a Content-Security-Policy that allows only
this server's own scripts and styles (no inline script, no CDN), no framing, no sniffing,
and no caching of pages (they show private data)."""

import secrets
from contextvars import ContextVar
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fidelia.panel import i18n
from fidelia.panel.security import CSRF, PATH, Cookies

if TYPE_CHECKING:
    from fidelia.panel.auth import Viewer

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'self'; object-src 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


@dataclass
class PanelContext:
    """Per request; the auth dependency fills in the viewer and their language."""

    path: str
    query: str
    csrf_seed: str
    locale: str
    htmx: bool
    viewer: "Viewer | None" = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def timezone(self) -> str:
        if self.viewer is not None and self.viewer.tenant is not None:
            return self.viewer.tenant.timezone
        return "UTC"


current: ContextVar[PanelContext | None] = ContextVar("panel_context", default=None)


def context_of(scope: Scope) -> PanelContext | None:
    panel = scope.get("state", {}).get("panel")
    return panel if isinstance(panel, PanelContext) else None


class PanelMiddleware:
    def __init__(self, app: ASGIApp, cookies: Cookies) -> None:
        self.app = app
        self.cookies = cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == PATH or path.startswith(PATH + "/")):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        jar = SimpleCookie()
        try:
            jar.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header: as if there were none
            jar = SimpleCookie()
        seed = jar[CSRF].value if CSRF in jar and len(jar[CSRF].value) >= 16 else None
        fresh = seed is None
        context = PanelContext(
            path=path,
            query=scope.get("query_string", b"").decode("latin-1"),
            csrf_seed=seed or secrets.token_urlsafe(24),
            locale=i18n.from_accept_language(headers.get("accept-language")) or i18n.DEFAULT,
            htmx=headers.get("hx-request") == "true",
        )
        scope.setdefault("state", {})["panel"] = context
        current.set(context)  # for error pages rendered outside the route
        static = path.startswith(PATH + "/static/")

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = list(HEADERS)
                if not static:
                    extra.append((b"cache-control", b"no-store"))
                if fresh and not static:
                    carrier = Response()
                    self.cookies.set_csrf_seed(carrier, context.csrf_seed)
                    extra += [(k, v) for k, v in carrier.raw_headers if k == b"set-cookie"]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, wrapped)
