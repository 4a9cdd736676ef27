"""Failed authentications are limited per client IP, on every door.

A pure ASGI middleware: every 401 answered to an address counts against
``FIDELIA_RATE_LIMIT_AUTH_FAILURES``; once the address has used it up, its requests are
answered 429 (in the door's format, with ``Retry-After``) before any credential is looked at,
until the window frees a slot. The client IP is the peer's, or the one a trusted proxy
forwarded (``FIDELIA_TRUSTED_PROXIES``, applied before this middleware)."""

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fidelia.kit.errors import DomainError, RateLimited
from fidelia.kit.ratelimit import RateLimiter

SCOPE = "auth-failures"


class AuthFailureLimit:
    def __init__(
        self,
        app: ASGIApp,
        limiter: RateLimiter,
        spec: str,
        render: Callable[[Request, DomainError], Response],
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.spec = spec
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        try:
            self.limiter.check(self.spec, SCOPE, ip)
        except RateLimited as exc:
            error = RateLimited(
                "Too many failed authentications from this address; try again later.",
                retry_after=exc.retry_after,
            )
            await self.render(Request(scope), error)(scope, receive, send)
            return

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                try:
                    self.limiter.hit(self.spec, SCOPE, ip)
                except RateLimited:
                    pass  # this one is answered already; the next request is refused
            await send(message)

        await self.app(scope, receive, watched)
