"""The ASGI application: every door in front of one engine."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from fidelia import __version__, apidocs, panel
from fidelia.connectors.bling.jobs import BlingJobs
from fidelia.connectors.bling.routes import router as bling_router
from fidelia.dialects.pdv import cors as pdv_cors
from fidelia.dialects.pdv import customers as pdv_customers
from fidelia.dialects.pdv import errors as pdv_errors
from fidelia.dialects.pdv import orders as pdv_orders
from fidelia.dialects.pdv import rewards as pdv_rewards
from fidelia.dialects.pdv.lanes import LANES as PDV_LANES
from fidelia.dialects.pin_whatsapp import errors as pin_errors
from fidelia.dialects.pin_whatsapp.lanes import LANES as PIN_LANES
from fidelia.dialects.pin_whatsapp.routes import router as pin_router
from fidelia.dialects.rest_v2 import errors as rest_errors
from fidelia.dialects.rest_v2.lanes import LANES as REST_LANES
from fidelia.dialects.rest_v2.routes import router as rest_router
from fidelia.dialects.retail_v1 import errors as retail_errors
from fidelia.dialects.retail_v1.lanes import LANES as RETAIL_LANES
from fidelia.dialects.retail_v1.routes import router as retail_router
from fidelia.doors import DOORS
from fidelia.edge import Edge, Express, lanes_for
from fidelia.kit import passwords, rendering
from fidelia.kit.auth_failures import AuthFailureLimit
from fidelia.kit.body_limit import BodyLimit
from fidelia.kit.paths import CollapseSlashes
from fidelia.kit.settings import Settings, get_settings
from fidelia.messaging.channels import senders_for
from fidelia.messaging.webhook import receive as webhook_receive
from fidelia.messaging.webhook import router as webhook_router
from fidelia.messaging.worker import Worker
from fidelia.ops import gcfreeze
from fidelia.ops import jobs as ops_jobs
from fidelia.ops import logging as ops_logging
from fidelia.ops import metrics as ops_metrics
from fidelia.ops import web as ops_web
from fidelia.simulator.routes import router as simulator_router
from fidelia.simulator.routes import templates
from fidelia.state import State

log = logging.getLogger("fidelia")


def create_app(settings: Settings | None = None, *, run_worker: bool | None = None) -> FastAPI:
    settings = settings or get_settings()
    ops_logging.configure(
        ops_logging.format_for(settings.env, settings.log_format), settings.log_level
    )
    ops_metrics.install_error_counter()
    passwords.configure(settings.password_hashing)
    state = State(settings)
    state.db.attach_replica(settings.database_replica_url, settings.database_pool_size)
    with_worker = settings.embedded_worker if run_worker is None else run_worker

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker = None
        if with_worker:
            worker = Worker(
                state.db,
                ops_jobs.instrument(senders_for(settings)),
                settings.worker_batch_size,
                settings.outbox_max_attempts,
                timedelta(seconds=settings.outbox_lease_seconds),
                jobs=BlingJobs.for_settings(state.db, settings),
                bot=state.bot,
            )
            worker.start_thread(settings.worker_poll_seconds)
        ops_metrics.STARTS.labels("web").inc()
        # The one-statement paths' connections, on the loop this app serves from (PostgreSQL);
        # closed with the rest by ``dispose`` below.
        await state.db.open_statements()
        if settings.gc_freeze:
            gcfreeze.freeze()  # the startup's objects out of the collector's walks
        yield
        if worker is not None:
            worker.stop()
        state.db.dispose()

    app = FastAPI(
        title="Fidelia",
        version=__version__,
        description="Multi-tenant loyalty platform: one engine behind each documented door.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        telemetry=ops_web.telemetry(),
    )
    app.state.fidelia = state
    app.state.platform_metrics = ops_metrics.PlatformCollector(state.db, state.pin_policy)

    # Routes are tried in the order they are added, router by router: the probes and the
    # doors first, the panel (many routes, few requests) after them.
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home() -> HTMLResponse:
        return HTMLResponse(
            templates.get_template("home.html").render(
                simulator=settings.simulator, doors=DOORS, base=settings.public_url.rstrip("/")
            )
        )

    @app.get("/healthz", tags=["Operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    app.include_router(webhook_router)  # the busiest: every customer message comes here
    app.include_router(pin_router)
    for router in (pdv_rewards.router, pdv_customers.router, pdv_orders.router):
        app.include_router(router)
    pdv_cors.install(app, state)
    app.include_router(retail_router)
    app.include_router(rest_router)
    app.include_router(bling_router)
    app.include_router(ops_web.router)
    panel_errors = panel.install(app, settings)  # after the doors: see above
    render = rendering.install(
        app,
        [
            panel_errors,
            ("/api/v1/", pin_errors.render),
            ("/v1/pvt/POS/customers/", pdv_errors.render_bare),
            ("/v1/pvt/", pdv_errors.render),
            ("/v2/", rest_errors.render),
            ("/v1/", retail_errors.render),
        ],
    )
    if settings.simulator:
        app.include_router(simulator_router)
    apidocs.install(app)
    # Meta's webhook without FastAPI's layers (fidelia/edge.py Express): its answers the same.
    express = {
        ("POST", route.path): Express(route, app.exception_handlers)
        for route in webhook_router.routes
        if isinstance(route, APIRoute) and route.endpoint is webhook_receive
    }
    app.state.express = express  # tests compare the lane with the framework's way
    # The busiest door routes: their common case without FastAPI's layers.
    lanes = lanes_for(app, {**PIN_LANES, **PDV_LANES, **REST_LANES, **RETAIL_LANES})
    app.state.lanes = lanes  # the tests' way back: cleared, the framework answers
    # Request id, log line and metrics, the failed-authentication and body limits, repeated
    # slashes: one pass (fidelia/edge.py), outside the panel's and the POS door's CORS.
    app.add_middleware(
        Edge,
        # "https://host/v2/" + "/auth/token" is "//auth/token": one slash, for every door.
        slashes=CollapseSlashes(prefixes={"/v2/v2/": "/v2/"}),
        log=ops_web.RequestLog(state),
        auth_failures=AuthFailureLimit(state.limiter, settings.rate_limit_auth_failures),
        body=BodyLimit(settings.max_body_bytes),
        render=render,
        express=express,
        lanes=lanes,
    )
    # Outermost: the client address every limit counts against (without trusted proxies,
    # the peer's: nothing to do).
    trusted = [p.strip() for p in settings.trusted_proxies.split(",") if p.strip()]
    if trusted:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=trusted)

    return app
