"""Who may call /v1/pvt: HTTP Basic credentials, per-credential rate limits, and CORS for
browser-based POS front ends."""

import time

from fastapi.testclient import TestClient

from fidelia.app import create_app
from fidelia.kit.settings import Settings
from fidelia.tenants.service import revoke_api_key
from tests.dialects.pdv.conftest import (
    ANA,
    AVAILABLE,
    ORDERS,
    basic,
    error,
    make_merchant,
    new_key,
    ok,
    redeem_path,
    tenant_set,
)

POS = "https://pos.example"
LOOKUP = {"CustomerId": ANA, "PurchaseValue": 10}


def test_credentials_are_required(client, db):
    merchant = make_merchant(db)
    other = make_merchant(db, slug="outra")
    wrong = [
        {},
        {"Authorization": "Bearer " + merchant.api_key},
        {"Authorization": "Basic %%%"},
        {"Authorization": "Basic dG9rZW4="},  # "token", no password
        basic(merchant.token, ""),
        basic(merchant.token, merchant.api_key + "x"),
        basic(merchant.api_key, merchant.token),  # swapped
        basic(merchant.token, other.api_key),  # another merchant's key
        basic(other.token, merchant.api_key),
    ]
    for headers in wrong:
        error(client.post(AVAILABLE, headers=headers, json=LOOKUP), 401, "Unauthorized")
    error(client.post(ORDERS, json={"OriginalId": "X", "OrderTotal": 1}), 401, "Unauthorized")
    error(
        client.post(redeem_path(1), json={"CustomerId": ANA, "OriginalKey": "K"}),
        401,
        "Unauthorized",
    )
    error(client.delete("/v1/pvt/POS/rewards/1"), 401, "Unauthorized")
    error(client.post("/v1/pvt/POS/orders/X/cancel"), 401, "Unauthorized")
    error(client.post("/v1/pvt/POS/X/partialcancel", json={}), 401, "Unauthorized")
    assert client.post(AVAILABLE, headers=merchant.headers, json=LOOKUP).status_code == 200


def test_a_revoked_key_is_refused(client, db):
    merchant = make_merchant(db)
    second = new_key(db, merchant)
    assert client.post(AVAILABLE, headers=second.headers, json=LOOKUP).status_code == 200
    with db.session() as session:
        revoke_api_key(session, second.api_key)  # `fidelia key revoke <key>`
    error(client.post(AVAILABLE, headers=second.headers, json=LOOKUP), 401, "Unauthorized")
    assert client.post(AVAILABLE, headers=merchant.headers, json=LOOKUP).status_code == 200


def test_eleventh_request_in_a_second_is_refused(settings):
    default = Settings.model_fields["rate_limit_pdv"].default
    assert default == "10/second;300/minute;10000/hour"
    app = create_app(settings.model_copy(update={"rate_limit_pdv": default}), run_worker=False)
    db = app.state.fidelia.db
    try:
        with TestClient(app) as client:
            merchant = make_merchant(db)
            tenant_set(db, merchant, "cors_origins", POS)
            headers = {**merchant.headers, "Origin": POS}
            started = time.monotonic()
            statuses = [
                client.post(AVAILABLE, headers=headers, json=LOOKUP).status_code for _ in range(10)
            ]
            over = client.post(AVAILABLE, headers=headers, json=LOOKUP)
            elapsed = time.monotonic() - started
            assert elapsed < 1, f"too slow to test a per-second limit: {elapsed:.2f}s"
            assert statuses == [200] * 10
            body = error(over, 429, "TooManyRequests")
            assert body["ErrorMessage"]
            assert over.headers["Retry-After"] == "1"
            # A browser POS must be able to read the 429 to back off.
            assert over.headers.get("Access-Control-Allow-Origin") == POS
            # Another credential, even of the same merchant, has its own budget.
            second = new_key(db, merchant).headers
            assert client.post(AVAILABLE, headers=second, json=LOOKUP).status_code == 200
            # Bad credentials are not counted against (nor refused by) the merchant's budget.
            bad = basic("ftk_nope", "nope")
            error(client.post(AVAILABLE, headers=bad, json=LOOKUP), 401, "Unauthorized")
    finally:
        db.dispose()


def preflight(client, origin, method="POST"):
    return client.options(
        AVAILABLE,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )


def listed(header):
    return {part.strip().lower() for part in (header or "").split(",")}


def test_cors_for_configured_origins(client, db):
    merchant = make_merchant(db)
    other = make_merchant(db, slug="outra")
    refused = preflight(client, POS)
    assert refused.status_code >= 400
    assert "Access-Control-Allow-Origin" not in refused.headers

    tenant_set(db, merchant, "cors_origins", POS)  # tenant set loja cors_origins https://pos...
    for method in ("POST", "DELETE"):
        answer = preflight(client, POS, method)
        assert answer.status_code == 204, answer.text
        assert answer.headers["Access-Control-Allow-Origin"] == POS
        assert {"authorization", "content-type"} <= listed(
            answer.headers["Access-Control-Allow-Headers"]
        )
        assert {"post", "delete"} <= listed(answer.headers["Access-Control-Allow-Methods"])
    unknown = preflight(client, "https://evil.example")
    assert "Access-Control-Allow-Origin" not in unknown.headers

    allowed = client.post(AVAILABLE, headers={**merchant.headers, "Origin": POS}, json=LOOKUP)
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == POS
    ok(
        client.post(
            ORDERS,
            headers={**merchant.headers, "Origin": POS},
            json={"OriginalId": "PDV-1", "OrderTotal": 10, "Customer": {"Document": ANA}},
        )
    )
    stranger = {**merchant.headers, "Origin": "https://evil.example"}
    assert (
        "Access-Control-Allow-Origin"
        not in client.post(AVAILABLE, headers=stranger, json=LOOKUP).headers
    )
    # The origin is this merchant's, not the other's.
    elsewhere = client.post(AVAILABLE, headers={**other.headers, "Origin": POS}, json=LOOKUP)
    assert elsewhere.status_code == 200
    assert "Access-Control-Allow-Origin" not in elsewhere.headers
