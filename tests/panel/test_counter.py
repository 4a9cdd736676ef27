"""The counter (cashier and owner): a sale PIN through the PIN engine, its QR and slip; a
customer found by phone or document who redeems a reward (with the presence code when the
shop asks for one); a voucher checked and validated once, also under 20 parallel requests
on PostgreSQL. Effects are read back from the database."""

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select

from fidelia.app import create_app
from fidelia.customers import profile
from fidelia.customers.service import identify
from fidelia.ledger.service import Account, Source, credit
from fidelia.models import AuditEntry, Customer, OutboxMessage, Pin, Redemption, Tenant, VoucherUse
from fidelia.rewards.service import create_reward
from fidelia.vouchers.service import issue
from tests.panel.support import PASSWORD, TOKEN, make_merchant, post, sign_in
from tests.support.helpers import LiveServer


def audits(db, action):
    with db.session(readonly=True) as session:
        return session.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()


def shop_with_customer(db, slug="shop-a", points=50, validate=False):
    a = make_merchant(db, slug, locale="en")
    with db.session() as session:
        tenant = session.get_one(Tenant, a.tenant_id)
        tenant.should_validate_customer = validate
        customer = identify(session, tenant, {"whatsapp": "+50688884444"}, name="Bea Costa")
        profile.record_consents(session, tenant, customer, {"whatsapp": True}, "test")
        credit(
            session,
            Account(tenant.program_id, customer.id, "points"),
            points,
            Source(tenant.id, "event", f"welcome-{customer.id}"),
        )
        reward = create_reward(
            session, tenant, title="Free coffee", points=30, reward_type="fixed", value="2.00"
        )
        return a, customer.id, reward.id


def points_of(db, customer_id):
    with db.session(readonly=True) as session:
        from fidelia.redemptions.service import wallet_of

        return wallet_of(session, session.get_one(Customer, customer_id)).points


def test_cashier_generates_a_sale_pin_with_its_qr_and_slip(client, db):
    a = make_merchant(db, "shop-a", locale="en")
    with db.session() as session:
        session.get_one(Tenant, a.tenant_id).min_purchase = 500
    sign_in(client, a.cashier)
    low = post(client, "/panel/counter/pin", {"amount": "4.99"})
    assert low.status_code == 422 and "below the minimum of $5.00" in low.text
    done = post(client, "/panel/counter/pin", {"amount": "12.50"}, follow_redirects=False)
    assert done.status_code == 303
    pin_id = int(done.headers["location"].rsplit("/", 1)[1])
    with db.session(readonly=True) as session:
        pin = session.get_one(Pin, pin_id)
        assert (pin.tenant_id, pin.status, pin.amount) == (a.tenant_id, "open", 1250)
    slip = client.get(f"/panel/counter/pins/{pin_id}")
    assert f'data-pin="{pin.code}"' in slip.text and "Valid until" in slip.text
    assert f"wa.me/50600000000?text=Quiero+activar+mi+PIN:+{pin.code}" in slip.text
    qr = client.get(f"/panel/counter/pins/{pin_id}/qr.svg")
    assert qr.status_code == 200 and qr.headers["content-type"] == "image/svg+xml"
    assert qr.text.startswith("<svg")
    (entry,) = audits(db, "pin.generate")
    assert entry.target_id == str(pin_id) and entry.after["amount"] == 1250


def test_another_merchants_pin_and_customer_are_not_found(client, db):
    a = make_merchant(db, "shop-a", locale="en", records=True)
    b = make_merchant(db, "shop-b", locale="en")
    sign_in(client, b.cashier)
    assert client.get(f"/panel/counter/pins/{a.pin_id}").status_code == 404
    assert client.get(f"/panel/counter/pins/{a.pin_id}/qr.svg").status_code == 404
    assert client.get(f"/panel/counter/customers/{a.customer_id}").status_code == 404
    assert post(client, f"/panel/counter/customers/{a.customer_id}/redeem").status_code == 404


