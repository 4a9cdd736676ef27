"""The owner's dashboard, exports, audit log and messages: what they show comes from the
merchant's own rows (rollups, ledger, audit log, outbox), codes are never shown, and a
retry puts a failed message back in the queue."""

import csv
import html
import io
import json
import re
from datetime import timedelta

from sqlalchemy import select

from fidelia.audit import service as audit
from fidelia.customers.service import identify
from fidelia.ledger.service import Account, Source, credit, debit
from fidelia.messaging import deliveries
from fidelia.models import AuditEntry, OutboxMessage, Tenant
from fidelia.pins import service as pins
from fidelia.rewards.service import create_reward
from fidelia.rollups import service as rollups
from fidelia.tenants.service import set_setting
from tests.panel.support import make_merchant, post, sign_in


def activity(db, tenant_id: int) -> int:
    """Two customers, three activated PINs, one redemption-like debit; returns a customer."""
    with db.session() as s:
        tenant = s.get_one(Tenant, tenant_id)
        set_setting(s, tenant.slug, "point_value", "0.5")
        ana = identify(s, tenant, {"whatsapp": "+50688887777"}, name="Ana")
        bea = identify(s, tenant, {"whatsapp": "+50688886666"}, name="Bea")
        for who, points in ((ana, 10), (ana, 5), (bea, 7)):
            pin = pins.generate(s, tenant, "ns", None)
            pin.status, pin.customer_id = "used", who.id
            credit(
                s, Account(tenant.program_id, who.id), points, Source(tenant.id, "pin", str(pin.id))
            )
        pins.generate(s, tenant, "ns", None)  # issued, never activated
        debit(s, Account(tenant.program_id, ana.id), 4, Source(tenant.id, "payment", "p1"))
        create_reward(s, tenant, title="Café", points=3)
        return ana.id


def test_dashboard_shows_the_rollups_figures_and_charts(client, db):
    a = make_merchant(db, "shop-a")
    b = make_merchant(db, "shop-b")
    activity(db, a.tenant_id)
    activity(db, b.tenant_id)  # another merchant's figures never mix in
    rollups.update(db, settle=timedelta(0))
    sign_in(client, a.owner)
    page = client.get("/panel/dashboard?days=7")
    assert page.status_code == 200
    text = html.unescape(page.text)
    figure = dict(
        re.findall(r'data-figure="(\w[\w-]*)"><h2>[^<]*</h2><p class="value">([^<]*)<', text)
    )
    assert figure["active"] == "2"
    assert figure["pins"] == "3 / 4"
    assert "+22" in figure["points"] and "4" in figure["points"]
    # Liability: 18 unspent points at 0.50 = 9.00 USD
    assert "9" in figure["liability"]
    assert figure["repeat"].startswith("50")  # Ana bought twice of the two buyers
    charts = {
        name: json.loads(html.unescape(data))
        for name, data in re.findall(r'id="chart-([\w-]+)" data-chart="([^"]+)"', page.text)
    }
    assert set(charts) == {"issued-redeemed", "activations", "active-weekly"}
    issued = charts["issued-redeemed"]["datasets"][0]["data"]
    assert len(issued) == 7 and issued[-1] == 22
    assert sum(charts["activations"]["datasets"][1]["data"]) == 3
    assert 'src="/panel/static/vendor/chart.umd.min.js' in page.text
    answer = client.get("/panel/dashboard/chart.csv?chart=issued-redeemed&days=7")
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert rows[0] == ["day", "points_issued", "points_redeemed"] and len(rows) == 8
    assert rows[-1][1:] == ["22", "4"]
    assert client.get("/panel/dashboard?days=12").status_code == 422


