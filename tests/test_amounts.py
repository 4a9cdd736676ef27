"""Amounts and integers: one strict reading on every door (kit/money.decimal_of), one cap,
and values the database cannot store refused the same way on SQLite and PostgreSQL. Each
bad value is answered 4xx in the door's format and writes nothing."""

import base64

import pytest
from sqlalchemy import func, select

from fidelia.models import Customer, LedgerEntry, Order, Pin
from fidelia.tenants.service import set_setting
from tests.support.helpers import make_tenant

# Text forms no door reads as an amount, and JSON values that are not amounts.
BAD = [
    "1_000",
    "１０",  # full-width digits
    "1e3",
    " 10.00 ",
    ".5",
    "5.",
    "-5",
    "10,00",
    "0x10",
    "NaN",
    "Infinity",
    True,
    False,
    [],
    {},
]
TOO_PRECISE = ["10.005", 19.999, "0.001"]
HUGE = [10**16, 2**63, 2**64, "99999999999999999999"]


@pytest.fixture
def shop(db):
    tenant, key = make_tenant(db, slug="loja", currency="BRL", locale="pt_BR")
    with db.session() as session:
        set_setting(session, "loja", "earn_points_per_unit", "1")
        from fidelia.models import ApiKey

        token = session.scalar(select(ApiKey.token).where(ApiKey.tenant_id == tenant.id))
    basic = base64.b64encode(f"{token}:{key}".encode()).decode()
    return {"key": key, "token": token, "pos": {"Authorization": f"Basic {basic}"}}


def written(db):
    with db.session(readonly=True) as session:
        return [
            session.scalar(select(func.count()).select_from(m))
            for m in (Customer, LedgerEntry, Order, Pin)
        ]


@pytest.mark.parametrize("value", BAD + TOO_PRECISE + HUGE, ids=repr)
def test_the_pos_door_refuses_bad_amounts(client, db, shop, value):
    before = written(db)
    response = client.post(
        "/v1/pvt/POS/orders",
        headers=shop["pos"],
        json={
            "OriginalId": "PDV-1",
            "OrderTotal": value,
            "IsCompleted": True,
            "Customer": {"Document": "52998224725"},
        },
    )
    assert response.status_code == 400, response.text
    assert response.json()["HasError"] is True
    assert written(db) == before


@pytest.mark.parametrize("value", BAD + TOO_PRECISE + HUGE, ids=repr)
def test_the_rest_v2_door_refuses_bad_amounts(client, db, shop, value):
    token = client.post(
        "/v2/auth/token", json={"api_key": shop["token"], "api_secret": shop["key"]}
    ).json()["access_token"]
    before = written(db)
    response = client.post(
        "/v2/sales",
        headers={"Authorization": f"Bearer {token}"},
        json={"cpf": "52998224725", "sale_amount": value},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] in ("invalid_amount", "invalid_request")
    assert written(db) == before


@pytest.mark.parametrize("value", BAD + TOO_PRECISE + HUGE, ids=repr)
def test_the_pin_door_refuses_bad_amounts(client, db, shop, value):
    before = written(db)
    response = client.post(
        "/api/v1/integraciones/pin/generar",
        headers={"X-API-Key": shop["key"]},
        json={"monto": value},
    )
    assert response.status_code == 400, response.text
    assert response.json()["codigo"] in ("MONTO_INVALIDO", "SOLICITUD_INVALIDA")
    assert written(db) == before


@pytest.mark.parametrize("value", [*BAD, 100.0, "100.00", 10**15 + 1, 2**63 - 1, 2**63, 2**64])
def test_the_retail_door_refuses_bad_cents(client, db, shop, value):
    before = written(db)
    response = client.post(
        "/v1/transaction",
        headers={
            "x-api-key": shop["key"],
            "x-source-type": "POS",
            "x-source-name": "t",
            "x-branch-id": "1",
            "x-pos-id": "1",
        },
        json={
            "member": {"phoneNumber": "+5511987654321"},
            "transaction": {"transactionId": "T-1", "totalAmount": value},
        },
    )
    assert response.status_code == 400, response.text
    assert response.json()["status"] == "error"
    assert written(db) == before


@pytest.mark.parametrize(
    "path,body",
    [
        ("/v2/coupons/{coupon}/stock", {"stock": 2**63}),
        ("/v2/coupons/{coupon}/stock", {"adjust": -(2**63) - 1}),
        ("/v2/coupons/{coupon}/stock", {"stock": True}),
    ],
)
def test_integers_out_of_range_are_refused(client, db, shop, path, body):
    from tests.support.helpers import make_reward

    with db.session(readonly=True) as session:
        from fidelia.models import Tenant

        tenant = session.scalar(select(Tenant).where(Tenant.slug == "loja"))
    coupon = make_reward(db, tenant, points=10, title="Cupom")
    token = client.post(
        "/v2/auth/token", json={"api_key": shop["token"], "api_secret": shop["key"]}
    ).json()["access_token"]
    response = client.patch(
        path.format(coupon=coupon), headers={"Authorization": f"Bearer {token}"}, json=body
    )
    assert response.status_code in (409, 422), response.text  # never a 500
    assert "error" in response.json()


@pytest.mark.parametrize("door", ["pos", "v2", "retail"])
def test_a_nul_character_is_refused_on_both_databases(client, db, shop, door):
    before = written(db)
    if door == "pos":
        response = client.post(
            "/v1/pvt/POS/orders",
            headers=shop["pos"],
            json={
                "OriginalId": "PDV\u00002",
                "OrderTotal": 10,
                "IsCompleted": True,
                "Customer": {"Document": "52998224725", "Name": "A\u0000na"},
            },
        )
    elif door == "v2":
        token = client.post(
            "/v2/auth/token", json={"api_key": shop["token"], "api_secret": shop["key"]}
        ).json()["access_token"]
        response = client.post(
            "/v2/customers",
            headers={"Authorization": f"Bearer {token}"},
            json={"name": "A\u0000na", "cpf": "52998224725"},
        )
    else:
        response = client.post(
            "/v1/member/register",
            headers={
                "x-api-key": shop["key"],
                "x-source-type": "POS",
                "x-source-name": "t",
                "x-branch-id": "1",
                "x-pos-id": "1",
            },
            json={"member": {"phoneNumber": "+5511987654321", "firstName": "A\u0000na"}},
        )
    assert 400 <= response.status_code < 500, response.text
    assert written(db) == before