def test_counter_finds_a_customer_and_redeems_a_reward(client, db):
    a, cid, reward_id = shop_with_customer(db)
    sign_in(client, a.cashier)
    found = client.get(
        "/panel/counter/customer", params={"q": "+506 8888 4444"}, follow_redirects=False
    )
    assert (
        found.status_code == 303 and found.headers["location"] == f"/panel/counter/customers/{cid}"
    )
    nobody = client.get("/panel/counter/customer", params={"q": "+50699990000"})
    assert "Nobody with this phone number" in nobody.text
    page = client.get(f"/panel/counter/customers/{cid}")
    assert f'data-reward="{reward_id}"' in page.text and "Take $2.00 off the invoice." in page.text
    done = post(
        client,
        f"/panel/counter/customers/{cid}/redeem",
        {"reward_id": str(reward_id)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    notice = client.get(done.headers["location"]).text
    assert "Redeemed Free coffee" in notice and "Take $2.00 off the invoice." in notice
    assert points_of(db, cid) == 20
    with db.session(readonly=True) as session:
        (redemption,) = session.scalars(select(Redemption)).all()
        assert (redemption.origin, redemption.points, redemption.customer_id) == ("panel", 30, cid)
    (entry,) = audits(db, "redemption.create")
    assert entry.target_id == str(redemption.id) and entry.actor_label == a.cashier
    # Not enough points now: refused, nothing taken.
    again = post(client, f"/panel/counter/customers/{cid}/redeem", {"reward_id": str(reward_id)})
    assert again.status_code == 422 and points_of(db, cid) == 20


def test_a_shop_that_validates_customers_needs_the_code_they_received(client, db):
    a, cid, reward_id = shop_with_customer(db, validate=True)
    sign_in(client, a.cashier)
    url = f"/panel/counter/customers/{cid}/redeem"
    without = post(client, url, {"reward_id": str(reward_id)})
    assert without.status_code == 422 and "Type the code the customer received" in without.text
    sent = post(client, f"/panel/counter/customers/{cid}/code")
    assert sent.status_code == 200 and "A code was sent by WhatsApp" in sent.text
    with db.session(readonly=True) as session:
        (message,) = session.scalars(select(OutboxMessage)).all()
        (code,) = re.findall(r"\b\d{6}\b", str(message.payload))
    wrong = "000000" if code != "000000" else "111111"
    refused = post(client, url, {"reward_id": str(reward_id), "code": wrong})
    assert refused.status_code == 422 and "wrong or has expired" in refused.text
    assert points_of(db, cid) == 50
    done = post(client, url, {"reward_id": str(reward_id), "code": code}, follow_redirects=False)
    assert done.status_code == 303 and points_of(db, cid) == 20


def test_voucher_check_and_single_validation(client, db):
    a = make_merchant(db, "shop-a", locale="en")
    with db.session() as session:
        tenant = session.get_one(Tenant, a.tenant_id)
        issue(session, tenant, code="SUMMER-10", benefit="10% off")
    sign_in(client, a.cashier)
    unknown = client.get("/panel/counter/voucher", params={"code": "NOPE-1"})
    assert "No voucher with this code" in unknown.text
    seen = client.get("/panel/counter/voucher", params={"code": "summer-10"})
    assert 'data-state="active"' in seen.text and "10% off" in seen.text
    done = post(client, "/panel/counter/voucher", {"code": "summer-10"}, follow_redirects=False)
    assert done.status_code == 303
    after = client.get(done.headers["location"]).text
    assert "Voucher SUMMER-10 validated. Apply: 10% off" in after and 'data-state="used"' in after
    again = post(client, "/panel/counter/voucher", {"code": "SUMMER-10"})
    assert again.status_code == 422 and "already used" in again.text
    (entry,) = audits(db, "voucher.validate")
    assert entry.after == {"code": "SUMMER-10", "uses": 1}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_one_voucher_validated_by_20_parallel_panel_requests_succeeds_once(settings, db):
    a = make_merchant(db, "shop-a", locale="en")
    with db.session() as session:
        issue(session, session.get_one(Tenant, a.tenant_id), code="ONCE-ONLY")
    app = create_app(settings, run_worker=False)
    with LiveServer(app) as server, server.client() as first:
        page = first.get("/panel/login")
        token = TOKEN.search(page.text).group(1)
        first.post(
            "/panel/login", data={"csrf_token": token, "email": a.cashier, "password": PASSWORD}
        )
        token = TOKEN.search(first.get("/panel/counter/voucher").text).group(1)
        cookies = dict(first.cookies)
        barrier = threading.Barrier(20)

        def validate(_: int) -> int:
            with httpx.Client(base_url=server.url, cookies=cookies, timeout=30) as http:
                barrier.wait()
                answer = http.post(
                    "/panel/counter/voucher",
                    data={"csrf_token": token, "code": "ONCE-ONLY"},
                    follow_redirects=False,
                )
                return answer.status_code

        with ThreadPoolExecutor(20) as pool:
            statuses = sorted(pool.map(validate, range(20)))
    app.state.fidelia.db.dispose()
    assert statuses == [303] + [422] * 19, statuses
    with db.session(readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(VoucherUse)) == 1
    assert len(audits(db, "voucher.validate")) == 1
