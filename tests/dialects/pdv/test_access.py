"""Who may call /v1/pvt: HTTP Basic credentials, per-credential rate limits, and CORS for
browser-based POS front ends."""

from fastapi.testclient import TestClient

from fidelia.app import create_app
from fidelia.kit.settings import Settings
from fidelia.tenants.service import revoke_api_key
from tests.dialects.pdv.conftest import (
    ANA,
    AVAILABLE,
    BIA,
    ORDERS,
    add_reward,
    basic,
    challenge_path,
    error,
    make_merchant,
    new_key,
    ok,
    redeem_path,
    tenant_set,
    wallet,
)
from tests.support.helpers import LiveServer

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


def test_the_default_limits_refuse_a_burst(settings):
    """The documented defaults, unchanged: any 10 calls pass (10/second allows 10 in any
    second), and a burst is refused soon after, by the per-second limit when the machine is
    fast or by the 300/minute one when it is slow: no assertion on elapsed time."""
    default = Settings.model_fields["rate_limit_pdv"].default
    assert default == "10/second;300/minute;10000/hour"
    app = create_app(settings.model_copy(update={"rate_limit_pdv": default}), run_worker=False)
    db = app.state.fidelia.db
    try:
        with TestClient(app) as client:
            merchant = make_merchant(db)
            tenant_set(db, merchant, "cors_origins", POS)
            headers = {**merchant.headers, "Origin": POS}
            statuses = [
                client.post(AVAILABLE, headers=headers, json=LOOKUP).status_code for _ in range(10)
            ]
            assert statuses == [200] * 10
            over = None
            for _ in range(300):  # 301 calls cannot all pass 300/minute
                answer = client.post(AVAILABLE, headers=headers, json=LOOKUP)
                if answer.status_code != 200:
                    over = answer
                    break
            assert over is not None
            body = error(over, 429, "TooManyRequests")
            assert body["ErrorMessage"]
            assert 1 <= int(over.headers["Retry-After"]) <= 60
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


def readable(response, origin=POS):
    """What a browser at ``origin`` lets the page read (else "Failed to fetch")."""
    allowed = response.headers.get("Access-Control-Allow-Origin") == origin
    if allowed:
        assert "origin" in listed(response.headers.get("Vary")), response.headers
    return allowed


def test_cors_on_every_answer_errors_included(client, db):
    """Issue 8: a browser POS must be able to read a 401, 404, 400, 422 or 429 (and its
    successes) from an origin its merchant configured, or it only sees "Failed to fetch"."""
    merchant = make_merchant(db)
    other = make_merchant(db, slug="outra")  # configures no origin
    tenant_set(db, merchant, "cors_origins", POS)
    mine = {**merchant.headers, "Origin": POS}

    # Before the merchant is known: any merchant's origin may read the refusal.
    unknown_merchant = [
        client.post(AVAILABLE, headers={"Origin": POS}, json=LOOKUP),  # no credentials
        client.post(AVAILABLE, headers={**basic("ftk_x", "y"), "Origin": POS}, json=LOOKUP),
        client.post(AVAILABLE, headers={"Authorization": "Basic %%%", "Origin": POS}),
        client.delete("/v1/pvt/POS/rewards/1", headers={"Origin": POS}),
        client.post(challenge_path(), headers={"Origin": POS}, json={"TransactionId": "T"}),
    ]
    for answer in unknown_merchant:
        assert answer.status_code == 401, answer.text
        assert readable(answer), answer.headers
    error(unknown_merchant[0], 401, "Unauthorized")
    not_a_route = client.get("/v1/pvt/POS/nope", headers=mine)
    error(not_a_route, 404, "NotFound")
    assert readable(not_a_route)
    not_json = client.post(
        AVAILABLE, headers={**mine, "Content-Type": "application/json"}, content=b"{oops"
    )
    error(not_json, 400, "InvalidRequest")
    assert readable(not_json)

    # The merchant known: its refusals and successes.
    redeem_body = {"CustomerId": ANA, "OriginalKey": "K"}
    bool_total = {"OriginalId": "P", "OrderTotal": True}
    known = [
        (client.post(AVAILABLE, headers=mine, json=LOOKUP), 200, None),
        (client.post(AVAILABLE, headers=mine, json={"PurchaseValue": 1}), 400, "InvalidRequest"),
        (client.post(redeem_path(9), headers=mine, json=redeem_body), 404, "CustomerNotFound"),
        (client.delete("/v1/pvt/POS/rewards/X-1", headers=mine), 404, "RedemptionNotFound"),
        (client.post("/v1/pvt/POS/orders/NOPE/cancel", headers=mine), 404, "OrderNotFound"),
        (client.post(ORDERS, headers=mine, json=bool_total), 400, "InvalidRequest"),
    ]
    for answer, status, code_name in known:
        if code_name:
            error(answer, status, code_name)
        assert answer.status_code == status, answer.text
        assert readable(answer), (answer.request.url, answer.headers)
    bare = client.post(challenge_path(BIA), headers=mine, json={"TransactionId": "T"})
    assert bare.status_code == 404 and bare.json()["CodeName"] == "CustomerNotFound"
    assert readable(bare)
    ok(
        client.post(
            ORDERS,
            headers=mine,
            json={
                "OriginalId": "P1",
                "OrderTotal": 10,
                "IsCompleted": True,
                "Customer": {"Document": ANA},
            },
        )
    )
    reward = add_reward(db, merchant, "Vale", points=1000)
    short = client.post(
        redeem_path(reward), headers=mine, json={"CustomerId": ANA, "OriginalKey": "K"}
    )
    error(short, 422, "InsufficientPoints")
    assert readable(short)
    assert wallet(db, merchant) == (10, 50)

    # An origin nobody configured reads nothing; nor does another merchant's known caller
    # from an origin that merchant did not configure.
    stranger = "https://evil.example"
    assert not readable(client.post(AVAILABLE, headers={"Origin": stranger}, json=LOOKUP), stranger)
    assert not readable(client.get("/v1/pvt/POS/nope", headers={"Origin": stranger}), stranger)
    theirs = client.post(redeem_path(9), headers={**other.headers, "Origin": POS}, json=redeem_body)
    assert theirs.status_code == 404 and not readable(theirs)
    # Other doors are left alone.
    assert (
        "Access-Control-Allow-Origin" not in client.get("/healthz", headers={"Origin": POS}).headers
    )

    # The preflight before any of these.
    for method in ("POST", "DELETE"):
        answer = preflight(client, POS, method)
        assert answer.status_code == 204 and readable(answer)


def test_cors_over_http(app, db):
    """The same over a real socket (uvicorn on loopback), as a browser's fetch arrives."""
    merchant = make_merchant(db)
    tenant_set(db, merchant, "cors_origins", POS)
    with LiveServer(app) as server, server.client(headers={"Origin": POS}) as http:
        flight = http.options(
            AVAILABLE,
            headers={
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert flight.status_code == 204 and readable(flight)
        assert readable(http.post(AVAILABLE, json=LOOKUP))  # 401, no credentials
        assert readable(http.post(AVAILABLE, headers=merchant.headers, json=LOOKUP))  # 200
        missing = http.post(
            redeem_path(9), headers=merchant.headers, json={"CustomerId": ANA, "OriginalKey": "K"}
        )
        assert missing.status_code == 404 and readable(missing)
        bad = http.post(AVAILABLE, headers=merchant.headers, json={"CustomerId": True})
        assert bad.status_code == 400 and readable(bad)
