"""/panel/: each role's first page."""

from fastapi import Request
from fastapi.responses import Response

from fidelia.panel.auth import ViewerDep
from fidelia.panel.web import page, panel_router, redirect

router = panel_router()


@router.get("/")
async def home(request: Request, viewer: ViewerDep) -> Response:
    if viewer.role == "owner":
        return redirect(request, "/panel/onboarding")
    if viewer.role == "operator":
        return redirect(request, "/panel/operator/merchants")
    return page(request, "home.html")
