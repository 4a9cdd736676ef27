"""The panel in a real browser: Playwright's Python package driving Debian's Chromium
(``executable_path``; no browser is ever downloaded), headless, one browser per session and
a fresh context per test, against a live uvicorn server. Screenshots of the main screens,
at desktop and phone width, are written to docs/panel/ for the README."""

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import segno

from fidelia.app import create_app
from fidelia.audit import service as audit
from fidelia.messaging.worker import Worker
from fidelia.models import Tenant
from fidelia.ops.check import check_database
from fidelia.rewards.service import create_reward
from fidelia.rollups import service as rollups
from fidelia.vouchers.service import issue
from tests.panel.support import PASSWORD, make_merchant, make_operator
from tests.panel.test_insights import activity
from tests.support.helpers import LiveServer, process_inbound

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (requirements-dev.lock)")
CHROMIUM = os.environ.get("FIDELIA_CHROMIUM") or shutil.which("chromium")
# `make screenshots` (FIDELIA_SCREENSHOTS=1) refreshes the README's pictures in docs/panel/;
# an ordinary run still takes every screenshot (a page that fails to render fails the test)
# but keeps them out of the work tree.
SHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "panel"
    if os.environ.get("FIDELIA_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "fidelia-panel-screenshots"
)
SIZES = {"desktop": {"width": 1200, "height": 800}, "phone": {"width": 390, "height": 780}}

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium (scripts/ensure-services.sh installs it)"
)


@pytest.fixture(params=["sqlite"])
def database_url(request, tmp_path, sqlite_template):  # the browser part runs on SQLite
    target = tmp_path / "fidelia.db"
    shutil.copy(sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    # Module-scoped, not session-scoped: the sync API holds an event loop running in the main
    # thread while it is open, and a later test file's asyncio.run() would refuse to start.
    with sync_api.sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright) -> Iterator[Any]:
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
    yield chromium
    chromium.close()


@pytest.fixture
def live(settings) -> Iterator[LiveServer]:
    app = create_app(settings.model_copy(update={"simulator": True}), run_worker=False)
    with LiveServer(app) as server:
        yield server
    app.state.fidelia.db.dispose()


