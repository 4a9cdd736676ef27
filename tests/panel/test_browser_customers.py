"""Customers and the counter in a real browser (same harness as test_browser.py): a sale
PIN made in the panel, sent from the simulator page, credits the customer, who then shows
in the customer list and page with the points; a manual adjustment shows in the balance
and the ledger check passes; the counter's customer and voucher screens. Screenshots at
desktop and phone width (docs/panel/ with FIDELIA_SCREENSHOTS=1)."""

import re

from fidelia.ledger.check import check_database
from fidelia.models import Tenant
from fidelia.rewards.service import create_reward
from fidelia.vouchers.service import issue
from tests.panel.support import make_merchant
from tests.panel.test_browser import (  # noqa: F401 (fixtures)
    SIZES,
    browser,
    database_url,
    live,
    pytestmark,
    sign_in,
    tabs,
)

NUMBER = "+50688887777"


def test_sale_pin_to_simulator_to_customer_page_and_adjustment(tabs, db, database_url):  # noqa: F811
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
