"""Connecting a merchant (OAuth2 authorization code): the single-use state bound to the
merchant and to the browser, the single-use code, tokens encrypted at rest, the company
mapped, the first import queued; disconnecting revokes and deletes the tokens."""

from datetime import timedelta

from sqlalchemy import select

from fidelia.connectors.bling import service
from fidelia.connectors.bling.crypto import SecretBox
from fidelia.kit import clock
from fidelia.models import BlingConnection, BlingImport, BlingOAuthState, Tenant
from tests.connectors.bling.conftest import (
    BINDING,
    authorize,
    callback,
    connect,
    connection,
    count,
    make_merchant,
)


def test_connect_stores_the_company_and_encrypted_tokens(client, db, settings, fake):
    tenant = make_merchant(db)
    company = connect(client, db, settings, fake, tenant)
    found = connection(db, tenant)
    assert found is not None
    assert (found.company_id, found.company_name, found.status) == (
        company.id,
        company.name,
        "connected",
    )
    assert found.connected_at is not None and found.last_error is None
    # Encrypted at rest: the stored value is not the token Bling issued, and opens to it.
    assert found.access_token not in fake.access and found.refresh_token not in fake.refresh_tokens
    box = SecretBox.from_settings(settings)
    assert box.open(found.access_token) in fake.access
    assert box.open(found.refresh_token) in fake.refresh_tokens
    # The merchant's default choice: "Atendido" and the custom one inheriting from it.
    assert found.earning_situations == [9, 50001] and found.cancelled_situations == [12]
    assert count(db, BlingImport) == 1  # the first import is queued for the worker
    with db.session(readonly=True) as session:
        status = service.status(session, session.get_one(Tenant, tenant.id))
    assert status["status"] == "connected" and status["import"]["status"] == "pending"


def test_wrong_state_is_refused_and_nothing_stored(client, db, settings, fake):
    tenant = make_merchant(db)
    company = fake.add_company()
    authorize(db, settings, tenant)
    answer = callback(client, "not-a-state", fake.issue_code(company.id))
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "BLING_STATE_REFUSED"
    assert connection(db, tenant) is None
    assert fake.grant_count("authorization_code") == 0


def test_reused_state_is_refused(client, db, settings, fake):
    tenant = make_merchant(db)
    company = fake.add_company()
    state = authorize(db, settings, tenant)
    assert callback(client, state, fake.issue_code(company.id)).status_code == 303
    before = connection(db, tenant)
    answer = callback(client, state, fake.issue_code(company.id))
    assert answer.status_code == 400 and "already used" in answer.json()["error"]["message"]
    after = connection(db, tenant)
    assert after.token_version == before.token_version  # nothing exchanged again
    assert fake.grant_count("authorization_code") == 1


def test_expired_state_is_refused(client, db, settings, fake):
    tenant = make_merchant(db)
    company = fake.add_company()
    state = authorize(db, settings, tenant)
    clock.freeze(clock.now() + timedelta(minutes=11))
    try:
        answer = callback(client, state, fake.issue_code(company.id))
    finally:
        clock.freeze(None)
    assert answer.status_code == 400 and "expired" in answer.json()["error"]["message"]
    assert connection(db, tenant) is None
    # ... and it was burnt: not usable afterwards either.
    assert callback(client, state, fake.issue_code(company.id)).status_code == 400


def test_state_from_another_browser_is_refused(client, db, settings, fake):
    tenant = make_merchant(db)
    company = fake.add_company()
    state = authorize(db, settings, tenant)
    answer = callback(client, state, fake.issue_code(company.id), binding="someone-elses-browser")
    assert answer.status_code == 400 and "another browser" in answer.json()["error"]["message"]
    state = authorize(db, settings, tenant)
    assert callback(client, state, fake.issue_code(company.id), binding=None).status_code == 400
    assert connection(db, tenant) is None and fake.grant_count("authorization_code") == 0


def test_a_used_code_is_refused(client, db, settings, fake):
    tenant = make_merchant(db)
    company = fake.add_company()
    code = fake.issue_code(company.id)
    assert callback(client, authorize(db, settings, tenant), code).status_code == 303
    answer = callback(client, authorize(db, settings, tenant), code)
    assert answer.status_code == 400
    assert "refused the authorization code" in answer.json()["error"]["message"]
    assert fake.refused["authorization_code"] == 1


def test_states_are_stored_as_digests(db, settings):
    tenant = make_merchant(db)
    state = authorize(db, settings, tenant)
    with db.session(readonly=True) as session:
        row = session.scalars(select(BlingOAuthState)).one()
    assert state not in (row.state_digest, row.binding_digest)
    assert BINDING not in (row.state_digest, row.binding_digest)


def test_operator_link_sets_the_binding_cookie(client, db, settings, fake):
    tenant = make_merchant(db)
    company = fake.add_company()
    with db.session() as session:
        url = service.start_connect(session, session.get_one(Tenant, tenant.id), BINDING, settings)
    link = service.begin_url(settings, url, BINDING)
    client.cookies.clear()
    answer = client.get(link.removeprefix(settings.public_url), follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == url
    assert client.cookies.get(service.BINDING_COOKIE) == BINDING
    state = url.split("state=")[1]
    done = client.get(
        "/connectors/bling/callback",
        params={"code": fake.issue_code(company.id), "state": state},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert connection(db, tenant).status == "connected"
    bad = client.get(link.removeprefix(settings.public_url) + "x", follow_redirects=False)
    assert bad.status_code == 400


def test_disconnect_revokes_and_deletes_the_tokens(client, db, settings, fake, bling):
    tenant = make_merchant(db)
    connect(client, db, settings, fake, tenant)
    stored = connection(db, tenant)
    box = SecretBox.from_settings(settings)
    access, refresh = box.open(stored.access_token), box.open(stored.refresh_token)
    with db.session() as session:
        answer = service.disconnect(session, session.get_one(Tenant, tenant.id), bling)
    assert answer["revoked"] == {"access_token": True, "refresh_token": True}
    assert set(fake.revoked) == {access, refresh}
    after = connection(db, tenant)
    assert after.access_token is None and after.refresh_token is None
    assert after.status == "disconnected" and after.company_id is None
    with db.session(readonly=True) as session:
        assert session.scalars(select(BlingConnection)).one().status == "disconnected"
