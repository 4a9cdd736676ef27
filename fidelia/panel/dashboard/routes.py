"""Dashboard: the merchant's figures for 7, 30 or 90 days and three charts (issued vs
redeemed per day, activations per day, active customers per week), each downloadable as
CSV. Everything comes from the daily rollups (dashboard/service.py)."""

import csv
import io
import json

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from fidelia.dashboard import service as dashboard
from fidelia.kit.errors import NotFound
from fidelia.ops.replica import MayLagSharedSessionDep
from fidelia.panel import i18n
from fidelia.panel.auth import OwnerDep
from fidelia.panel.i18n import N_
from fidelia.panel.web import page, panel_router

router = panel_router("/dashboard")
SERIES = {
    "points_issued": N_("Points issued"),
    "points_redeemed": N_("Points redeemed"),
    "pins_issued": N_("PINs issued"),
    "pins_activated": N_("PINs activated"),
    "active_customers": N_("Active customers"),
}
TITLES = {
    "issued-redeemed": N_("Points issued and redeemed per day"),
    "activations": N_("PIN activations per day"),
    "active-weekly": N_("Active customers per week"),
}


def _chart(texts: i18n.Texts, result: dashboard.Figures, name: str) -> str:
    """The chart's data for static/dashboard.js, as a data attribute (no inline script)."""
    columns = dashboard.CHARTS[name]
    rows = dashboard.chart_rows(result, name)
    return json.dumps(
        {
            "kind": "bar" if name == "active-weekly" else "line",
            "labels": [row[0].isoformat() for row in rows],  # type: ignore[attr-defined]
            "datasets": [
                {"label": texts.gettext(SERIES[column]), "data": [row[i + 1] for row in rows]}
                for i, column in enumerate(columns[1:])
            ],
        }
    )


@router.get("")
def overview(
    request: Request, viewer: OwnerDep, session: MayLagSharedSessionDep, days: str = "30"
) -> HTMLResponse:
    tenant = viewer.tenant_in(session)
    result = dashboard.figures(session, tenant, dashboard.period_days(days))
    texts = i18n.Texts(viewer.locale, tenant.timezone)
    return page(
        request,
        "dashboard.html",
        tenant=tenant,
        f=result,
        periods=dashboard.PERIODS,
        charts=[(name, TITLES[name], _chart(texts, result, name)) for name in dashboard.CHARTS],
    )


@router.get("/chart.csv")
def chart_csv(
    viewer: OwnerDep,
    session: MayLagSharedSessionDep,
    chart: str = "issued-redeemed",
    days: str = "30",
) -> Response:
    if chart not in dashboard.CHARTS:
        raise NotFound("No such chart.", code="NOT_FOUND")
    tenant = viewer.tenant_in(session)
    result = dashboard.figures(session, tenant, dashboard.period_days(days))
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\r\n")
    out.writerow(dashboard.CHARTS[chart])
    for row in dashboard.chart_rows(result, chart):
        out.writerow([row[0].isoformat(), *row[1:]])  # type: ignore[attr-defined]
    name = f"{tenant.slug}-{chart}-{result.first}-{result.last}.csv"
    return Response(
        "\ufeff" + buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
