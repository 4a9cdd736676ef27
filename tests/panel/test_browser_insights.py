"""In a real browser (the harness of test_browser.py): the dashboard draws its three charts
with data, and an operator suspends and reactivates a merchant. Screenshots of the
dashboard, messages, audit log, operator merchants and platform health."""

from datetime import timedelta

from fidelia.audit import service as audit
from fidelia.messaging.worker import Worker
from fidelia.rollups import service as rollups
from tests.panel.support import make_merchant, make_operator
from tests.panel.test_browser import (  # noqa: F401 (fixtures)
    SIZES,
    browser,
    database_url,
    live,
    sign_in,
    tabs,
)
from tests.panel.test_insights import activity


def test_the_dashboard_draws_its_charts_with_data(tabs, db):  # noqa: F811
    merchant = make_merchant(db, "cafe-sol", locale="en")
    activity(db, merchant.tenant_id)
    rollups.update(db, settle=timedelta(0))
    with db.session() as s:
        actor = audit.Actor("user", merchant.owner, 1)
        audit.record(
            s,
            actor,
            "setting.change",
            "settings",
            merchant.tenant_id,
            tenant_id=merchant.tenant_id,
            before={"points_per_pin": 1},
            after={"points_per_pin": 5},
        )
    tab = tabs()
    sign_in(tab, merchant.owner)
    tab.page.goto("/panel/dashboard?days=7")
    tab.page.wait_for_selector("canvas[data-drawn]")
    drawn = tab.page.evaluate(
        """() => [...document.querySelectorAll('canvas[data-chart]')].map(c => {
            const chart = window.Chart.getChart(c);
            return chart ? chart.data.datasets.reduce(
                (n, d) => n + d.data.reduce((a, b) => a + b, 0), 0) : -1; })"""
    )
    assert len(drawn) == 3 and all(total > 0 for total in drawn), drawn
    assert tab.page.locator('[data-figure="active"] .value').inner_text() == "2"
    tab.shot("dashboard-desktop")
    for name, path in (("messages", "/panel/messages"), ("audit", "/panel/audit")):
        tab.page.goto(path)
        tab.shot(f"{name}-desktop")
    phone = tabs("phone")
    sign_in(phone, merchant.owner)
    for name, path in (("dashboard", "/panel/dashboard?days=7"), ("messages", "/panel/messages")):
        phone.page.goto(path)
        if name == "dashboard":
            phone.page.wait_for_selector("canvas[data-drawn]")
        width = phone.page.evaluate("document.documentElement.scrollWidth")
        wide = phone.page.evaluate(
            """() => [...document.querySelectorAll('body *')].filter(e => {
                if (e.getBoundingClientRect().right <= 392) return false;
                for (let p = e.parentElement; p; p = p.parentElement) {
                    const o = getComputedStyle(p).overflowX;
                    if (o === 'auto' || o === 'hidden' || o === 'scroll') return false;
                }
                return true; }).slice(0, 6).map(e => e.tagName + '.' + e.className + ':'
                + Math.round(e.getBoundingClientRect().right))"""
        )
        assert width <= SIZES["phone"]["width"], f"{path} scrolls sideways on a phone: {wide}"
        phone.shot(f"{name}-phone")


def test_an_operator_suspends_and_reactivates_a_merchant(tabs, db):  # noqa: F811
    merchant = make_merchant(db, "cafe-luz", locale="en")
    make_merchant(db, "bakery-rio", locale="en")
    Worker(db, {}).sweep()  # a heartbeat for the health page
    tab = tabs()
    sign_in(tab, make_operator(db))
    page = tab.page
    page.goto("/panel/operator/merchants")
    row = page.locator('tr[data-merchant="cafe-luz"]')
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Suspend").click()
    page.wait_for_load_state()
    assert page.get_by_role("status").first.inner_text() == "cafe-luz is suspended."
    assert row.locator('[data-state="suspended"]').count() == 1
    tab.shot("operator-merchants-desktop")
    answer = page.request.post(
        "/api/v1/integraciones/pin/generar", headers={"X-API-Key": merchant.api_key}
    )
    assert answer.status == 401
    row.get_by_role("button", name="Reactivate").click()
    page.wait_for_load_state()
    assert page.get_by_role("status").first.inner_text() == "cafe-luz is active again."
    assert row.locator('[data-state="active"]').count() == 1
    answer = page.request.post(
        "/api/v1/integraciones/pin/generar", headers={"X-API-Key": merchant.api_key}
    )
    assert answer.status == 200
    page.goto("/panel/operator/health")
    assert "never" not in page.locator('[data-figure="worker"]').inner_text()
    tab.shot("health-desktop")
    phone = tabs("phone")
    sign_in(phone, make_operator(db, "staff2@platform.test"))
    for name, path in (
        ("operator-merchants", "/panel/operator/merchants"),
        ("health", "/panel/operator/health"),
    ):
        phone.page.goto(path)
        phone.shot(f"{name}-phone")
