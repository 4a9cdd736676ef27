"""CORS for browser-based POS front ends calling ``/v1/pvt`` directly.

A preflight carries no credentials, so it is answered for an origin that *any* merchant
allows (``tenant set S cors_origins https://pos.example``). The real request is then
authenticated, and every answer to it, errors included, carries
``Access-Control-Allow-Origin``:

- once the merchant is known (its credentials were good): when the origin is among *that*
  merchant's origins (successes, 400/404/409/422 refusals, 429);
- when the merchant is not known (a 401 for missing or bad credentials, an unknown path, a
  body that is not JSON): when *any* merchant allows the origin, the same set that answers
  preflights. Otherwise the browser hides the answer and the POS sees "Failed to fetch"
  instead of "wrong key". Such answers say nothing about any merchant."""

from time import monotonic

from fastapi import FastAPI, Response
from sqlalchemy import select
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fidelia.kit.deps import Resources
from fidelia.models import Tenant

PREFIX = "/v1/pvt/"
ALLOW_METHODS = "GET, POST, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type"


class KnownOrigins:
    """Every merchant's allowed origins, re-read every ``tenant_cache_seconds`` (like every
    other merchant setting, so ``tenant set S cors_origins ...`` is seen that soon)."""

    def __init__(self, state: Resources, ttl: float = 5.0) -> None:
        self.state, self.ttl = state, ttl
        self._at, self._origins = -ttl, frozenset[str]()

    def get(self) -> frozenset[str]:
        if monotonic() - self._at > self.ttl:
            with self.state.db.session(readonly=True) as session:
                rows = session.scalars(select(Tenant.cors_origins).where(Tenant.cors_origins != ""))
                self._origins = frozenset(o for row in rows for o in row.split(",") if o)
            self._at = monotonic()
        return self._origins


def install(app: FastAPI, state: Resources) -> None:
    app.add_middleware(PdvCors, known=KnownOrigins(state, ttl=state.settings.tenant_cache_seconds))


class PdvCors:
    """Plain ASGI rather than ``@app.middleware("http")``: that form wraps every request of
    every door in a task group and memory streams, which cost more than most endpoints.
    Requests outside ``/v1/pvt/`` or without ``Origin`` pass straight through."""

    def __init__(self, app: ASGIApp, known: KnownOrigins) -> None:
        self.app, self.known = app, known

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if not origin:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            if origin not in self.known.get():
                await Response(status_code=403)(scope, receive, send)
                return
            preflight = Response(
                status_code=204,
                headers={
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": ALLOW_METHODS,
                    "Access-Control-Allow-Headers": ALLOW_HEADERS,
                    "Access-Control-Max-Age": "600",
                    "Vary": "Origin",
                },
            )
            await preflight(scope, receive, send)
            return
        # The door's authentication puts the merchant's origins in the request state
        # (request.state.cors_origins); the dict exists before the app runs, so it is shared.
        request_state = scope.setdefault("state", {})

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start" and self.allows(
                origin, request_state.get("cors_origins")
            ):
                answer = MutableHeaders(scope=message)
                answer["Access-Control-Allow-Origin"] = origin
                answer["Vary"] = "Origin"
                answer["Access-Control-Expose-Headers"] = "Retry-After"
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def allows(self, origin: str, merchant_origins: list[str] | None) -> bool:
        """The merchant's origins once it is known, else every merchant's."""
        if merchant_origins is not None:
            return origin in merchant_origins
        return origin in self.known.get()
