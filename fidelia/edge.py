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
no prefix middleware (the panel's and the POS door's), can go this way.

``lanes``: the same for an ordinary route (dependencies, a body model, a response model):
its door gives a function that answers the route's common case through the same functions
the route's dependencies and endpoint are, and leaves anything else to the framework before
any side effect (``Lane``, ``FRAMEWORK``); the answer is serialised by FastAPI's own
function with the route's settings. A lane is built from the route as the app includes it
(``lanes_for``: its full path under every including router's prefix, its dependencies with
every router's), and checks that its door calls every one of them (``Way.needs``). The PIN
door's generation, lookup and redemption, the POS door's redemption and order, the REST
v2 sale and the retail transaction go this way."""

import json
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, overload

from fastapi import FastAPI
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts, serialize_response
from pydantic import BaseModel
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fidelia.kit.auth_failures import AuthFailureLimit, client_ip
from fidelia.kit.body_limit import BodyLimit
from fidelia.kit.errors import DomainError
from fidelia.kit.paths import CollapseSlashes
from fidelia.ops.context import current
from fidelia.ops.web import ROUTE_TEMPLATE, RequestLog


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
        lanes: "list[Lane] | None" = None,
    ) -> None:
        self.app = app
        self.express = express if express is not None else {}
        self.lanes = lanes if lanes is not None else []
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
            if lane is not None:
                await lane(scope, self.body.counted(receive), answer)
                return
            for road in self.lanes:
                params = road.matches(scope)
                if params is not None:
                    await road(scope, self.body.counted(receive), answer, params, self.app)
                    return
            await self.app(scope, self.body.counted(receive), answer)
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
            await handled(self.handlers, request, exc, send)
            return
        await response(scope, receive, send)


async def handled(
    handlers: dict[Any, Callable[..., Any]], request: Request, exc: Exception, send: Send
) -> None:
    """``exc`` answered by the handler the app registered for its nearest class, as
    Starlette's exception layers would; the catch-all's (``Exception``) answer is sent, then
    the exception goes on to the server, as ``ServerErrorMiddleware`` does."""
    handler = next((handlers[k] for k in type(exc).__mro__ if k in handlers), None)
    if handler is None:
        raise exc
    await (await handler(request, exc))(request.scope, request.receive, send)
    if handler is handlers.get(Exception):
        raise exc


class Framework:
    """What a lane's ``fast`` returns for a request it leaves to the framework."""


M = TypeVar("M", bound=BaseModel)


FRAMEWORK = Framework()
Fast = Callable[[Request], Awaitable[Any]]


@dataclass(frozen=True)
class Way:
    """A door's lane for one route (its endpoint's key in the door's ``LANES``).

    ``fast``: see ``Lane``. ``needs``: the route's dependencies that ``fast`` calls, in the
    order FastAPI solves them (depth first, each once); the lane is refused at the app's
    start unless they are exactly the route's as the app includes it, so a dependency added
    to the route or to any router that includes it cannot be skipped by its lane. ``when``:
    which requests may take the lane at all (say, those a middleware between the edge and
    the route would pass straight through); the others go to the framework untouched."""

    fast: Fast
    needs: tuple[Callable[..., Any], ...]
    when: Callable[[Scope], bool] | None = None


class Lane:
    """A route's common case answered without FastAPI's layers, anything else by them.

    ``fast(request)`` (the door's) takes the request the route would (its path parameters
    in ``request.path_params``) and returns what the endpoint returns, serialised here as
    the route serialises it (FastAPI's own ``serialize_response`` with the route's
    settings, so the same bytes), or ``FRAMEWORK`` before any side effect for a request it
    does not recognise as the common case (another content type, a body its model refuses):
    then the framework answers it as always, the body it read given again. Exceptions go to
    the app's handlers, as in ``Express``. For a route with a response model and FastAPI's
    default response class only.

    ``route`` is the route as the app includes it (``lanes_for``): its full path and
    dependencies, under every including router. The scope gets the route object the
    framework's routing puts there, and the full template for the log line's and the
    metrics' route (``route_of``)."""

    def __init__(self, route: RouteContext, handlers: dict[Any, Callable[..., Any]], way: Way):
        original = route.original_route
        if not isinstance(original, APIRoute):
            raise ValueError(f"{route.path}: a lane is for an API route")
        if route.response_field is None or not isinstance(route.response_class, DefaultPlaceholder):
            raise ValueError(f"{route.path}: a lane needs a response model and JSON answers")
        solved = list(dependencies(route.dependant))
        if len(solved) != len(way.needs) or not all(map(_same, solved, way.needs)):
            raise ValueError(
                f"{route.path}: the route depends on {_names(solved)}, "
                f"its lane calls {_names(way.needs)}"
            )
        self.route = original
        self.path = route.path or original.path  # the full template, every prefix included
        self.handlers = handlers
        self.fast = way.fast
        self.when = way.when
        self.prefix = self.path.split("{", 1)[0]
        self.status = route.status_code or 200
        self._matches = route.matches  # the included route's own (its full path's pattern)
        self._settings = {
            "field": route.response_field,
            "include": route.response_model_include,
            "exclude": route.response_model_exclude,
            "by_alias": route.response_model_by_alias,
            "exclude_unset": route.response_model_exclude_unset,
            "exclude_defaults": route.response_model_exclude_defaults,
            "exclude_none": route.response_model_exclude_none,
        }
        self.taken = self.left = 0  # requests answered here, left to the framework

    def matches(self, scope: Scope) -> dict[str, Any] | None:
        """The path parameters when the request is this route's and may take the lane
        (``Way.when``), else None."""
        if not scope["path"].startswith(self.prefix):
            return None
        if self.when is not None and not self.when(scope):
            return None
        match, child = self._matches(scope)
        return child.get("path_params", {}) if match is Match.FULL else None

    async def __call__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        params: dict[str, Any],
        framework: ASGIApp,
    ) -> None:
        scope["route"] = self.route
        scope[ROUTE_TEMPLATE] = self.path  # the log line's and the metrics' route (route_of)
        scope["endpoint"] = self.route.endpoint
        scope["path_params"] = params
        request = Request(scope, receive, send)
        try:
            body = await _body(receive)  # a body over the limit is refused here, as there
            request = Request(scope, _again(body, receive), send)
            answer = await self.fast(request)
            if answer is FRAMEWORK or isinstance(answer, Response):
                content = b""  # the framework's, or the endpoint's own answer as it is
            else:
                content = await serialize_response(
                    response_content=answer, dump_json=True, **self._settings
                )
        except Exception as exc:
            self.taken += 1
            await handled(self.handlers, request, exc, send)
            return
        if answer is FRAMEWORK:  # outside the ``try``: the framework answers its own errors
            self.left += 1
            await framework(scope, _again(body, receive), send)
            return
        self.taken += 1
        response = (
            answer
            if isinstance(answer, Response)
            else Response(content, status_code=self.status, media_type="application/json")
        )
        await response(scope, request.receive, send)


