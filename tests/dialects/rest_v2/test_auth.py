"""POST /v2/auth/token and the Bearer tokens it hands out: expiry, revocation (of the token
and of its API key), tenant isolation, and the rate limits per credential."""

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from fidelia.app import create_app
from fidelia.models import Tenant
from fidelia.tenants.service import issue_api_key, revoke_api_key
from tests.dialects.rest_v2.conftest import (
    CUSTOMERS,
    TOKEN,
    Merchant,
    auth,
    create_customer,
    error,
    make_merchant,
    page,
    token_for,
)

T0 = datetime(2026, 5, 7, 15, 0, tzinfo=UTC)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_token_shape_and_use(client, shop, frozen):
    frozen(T0)
    response = client.post(TOKEN, json={"api_key": shop.api_key, "api_secret": shop.api_secret})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "expires_at"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert datetime.fromisoformat(body["expires_at"]) == T0 + timedelta(hours=1)
    assert response.headers["Cache-Control"] == "no-store"
    assert page(client.get(CUSTOMERS, headers=bearer(body["access_token"]))) == []
    # Each call gets a new token; both work.
    other = token_for(client, shop)
    assert other != body["access_token"]
    assert client.get(CUSTOMERS, headers=bearer(other)).status_code == 200


def test_bad_credentials(client, shop):
    cases = [
        {"api_key": shop.api_key, "api_secret": "fk_live_wrong"},
        {"api_key": "ftk_wrong", "api_secret": shop.api_secret},
        {"api_key": shop.api_secret, "api_secret": shop.api_key},  # swapped
    ]
    for body in cases:
        response = client.post(TOKEN, json=body)
        error(response, 401, "invalid_credentials")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    error(client.post(TOKEN, json={"api_key": shop.api_key}), 422, "invalid_request")
    error(client.post(TOKEN, json={"api_key": "", "api_secret": ""}), 422, "invalid_request")
    error(
        client.post(TOKEN, content=b"{not json", headers={"Content-Type": "application/json"}),
        422,
        "invalid_request",
    )


def test_calls_without_a_valid_token(client, shop):
    missing = client.get(CUSTOMERS)
    error(missing, 401, "unauthorized")
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="fidelia"'
    basic = client.get(CUSTOMERS, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    error(basic, 401, "unauthorized")
    for token in ("nope", shop.api_key, shop.api_secret):  # credentials are not tokens
        wrong = client.get(CUSTOMERS, headers=bearer(token))
        error(wrong, 401, "invalid_token")
        assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]


def test_tokens_expire_after_an_hour(client, shop, frozen):
    frozen(T0)
    token = token_for(client, shop)
    frozen(T0 + timedelta(minutes=59, seconds=59))
    assert client.get(CUSTOMERS, headers=bearer(token)).status_code == 200
    frozen(T0 + timedelta(hours=1))
    expired = client.get(CUSTOMERS, headers=bearer(token))
    error(expired, 401, "invalid_token")
    assert 'error="invalid_token"' in expired.headers["WWW-Authenticate"]
    # A new token is the cure.
    assert client.get(CUSTOMERS, headers=bearer(token_for(client, shop))).status_code == 200


def test_tokens_die_with_their_api_key(client, db, shop):
    token = token_for(client, shop)
    with db.session() as session:
        second = issue_api_key(session, session.get_one(Tenant, shop.id))
    other = Merchant(shop.id, shop.slug, shop.program_id, second.token, second.api_key)
    other_token = token_for(client, other)
    with db.session() as session:
        revoke_api_key(session, shop.api_secret)
    error(client.get(CUSTOMERS, headers=bearer(token)), 401, "invalid_token")
    error(
        client.post(TOKEN, json={"api_key": shop.api_key, "api_secret": shop.api_secret}),
        401,
        "invalid_credentials",
    )
    # The merchant's other key, and its tokens, live on.
    assert client.get(CUSTOMERS, headers=bearer(other_token)).status_code == 200


def test_revoking_a_token(client, shop):
    first, second = token_for(client, shop), token_for(client, shop)
    response = client.delete(TOKEN, headers=bearer(first))
    assert response.status_code == 204 and response.content == b""
    error(client.get(CUSTOMERS, headers=bearer(first)), 401, "invalid_token")
    error(client.delete(TOKEN, headers=bearer(first)), 401, "invalid_token")
    assert client.get(CUSTOMERS, headers=bearer(second)).status_code == 200


def test_a_token_sees_only_its_merchant(client, db, shop):
    other = make_merchant(db, slug="outra")
    mine = create_customer(client, auth(client, shop))
    theirs = auth(client, other)
    assert page(client.get(CUSTOMERS, headers=theirs), total=0) == []
    error(client.get(f"{CUSTOMERS}/{mine['id']}", headers=theirs), 404, "customer_not_found")


def test_rate_limits_per_credential(settings):
    limited = settings.model_copy(
        update={"rate_limit_rest_v2": "5/minute", "rate_limit_rest_v2_token": "4/minute"}
    )
    app = create_app(limited, run_worker=False)
    try:
        with TestClient(app) as client:
            shop = make_merchant(app.state.fidelia.db)
            first, second = token_for(client, shop), token_for(client, shop)
            # Two tokens of one credential share its quota: 5 calls in all.
            statuses = [
                client.get(CUSTOMERS, headers=bearer(t)).status_code
                for t in (first, second, first, second, first)
            ]
            assert statuses == [200] * 5
            over = client.get(CUSTOMERS, headers=bearer(second))
            error(over, 429, "rate_limited")
            assert 1 <= int(over.headers["Retry-After"]) <= 60
            # Bad tokens are refused before counting, and do not use the quota of others.
            error(client.get(CUSTOMERS, headers=bearer("nope")), 401, "invalid_token")
            # The token endpoint counts per client IP: 2 above, 2 more, then refused.
            other = make_merchant(app.state.fidelia.db, slug="outra")
            token_for(client, other)
            token_for(client, other)
            error(
                client.post(TOKEN, json={"api_key": other.api_key, "api_secret": other.api_secret}),
                429,
                "rate_limited",
            )
    finally:
        app.state.fidelia.db.dispose()
