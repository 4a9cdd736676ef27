"""The web side of operations: the request log middleware, ``/metrics`` and ``/readyz``."""

import hmac
import os
import time
from collections.abc import Mapping
from functools import cache, lru_cache
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from fastapi.telemetry import TelemetryConfig
from opentelemetry import _logs, trace
from opentelemetry import metrics as otel_metrics
from sqlalchemy import text
from starlette.types import Message, Scope

from fidelia.doors import DOORS
from fidelia.kit.clock import now
from fidelia.kit.deps import Resources
from fidelia.kit.migrate import HEAD, alembic_config
from fidelia.ops import heartbeat, metrics
from fidelia.ops import logging as ops_logging
from fidelia.ops.context import RequestContext, request_id_from

log = ops_logging.get("fidelia.request")
REQUEST_ID = b"x-request-id"
POOL_SAMPLE_SECONDS = 1.0  # how often requests sample the pools' gauges


@lru_cache(maxsize=2048)  # paths repeat (the webhook's always); ids in paths churn it, bounded
def door_of(path: str) -> str:
    for door in DOORS:
        if door.owns(path):
            return door.key
    head = path.split("/", 2)[1] if path.count("/") else ""
    return head if head in ("panel", "webhooks", "connectors", "simulator", "docs") else "other"


_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}

# OpenTelemetry's stand-ins for a provider nobody configured (the API's own proxies).
_PROXIES = frozenset(
    {
        ("opentelemetry.trace", "ProxyTracerProvider"),
        ("opentelemetry.metrics._internal", "_ProxyMeterProvider"),
        ("opentelemetry._logs._internal", "ProxyLoggerProvider"),
    }
)


def telemetry(environ: Mapping[str, str] = os.environ) -> TelemetryConfig | None:
    """FastAPI's own OpenTelemetry (``FastAPI(telemetry=...)``), on only where the deployment
    sets OpenTelemetry up; Fidelia's observability is the request log and ``/metrics``.

    Left on, FastAPI asks OpenTelemetry's global providers on every request whether one was
    configured (reading the environment each time): ~2.6 µs a request in process
    (issue 14, BENCHMARKS.md). On (None: FastAPI's defaults) when a provider is already set
    when the app is built (``opentelemetry-instrument``), or the environment has an
    ``OTEL_`` variable or ``FASTAPI_OTEL_AUTO_CONFIGURE``; off otherwise."""
    configured = (
        trace.get_tracer_provider(),
        otel_metrics.get_meter_provider(),
        _logs.get_logger_provider(),
    )
    if any((type(p).__module__, type(p).__name__) not in _PROXIES for p in configured) or any(
        key.startswith("OTEL_") or key == "FASTAPI_OTEL_AUTO_CONFIGURE" for key in environ
    ):
        return None
    return _OFF


# The full template of the route the edge's lanes answered (``fidelia/edge.py Lane``).
ROUTE_TEMPLATE = "fidelia.route"


def route_of(scope: Scope) -> str:
    """The matched route's full template (``/v2/customers/{document}``), never the raw
    path: ids and phone numbers stay out of logs and label sets stay small.

    A route of a router included under a prefix (the REST door's under ``/v2``, the retail
    door's under ``/v1``) is put in the scope by FastAPI as the router declared it, without
    the prefix (``/sales``); FastAPI's view of it as included, in its own part of the
    scope, has the full template. Without it, the two doors' ``/customers/{...}`` routes
    were one label."""
    full = scope.get(ROUTE_TEMPLATE)
    if isinstance(full, str):
        return full
    included = scope.get("fastapi")
    context = included.get("effective_route_context") if isinstance(included, dict) else None
    path = getattr(context, "path", None) or getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    return "unmatched"