def lanes_for(app: FastAPI, ways: Mapping[Callable[..., Any], Way]) -> list[Lane]:
    """A lane for each route of ``app`` whose endpoint has a ``Way``, built from the route
    as the app includes it (FastAPI's own view of it, as its routing and OpenAPI use:
    ``iter_route_contexts``). Every way must find its route."""
    lanes = [
        Lane(context, app.exception_handlers, ways[context.original_route.endpoint])
        for context in iter_route_contexts(_holding(app.router.routes, ways))
        if isinstance(context.original_route, APIRoute) and context.original_route.endpoint in ways
    ]
    missing = set(ways) - {lane.route.endpoint for lane in lanes}
    if missing:
        raise ValueError(f"no route for the lanes of {_names(list(missing))}")
    return lanes


def _holding(routes: list[BaseRoute], endpoints: Mapping[Callable[..., Any], Way]) -> list[Any]:
    """The fewest of ``routes`` (and of the routers they include) whose routes, as
    included, hold every route of ``endpoints``. FastAPI builds its view of an included
    router's routes (each one's dependencies, models and handler: some 3 ms a route) the
    first time a request passes that router, and keeps it; only the lanes' routers are
    built here, not every router of the app (the panel's hundred routes, the REST door's
    other four routers: a tenth to half a second each time an app is made). A router that
    holds a lane only through routers it includes is entered: FastAPI's
    ``effective_candidates`` gives those routers as it includes them (its own routes built,
    the included ones not yet); without that method, the router is taken whole."""
    found: list[Any] = []
    for route in routes:
        if not _holds(route, endpoints):
            continue
        router = getattr(route, "original_router", None)
        branches = getattr(route, "effective_candidates", None)
        if (
            router is None
            or branches is None
            or any(_holds(r, endpoints) for r in router.routes if isinstance(r, APIRoute))
        ):
            found.append(route)
        else:
            found += _holding(branches(), endpoints)
    return found


