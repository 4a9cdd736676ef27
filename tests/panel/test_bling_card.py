"""The Bling card on the Integrations page, against the fake Bling on loopback: connect
(the panel starts the OAuth flow with a state bound to this browser, the callback lands back
on the page showing "connected"), sales situations, test a reference sale, import,
disconnect — each audited."""

from urllib.parse import parse_qs, urlparse

from sqlalchemy import select

from fidelia.connectors.bling import service
from fidelia.models import AuditEntry, BlingConnection, BlingImport
from tests.connectors.bling.conftest import ANA, fake, settings  # noqa: F401 (fixtures)
from tests.panel.support import make_merchant, post, sign_in


def connection_of(db, tenant_id):
    with db.session(readonly=True) as session:
        return session.scalar(select(BlingConnection).where(BlingConnection.tenant_id == tenant_id))


def actions(db, tenant_id):
    with db.session(readonly=True) as session:
        query = select(AuditEntry.action).where(AuditEntry.tenant_id == tenant_id)
        return list(session.scalars(query.order_by(AuditEntry.id)))


def connect(client, fake, company):  # noqa: F811
    started = post(client, "/panel/integrations/bling/connect", follow_redirects=False)
    assert started.status_code == 303, started.text
    location = started.headers["location"]
    assert location.startswith(f"{fake.url}/oauth/authorize?")
    state = parse_qs(urlparse(location).query)["state"][0]
    assert client.cookies.get(service.BINDING_COOKIE)  # the browser is bound to the state
    # The merchant says yes at Bling; Bling sends the browser back to the callback.
    back = client.get(
        "/connectors/bling/callback",
        params={"code": fake.issue_code(company.id), "state": state},
        follow_redirects=False,
    )
    assert back.status_code == 303 and back.headers["location"] == (
        "/panel/integrations?bling=connected"
    )
    return back.headers["location"]


def test_connect_from_the_card_and_land_back_connected(client, db, fake):  # noqa: F811
    a = make_merchant(db, "loja", locale="en")
    sign_in(client, a.owner)
    before = client.get("/panel/integrations").text
    assert 'id="bling-status">Not connected' in before and "Connect Bling" in before
    company = fake.add_company()
    landing = connect(client, fake, company)
    page = client.get(landing).text
    assert 'id="bling-status">Connected' in page and company.name in page
    assert "Bling is connected" in page
    found = connection_of(db, a.tenant_id)
    assert (found.status, found.company_id) == ("connected", company.id)
    assert "bling.connect_start" in actions(db, a.tenant_id)


def test_a_state_from_another_browser_is_refused(client, browser_client, db, fake):  # noqa: F811
    a = make_merchant(db, "loja", locale="en")
    sign_in(client, a.owner)
    company = fake.add_company()
    started = post(client, "/panel/integrations/bling/connect", follow_redirects=False)
    state = parse_qs(urlparse(started.headers["location"]).query)["state"][0]
    answer = browser_client.get(
        "/connectors/bling/callback",
        params={"code": fake.issue_code(company.id), "state": state},
        follow_redirects=False,
    )
    assert answer.status_code == 400
    assert connection_of(db, a.tenant_id) is None


def test_denied_at_bling_shows_the_error(client, db, fake):  # noqa: F811
    a = make_merchant(db, "loja", locale="en")
    sign_in(client, a.owner)
    back = client.get(
        "/connectors/bling/callback", params={"error": "access_denied"}, follow_redirects=False
    )
    page = client.get(back.headers["location"]).text
    assert "was not authorised at Bling" in page and 'class="error"' in page


def test_situations_preview_import_and_disconnect(client, db, fake):  # noqa: F811
    a = make_merchant(db, "loja", locale="en")
    sign_in(client, a.owner)
    company = fake.add_company()
    connect(client, fake, company)
    # Sales situations, read from Bling; the choice saved.
    page = client.get("/panel/integrations/bling/situations").text
    assert "Atendido" in page and "Entregue" in page
    saved = post(
        client,
        "/panel/integrations/bling/situations",
        {"situation_9": "earns", "situation_24": "earns", "situation_12": "cancels"},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    found = connection_of(db, a.tenant_id)
    assert (found.earning_situations, found.cancelled_situations) == ([9, 24], [12])
    refused = post(client, "/panel/integrations/bling/situations", {"situation_9": "cancels"})
    assert refused.status_code == 422
    assert connection_of(db, a.tenant_id).earning_situations == [9, 24]
    # Test a reference sale: the customer found (or new) and the benefit, nothing written.
    post(
        client,
        "/panel/program",
        {"currency": "BRL", "earn_points_per_unit": "1", "cashback_percent": "5"},
    )
    contact = fake.add_contact(company, nome="Ana Souza", documento=ANA)
    order = fake.add_order(company, contact, produtos="80.00", situacao=9)
    shown = post(client, "/panel/integrations/bling/preview", {"order_id": str(order)})
    assert shown.status_code == 200
    preview = shown.text.split('id="bling-preview"')[1].split("</div>")[0]
    assert "Ana Souza would be created" in preview and "Would earn now." in preview
    assert 'id="bling-benefit">80 points, R$4.00 cashback' in preview
    with db.session(readonly=True) as session:
        from fidelia.models import Customer

        assert session.scalar(select(Customer.id)) is None  # the preview wrote nothing
    assert post(client, "/panel/integrations/bling/preview", {"order_id": "abc"}).status_code == 422
    # Import since a date (queued for the worker).
    with db.session(readonly=True) as session:
        imports_before = len(list(session.scalars(select(BlingImport))))
    assert (
        post(client, "/panel/integrations/bling/import", {"since": "not a date"}).status_code == 422
    )
    # Disconnect: tokens revoked at Bling and deleted here.
    gone = post(client, "/panel/integrations/bling/disconnect", follow_redirects=False)
    assert gone.status_code == 303
    found = connection_of(db, a.tenant_id)
    assert found.status == "disconnected" and found.access_token is None
    assert fake.revoked
    assert 'id="bling-status">Disconnected' in client.get("/panel/integrations").text
    assert imports_before >= 1
    logged = actions(db, a.tenant_id)
    assert {"bling.situations", "bling.disconnect"} <= set(logged)


def test_import_from_the_card(client, db, fake):  # noqa: F811
    a = make_merchant(db, "loja", locale="en")
    sign_in(client, a.owner)
    connect(client, fake, fake.add_company())
    page = client.get("/panel/integrations").text
    since = page.split('name="since" type="date" value="')[1].split('"')[0]
    other = post(client, "/panel/integrations/bling/import", {"since": "2020-01-01"})
    assert other.status_code == 422 and "is unfinished" in other.text  # the one from connect
    queued = post(
        client, "/panel/integrations/bling/import", {"since": since}, follow_redirects=False
    )
    assert queued.status_code == 303
    assert "bling.import" in actions(db, a.tenant_id)
    assert 'id="bling-import"' in client.get("/panel/integrations").text
