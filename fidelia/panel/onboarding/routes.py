"""The onboarding checklist: where a new merchant lands after sign-up."""

from fastapi import Request
from fastapi.responses import HTMLResponse

from fidelia.kit.deps import ReadSessionDep
from fidelia.panel.auth import OwnerDep
from fidelia.panel.onboarding.checklist import steps
from fidelia.panel.web import page, panel_router, panel_routes
from fidelia.state import AppState

router = panel_router("/onboarding")


@router.get("")
def onboarding(
    request: Request, viewer: OwnerDep, session: ReadSessionDep, state: AppState
) -> HTMLResponse:
    paths = {path for path, _methods, _route in panel_routes(request.app)}
    items = steps(session, viewer.tenant_in(session), paths, state.settings.simulator)
    return page(request, "onboarding.html", items=items, done=sum(s.done for s in items))