def _holds(route: Any, endpoints: Mapping[Callable[..., Any], Way]) -> bool:
    """Whether ``route`` is, or includes, a route of one of ``endpoints``."""
    if isinstance(route, APIRoute):
        return route.endpoint in endpoints
    router = getattr(route, "original_router", None)  # an included router
    return router is not None and any(_holds(r, endpoints) for r in router.routes)


def dependencies(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    """Every dependency FastAPI calls for ``dependant``, in its order: depth first (a
    dependency's own before it), each once (FastAPI caches a dependency's value within a
    request)."""
    seen: list[Callable[..., Any]] = []

    def walk(node: Dependant) -> Iterator[Callable[..., Any]]:
        for sub in node.dependencies:
            yield from walk(sub)
            if sub.call is not None and not any(sub.call is s for s in seen):
                seen.append(sub.call)
                yield sub.call

    return walk(dependant)


def _same(route_has: Callable[..., Any], lane_calls: Callable[..., Any]) -> bool:
    """The same function, or the same closure code over the same values (the PIN door's
    ``rate_limited(name)``: the route's and its lane's, for the same ``name``)."""
    if route_has is lane_calls:
        return True
    code = getattr(route_has, "__code__", None)
    if code is None or code is not getattr(lane_calls, "__code__", None):
        return False

    def values(fn: Any) -> list[Any]:
        return [cell.cell_contents for cell in fn.__closure__ or ()]

    return values(route_has) == values(lane_calls)


def _names(calls: "list[Callable[..., Any]] | tuple[Callable[..., Any], ...]") -> list[str]:
    return [getattr(c, "__qualname__", type(c).__name__) for c in calls]


@overload
async def model_body(
    request: Request, model: type[M], *, optional: Literal[False] = False
) -> M | Framework: ...


@overload
async def model_body(
    request: Request, model: type[M], *, optional: Literal[True]
) -> M | None | Framework: ...


async def model_body(
    request: Request, model: type[M], *, optional: bool = False
) -> M | None | Framework:
    """A lane's JSON body, as FastAPI would give it to the route's body parameter: the
    model when the body is a JSON object under a JSON content type that the model takes;
    None when there is no body and the parameter is ``optional``; ``FRAMEWORK`` for
    anything else (the framework then answers it, its errors in the door's format)."""
    raw = await request.body()
    if not raw:
        return None if optional else FRAMEWORK
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        return FRAMEWORK
    try:
        return model.model_validate(json.loads(raw))
    except ValueError:  # not JSON, not an object, refused by the model (ValidationError)
        return FRAMEWORK


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect  # as Starlette's ``Request.body``: nothing is done
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _again(body: bytes, receive: Receive) -> Receive:
    """``receive`` with the body it already gave given once more first."""
    given = False

    async def again() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
