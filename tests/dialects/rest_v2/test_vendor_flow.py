"""A client written from the vendor's published material, unchanged: the Postman collection
"Smartbis API v2" gives the base URL ``https://api.smartbis.com/v2/`` (with its trailing
slash), "POST /v2/auth/token" with ``api_key`` and ``api_secret``, ``Content-Type:
application/json`` and ``Authorization: Bearer {access_token}`` on every call; the overview
page lists ``POST /auth/token``, ``GET /customers``, ``POST /customers``, ``POST /sales``,
``GET /coupons``, ``PATCH /coupons/{coupon_id}/stock``, ``GET /vouchers`` and
``POST /vouchers/{voucher_code}/validate``. Base URL + path gives ``//``; base URL + the
collection's "/v2/auth/token" gives ``/v2//v2/auth/token``. Both reach the door."""

from fidelia.models import Tenant
from fidelia.vouchers.service import issue
from tests.dialects.rest_v2.conftest import ANA, add_coupon, page, wallet

BASE = "http://testserver/v2/"  # the documented base URL, on our test server
JSON = {"Content-Type": "application/json"}


def test_the_documented_flow_with_the_documented_base_url(client, db, shop):
    # Step 1: the token, at base + "/auth/token", with the guide's field names.
    token = client.post(
        BASE + "/auth/token",
        headers=JSON,
        json={"api_key": shop.api_key, "api_secret": shop.api_secret},
    )
    assert token.status_code == 200, token.text
    headers = {**JSON, "Authorization": f"Bearer {token.json()['access_token']}"}
    # The collection's own path appended to its base URL.
    again = client.post(
        BASE + "/v2/auth/token",
        headers=JSON,
        json={"api_key": shop.api_key, "api_secret": shop.api_secret},
    )
    assert again.status_code == 200 and again.json()["access_token"] == token.json()["access_token"]

    # Step 2: create or locate the customer.
    assert page(client.get(BASE + "/customers", headers=headers, params={"cpf": ANA})) == []
    created = client.post(
        BASE + "/customers",
        headers=headers,
        json={"name": "Ana Souza", "phone": "11987654321", "cpf": ANA, "password": "s3nha-123"},
    )
    assert created.status_code == 201, created.text
    (found,) = page(client.get(BASE + "/customers", headers=headers, params={"cpf": ANA}))
    assert found["id"] == created.json()["id"]

    # Step 3: the sale, by CPF and by customer_id.
    sold = client.post(BASE + "/sales", headers=headers, json={"cpf": ANA, "sale_amount": 150})
    assert sold.status_code == 201, sold.text
    by_id = client.post(
        BASE + "/sales", headers=headers, json={"customer_id": found["id"], "sale_amount": "50.00"}
    )
    assert by_id.status_code == 201, by_id.text
    assert wallet(db, shop) == (200, 1000)

    # Step 4: coupons, stock, vouchers, categories.
    coupon = add_coupon(db, shop, stock=3)
    (listed,) = page(client.get(BASE + "/coupons", headers=headers))
    assert listed["id"] == coupon
    stock = client.patch(BASE + f"/coupons/{coupon}/stock", headers=headers, json={"stock": 2})
    assert stock.status_code == 200 and stock.json()["stock"] == 2
    with db.session() as session:
        code = issue(session, session.get_one(Tenant, shop.id), value=1000).code
    assert [v["code"] for v in page(client.get(BASE + "/vouchers", headers=headers))] == [code]
    used = client.post(BASE + f"/vouchers/{code}/validate", headers=headers)
    assert used.status_code == 200 and used.json()["status"] == "used"
    category = client.post(BASE + "/categories", headers=headers, json={"name": "Bebidas"})
    assert category.status_code == 201
    assert len(page(client.get(BASE + "/categories", headers=headers))) == 1


def test_repeated_slashes_reach_every_door(client, shop):
    assert client.get("http://testserver//healthz").json() == {"status": "ok"}
    pin = client.post("/api/v1//integraciones//pin/generar", headers={"X-API-Key": shop.api_secret})
    assert pin.status_code == 200, pin.text
    assert client.get("/v2///customers").status_code == 401  # routed, then refused: no token