class RequestLog:
    """A request id (the client's X-Request-ID when it looks like one, else a new one) in
    the context of everything the request logs and in the response's X-Request-ID; then one
    log line and the metrics of the request. Applied by the app's edge middleware
    (``fidelia/edge.py``), which calls ``start``, ``stamp`` and ``record``."""

    def __init__(self, state: Resources) -> None:
        self.state = state
        # The metrics' children of each label set, looked up once: ``labels()`` takes a lock
        # and checks its labels on every call, a few µs a request on the webhook (issue 14).
        # The same child objects, so the same series; bounded, as a client picks the method.
        self._series: dict[tuple[str, str, str, str], tuple[Any, Any, Any]] = {}
        # The pools' gauges are sampled at most once a second on requests (Prometheus reads
        # them every 15 s or so), not set on every one: three pools a process now.
        self._pools_due = 0.0

    @staticmethod
    def start(scope: Scope) -> RequestContext:
        header = None
        for key, value in scope["headers"]:
            if key == REQUEST_ID:
                header = value.decode("latin-1")
                break
        return RequestContext(request_id_from(header))

    @staticmethod
    def stamp(message: Message, ctx: RequestContext) -> None:
        """The request's id on a response start, in place of any the app set."""
        headers = [h for h in message.get("headers", []) if h[0].lower() != REQUEST_ID]
        headers.append((REQUEST_ID, ctx.request_id.encode()))
        message["headers"] = headers

    def record(self, scope: Scope, ctx: RequestContext, status: int, seconds: float) -> None:
        path = scope.get("path", "")
        route = route_of(scope)
        door = door_of(path)
        status_class = f"{status // 100}xx"
        method = scope.get("method", "")
        key = (door, route, method, status_class)
        series = self._series.get(key)
        if series is None:
            series = _series(*key)
            if len(self._series) < 4096:
                self._series[key] = series
        requests, latency, webhooks = series
        requests.inc()
        latency.observe(seconds)
        if webhooks is not None:
            webhooks.inc()
        at = time.monotonic()
        if at >= self._pools_due:  # a sample a second; /metrics takes one as it answers
            self._pools_due = at + POOL_SAMPLE_SECONDS
            metrics.observe_pools(self.state.db)
        if route in ("/healthz", "/readyz", "/metrics") and status < 400:
            return  # probes every few seconds would drown the log
        log.info(
            "request",
            method=method,
            route=route,
            door=door,
            status=status,
            duration_ms=round(seconds * 1000, 2),
            merchant_id=ctx.merchant_id,
        )


def _series(door: str, route: str, method: str, status_class: str) -> tuple[Any, Any, Any]:
    """A request's children of the request counter, the latency histogram and, for a
    webhook's route, the webhook counter (else None)."""
    webhooks = None
    if route.startswith("/webhooks/") or route.startswith("/connectors/bling/webhook"):
        source = "bling" if "bling" in route else "whatsapp"
        webhooks = metrics.WEBHOOKS.labels(source, status_class)
    return (
        metrics.REQUESTS.labels(door, route, method, status_class),
        metrics.LATENCY.labels(door, route),
        webhooks,
    )


@cache
def _known_revisions() -> frozenset[str]:
    """Every revision this code has (Alembic reads the revision files: on the first
    readiness check that needs it, not at every process's start)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return frozenset(rev.revision for rev in script.walk_revisions())


def migrations_verdict(version: str | None) -> str:
    """ "ok" at this code's head, and also when the database is at a revision this code does
    not know: a newer release ran its (expand-only) migrations during a rolling deploy, and
    this process must keep serving until it is replaced. Behind (a revision this code knows
    and has passed) or never migrated: not ready."""
    if version == HEAD or (version is not None and version not in _known_revisions()):
        return "ok"
    return f"database at {version}, code expects {HEAD}"


def readiness(state: Resources) -> dict[str, Any]:
    """Each check's verdict: the database answers, its schema is this code's, and a worker
    went round recently."""
    checks: dict[str, Any] = {}
    try:
        with state.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            checks["database"] = "ok"
            checks["migrations"] = migrations_verdict(version)
            conn.rollback()
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
        checks["migrations"] = "unknown"
        checks["worker"] = "unknown"
        return checks
    try:
        with state.db.session(readonly=True) as session:
            age = heartbeat.newest_age(session, now())
    except Exception as exc:
        checks["worker"] = f"unknown: {type(exc).__name__}"
        return checks
    stale = state.settings.worker_stale_seconds
    if age is None:
        checks["worker"] = "no worker has ever run"
    elif age > stale:
        checks["worker"] = f"last round {age:.0f} s ago (stale after {stale:.0f} s)"
    else:
        checks["worker"] = "ok"
    return checks


router = APIRouter(tags=["Operations"])


@router.get("/readyz", include_in_schema=False)
def readyz(request: Request) -> JSONResponse:
    """Readiness: the database is reachable, migrated to this code's head, and an outbox
    worker went round within FIDELIA_WORKER_STALE_SECONDS; 503 with the failing checks."""
    state: Resources = request.app.state.fidelia
    checks = readiness(state)
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", include_in_schema=False)
def metrics_endpoint(request: Request) -> Response:
    """Prometheus metrics, for whoever holds FIDELIA_METRICS_TOKEN (Bearer); 404 when no
    token is set (the endpoint does not exist)."""
    state: Resources = request.app.state.fidelia
    token = state.settings.metrics_token
    if not token:
        return JSONResponse({"detail": "Not Found"}, status_code=404)
    sent = request.headers.get("authorization", "")
    if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        return JSONResponse(
            {"detail": "metrics need the Bearer token FIDELIA_METRICS_TOKEN"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    metrics.observe_pools(state.db)  # this process's pools as they are now
    platform = getattr(request.app.state, "platform_metrics", None)
    return Response(metrics.exposition(platform), media_type=metrics.CONTENT_TYPE)