class Tab:
    """A fresh browser context (its own cookies) with one page; collects console errors
    (a Content-Security-Policy violation or a script error fails the test)."""

    def __init__(self, browser: Any, base: str, size: str = "desktop") -> None:
        self.context = browser.new_context(viewport=SIZES[size], locale="en-US", base_url=base)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("response", self._response)

    def _console(self, message: Any) -> None:
        # A page answered 4xx on purpose (a rejected form) is logged too: files are
        # checked by their responses instead.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    def _response(self, response: Any) -> None:
        if response.request.resource_type != "document" and response.status >= 400:
            self.errors.append(f"{response.status} {response.url}")

    def shot(self, name: str) -> None:
        """A screenshot of the page once it has loaded: right after a form's submit, the
        answer's page may still be loading, and Chromium refuses a screenshot in the middle
        of a navigation ("Unable to capture screenshot"; seen once in CI). If it refuses
        all the same, once more when the network is idle."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.wait_for_load_state()
        try:
            self.page.screenshot(path=str(SHOTS / f"{name}.png"))
        except sync_api.Error as exc:
            if "Unable to capture screenshot" not in str(exc):
                raise
            self.page.wait_for_load_state("networkidle")
            self.page.screenshot(path=str(SHOTS / f"{name}.png"))

    def unlabeled_fields(self) -> int:
        return int(
            self.page.evaluate(
                """() => [...document.querySelectorAll('input:not([type=hidden]), select')]
                .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
                .length"""
            )
        )

    def close(self) -> None:
        self.context.close()
        assert self.errors == [], self.errors


@pytest.fixture
def tabs(browser, live) -> Iterator[Any]:
    opened: list[Tab] = []

    def open_tab(size: str = "desktop") -> Tab:
        tab = Tab(browser, live.url, size)
        opened.append(tab)
        return tab

    yield open_tab
    for tab in opened:
        tab.close()


def sign_in(tab: Tab, email: str, password: str = PASSWORD) -> None:
    tab.page.goto("/panel/login")
    tab.page.get_by_label("E-mail").fill(email)
    tab.page.get_by_label("Password").fill(password)
    tab.page.get_by_role("button", name="Sign in").click()
    tab.page.wait_for_load_state()


def test_sign_up_and_onboard(tabs):
    tab = tabs()
    page = tab.page
    page.goto("/panel/login")
    tab.shot("login-desktop")
    page.get_by_role("link", name="Create your shop's loyalty program").click()
    page.get_by_label("Shop name").fill("Café Aurora")
    page.get_by_label("Your e-mail").fill("aurora@example.test")
    page.get_by_label("Password").fill("aurora's secret")
    page.get_by_label("Currency").fill("CRC")
    page.get_by_label("Time zone").fill("America/Costa_Rica")
    page.get_by_label("Language").select_option("en")
    assert tab.unlabeled_fields() == 0
    page.get_by_role("button", name="Create my program").click()
    page.wait_for_url("**/panel/onboarding")
    assert page.get_by_text("0 of 4 steps done.").is_visible()
    tab.shot("onboarding-desktop")

    page.get_by_role("button", name="Open the program").click()
    page.get_by_label("Points per PIN").fill("5")
    page.get_by_role("button", name="Save program").click()
    assert page.get_by_role("status").inner_text() == "Program saved."
    assert page.get_by_label("Points per PIN").input_value() == "5"
    page.get_by_role("link", name="Getting started").click()
    assert page.get_by_text("1 of 4 steps done.").is_visible()
    assert page.locator('li.done[data-step="program"]').count() == 1


def test_a_setting_changed_on_the_program_page_changes_a_door_answer(tabs, live, db):
    merchant = make_merchant(db, "cafe-sol", locale="en")
    tab = tabs()
    sign_in(tab, merchant.owner)
    door = f"{live.url}/api/v1/integraciones/pin/generar"
    headers = {"X-API-Key": merchant.api_key}
    assert httpx.post(door, headers=headers).json()["expires_in"] == 30 * 60
    tab.page.goto("/panel/program")
    assert tab.unlabeled_fields() == 0
    field = tab.page.get_by_label("PIN lifetime")
    field.fill("0")
    tab.page.get_by_role("button", name="Save program").click()
    error = tab.page.locator("#e-pin_lifetime_minutes")
    assert "between 1 and 1440" in error.inner_text()
    assert field.get_attribute("aria-invalid") == "true"
    assert httpx.post(door, headers=headers).json()["expires_in"] == 30 * 60  # nothing saved
    tab.page.get_by_label("PIN lifetime").fill("12")
    tab.page.get_by_role("button", name="Save program").click()
    assert tab.page.get_by_role("status").inner_text() == "Program saved."
    tab.shot("program-desktop")
    assert httpx.post(door, headers=headers).json()["expires_in"] == 12 * 60


def test_owner_invites_a_cashier_who_joins_from_the_link(tabs, db):
    merchant = make_merchant(db, "cafe-luna", locale="en")
    owner = tabs()
    sign_in(owner, merchant.owner)
    owner.page.get_by_role("link", name="Team").click()
    owner.page.get_by_label("Cashier's e-mail").fill("marta@cafe-luna.test")
    owner.page.get_by_role("button", name="Create invitation link").click()
    link = owner.page.get_by_label("Invitation link").input_value()
    assert re.search(r"/panel/invitations/[\w-]{20,}$", link)
    owner.shot("team-desktop")

    cashier = tabs("phone")
    cashier.page.goto(link)
    assert cashier.page.get_by_label("E-mail").input_value() == "marta@cafe-luna.test"
    cashier.page.get_by_label("Password").fill("marta's password")
    cashier.page.get_by_role("button", name="Create my account").click()
    cashier.page.wait_for_url("**/panel/")
    assert "cashier of Shop cafe-luna" in cashier.page.content()
    # The owner removes her (after confirming), and her session ends.
    owner.page.reload()
    owner.page.once("dialog", lambda dialog: dialog.accept())
    row = owner.page.locator('tr[data-user="marta@cafe-luna.test"]')
    row.get_by_role("button", name="Remove").click()
    assert owner.page.get_by_role("status").inner_text() == "Cashier removed."
    cashier.page.reload()
    assert "/panel/login" in cashier.page.url


def test_phone_screenshots(tabs, db):
    merchant = make_merchant(db, "cafe-mar", locale="en")
    tab = tabs("phone")
    tab.page.goto("/panel/login")
    tab.shot("login-phone")
    sign_in(tab, merchant.owner)
    for name, path in (
        ("onboarding", "/panel/onboarding"),
        ("program", "/panel/program"),
        ("team", "/panel/team"),
    ):
        tab.page.goto(path)
        width = tab.page.evaluate("document.documentElement.scrollWidth")
        assert width <= SIZES["phone"]["width"], f"{path} scrolls sideways on a phone"
        tab.shot(f"{name}-phone")


# -- Customers and the counter (issue 11, screens 3) --------------------------------------
# A sale PIN made in the panel, sent from the simulator page, credits the customer, who then
# shows in the customer list and page with the points; a manual adjustment shows in the
# balance and the ledger check passes; the counter's customer and voucher screens.

NUMBER = "+50688887777"


def test_sale_pin_to_simulator_to_customer_page_and_adjustment(tabs, live, db, database_url):
    merchant = make_merchant(db, "cafe-sol", locale="en")
    with db.session() as session:
        tenant = session.get_one(Tenant, merchant.tenant_id)
        tenant.points_per_pin = 5
        create_reward(
            session, tenant, title="Free coffee", points=5, reward_type="fixed", value="2"
        )
        issue(session, tenant, code="WELCOME-5", benefit="A free pastry")
    counter = tabs()
    sign_in(counter, merchant.cashier)
    counter.page.get_by_role("link", name="Sale PIN").click()
    assert counter.unlabeled_fields() == 0
    counter.page.get_by_label("Purchase amount (optional)").fill("12.50")
    counter.page.get_by_role("button", name="Generate PIN").click()
    counter.page.wait_for_url(re.compile(r".*/panel/counter/pins/\d+$"))
    code = counter.page.locator(".pin-code").inner_text().strip()
    assert re.fullmatch(r"\d{4,}", code)
    qr = counter.page.locator("img.qr")
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")
    counter.shot("counter-pin-desktop")

    # The customer sends it from the WhatsApp simulator.
    phone = tabs("phone")
    phone.page.goto("/simulator")
    phone.page.locator("#wa").fill(NUMBER)
    phone.page.locator("#name").fill("Carla Mora")
    phone.page.locator("#text").fill(f"Quiero activar mi PIN: {code}")
    with phone.page.expect_response("**/simulator/api/send") as sent:
        phone.page.get_by_role("button", name="Send").click()
    assert sent.value.json()["processed"] == 1
    # The worker (not running in this server) takes the stored message and credits her.
    assert process_inbound(live.config.app) == 1

    owner = tabs()
    sign_in(owner, merchant.owner)
    owner.page.get_by_role("link", name="Customers").click()
    owner.page.get_by_label("Phone, CPF/CNPJ, e-mail or the start of the name").fill("carla")
    owner.page.get_by_role("button", name="Search").click()
    row = owner.page.locator("tr[data-customer]")
    assert row.count() == 1 and "Carla Mora" in row.inner_text()
    owner.shot("customers-desktop")
    row.get_by_role("link").click()
    points = owner.page.locator('[data-balance="points"] strong')
    assert points.inner_text() == "5"
    assert "a sale PIN sent over WhatsApp" in owner.page.locator("table.ledger").inner_text()

    # A manual adjustment shows in the balance; the ledger check passes.
    assert owner.unlabeled_fields() == 0
    owner.page.get_by_label("Amount").fill("10")
    owner.page.get_by_label("Reason").fill("Missed stamp card")
    owner.page.get_by_role("button", name="Save adjustment").click()
    assert owner.page.get_by_role("status").inner_text() == "Adjustment saved: +10 points."
    assert points.inner_text() == "15"
    assert "Missed stamp card" in owner.page.locator("table.ledger").inner_text()
    owner.shot("customer-desktop")
    report = check_database(database_url)
    assert report.ok, report.render()

    # The counter finds her by phone and sees her rewards; a voucher is checked.
    counter.page.get_by_role("link", name="Customer").click()
    counter.page.get_by_label("Phone number, CPF/CNPJ or e-mail").fill(NUMBER)
    counter.page.get_by_role("button", name="Find").click()
    counter.page.wait_for_url(re.compile(r".*/panel/counter/customers/\d+"))
    assert counter.page.locator('[data-balance="points"] strong').inner_text() == "15"
    assert counter.page.locator("li.offer.usable").count() == 1
    counter.shot("counter-customer-desktop")
    counter.page.get_by_role("link", name="Voucher").click()
    counter.page.get_by_label("Voucher code").fill("welcome-5")
    counter.page.get_by_role("button", name="Check").click()
    assert counter.page.locator(".voucher-state").inner_text() == "Valid"
    counter.shot("counter-voucher-desktop")
    counter.page.get_by_role("button", name="Validate (use it now)").click()
    assert "Voucher WELCOME-5 validated" in counter.page.get_by_role("status").inner_text()
    assert counter.page.locator(".voucher-state").inner_text() == "Used"

    # Phone width: nothing scrolls sideways.
    small = tabs("phone")
    sign_in(small, merchant.owner)
    customer_url = owner.page.url
    for name, path in (
        ("customers", "/panel/customers?q=carla"),
        ("customer", customer_url),
        ("counter-pin", counter_pin_url(counter)),
        ("counter-customer", "/panel/counter/customer?q=" + NUMBER.replace("+", "%2B")),
        ("counter-voucher", "/panel/counter/voucher?code=WELCOME-5"),
    ):
        small.page.goto(path)
        width = small.page.evaluate("document.documentElement.scrollWidth")
        assert width <= SIZES["phone"]["width"], f"{path} scrolls sideways on a phone"
        small.shot(f"{name}-phone")


def counter_pin_url(tab):
    tab.page.goto("/panel/counter/pin")
    tab.page.get_by_role("button", name="Generate PIN").click()
    tab.page.wait_for_url(re.compile(r".*/panel/counter/pins/\d+$"))
    return tab.page.url


def test_a_reward_created_in_the_panel_is_in_the_public_catalogue(tabs, live, db):
    merchant = make_merchant(db, "cafe-rio", locale="en")
    tab = tabs()
    sign_in(tab, merchant.owner)
    page = tab.page
    page.get_by_role("link", name="Rewards").click()
    page.get_by_role("button", name="New reward").click()
    assert tab.unlabeled_fields() == 0
    page.get_by_label("Title").fill("Free croissant")
    page.get_by_label("Type").select_option("product")
    page.get_by_label("Points it costs").fill("40")
    page.get_by_label("Value").fill("")
    page.get_by_label("POS product id").fill("SKU-CROISSANT")
    page.get_by_label("Product name").fill("Croissant")
    page.get_by_label("Discount", exact=True).select_option("gift")
    page.get_by_label("Stock").fill("12")
    tab.shot("reward-form-desktop")
    page.get_by_role("button", name="Create reward").click()
    assert page.get_by_role("status").inner_text() == "Reward created: customers see it now."
    tab.shot("rewards-desktop")
    catalogue = httpx.get(f"{live.url}/api/v1/redimir/comercio/cafe-rio").json()
    assert [(p["titulo"], p["puntos_requeridos"]) for p in catalogue["promociones"]] == [
        ("Free croissant", 40)
    ]
    # Disabled (after confirming): gone from the catalogue.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Disable").click()
    assert "customers no longer see it" in page.get_by_role("status").inner_text()
    catalogue = httpx.get(f"{live.url}/api/v1/redimir/comercio/cafe-rio").json()
    assert catalogue["promociones"] == []


def test_a_key_created_in_the_panel_works_on_a_door_until_revoked(tabs, live, db):
    merchant = make_merchant(db, "cafe-sal", locale="en")
    tab = tabs()
    sign_in(tab, merchant.owner)
    page = tab.page
    page.get_by_role("link", name="Integrations").click()
    tab.shot("integrations-desktop")
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name").fill("Counter POS")
    page.get_by_role("button", name="Create API key").click()
    secret = page.get_by_label("API key (secret)").input_value()
    assert secret.startswith("fk_live_")
    tab.shot("keys-desktop")
    door = f"{live.url}/api/v1/integraciones/pin/generar"
    assert httpx.post(door, headers={"X-API-Key": secret}).status_code == 200
    page.get_by_role("link", name="API keys").click()
    assert secret not in page.content()  # shown once
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("tr", has_text="Counter POS").get_by_role("button", name="Revoke").click()
    assert "revoked" in page.get_by_role("status").inner_text()
    assert httpx.post(door, headers={"X-API-Key": secret}).status_code == 401
    assert httpx.post(door, headers={"X-API-Key": merchant.api_key}).status_code == 200


def test_vouchers_and_campaigns_screens(tabs, db):
    merchant = make_merchant(db, "cafe-mel", locale="en")
    tab = tabs()
    sign_in(tab, merchant.owner)
    page = tab.page
    page.get_by_role("link", name="Vouchers & campaigns").click()
    assert tab.unlabeled_fields() == 0
    page.get_by_label("Issued to").select_option("campaign")
    page.get_by_label("Code").fill("WELCOME-26")
    page.get_by_label("Or what it gives, in words").fill("A free dessert")
    page.get_by_label("Uses").fill("50")
    page.get_by_role("button", name="Issue voucher").click()
    assert page.get_by_role("status").inner_text() == "Voucher WELCOME-26 created."
    tab.shot("vouchers-desktop")
    page.get_by_role("link", name="Earning rules, segments and deals").click()
    assert tab.unlabeled_fields() == 0
    page.get_by_label("Event type").first.fill("visit")
    page.locator("#f-rule_points").fill("5")
    page.get_by_role("button", name="Create rule").click()
    assert page.get_by_role("status").inner_text() == "Earning rule created."


def test_phone_screenshots_of_rewards_vouchers_keys_and_integrations(tabs, db):
    merchant = make_merchant(db, "cafe-ola", locale="en")
    tab = tabs("phone")
    sign_in(tab, merchant.owner)
    page = tab.page
    page.goto("/panel/rewards/new")
    page.get_by_label("Title").fill("Free coffee")
    page.get_by_label("Points it costs").fill("10")
    page.get_by_label("Value").fill("2.50")
    tab.shot("reward-form-phone")
    page.get_by_role("button", name="Create reward").click()
    page.goto("/panel/integrations/keys")
    page.get_by_label("Name").fill("Shop")
    page.get_by_role("button", name="Create API key").click()
    tab.shot("keys-phone")
    for name, path in (
        ("rewards", "/panel/rewards"),
        ("vouchers", "/panel/vouchers"),
        ("integrations", "/panel/integrations"),
    ):
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= SIZES["phone"]["width"], f"{path} scrolls sideways on a phone"
        tab.shot(f"{name}-phone")


# -- issue 12: the dashboard draws its charts with data; an operator suspends and reactivates
# a merchant (screenshots of the dashboard, messages, audit log, merchants, platform health)


def test_the_dashboard_draws_its_charts_with_data(tabs, db):
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


def test_an_operator_suspends_and_reactivates_a_merchant(tabs, db):
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


def qr_video(path: Path, text: str, size: int = 480, frames: int = 10) -> Path:
    """A Y4M clip (the format Chromium's fake camera plays) showing ``text`` as a QR code
    on white: luma from the code's modules, neutral chroma."""
    qr = segno.make_qr(text, error="m")
    matrix = [list(row) for row in qr.matrix]
    scale = (size * 3 // 4) // len(matrix)
    offset = (size - scale * len(matrix)) // 2
    luma = bytearray(b"\xff" * size * size)
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                for dy in range(scale):
                    start = (offset + y * scale + dy) * size + offset + x * scale
                    luma[start : start + scale] = b"\x00" * scale
    chroma = b"\x80" * (size // 2) * (size // 2) * 2
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{size} H{size} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + bytes(luma) + chroma)
    return path


def test_the_counter_scans_a_voucher_qr_with_the_camera(playwright, live, db, tmp_path):
    merchant = make_merchant(db, "cafe-luz", locale="en")
    with db.session() as session:
        tenant = session.get_one(Tenant, merchant.tenant_id)
        issue(session, tenant, code="SCAN-ME-7", benefit="A free coffee")
    clip = qr_video(tmp_path / "camera.y4m", "SCAN-ME-7")
    # A browser of its own: the fake camera playing the clip is a launch option.
    chromium = playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[
            "--use-fake-ui-for-media-stream",  # the camera permission, granted
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={clip}",
        ],
    )
    try:
        tab = Tab(chromium, live.url)
        tab.context.grant_permissions(["camera"])
        sign_in(tab, merchant.cashier)
        page = tab.page
        page.goto("/panel/counter/voucher")
        page.get_by_role("button", name="Scan with the camera").click()
        page.wait_for_url("**/panel/counter/voucher?code=SCAN-ME-7", timeout=15_000)
        assert page.locator(".voucher-state").inner_text() == "Valid"
        assert page.locator(".voucher-code").inner_text() == "SCAN-ME-7"
        tab.close()
    finally:
        chromium.close()
