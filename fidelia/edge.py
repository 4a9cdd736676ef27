"""The app's edge: what every request goes through before routing, as one ASGI pass.

These were five stacked middlewares (the trusted proxy's client address, repeated slashes,
the request id and log line, the failed-authentication limit, the body limit), each with its
own coroutine frame and its own wrapper of ``send`` or ``receive`` on every request; here
they are steps of one middleware, in the same order, with one wrapper of each:

1. the client address a trusted proxy forwarded (``FIDELIA_TRUSTED_PROXIES``; uvicorn's
   ``ProxyHeadersMiddleware``, kept outermost, only when proxies are configured);
2. repeated slashes collapsed (``kit/paths.py``);
3. the request id in the log context and the response (``ops/web.py RequestLog``), the log
   line and the metrics once the request is over, whatever happened inside;
4. an address that used up its failed authentications answered 429, and every 401 counted
   (``kit/auth_failures.py``);
5. a body over the limit answered 413 unread, or refused while it streams
   (``kit/body_limit.py``).

The answers of steps 4 and 5 come out in the door's format (``render``), with the request
id, and are logged like any other. What only concerns one door's prefix (the panel's
context and headers, the POS door's CORS) stays in its own middleware, inside this one.

``express``: the few endpoints called so often that FastAPI's layers between this pass and
them (the ASGI exception layers, the router trying routes, the route's own wrappers) were a
fair share of their CPU (issue 14: Meta's webhook). An ``Express`` calls the endpoint
itself, with the same route in the scope (the log line's and the metrics' route) and the
app's own exception handlers, so its answers are those the framework gave, byte for byte.
Only an ``async`` endpoint that takes just the ``Request`` and returns a ``Response``, under
no prefix middleware (the panel's and the POS door's), can go this way."""

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fidelia.kit.auth_failures import AuthFailureLimit, client_ip
from fidelia.kit.body_limit import BodyLimit
from fidelia.kit.errors import DomainError
from fidelia.kit.paths import CollapseSlashes
from fidelia.ops.context import current
from fidelia.ops.web import RequestLog


class Edge:
    def __init__(
        self,
        app: ASGIApp,
        *,
        slashes: CollapseSlashes,
        log: RequestLog,
        auth_failures: AuthFailureLimit,
        body: BodyLimit,
        render: Callable[[Request, DomainError], Response],
        express: "dict[tuple[str, str], Express] | None" = None,
    ) -> None:
        self.app = app
        self.express = express if express is not None else {}
        self.slashes = slashes
        self.log = log
        self.auth_failures = auth_failures
        self.body = body
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "websocket":
                scope = self.slashes.scope(scope)
            await self.app(scope, receive, send)
            return
        scope = self.slashes.scope(scope)
        ctx = self.log.start(scope)
        token = current.set(ctx)
        status = 500
        started = time.perf_counter()
        ip = client_ip(scope)
        failures = self.auth_failures

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                failures.answered(status, ip)
                self.log.stamp(message, ctx)
            await send(message)

        try:
            refused = failures.refusal(ip)
            if refused is not None:
                await self.render(Request(scope), refused)(scope, receive, answer)
                return
            too_large = self.body.refusal(scope)
            if too_large is not None:
                response = self.render(Request(scope), too_large)
                response.headers["Connection"] = "close"
                await response(scope, receive, answer)
                return
            lane = self.express.get((scope["method"], scope["path"])) if self.express else None
            await (lane or self.app)(scope, self.body.counted(receive), answer)
        finally:
            self.log.record(scope, ctx, status, time.perf_counter() - started)
            current.reset(token)


class Express:
    """Calls one route's endpoint without the framework's layers, as they would (see the
    module's docstring): the route in the scope, an exception answered by the handler the
    app registered for its nearest class; the catch-all's (``Exception``) answer is sent,
    then the exception goes on to the server, as Starlette's ``ServerErrorMiddleware`` does."""

    def __init__(self, route: APIRoute, handlers: dict[Any, Callable[..., Any]]) -> None:
        self.route = route
        self.endpoint: Callable[[Request], Awaitable[Response]] = route.endpoint
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self.route
        scope["endpoint"] = self.endpoint
        scope["path_params"] = {}
        request = Request(scope, receive, send)
        try:
            response = await self.endpoint(request)
        except Exception as exc:
            handler = next(
                (self.handlers[k] for k in type(exc).__mro__ if k in self.handlers), None
            )
            if handler is None:
                raise
            await (await handler(request, exc))(scope, receive, send)
            if handler is self.handlers.get(Exception):
                raise
            return
        await response(scope, receive, send)