def test_exports_stream_the_merchants_rows_only(client, db):
    a = make_merchant(db, "shop-a")
    b = make_merchant(db, "shop-b")
    activity(db, a.tenant_id)
    activity(db, b.tenant_id)
    sign_in(client, a.owner)
    assert client.get("/panel/exports").status_code == 200
    answer = client.get("/panel/exports/download?kind=ledger&decimal=comma")
    assert answer.status_code == 200
    assert "shop-a-ledger.csv" in answer.headers["content-disposition"]
    assert answer.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:3] == ["id", "at", "customer_id"]
    assert len(rows) == 1 + 4 and {r[4] for r in rows[1:]} == {"earn", "redeem"}
    customers = client.get("/panel/exports/download?kind=customers").content.decode("utf-8-sig")
    people = list(csv.DictReader(io.StringIO(customers)))
    assert sorted(p["name"] for p in people) == ["Ana", "Bea"]
    assert {p["phone"] for p in people} == {"+50688887777", "+50688886666"}
    assert client.get("/panel/exports/download?kind=secrets").status_code == 422
    assert client.get("/panel/exports/download?kind=ledger&since=2025-13-01").status_code == 422
    future = client.get("/panel/exports/download?kind=ledger&since=2999-01-01")
    assert future.content.decode("utf-8-sig").count("\r\n") == 1  # the header alone
    # Who took which data out is in the audit log; refused downloads took nothing.
    with db.session(readonly=True) as s:
        taken = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "export.download").order_by(AuditEntry.id)
        ).all()
    assert [(e.tenant_id, e.actor_label, e.target_id) for e in taken] == [
        (a.tenant_id, a.owner, "ledger"),
        (a.tenant_id, a.owner, "customers"),
        (a.tenant_id, a.owner, "ledger"),
    ]
    assert taken[0].after == {"export": "ledger", "from": None, "to": None, "decimal_comma": True}
    assert taken[2].after["from"] == "2999-01-01"


def test_the_audit_log_pages_show_each_merchants_entries(client, browser_client, db):
    from tests.panel.support import make_operator

    a = make_merchant(db, "shop-a")
    b = make_merchant(db, "shop-b")
    with db.session() as s:
        actor = audit.Actor("user", a.owner, 1)
        audit.record(
            s,
            actor,
            "setting.change",
            "settings",
            a.tenant_id,
            tenant_id=a.tenant_id,
            before={"points_per_pin": 1},
            after={"points_per_pin": 5},
        )
        audit.record(
            s, audit.Actor("user", b.owner, 2), "reward.create", "reward", 9, tenant_id=b.tenant_id
        )
    sign_in(client, a.owner)
    page = html.unescape(client.get("/panel/audit").text)
    assert 'data-action="setting.change"' in page and "points_per_pin: 1 → 5" in page
    assert 'data-action="reward.create"' not in page  # B's
    assert 'data-action="setting' not in client.get("/panel/audit?action=reward").text
    sign_in(browser_client, make_operator(db))
    everything = browser_client.get("/panel/operator/audit").text
    assert 'data-action="setting.change"' in everything
    assert 'data-action="reward.create"' in everything
    only_b = browser_client.get("/panel/operator/audit?merchant=shop-b").text
    assert 'data-action="reward.create"' in only_b
    assert 'data-action="setting.change"' not in only_b


def test_messages_by_status_with_codes_redacted_and_a_retry(client, db):
    a = make_merchant(db, "shop-a", records=True)
    customer_id = activity(db, a.tenant_id)
    with db.session() as s:
        s.add(
            OutboxMessage(
                tenant_id=a.tenant_id,
                channel="sms",
                payload={"to": "+50688887777", "text": "Tu código es 482913", "secret": True},
                status="failed",
                last_error="gateway said: bad number for code 482913",
            )
        )
        s.add(
            OutboxMessage(
                tenant_id=a.tenant_id,
                channel="whatsapp",
                payload={"to": "50688887777", "text": {"body": "Canjeaste 4 puntos"}},
                status="sent",
            )
        )
    sign_in(client, a.owner)
    page = client.get("/panel/messages").text
    assert "482913" not in page and "[redacted]" in page
    assert "Canjeaste 4 puntos" in page and "HTTP 500 from the gateway" in page
    assert 'data-count="failed"' in page
    failed_only = client.get("/panel/messages?status=failed").text
    assert "Canjeaste" not in failed_only
    assert client.get("/panel/messages?status=bogus").status_code == 422
    # The customer page's history (a service for the customers screen): their messages only.
    with db.session(readonly=True) as s:
        history = deliveries.for_customer(s, a.tenant_id, customer_id)
    assert [m.text for m in history] == ["Canjeaste 4 puntos", "[redacted]", "Hola from shop-a"]
    # Retry: the failed message goes back to pending, recorded in the audit log.
    answer = post(client, f"/panel/messages/{a.message_id}/retry", follow_redirects=False)
    assert answer.status_code == 303
    with db.session(readonly=True) as s:
        row = s.get_one(OutboxMessage, a.message_id)
        assert (row.status, row.attempts) == ("pending", 0)
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "message.retry")).one()
        assert entry.tenant_id == a.tenant_id and entry.actor_label == a.owner
    again = post(client, f"/panel/messages/{a.message_id}/retry", follow_redirects=False)
    assert again.status_code == 409  # only a failed message
    with db.session(readonly=True) as s:
        secret = s.scalar(select(OutboxMessage.id).where(OutboxMessage.channel == "sms"))
    assert post(client, f"/panel/messages/{secret}/retry").status_code == 409
