"""The operator console: creating, suspending and reactivating merchants (the doors and the
merchant's panel follow), bot numbers, groups, platform health, and the read-only view of a
merchant's owner pages; every action is in the audit log."""

from datetime import timedelta

from sqlalchemy import select

from fidelia.messaging.worker import Worker
from fidelia.models import AuditEntry, Program, Tenant
from fidelia.ops import heartbeat
from fidelia.rollups import service as rollups
from tests.panel.support import make_merchant, make_operator, post, sign_in


def actions(db, tenant_id=None):
    with db.session(readonly=True) as s:
        query = select(AuditEntry.action).order_by(AuditEntry.id)
        if tenant_id is not None:
            query = query.where(AuditEntry.tenant_id == tenant_id)
        return list(s.scalars(query))


def test_suspend_and_reactivate_a_merchant(client, browser_client, db):
    a = make_merchant(db, "shop-a")
    sign_in(client, make_operator(db))
    sign_in(browser_client, a.owner)
    key = {"X-API-Key": a.api_key}
    assert browser_client.post("/api/v1/integraciones/pin/generar", headers=key).status_code == 200
    page = client.get("/panel/operator/merchants").text
    assert 'data-merchant="shop-a"' in page
    url = f"/panel/operator/merchants/{a.tenant_id}"
    answer = post(client, f"{url}/suspend", follow_redirects=False)
    assert answer.status_code == 303
    with db.session(readonly=True) as s:
        assert s.get_one(Tenant, a.tenant_id).suspended_at is not None
    assert 'data-state="suspended"' in client.get("/panel/operator/merchants").text
    assert browser_client.post("/api/v1/integraciones/pin/generar", headers=key).status_code == 401
    # The merchant's panel is read-only: pages open, changes are refused.
    program = browser_client.get("/panel/program")
    assert program.status_code == 200 and 'data-banner="suspended"' in program.text
    refused = post(browser_client, "/panel/program", {"points_per_pin": "9"})
    assert refused.status_code == 403 and 'data-code="READ_ONLY"' in refused.text
    with db.session(readonly=True) as s:
        assert s.get_one(Tenant, a.tenant_id).points_per_pin == 1
    post(client, f"{url}/reactivate")
    assert browser_client.post("/api/v1/integraciones/pin/generar", headers=key).status_code == 200
    saved = post(browser_client, "/panel/program", {"points_per_pin": "9"}, follow_redirects=False)
    assert saved.status_code == 303
    assert actions(db, a.tenant_id)[-3:-1] == ["tenant.suspend", "tenant.reactivate"]


def test_create_a_merchant_set_its_bot_number_and_group_it(client, db):
    sign_in(client, make_operator(db))
    page = post(
        client,
        "/panel/operator/merchants",
        {
            "slug": "new-shop",
            "name": "New Shop",
            "currency": "BRL",
            "timezone": "America/Sao_Paulo",
            "locale": "pt_BR",
            "owner_email": "boss@new.test",
        },
    )
    assert page.status_code == 200 and "/panel/invitations/" in page.text
    api_key = page.text.split('aria-label="API key" data-select-on-focus')[0].rsplit('value="', 1)[
        1
    ]
    api_key = api_key.split('"')[0]
    assert (
        client.post("/api/v1/integraciones/pin/generar", headers={"X-API-Key": api_key}).status_code
        == 200
    )
    with db.session(readonly=True) as s:
        tenant = s.scalars(select(Tenant).where(Tenant.slug == "new-shop")).one()
        assert (tenant.currency, tenant.timezone) == ("BRL", "America/Sao_Paulo")
    again = post(client, "/panel/operator/merchants", {"slug": "new-shop", "name": "Again"})
    assert again.status_code == 422
    post(
        client,
        f"/panel/operator/merchants/{tenant.id}/bot-number",
        {"bot_number": "+55 11 99999-0000"},
    )
    bad = post(client, f"/panel/operator/merchants/{tenant.id}/bot-number", {"bot_number": "abc"})
    assert bad.status_code == 422
    other = make_merchant(db, "other-shop")
    grouped = post(
        client,
        "/panel/operator/groups",
        {"group_slug": "mall", "group_name": "Mall", "members": "new-shop, other-shop"},
        follow_redirects=False,
    )
    assert grouped.status_code == 303
    with db.session(readonly=True) as s:
        tenant = s.get_one(Tenant, tenant.id)
        assert tenant.bot_number == "5511999990000"
        group = s.get_one(Program, tenant.program_id)
        assert group.kind == "group" and s.get_one(Tenant, other.tenant_id).program_id == group.id
    assert 'data-group="mall"' in client.get("/panel/operator/merchants").text
    assert {"tenant.create", "apikey.create", "setting.change", "group.join"} <= set(actions(db))


def test_impersonation_is_read_only_and_recorded(client, db):
    a = make_merchant(db, "shop-a")
    staff = make_operator(db)
    sign_in(client, staff)
    answer = post(
        client, f"/panel/operator/merchants/{a.tenant_id}/impersonate", follow_redirects=False
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/panel/dashboard"
    dashboard = client.get("/panel/dashboard")
    assert dashboard.status_code == 200 and 'data-banner="impersonation"' in dashboard.text
    assert client.get("/panel/team").status_code == 200
    refused = post(client, "/panel/program", {"points_per_pin": "9"})
    assert refused.status_code == 403 and 'data-code="READ_ONLY"' in refused.text
    assert client.get("/panel/operator/merchants").status_code == 403  # an owner's view now
    post(client, "/panel/operator/impersonation/stop")
    assert client.get("/panel/operator/merchants").status_code == 200
    assert client.get("/panel/dashboard").status_code == 403
    with db.session(readonly=True) as s:
        entries = list(
            s.scalars(
                select(AuditEntry)
                .where(AuditEntry.tenant_id == a.tenant_id)
                .order_by(AuditEntry.id)
            )
        )
    started, stopped = entries[-2:]
    assert (started.action, stopped.action) == ("impersonation.start", "impersonation.stop")
    assert started.actor_label == staff and stopped.actor_label == f"{staff} (operator)"


def test_platform_health_shows_the_worker_outbox_and_namespaces(client, db, settings):
    a = make_merchant(db, "shop-a", records=True)
    client.post("/api/v1/integraciones/pin/generar", headers={"X-API-Key": a.api_key})
    Worker(db, {}).sweep()  # folds rollups, records the heartbeat
    sign_in(client, make_operator(db))
    page = client.get("/panel/operator/health").text
    assert 'data-figure="worker"' in page and "never" not in page.split('data-figure="backlog"')[0]
    assert f'data-namespace="{settings.bot_number}"' in page
    row = page.split(f'data-namespace="{settings.bot_number}"')[1].split("</tr>")[0]
    assert "<td>1</td>" in row  # one open PIN
    assert 'data-channel="whatsapp"' in page  # make_merchant's failed message
    with db.session(readonly=True) as s:
        assert heartbeat.newest(s) is not None
    # The sweep folds only settled rows: the PINs and the customer just made (the sample's
    # customer and PIN, and the PIN issued above) wait for a later round.
    assert rollups.update(db, settle=timedelta(0)) == 3
