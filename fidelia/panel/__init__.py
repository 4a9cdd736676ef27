"""The web panel: server-rendered pages under /panel for merchants' owners and cashiers and
for platform operators (see docs/panel.md). One package per area, like the doors: each has
a ``routes.py`` with a router made by ``web.panel_router()``, its templates in
``templates/``, and calls the same services as the doors inside the request's transaction."""

import logging

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from fidelia.kit.rendering import Renderer
from fidelia.kit.settings import Settings
from fidelia.panel import assets
from fidelia.panel.accounts.routes import router as accounts_router
from fidelia.panel.audit.routes import router as audit_router
from fidelia.panel.campaigns.routes import router as campaigns_router
from fidelia.panel.counter.routes import router as counter_router
from fidelia.panel.customers.routes import router as customers_router
from fidelia.panel.dashboard.routes import router as dashboard_router
from fidelia.panel.deliveries.routes import router as messages_router
from fidelia.panel.errors import renderer
from fidelia.panel.exports.routes import router as exports_router
from fidelia.panel.home.routes import router as home_router
from fidelia.panel.integrations.keys import router as keys_router
from fidelia.panel.integrations.routes import router as integrations_router
from fidelia.panel.middleware import PanelMiddleware
from fidelia.panel.onboarding.routes import router as onboarding_router
from fidelia.panel.operator.routes import router as operator_router
from fidelia.panel.program.routes import router as program_router
from fidelia.panel.rewards.routes import router as rewards_router
from fidelia.panel.security import Cookies
from fidelia.panel.team.routes import router as team_router
from fidelia.panel.web import STATIC

log = logging.getLogger("fidelia.panel")
ROUTERS = (
    home_router,
    accounts_router,
    onboarding_router,
    program_router,
    team_router,
    customers_router,
    counter_router,
    rewards_router,
    keys_router,
    integrations_router,
    campaigns_router,
    dashboard_router,
    exports_router,
    audit_router,
    messages_router,
    operator_router,
)


def install(app: FastAPI, settings: Settings) -> tuple[str, Renderer]:
    """Mount the panel on ``app``; returns its error renderer's (prefix, renderer) for
    kit/rendering.install. Call before the outer middlewares (client IP) are added."""
    cookies = Cookies(settings)
    app.state.panel_cookies = cookies
    if assets.missing():
        log.warning("panel assets missing (%s): run `make assets`", ", ".join(assets.missing()))
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/panel/static", StaticFiles(directory=STATIC), name="panel-static")
    app.add_middleware(PanelMiddleware, cookies=cookies)
    return "/panel", renderer(cookies)
