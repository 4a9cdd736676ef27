"""Integrations and API keys: every door with its full URL, credential, guide and docs; the
bot number and the exact wa.me text a POS prints, with its QR image; API keys created (the
secret shown once, with which door takes which value), used by a door (last use recorded at
most once a minute), revoked (the door refuses it); another merchant's keys are not found."""

import re
import time

import segno
from sqlalchemy import select

from fidelia.doors import DOORS
from fidelia.models import ApiKey, AuditEntry
from fidelia.tenants.service import KeyCache, doors, record_key_use
from tests.panel.support import make_merchant, post, sign_in

SECRET = re.compile(r'id="new-api-key" class="secret" type="text" readonly value="([^"]+)"')
TOKEN = re.compile(r'id="new-token" class="secret" type="text" readonly value="([^"]+)"')


def keys_of(db, tenant_id):
    with db.session(readonly=True) as session:
        query = select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.id)
        return list(session.scalars(query))


def actions(db, tenant_id):
    with db.session(readonly=True) as session:
        query = select(AuditEntry).where(AuditEntry.tenant_id == tenant_id)
        return [(e.action, e.after) for e in session.scalars(query.order_by(AuditEntry.id))]


def test_every_door_with_its_url_credential_guide_and_docs(client, db, settings):
    a = make_merchant(db, "shop-a", locale="en")
    sign_in(client, a.owner)
    page = client.get("/panel/integrations").text
    base = settings.public_url.rstrip("/")
    for door in DOORS:
        card = page.split(f'data-door="{door.key}"')[1].split("</article>")[0]
        assert f"<code>{base}{door.base}</code>" in card, door.key
        assert door.guide in card and f'href="{base}/docs/{door.key}"' in card
    pos = page.split('data-door="pos"')[1].split("</article>")[0]
    assert (
        "<code>basic_user</code> = token" in pos and "<code>basic_password</code> = API key" in pos
    )
    # The bot (the platform's here) and the exact text the POS prints, as the PIN door says.
    assert f"+{settings.bot_number}" in page
    expected = f"https://wa.me/{settings.bot_number}?text=Quiero+activar+mi+PIN:+123456"
    assert expected in page
    generated = client.post(
        "/api/v1/integraciones/pin/generar", headers={"X-API-Key": a.api_key}
    ).json()
    assert generated["whatsapp_url"] == expected.replace("123456", generated["pin"])
    svg = client.get("/panel/integrations/qr.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.content == _svg_of(expected)


def _svg_of(text):
    import io

    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="svg", scale=6, border=2, xmldecl=False)
    return buffer.getvalue()


def test_the_merchants_own_bot_number_is_shown(client, db):
    a = make_merchant(db, "shop-a", locale="en")
    sign_in(client, a.owner)
    post(client, "/panel/program", {"bot_number": "+55 11 99999-0000"})
    page = client.get("/panel/integrations").text
    assert "your own bot number" in page and "https://wa.me/5511999990000?text=" in page


def test_create_use_and_revoke_a_key(client, db):
    a = make_merchant(db, "shop-a", locale="en")
    sign_in(client, a.owner)
    answer = post(client, "/panel/integrations/keys", {"name": "Counter POS"})
    assert answer.status_code == 200
    secret, token = SECRET.search(answer.text).group(1), TOKEN.search(answer.text).group(1)
    assert "the only time" in answer.text
    # Which value goes where: the same mapping as the CLI's.
    for door, fields in doors(token, secret).items():
        for name in fields:
            assert f"<code>{name}</code>" in answer.text, (door, name)
    key = keys_of(db, a.tenant_id)[-1]
    assert (key.name, key.hint, key.last_used_at) == ("Counter POS", secret[-4:], None)
    assert secret not in client.get("/panel/integrations/keys").text  # shown once
    door = "/api/v1/integraciones/pin/generar"
    assert client.post(door, headers={"X-API-Key": secret}).status_code == 200
    deadline = time.monotonic() + 5
    while keys_of(db, a.tenant_id)[-1].last_used_at is None and time.monotonic() < deadline:
        time.sleep(0.05)  # recorded by the cache's background thread
    first_use = keys_of(db, a.tenant_id)[-1].last_used_at
    assert first_use is not None
    assert client.post(door, headers={"X-API-Key": secret}).status_code == 200
    time.sleep(0.3)
    assert keys_of(db, a.tenant_id)[-1].last_used_at == first_use  # not a write per request
    revoked = post(client, f"/panel/integrations/keys/{key.id}/revoke", follow_redirects=False)
    assert revoked.status_code == 303
    assert keys_of(db, a.tenant_id)[-1].revoked_at is not None
    assert client.post(door, headers={"X-API-Key": secret}).status_code == 401
    assert client.post(door, headers={"X-API-Key": a.api_key}).status_code == 200  # the other
    assert post(client, f"/panel/integrations/keys/{key.id}/revoke").status_code == 409
    logged = actions(db, a.tenant_id)
    assert ("apikey.create", {"name": "Counter POS", "hint": secret[-4:]}) in logged
    assert ("apikey.revoke", {"name": "Counter POS", "hint": secret[-4:]}) in logged
    assert secret not in str(logged)


def test_a_long_name_is_refused_and_nothing_is_made(client, db):
    a = make_merchant(db, "shop-a", locale="en")
    sign_in(client, a.owner)
    answer = post(client, "/panel/integrations/keys", {"name": "x" * 81})
    assert answer.status_code == 422 and 'id="e-name"' in answer.text
    assert len(keys_of(db, a.tenant_id)) == 1


def test_another_merchants_key_is_not_found(client, db):
    a = make_merchant(db, "shop-a", locale="en")
    b = make_merchant(db, "shop-b", locale="en")
    sign_in(client, a.owner)
    theirs = keys_of(db, b.tenant_id)[0]
    assert post(client, f"/panel/integrations/keys/{theirs.id}/revoke").status_code == 404
    assert keys_of(db, b.tenant_id)[0].revoked_at is None
    assert f"…{theirs.hint}" not in client.get("/panel/integrations/keys").text


def test_last_use_is_written_at_most_once_a_minute_across_processes(db):
    a = make_merchant(db, "shop-a")
    key = keys_of(db, a.tenant_id)[0]
    from datetime import UTC, datetime, timedelta

    at = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    assert record_key_use(db, key.id, at) is True
    assert record_key_use(db, key.id, at + timedelta(seconds=30)) is False  # another process
    assert record_key_use(db, key.id, at + timedelta(seconds=61)) is True
    assert keys_of(db, a.tenant_id)[0].last_used_at == at + timedelta(seconds=61)
    cache = KeyCache(ttl=0)
    assert cache.tenant_for(db, a.api_key) is not None
    assert cache.tenant_for(db, "fk_live_unknown") is None
