"""Headers, authentication, the envelope of every error, rate limits and the OpenAPI text."""

import pytest

from fidelia.tenants.service import revoke_api_key
from tests.dialects.retail_v1.conftest import ANA, error, headers, make_shop, post, register

REQUIRED = ("x-api-key", "x-source-type", "x-source-name", "x-branch-id", "x-pos-id")


def test_missing_or_empty_headers(client, db):
    shop = make_shop(db)
    body = {"member": {"phoneNumber": ANA}}
    for name in REQUIRED:
        for value in (None, " "):
            sent = headers(shop.api_key)
            if value is None:
                del sent[name]
            else:
                sent[name] = value
            response = client.post("/v1/member/details", headers=sent, json=body)
            if name == "x-api-key":
                error(response, 401, "4010001", "header.x-api-key")
            else:
                error(response, 400, "4000001", f"header.{name}")
    # Header problems come before body problems, and x-api-key before the others.
    response = client.post("/v1/member/details", headers={"x-pos-id": "1"}, json={})
    error(response, 401, "4010001", "header.x-api-key")


def test_wrong_and_revoked_keys(client, db):
    shop = make_shop(db)
    register(client, shop)
    body = {"member": {"phoneNumber": ANA}}
    response = client.post("/v1/member/details", headers=headers("fk_live_nope"), json=body)
    error(response, 401, "4010001", "header.x-api-key")
    with db.session() as session:
        revoke_api_key(session, shop.api_key)
    error(post(client, shop, "/member/details", body), 401, "4010001", "header.x-api-key")


def test_malformed_bodies(client, db):
    shop = make_shop(db)
    raw = client.post(
        "/v1/member/register",
        headers={**shop.headers, "Content-Type": "application/json"},
        content=b'{"member": ',
    )
    error(raw, 400, "4000002", "body")
    error(post(client, shop, "/member/register", {}), 400, "4001010", "body.member")
    error(post(client, shop, "/member/register", []), 400, "4000002", "body")
    wrong_type = post(client, shop, "/transaction", {"transaction": {"transactionId": "T1"}})
    error(wrong_type, 400, "4000002", "body.transaction.totalAmount")
    fraction = post(
        client,
        shop,
        "/transaction",
        {"transaction": {"transactionId": "T1", "totalAmount": 10, "items": [{"netAmount": 1.5}]}},
    )
    error(fraction, 400, "4001004", "body.transaction.items[0].netAmount")
    action = post(client, shop, "/member/shortCode", {"member": {"email": "a@b.co"}, "action": "x"})
    error(action, 400, "4000002", "body.action")


def test_unknown_member_and_identifiers(client, db):
    shop = make_shop(db)
    for field, value in (
        ("phoneNumber", "+5511955554444"),
        ("email", "nobody@example.com"),
        ("membershipKey", "000000000000"),
        ("externalId", "CRM-404"),
    ):
        response = post(client, shop, "/member/details", {"member": {field: value}})
        body = error(response, 400, "4001012", f"body.member.{field}")
        assert body["message"] == "Cannot find any member with the given identifier."
    error(post(client, shop, "/member/details", {"member": {}}), 400, "4001010", "body.member")
    bad_phone = post(client, shop, "/member/details", {"member": {"phoneNumber": "12"}})
    error(bad_phone, 400, "1001", "body.member.phoneNumber")
    bad_email = post(client, shop, "/member/details", {"member": {"email": "not-mail"}})
    error(bad_email, 400, "4001002", "body.member.email")


def test_unknown_path_and_method(client, db):
    shop = make_shop(db)
    error(post(client, shop, "/member/nope", {}), 404, "404", None)
    response = client.get("/v1/member/details", headers=shop.headers)
    error(response, 405, "405", None)


def test_rate_limit_per_api_key(app, client, db):
    app.state.fidelia.settings = app.state.fidelia.settings.model_copy(
        update={"rate_limit_retail": "3/minute"}
    )
    shop = make_shop(db)
    other = make_shop(db, slug="outra")
    body = {"member": {"phoneNumber": ANA}}
    for _ in range(3):
        assert post(client, shop, "/member/details", body).status_code == 400  # unknown member
    limited = post(client, shop, "/member/details", body)
    error(limited, 429, "429", None)
    assert int(limited.headers["Retry-After"]) >= 1
    # Another key has its own quota; bad keys never use up the merchant's.
    assert post(client, other, "/member/details", body).status_code == 400
    for _ in range(5):
        response = client.post("/v1/member/details", headers=headers("fk_live_bad"), json=body)
        assert response.status_code == 401


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_openapi_documents_the_door(client):
    spec = client.get("/openapi.json").json()
    paths = [p for p in spec["paths"] if p.startswith("/v1/") and "/pvt/" not in p]
    assert sorted(paths) == [
        "/v1/event",
        "/v1/member/details",
        "/v1/member/erase",
        "/v1/member/register",
        "/v1/member/shortCode",
        "/v1/member/update",
        "/v1/payment",
        "/v1/transaction",
        "/v1/transaction/cancel",
    ]
    details = spec["paths"]["/v1/member/details"]["post"]
    required = {p["name"] for p in details["parameters"] if p["required"]}
    assert required == set(REQUIRED) - {"x-api-key"}  # the key is the security scheme
    assert details["security"] == [{"RetailApiKey": []}]
    assert {"x-return-assets", "x-return-benefits"} <= {p["name"] for p in details["parameters"]}
    assert details["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorResponse"
    )
    assert "AssetOut" in spec["components"]["schemas"]
