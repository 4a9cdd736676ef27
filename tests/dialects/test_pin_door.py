"""Seed 000, the PIN door: POST /api/v1/integraciones/pin/generar and the QR."""

from datetime import datetime

from sqlalchemy import func, select

from fidelia.models import Pin
from fidelia.tenants.service import revoke_api_key
from tests.support.helpers import make_tenant

URL = "/api/v1/integraciones/pin/generar"


def count_pins(db):
    with db.session(readonly=True) as session:
        return int(session.scalar(select(func.count()).select_from(Pin)) or 0)


def test_generate_without_body(client, db):
    tenant, key = make_tenant(db, timezone="America/Costa_Rica")
    response = client.post(URL, headers={"X-API-Key": key})
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert len(body["pin"]) == 6 and body["pin"].isdigit()  # see pins/guard.py
    assert body["expires_in"] == 1800
    assert body["id_comercio"] == tenant.id
    assert datetime.fromisoformat(body["expires_at"]).utcoffset().total_seconds() == -6 * 3600
    assert (
        body["whatsapp_url"]
        == f"https://wa.me/50600000000?text=Quiero+activar+mi+PIN:+{body['pin']}"
    )


def test_pin_lifetime_setting(client, db):
    _, key = make_tenant(db, pin_lifetime_minutes="5")
    assert client.post(URL, headers={"X-API-Key": key}).json()["expires_in"] == 300


def test_minimum_purchase(client, db):
    _, key = make_tenant(db, min_purchase="1000")
    low = client.post(URL, headers={"X-API-Key": key}, json={"monto": 999.5})
    assert low.status_code == 422
    assert low.json() == {
        "ok": False,
        "codigo": "MONTO_MINIMO_NO_ALCANZADO",
        "mensaje": low.json()["mensaje"],
    }
    assert count_pins(db) == 0
    assert client.post(URL, headers={"X-API-Key": key}, json={"monto": "1000"}).status_code == 200
    assert count_pins(db) == 1


def test_bad_bodies_are_400_in_door_format(client, db) -> None:
    _, key = make_tenant(db)
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    for raw in ('{"monto": "abc"}', '{"monto": -5}', "{not json", '{"monto": 1.234567}'):
        response = client.post(URL, headers=headers, content=raw)
        assert response.status_code == 400, raw
        assert response.json()["ok"] is False
        assert response.json()["codigo"] in ("SOLICITUD_INVALIDA", "MONTO_INVALIDO")
    assert count_pins(db) == 0


def test_unauthorized(client, db):
    _, key = make_tenant(db)
    for headers in ({}, {"X-API-Key": "fk_live_wrong"}):
        response = client.post(URL, headers=headers)
        assert response.status_code == 401
        assert response.json()["codigo"] == "UNAUTHORIZED"
    with db.session() as session:
        revoke_api_key(session, key)
    assert client.post(URL, headers={"X-API-Key": key}).status_code == 401


def test_qr_codes(client, db):
    _, key = make_tenant(db)
    other_tenant, other_key = make_tenant(db, slug="otro", name="Otro")
    pin = client.post(URL, headers={"X-API-Key": key}).json()["pin"]
    svg = client.get(f"/api/v1/integraciones/pin/{pin}/qr.svg", headers={"X-API-Key": key})
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in svg.content
    png = client.get(f"/api/v1/integraciones/pin/{pin}/qr.png", headers={"X-API-Key": key})
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    # Another merchant's key does not reveal this merchant's PIN.
    assert (
        client.get(
            f"/api/v1/integraciones/pin/{pin}/qr.svg", headers={"X-API-Key": other_key}
        ).status_code
        == 404
    )
    assert client.get(f"/api/v1/integraciones/pin/{pin}/qr.svg").status_code == 401


def test_pins_are_distinct_and_grow_when_space_fills(client, db):
    from fidelia.pins.guard import GuessPolicy

    _, key = make_tenant(db)
    made = [client.post(URL, headers={"X-API-Key": key}).json()["pin"] for _ in range(30)]
    assert len(set(made)) == 30
    policy = GuessPolicy()  # the defaults: 60 failures an hour per bot number
    assert [len(p) for p in made] == [policy.length_for(n) for n in range(30)]
    assert [policy.length_for(n) for n in (0, 5, 6, 63, 64, 648, 649, 6492, 6493)] == [
        6,
        6,
        7,
        7,
        8,
        8,
        9,
        9,
        10,
    ]
