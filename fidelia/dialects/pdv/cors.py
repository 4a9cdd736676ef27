"""CORS for browser-based POS front ends calling ``/v1/pvt`` directly.

A preflight carries no credentials, so it is answered for an origin that *any* merchant
allows (``tenant set S cors_origins https://pos.example``); the real request is then
authenticated, and its answer carries ``Access-Control-Allow-Origin`` only when the
origin is among *that* merchant's origins."""

from collections.abc import Awaitable, Callable
from time import monotonic

from fastapi import FastAPI, Request, Response
from sqlalchemy import select

from fidelia.kit.deps import State
from fidelia.models import Tenant

PREFIX = "/v1/pvt/"
ALLOW_METHODS = "GET, POST, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type"


class KnownOrigins:
    """Every merchant's allowed origins, re-read every ``tenant_cache_seconds`` (like every
    other merchant setting, so ``tenant set S cors_origins ...`` is seen that soon)."""

    def __init__(self, state: State, ttl: float = 5.0) -> None:
        self.state, self.ttl = state, ttl
        self._at, self._origins = -ttl, frozenset[str]()

    def get(self) -> frozenset[str]:
        if monotonic() - self._at > self.ttl:
            with self.state.db.session(readonly=True) as session:
                rows = session.scalars(select(Tenant.cors_origins).where(Tenant.cors_origins != ""))
                self._origins = frozenset(o for row in rows for o in row.split(",") if o)
            self._at = monotonic()
        return self._origins


def install(app: FastAPI, state: State) -> None:
    known = KnownOrigins(state, ttl=state.settings.tenant_cache_seconds)

    @app.middleware("http")
    async def pdv_cors(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        origin = request.headers.get("origin")
        if not origin or not request.url.path.startswith(PREFIX):
            return await call_next(request)
        if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
            if origin not in known.get():
                return Response(status_code=403)
            return Response(
                status_code=204,
                headers={
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": ALLOW_METHODS,
                    "Access-Control-Allow-Headers": ALLOW_HEADERS,
                    "Access-Control-Max-Age": "600",
                    "Vary": "Origin",
                },
            )
        response = await call_next(request)
        if origin in getattr(request.state, "cors_origins", ()):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
            response.headers["Access-Control-Expose-Headers"] = "Retry-After"
        return response
